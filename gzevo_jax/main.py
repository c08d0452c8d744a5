r"""Entry point: pretrain with any objective.

  python -m gzevo_jax.main --config=configs/hybrid.py[:VARIANT] \
      [--workdir=runs/NAME] [--config.FIELD=VALUE ...]

The workdir defaults to runs/<config.run_name>; rerunning the same command
resumes from its latest checkpoint.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from gzevo_jax import cli

_CONFIG = cli.config_flag()
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Checkpoints, metrics and TensorBoard events go here '
    '(default: runs/<config.run_name>).')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from gzevo_jax import config_lib, train  # After flag parsing: fast --help.
  from gzevo_jax.data import common
  logging.get_absl_handler().addFilter(cli.QuietLibraryInfo())
  config = _CONFIG.value
  try:
    config_lib.validate(config)
  except ValueError as e:
    sys.exit(f'error: {e}')
  workdir = _WORKDIR.value or os.path.join('runs', config.run_name)
  logging.info('config:\n%s', config)
  try:
    train.train_and_evaluate(config, workdir)
  except common.DataError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)

r"""Entry point: pretrain with any objective.

  python -m gzevo_jax.main --config=configs/hybrid.py[:VARIANT] \
      [--workdir=runs/NAME] [--config.FIELD=VALUE ...]

The workdir defaults to runs/<config.run_name>; rerunning the same command
resumes from its latest checkpoint.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/hybrid.py or '
    'configs/hybrid.py:smoke.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Checkpoints, metrics and TensorBoard events go here '
    '(default: runs/<config.run_name>).')
flags.mark_flags_as_required(['config'])

_OVERRIDE = re.compile(r'^--config\.([A-Za-z0-9_.]+)(=|$)')


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses flags, naming the valid fields when a --config.X override is bad."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    config_arg = next((a.split('=', 1)[1] for a in argv
                       if a.startswith('--config=')), None)
    if config_arg is None:
      raise
    from gzevo_jax import config_lib
    base = config_lib.load_config_file(config_arg)
    for arg in argv:
      match = _OVERRIDE.match(arg)
      message = match and config_lib.unknown_field_message(base, match[1])
      if message:
        sys.exit(f'error: {message}')
    raise SystemExit(f'error: bad config ({e})')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from gzevo_jax import train  # After flag parsing: keeps --help fast.
  config = _CONFIG.value
  workdir = _WORKDIR.value or os.path.join('runs', config.run_name)
  logging.info('config:\n%s', config)
  train.train_and_evaluate(config, workdir)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)

r"""Entry point: pretrain with any objective.

  python -m gzevo_jax.main --config=configs/hybrid.py[:VARIANT] \
      [--workdir=runs/NAME] [--config.FIELD=VALUE ...]

The workdir defaults to runs/<config.run_name>; rerunning the same command
resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging as pylogging
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


def _config_spec(argv: Sequence[str]) -> str | None:
  """The value of --config (either `--config=X` or `--config X`)."""
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses flags; a bad config file, variant or field is a one-line error."""
  from gzevo_jax import config_lib
  spec = _config_spec(argv)
  if spec is not None:
    try:  # Load it once here: config_flags would defer the error.
      base = config_lib.load_config_file(spec)
    except (ValueError, FileNotFoundError) as e:
      sys.exit(f'error: {e}')
    for arg in argv:
      match = _OVERRIDE.match(arg)
      message = match and config_lib.unknown_field_message(base, match[1])
      if message:
        sys.exit(f'error: {message}')
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'error: {e}\nPass --helpfull to see help on flags.')


class _QuietLibraryInfo(pylogging.Filter):
  """Drops INFO lines from checkpointing libraries; keeps their warnings."""
  _CHATTY = (f'{os.sep}orbax{os.sep}', f'{os.sep}etils{os.sep}')

  def filter(self, record: pylogging.LogRecord) -> bool:
    return (record.levelno >= pylogging.WARNING or
            not any(part in record.pathname for part in self._CHATTY))


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from gzevo_jax import config_lib, train  # After flag parsing: fast --help.
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())
  config = _CONFIG.value
  try:
    config_lib.validate(config)
  except ValueError as e:
    sys.exit(f'error: {e}')
  workdir = _WORKDIR.value or os.path.join('runs', config.run_name)
  logging.info('config:\n%s', config)
  train.train_and_evaluate(config, workdir)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)

"""Command-line plumbing shared by every entry point.

Each command defines its flags (`--config` with `config_flag()`) and runs
with `cli.run(main)`: one rule for the whole command line, every error a
user can cause (a bad config file, variant or field, a stray argument, a
`UserError` or a missing file) is one `error:` line and exit status 1.
"""

from __future__ import annotations

import logging as pylogging
import os
import re
import sys
from typing import Callable, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

_OVERRIDE = re.compile(r'^--config\.([A-Za-z0-9_.]+)(=|$)')


def config_flag(default: str | None = None):
  """Defines --config (a config file[:variant], overridable field by field)."""
  holder = config_flags.DEFINE_config_file(
      'config', default, 'Config file, e.g. configs/hybrid.py or '
      'configs/hybrid.py:smoke; override fields with --config.FIELD=VALUE.',
      lock_config=True)
  if default is None:
    flags.mark_flags_as_required(['config'])
  return holder


def default_workdir(config) -> str:
  """runs/<run_name>; an evaluation adds the pretrained run's name."""
  name = config.run_name
  if config.get('pretrained_workdir'):
    name += '_' + os.path.basename(os.path.normpath(config.pretrained_workdir))
  return os.path.join('runs', name)


def _config_spec(argv: Sequence[str]) -> str | None:
  """The value of --config (either `--config=X` or `--config X`)."""
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def parse_flags(argv: Sequence[str]) -> list[str]:
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


class QuietLibraryInfo(pylogging.Filter):
  """Drops INFO lines from checkpoint and dataset libraries; keeps warnings."""
  _CHATTY = (f'{os.sep}orbax{os.sep}', f'{os.sep}etils{os.sep}',
             f'{os.sep}tensorflow_datasets{os.sep}')

  def filter(self, record: pylogging.LogRecord) -> bool:
    return (record.levelno >= pylogging.WARNING or
            not any(part in record.pathname for part in self._CHATTY))


def one_line_errors(main: Callable[[Sequence[str]], None]
                    ) -> Callable[[Sequence[str]], None]:
  """`main` with stray arguments and the errors a user causes as `error:`."""
  def wrapped(argv: Sequence[str]) -> None:
    if len(argv) > 1:
      sys.exit(f'error: unexpected argument(s) {" ".join(argv[1:])}: every '
               'option is a flag, e.g. --workdir=DIR or --config.FIELD=VALUE')
    from gzevo_jax import errors
    try:
      main(argv)
    except (errors.UserError, FileNotFoundError) as e:
      sys.exit(f'error: {e}')

  return wrapped


def run(main: Callable[[Sequence[str]], None]) -> None:
  """`app.run` for a command of this package, with its one error rule."""
  app.run(one_line_errors(main), flags_parser=parse_flags)

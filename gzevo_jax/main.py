r"""Entry point: pretrain with any objective, or evaluate a pretrained encoder.

  python -m gzevo_jax.main --config=configs/hybrid.py[:VARIANT] \
      [--workdir=runs/NAME] [--config.FIELD=VALUE ...]
  python -m gzevo_jax.main --config=configs/linear_probe.py \
      --config.pretrained_workdir=runs/hybrid

`config.task` picks what runs. The workdir defaults to runs/<config.run_name>
(for an evaluation, with the pretrained workdir's name appended); rerunning
a pretraining command resumes from its latest checkpoint.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from absl import flags
from absl import logging

from gzevo_jax import cli
from gzevo_jax import distributed

_CONFIG = cli.config_flag()
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Checkpoints, metrics and TensorBoard events go here '
    '(default: runs/<config.run_name>).')
_DISTRIBUTED = flags.DEFINE_enum(
    'distributed', 'auto', distributed.MODES, 'Join a multi-process job with '
    'jax.distributed: auto (with --coordinator_address, or several SLURM or '
    'Open MPI tasks), on (always; JAX detects TPU pods), off.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'HOST:PORT of process 0, for a multi-process '
    'job started by hand (with --num_processes and --process_id).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Processes in the job.', lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'This process: 0 .. num_processes-1.',
                                   lower_bound=0)


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run says what to do with stray arguments.
  try:  # Before anything touches a device.
    distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value,
                           _NUM_PROCESSES.value, _PROCESS_ID.value)
  except ValueError as e:
    sys.exit(f'error: {e}')
  distributed.quiet_unless_chief()
  # After flag parsing: --help stays fast.
  from gzevo_jax import config_lib, train
  logging.get_absl_handler().addFilter(cli.QuietLibraryInfo())
  config = _CONFIG.value
  task = config.get('task', 'pretrain')
  workdir = _WORKDIR.value or cli.default_workdir(config)
  logging.info('config:\n%s', config)
  if task == 'pretrain':
    validate, run = config_lib.validate, train.train_and_evaluate
  elif task in config_lib.DOWNSTREAM_TASKS:
    module = importlib.import_module(f'gzevo_jax.evaluation.{task}')
    validate, run = module.validate, module.run
  else:
    sys.exit(f'error: config.task={task!r} is not valid; choose one of '
             f'pretrain, {", ".join(config_lib.DOWNSTREAM_TASKS)}')
  try:
    validate(config)
  except ValueError as e:
    sys.exit(f'error: {e}')
  run(config, workdir)


if __name__ == '__main__':
  cli.run(main)

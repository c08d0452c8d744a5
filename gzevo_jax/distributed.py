"""Multi-host start-up: `jax.distributed.initialize` when the job spans hosts.

One process runs per host (TPU VM pods) or per GPU (SLURM), each with the
same command. `initialize` decides from flags and the environment whether
this is such a job, and must run before anything touches a JAX device:

  mode 'off'   never (a single process)
  mode 'on'    always; JAX fills in what is not given (TPU VM pods, SLURM,
               Open MPI)
  mode 'auto'  when a coordinator address is given, or SLURM or Open MPI
               started more than one task; otherwise a single process

On CPU the processes exchange collectives over Gloo, so several processes on
one machine (`launch/local.sh` with NUM_PROCESSES) behave like a pod.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

from absl import logging
import jax

MODES = ('auto', 'on', 'off')


def _task_count(environ: Mapping[str, str]) -> int:
  """Tasks a SLURM job step or Open MPI job started (1 when neither)."""
  key = ('SLURM_NTASKS' if 'SLURM_JOB_ID' in environ else
         'OMPI_COMM_WORLD_SIZE')
  try:
    return int(environ.get(key, 1))
  except ValueError:
    raise ValueError(f'environment variable {key}={environ[key]!r} is not a '
                     'number') from None


def should_initialize(mode: str, coordinator_address: Optional[str],
                      environ: Mapping[str, str]) -> bool:
  """Whether this process is one of several (see the module docstring)."""
  if mode not in MODES:
    raise ValueError(f'--distributed={mode!r} is not valid; choose one of '
                     f'{", ".join(MODES)}')
  if mode == 'off':
    if coordinator_address:
      raise ValueError('--coordinator_address was given with '
                       '--distributed=off')
    return False
  return mode == 'on' or bool(coordinator_address) or _task_count(environ) > 1


def initialize(mode: str = 'auto', coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> bool:
  """Joins the multi-process job if there is one; returns whether it did."""
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit) and any(v is None for v in explicit):
    raise ValueError('--coordinator_address, --num_processes and --process_id '
                     'go together: give all three or none')
  if process_id is not None and process_id >= num_processes:
    raise ValueError(f'--process_id={process_id} must be less than '
                     f'--num_processes={num_processes}')
  if not should_initialize(mode, coordinator_address, os.environ):
    return False
  # CPU collectives across processes (harmless where devices are GPUs/TPUs).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)
  logging.info('process %d of %d: %d local device(s), %d in all',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  return True


def quiet_unless_chief() -> None:
  """Processes other than 0 log warnings and errors only: one log per job."""
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)

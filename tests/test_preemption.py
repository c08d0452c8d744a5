"""SIGTERM or SIGINT: checkpoint at this step, exit cleanly, resume exactly.

The main test kills a real `python -m gzevo_jax.main` run mid-way, as a
preemption would, reruns the same command, and compares its final
parameters with an uninterrupted run's.
"""

import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO_ROOT
from gzevo_jax import checkpoint, preemption
from gzevo_jax.data import build

TOTAL_STEPS = 30


def _command(workdir, data_dir):
  return [sys.executable, '-m', 'gzevo_jax.main',
          '--config=configs/hybrid.py:smoke', f'--workdir={workdir}',
          f'--config.data.data_dir={data_dir}',
          f'--config.train_duration={TOTAL_STEPS} steps',
          '--config.warmup_duration=5 steps',
          '--config.log_every_steps=1', '--config.checkpoint_every_steps=1000',
          '--config.global_batch_size=16', '--config.data.image_size=16',
          '--config.model.width_multiplier=0.0625',
          '--config.knn_monitor.every_steps=0']


def _env():
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env['PYTHONPATH'] = os.pathsep.join([REPO_ROOT, env.get('PYTHONPATH', '')])
  return env


def _run(workdir, data_dir):
  done = subprocess.run(_command(workdir, data_dir), cwd=REPO_ROOT, env=_env(),
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-4000:]
  return done.stderr


def _run_and_signal_at(workdir, data_dir, step, signum):
  """Starts a run, sends `signum` once it logs `step`, returns (rc, log)."""
  process = subprocess.Popen(_command(workdir, data_dir), cwd=REPO_ROOT,
                             env=_env(), text=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
  log = []
  for line in process.stderr:
    log.append(line)
    if f'step {step}/{TOTAL_STEPS}' in line:
      process.send_signal(signum)
      break
  _, rest = process.communicate(timeout=600)
  return process.returncode, ''.join(log) + rest


def _final_params(workdir):
  _, variables, _, _ = checkpoint.restore_model(str(workdir))
  return jax.tree.leaves(jax.device_get(variables))


@pytest.fixture(scope='module')
def data_dir():
  data_dir = os.environ['TFDS_DATA_DIR']
  build.prepare('gz_evo/synthetic_tiny', data_dir)
  return data_dir


@pytest.fixture(scope='module')
def unbroken(tmp_path_factory, data_dir):
  """The final parameters of a run nobody interrupted."""
  workdir = tmp_path_factory.mktemp('unbroken')
  _run(workdir, data_dir)
  return _final_params(workdir)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_and_the_rerun_ends_where_an_unbroken_run_does(
    tmp_path, data_dir, unbroken, signum):
  workdir = tmp_path / 'interrupted'
  returncode, log = _run_and_signal_at(workdir, data_dir, 8, signum)
  assert returncode == 0, log[-4000:]
  stopped = re.search(r'stopped at step (\d+) of 30 by a signal', log)
  assert stopped, log[-4000:]
  stopped_at = int(stopped[1])
  assert 8 <= stopped_at < TOTAL_STEPS
  _, _, saved = checkpoint.load_config_and_schema(str(workdir))
  assert saved == stopped_at

  log = _run(workdir, data_dir)
  assert 'resumed from' in log and f'at step {stopped_at}' in log
  resumed = _final_params(workdir)
  worst = max(float(np.max(np.abs(a - b))) for a, b in zip(resumed, unbroken))
  print(f'{signal.Signals(signum).name} at step {stopped_at}: largest '
        f'parameter difference after resuming {worst:g}')
  assert worst <= 1e-6


def test_stop_requests_in_one_process():
  before = signal.getsignal(signal.SIGTERM)
  with preemption.StopRequests() as stop:
    assert not stop.should_stop(1)
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.should_stop(2)
    with pytest.raises(KeyboardInterrupt):  # A second Ctrl-C: stop now.
      os.kill(os.getpid(), signal.SIGINT)
  assert signal.getsignal(signal.SIGTERM) is before

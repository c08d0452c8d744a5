"""Two processes on localhost train as one job, like two hosts of a pod.

Each runs tests/multihost_worker.py with 2 CPU devices (4 in all, collectives
over Gloo); a third, single process with 4 devices is fed the same global
batches. The two must end with identical parameters, equal to the single
process's, and must read disjoint parts of the training split.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO_ROOT
from gzevo_jax import checkpoint
from gzevo_jax.data import build

WORKER = os.path.join(REPO_ROOT, 'tests', 'multihost_worker.py')
PROCESSES, DEVICES_EACH = 2, 2


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start(out, workdir, data_dir, *extra):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env['PYTHONPATH'] = os.pathsep.join([REPO_ROOT, env.get('PYTHONPATH', '')])
  command = [sys.executable, WORKER, f'--num_processes={PROCESSES}',
             f'--data_dir={data_dir}', f'--workdir={workdir}', f'--out={out}',
             *extra]
  return subprocess.Popen(command, cwd=REPO_ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(process, name):
  try:
    output, _ = process.communicate(timeout=600)
  except subprocess.TimeoutExpired:
    process.kill()
    output, _ = process.communicate()
    pytest.fail(f'{name} timed out:\n{output[-4000:]}')
  assert process.returncode == 0, f'{name} failed:\n{output[-4000:]}'
  return output


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  data_dir = os.environ['TFDS_DATA_DIR']
  build.prepare('gz_evo/synthetic_tiny', data_dir)
  build.prepare('gz_rings/synthetic_tiny', data_dir)
  root = tmp_path_factory.mktemp('multihost')
  port = _free_port()
  workers = [
      _start(root / f'p{i}.npz', root / 'job', data_dir, f'--process_id={i}',
             f'--port={port}', f'--devices={DEVICES_EACH}')
      for i in range(PROCESSES)]
  reference = _start(root / 'reference.npz', root / 'reference', data_dir,
                     '--reference', f'--devices={PROCESSES * DEVICES_EACH}')
  for i, worker in enumerate(workers):
    _finish(worker, f'process {i}')
  _finish(reference, 'the single-process reference')
  load = lambda name: dict(np.load(root / name))
  return {'workers': [load(f'p{i}.npz') for i in range(PROCESSES)],
          'reference': load('reference.npz'), 'job': root / 'job'}


def _params(result):
  return {k: v for k, v in result.items() if not k.startswith('__')}


def test_both_processes_end_with_identical_parameters(runs):
  first, second = runs['workers']
  assert int(first['__processes__']) == PROCESSES
  a, b = _params(first), _params(second)
  assert a.keys() == b.keys() and len(a) > 10
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_the_job_matches_one_process_on_the_same_global_batches(runs):
  job, reference = _params(runs['workers'][0]), _params(runs['reference'])
  assert job.keys() == reference.keys()
  worst = max(float(np.max(np.abs(job[k] - reference[k]))) for k in job)
  moved = max(float(np.max(np.abs(job[k]))) for k in job)
  print(f'largest parameter difference from one process: {worst:g}')
  assert worst < 1e-5, f'largest parameter difference {worst:g}'
  assert moved > 0


def test_no_example_is_read_by_two_processes_in_an_epoch(runs):
  ids = [set(w['__ids__']) for w in runs['workers']]
  sizes = [len(w['__ids__']) for w in runs['workers']]
  assert sizes[0] == sizes[1] > 0
  assert all(len(s) == n for s, n in zip(ids, sizes))  # No repeats within.
  assert not ids[0] & ids[1]


def test_the_job_writes_one_checkpoint_and_one_metrics_file(runs):
  _, variables, _, _ = checkpoint.restore_model(str(runs['job']))
  restored = {jax.tree_util.keystr(path): np.asarray(x) for path, x in
              jax.tree_util.tree_leaves_with_path(variables['params'])}
  worker = _params(runs['workers'][0])
  assert restored.keys() == worker.keys()
  for key in worker:
    np.testing.assert_array_equal(restored[key], worker[key], err_msg=key)
  with open(runs['job'] / 'metrics.jsonl') as f:  # Written by process 0 only.
    records = [json.loads(line) for line in f]
  assert [r['step'] for r in records] == [2, 4, 4]  # The kNN monitor at 4.
  assert 0 <= records[-1]['monitor/knn_accuracy'] <= 1

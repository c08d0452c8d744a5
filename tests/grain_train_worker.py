r"""The train loop on the Grain input with TensorFlow unimportable.

  python tests/grain_train_worker.py --data_dir=DIR --workdir=DIR

Run by test_grain_pipeline.py in a fresh process where `import tensorflow`
and `import tensorflow_datasets` fail. Trains the tiny hybrid config on
gz_evo/synthetic_tiny (array_record files built beforehand) three times:
straight through 6 steps; stopped after 4 batches (its checkpoint at step 3
holds the input state); resumed from that checkpoint to step 6. Prints one
JSON line: the largest parameter difference between the straight and the
resumed run, the input state saved with each checkpoint, the kNN monitor's
metrics from a run with it on, the linear probe's runs on the straight run's
checkpoint (both read gz_rings/synthetic_tiny's array_record files), and the
TensorFlow modules that were loaded (none).
"""

import argparse
import json
import os
import sys

sys.modules['tensorflow'] = None  # `import tensorflow` raises ImportError.
sys.modules['tensorflow_datasets'] = None

parser = argparse.ArgumentParser()
parser.add_argument('--data_dir', required=True)
parser.add_argument('--workdir', required=True)
args = parser.parse_args()

import grain  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from gzevo_jax import config_lib  # noqa: E402
from gzevo_jax import models  # noqa: E402
from gzevo_jax import train  # noqa: E402
from gzevo_jax.data import sources  # noqa: E402
from gzevo_jax.schema import get_schema  # noqa: E402
from gzevo_jax.evaluation import linear_probe  # noqa: E402
from tiny import REPO_ROOT, tiny_config  # noqa: E402

# The three runs compile the same programs: compile once.
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(args.workdir, 'xla_cache'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


class Stopped(Exception):
  pass


class StopAfter(grain.DatasetIterator):
  """A Grain iterator that stops the run after `n` batches.

  Its state is the wrapped iterator's, so checkpoints save it.
  """

  def __init__(self, parent, n):
    super().__init__(parent)
    self.n = n

  def __next__(self):
    if self.n == 0:
      raise Stopped()
    self.n -= 1
    return next(self._parent)

  def get_state(self):
    return self._parent.get_state()

  def set_state(self, state):
    self._parent.set_state(state)


def _saved_input_states(workdir):
  """{step: the input state saved with that checkpoint}."""
  states = {}
  root = os.path.join(workdir, 'checkpoints')
  for step in sorted(os.listdir(root)):
    path = os.path.join(root, step, 'data', 'process_0-of-1.json')
    if step.isdigit() and os.path.exists(path):
      with open(path) as f:
        states[int(step)] = json.load(f)
  return states


def _knn_metrics(config):
  """The kNN monitor's metrics lines from a run with it every 2 steps."""
  config = config.copy_and_resolve_references()
  config.knn_monitor.every_steps = 2
  config.knn_monitor.max_examples = 64
  workdir = os.path.join(args.workdir, 'c')
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    lines = [json.loads(line) for line in f]
  return [line for line in lines if 'monitor/knn_accuracy' in line]


def _probe_runs(pretrained_workdir):
  """The smoke linear probe's runs, through Grain."""
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'linear_probe.py:smoke'))
  config.pretrained_workdir = pretrained_workdir
  config.data.source, config.data.data_dir = 'grain', args.data_dir
  config.eval_batch_size = 64
  linear_probe.validate(config)
  results = linear_probe.run(config, os.path.join(args.workdir, 'probe'))
  return results['runs']


def main():
  config = tiny_config('hybrid', **{'data.source': 'grain',
                                    'data.data_dir': args.data_dir})
  straight = train.train_and_evaluate(config, os.path.join(args.workdir, 'a'))
  workdir = os.path.join(args.workdir, 'b')
  batches = sources.train_data(config, get_schema(config.schema),
                               models.uses_byol(config.objective)).batches(0)
  try:
    train.train_and_evaluate(config, workdir, StopAfter(batches, 4))
  except Stopped:
    pass
  stopped_states = _saved_input_states(workdir)
  resumed = train.train_and_evaluate(config, workdir)
  diff = max(float(np.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(jax.device_get(straight.params)),
      jax.tree.leaves(jax.device_get(resumed.params))))
  print(json.dumps({
      'knn_metrics': _knn_metrics(config),
      'probe_runs': _probe_runs(os.path.join(args.workdir, 'a')),
      'max_param_diff': diff,
      'stopped_states': stopped_states,
      'resumed_states': _saved_input_states(workdir),
      'tensorflow_loaded': sorted(m for m, v in sys.modules.items()
                                  if m.startswith('tensorflow') and v),
  }))


main()

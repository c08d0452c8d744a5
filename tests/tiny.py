"""The tiny configs tests train with; no side effects on import.

Kept apart from conftest.py (which sets up 8 simulated devices) so that
worker processes started by tests can use them with their own device count.
"""

import os

from gzevo_jax import config_lib
from gzevo_jax import train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(objective: str, **overrides):
  """The objective's smoke config shrunk further for unit tests."""
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', f'{objective}.py:smoke'))
  config.data.image_size = 16
  config.data.num_train_examples = 64
  config.global_batch_size = 16
  config.train_duration = '6 steps'
  config.warmup_duration = '2 steps'
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.model.width_multiplier = 0.0625
  config.model.projector_hidden_dim = 32
  config.model.projection_dim = 16
  config.model.predictor_hidden_dim = 32
  config.knn_monitor.every_steps = 0  # On only where a test asks for it.
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def tiny_checkpoint(objective: str, workdir: str) -> str:
  """Trains the tiny config for 2 steps into `workdir`; returns `workdir`."""
  train.train_and_evaluate(
      tiny_config(objective, train_duration='2 steps',
                  checkpoint_every_steps=2), workdir)
  return workdir

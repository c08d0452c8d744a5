"""Test-wide setup: 8 simulated CPU devices, shared config builders.

XLA_FLAGS must be set before JAX initialises its backend, so it is set here,
before any test module imports jax.
"""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8')

import tempfile  # noqa: E402

# Datasets built by tests (and by commands tests run) go to a fresh directory,
# never to the user's ~/tensorflow_datasets.
os.environ.setdefault('TFDS_DATA_DIR',
                      tempfile.mkdtemp(prefix='gzevo_jax_test_tfds_'))

import jax  # noqa: E402
import pytest  # noqa: E402

# Resumed runs recompile the very programs their first run compiled; a
# persistent compilation cache for the session turns those into cache hits.
jax.config.update('jax_compilation_cache_dir',
                  tempfile.mkdtemp(prefix='gzevo_jax_test_xla_cache_'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(objective: str, **overrides):
  """The objective's smoke config shrunk further for unit tests."""
  from gzevo_jax import config_lib
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


@pytest.fixture
def make_config():
  return tiny_config

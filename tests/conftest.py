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

# Re-exported: tests import these from conftest.
from tiny import REPO_ROOT, tiny_config  # noqa: E402

__all__ = ['REPO_ROOT', 'tiny_config']


@pytest.fixture
def make_config():
  return tiny_config

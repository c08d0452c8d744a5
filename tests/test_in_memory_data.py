"""The in-memory synthetic source: contract, determinism, sharding."""

import numpy as np
import pytest

from gzevo_jax.data import in_memory
from gzevo_jax.schema import GZ_EVO_V0_1 as SCHEMA


@pytest.fixture(scope='module')
def galaxies():
  return in_memory.make_catalogue(SCHEMA, 300, labelled_fraction=0.4, seed=3)


def test_catalogue_and_batches_are_deterministic(galaxies):
  again = in_memory.make_catalogue(SCHEMA, 300, 0.4, seed=3)
  np.testing.assert_array_equal(again.labels['votes'],
                                galaxies.labels['votes'])
  kw = dict(global_batch_size=8, image_size=16, channels=2, two_views=True,
            seed=1)
  a = next(in_memory.batches(galaxies, start_step=5, **kw))
  it = in_memory.batches(galaxies, **kw)
  for _ in range(5):
    next(it)
  b = next(it)
  for key in ('image', 'image_2', 'votes'):
    np.testing.assert_array_equal(a[key], b[key])
  assert a['image'].shape == (8, 16, 16, 2) and a['image'].dtype == np.float32
  assert a['votes'].shape == (8, 206) and a['votes'].dtype == np.int32
  assert 0.0 <= a['image'].min() and a['image'].max() <= 1.0
  assert not np.array_equal(a['image'], a['image_2'])


def test_processes_read_disjoint_examples_each_epoch():
  n, batch = 64, 16
  seen = []
  for p in range(4):
    for step in range(n // batch):
      idx = in_memory.batch_indices(n, batch, step, seed=0)
      seen.extend(idx[p * 4:(p + 1) * 4])
  assert sorted(seen) == list(range(n))


def test_batch_larger_than_dataset():
  with pytest.raises(ValueError, match='exceeds'):
    in_memory.batch_indices(10, 16, 0, 0)

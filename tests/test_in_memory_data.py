"""The in-memory synthetic source: tree-consistent votes, determinism, sharding."""

import numpy as np
import pytest

from gzevo_jax.data import in_memory
from gzevo_jax.schema import GZ_EVO_V0_1 as SCHEMA


@pytest.fixture(scope='module')
def galaxies():
  return in_memory.make_catalogue(SCHEMA, 2000, labelled_fraction=0.4, seed=3)


def test_votes_are_consistent_with_the_decision_tree(galaxies):
  votes = galaxies.votes
  assert votes.min() >= 0
  for i, q in enumerate(SCHEMA.questions):
    total = votes[:, SCHEMA.question_slices[i]].sum(1)
    if q.asked_if is None:
      continue
    parent = votes[:, SCHEMA.column_index(q.asked_if)]
    assert np.all(total <= parent), q.name
    # Every volunteer who reached the question answered it.
    np.testing.assert_array_equal(total, parent)


def test_each_labelled_galaxy_answers_one_campaign_only(galaxies):
  labelled = galaxies.campaign >= 0
  assert 0.35 < labelled.mean() < 0.45
  assert galaxies.votes[~labelled].sum() == 0
  for c, name in enumerate(SCHEMA.campaigns):
    rows = galaxies.campaign == c
    outside = ~SCHEMA.campaign_answer_mask(name)
    assert galaxies.votes[rows][:, outside].sum() == 0
    roots = [SCHEMA.question_slices[i] for i, q in enumerate(SCHEMA.questions)
             if q.campaign == name and q.asked_if is None]
    for sl in roots:
      assert np.all(galaxies.votes[rows][:, sl].sum(1) >= 5)
  # Most of the 206 answers of a labelled galaxy are unknown, as in GZ-Evo.
  unknown = (galaxies.votes[labelled] == 0).mean()
  assert unknown > 0.8


def test_catalogue_and_batches_are_deterministic(galaxies):
  again = in_memory.make_catalogue(SCHEMA, 2000, 0.4, seed=3)
  np.testing.assert_array_equal(again.votes, galaxies.votes)
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

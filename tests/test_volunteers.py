"""Simulated volunteers: tree-consistent votes, GZ-Evo-like sparsity, truth."""

import dataclasses

import numpy as np
import pytest

from gzevo_jax.data import morphology as morph
from gzevo_jax.data import volunteers
from gzevo_jax.schema import GZ_EVO_V0_1 as SCHEMA
from gzevo_jax.schema import Schema

N = 20_000


@pytest.fixture(scope='module')
def sample():
  rng = np.random.default_rng(7)
  m = morph.sample_morphology(N, rng)
  votes, member = volunteers.gz_evo_votes(SCHEMA, m, 0.3, rng)
  return m, votes, member


def test_votes_never_exceed_the_answer_they_depend_on(sample):
  _, votes, _ = sample
  assert votes.min() >= 0 and votes.dtype == np.int32
  for i, q in enumerate(SCHEMA.questions):
    total = votes[:, SCHEMA.question_slices[i]].sum(1)
    if q.asked_if is None:
      continue
    parent = votes[:, SCHEMA.column_index(q.asked_if)]
    assert np.all(total <= parent), q.name
    # Every volunteer who reached a question answered it.
    np.testing.assert_array_equal(total, parent, err_msg=q.name)


def test_labelled_share_and_unknown_answers(sample):
  _, votes, member = sample
  labelled = member.any(1)
  assert 0.28 < labelled.mean() < 0.32
  assert votes[~labelled].sum() == 0
  assert np.all(votes[labelled].sum(1) > 0)
  # A galaxy classified in one campaign knows at most that campaign's answers.
  widest = max(SCHEMA.campaign_answer_mask(c).sum() for c in SCHEMA.campaigns)
  single = member.sum(1) == 1
  known = (votes[single] > 0).sum(1)
  assert known.max() <= widest
  unknown = 1.0 - known / SCHEMA.num_answers
  assert unknown.min() >= 1.0 - widest / SCHEMA.num_answers
  assert unknown.mean() > 0.9
  # A few labelled galaxies are in two campaigns, and have votes in both.
  twice = member.sum(1) == 2
  assert 0.002 < twice.sum() / labelled.sum() < 0.06
  for row in np.flatnonzero(twice)[:20]:
    for c in np.flatnonzero(member[row]):
      mask = SCHEMA.campaign_answer_mask(SCHEMA.campaigns[c])
      assert votes[row, mask].sum() > 0


def test_campaign_typical_volunteer_counts(sample):
  _, votes, member = sample
  for campaign, low in (('gz2', 38), ('dr12', 35), ('hubble', 35)):
    c = SCHEMA.campaigns.index(campaign)
    root = SCHEMA.question_slices[SCHEMA.question_names.index(
        f'smooth-or-featured-{campaign}')]
    only = member[:, c] & (member.sum(1) == 1)
    assert np.all(votes[only][:, root].sum(1) >= low)
  # DR5 retired most galaxies early.
  c = SCHEMA.campaigns.index('dr5')
  root = SCHEMA.question_slices[SCHEMA.question_names.index(
      'smooth-or-featured-dr5')]
  counts = votes[member[:, c] & (member.sum(1) == 1)][:, root].sum(1)
  assert 0.5 < np.mean(counts <= 8) < 0.8


def _fraction(votes, column, question_rows):
  q = SCHEMA.question(column.rsplit('_', 1)[0])
  cols = [SCHEMA.column_index(c) for c in q.columns]
  total = votes[:, cols].sum(1)
  keep = question_rows & (total > 0)
  return votes[keep, SCHEMA.column_index(column)] / total[keep]


def test_votes_follow_the_true_morphology(sample):
  m, votes, _ = sample
  featured = _fraction(votes, 'smooth-or-featured-dr8_featured-or-disk',
                       m.kind == morph.DISK)
  smooth = _fraction(votes, 'smooth-or-featured-dr8_featured-or-disk',
                     m.kind == morph.SMOOTH)
  assert featured.mean() > 0.6 > 0.15 > smooth.mean()
  strong = _fraction(votes, 'bar-dr5_strong', m.bar >= morph.STRONG_BAR)
  unbarred = _fraction(votes, 'bar-dr5_strong', m.bar == 0)
  assert strong.mean() > 0.5 > 0.15 > unbarred.mean()
  edge_on = _fraction(votes, 'disk-edge-on-gz2_yes', m.edge_on)
  face_on = _fraction(votes, 'disk-edge-on-gz2_yes',
                      (m.kind == morph.DISK) & ~m.edge_on)
  assert edge_on.mean() > 0.6 > 0.2 > face_on.mean()


def test_some_disagreement_always(sample):
  """Even the clearest galaxies never get a unanimous vote every time."""
  m, votes, member = sample
  root = SCHEMA.question_slices[SCHEMA.question_names.index(
      'smooth-or-featured-gz2')]
  clear = member[:, SCHEMA.campaigns.index('gz2')] & (m.snr > 200)
  top_share = votes[clear][:, root].max(1) / votes[clear][:, root].sum(1)
  assert np.mean(top_share < 1.0) > 0.5


def test_faint_and_small_features_are_harder_to_see():
  m = morph.sample_morphology(1000, np.random.default_rng(0))
  bright = volunteers.clarity(np.full(1000, 0.5), m)
  fainter = volunteers.clarity(np.full(1000, 0.5), morph.Morphology(
      **{**m.to_dict(), 'snr': m.snr / 4}))
  smaller = volunteers.clarity(np.full(1000, 0.5), morph.Morphology(
      **{**m.to_dict(), 'radius': m.radius / 4}))
  assert np.all(fainter < bright) and np.all(smaller < bright)
  assert np.all(volunteers.clarity(np.zeros(1000), m) == 0)


def test_deterministic_from_seed():
  def draw(seed):
    rng = np.random.default_rng(seed)
    m = morph.sample_morphology(500, rng)
    return volunteers.gz_evo_votes(SCHEMA, m, 0.5, rng)[0]

  np.testing.assert_array_equal(draw(3), draw(3))
  assert not np.array_equal(draw(3), draw(4))


def test_ring_votes_follow_rings():
  rng = np.random.default_rng(1)
  m = morph.sample_morphology(5000, rng, ring_probability=0.5)
  votes = volunteers.ring_votes(m, rng)
  assert votes.shape == (5000, 2) and votes.min() >= 0
  fraction = votes[:, 0] / votes.sum(1)
  visible = volunteers.visible_ring_strength(m)
  clear = (visible > 0.3) & (m.snr > 50)
  assert clear.sum() > 50
  assert np.mean(fraction[clear] > 0.5) > 0.9
  hidden = (m.ring > 0) & (visible < 0.02)
  assert hidden.sum() > 50
  assert np.mean(fraction[hidden] > 0.5) < 0.05
  assert np.mean(fraction[m.ring == 0] > 0.5) < 0.02
  assert np.all(votes.sum(1) >= volunteers.RING_VOLUNTEERS[0])


def test_a_ring_is_seen_less_under_a_bulge_inclined_or_on_the_disk():
  m = morph.sample_morphology(1, np.random.default_rng(0), ring_probability=1)
  base = dataclasses.replace(m, kind=np.array([morph.DISK]), ring=np.ones(1),
                             ring_radius=np.array([2.0]),
                             bulge_fraction=np.array([0.2]),
                             inclination=np.zeros(1))
  strength = lambda **kw: float(volunteers.visible_ring_strength(
      dataclasses.replace(base, **kw))[0])
  assert strength() == pytest.approx(0.8)  # The disk's share of the light.
  assert strength(bulge_fraction=np.array([0.7])) < strength()
  assert strength(inclination=np.array([1.2])) < strength()
  assert strength(ring_radius=np.array([1.05])) < 0.1 * strength()
  assert strength(ring=np.zeros(1)) == 0.0


def test_the_ring_question_is_not_in_gz_evo():
  assert not any('ring' in c for c in SCHEMA.label_cols)


def test_questions_this_module_does_not_model_still_get_votes():
  schema = Schema.from_dict({
      'name': 'custom', 'questions': [
          {'question': 'shape', 'answers': ['blob', 'line'], 'asked_if': None},
          {'question': 'colour', 'answers': ['red', 'blue', 'green'],
           'asked_if': 'shape_blob'}]})
  rng = np.random.default_rng(0)
  m = morph.sample_morphology(300, rng)
  votes, member = volunteers.gz_evo_votes(schema, m, 1.0, rng)
  assert member.all()
  np.testing.assert_array_equal(votes[:, 2:].sum(1), votes[:, 0])
  assert votes[:, :2].sum(1).min() >= volunteers.DEFAULT_VOLUNTEERS[0][0]

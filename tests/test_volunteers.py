"""Simulated volunteers: tree-consistent votes, GZ-Evo-like sparsity, truth."""

import dataclasses

import numpy as np
import pytest

from gzevo_jax.data import morphology as morph
from gzevo_jax.data import render
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
  # visible_ring_strength is the chance a volunteer sees the ring.
  visible = volunteers.visible_ring_strength(m)
  clear = visible > 0.7
  assert clear.sum() > 50
  assert np.mean(fraction[clear] > 0.5) > 0.9
  hidden = m.has_ring & (visible < 0.02)
  assert hidden.sum() > 50
  assert np.mean(fraction[hidden] > 0.5) < 0.05
  assert np.mean(fraction[~m.has_ring] > 0.5) < 0.02
  assert np.all(votes.sum(1) >= volunteers.RING_VOLUNTEERS[0])


def _one_ring(**overrides):
  """A bright face-on disk with a full outer ring, fields overridden."""
  m = morph.sample_morphology(1, np.random.default_rng(0), ring_probability=1)
  fields = dict(kind=np.array([morph.DISK]), radius=np.array([0.12]),
                snr=np.array([300.0]), axis_ratio=np.ones(1),
                inclination=np.zeros(1), sersic_n=np.array([2.0]),
                bulge_fraction=np.array([0.2]),
                bulge_shape=np.array([morph.ROUNDED_BULGE]),
                bar=np.zeros(1), bar_length=np.zeros(1), ring=np.array([0.4]),
                ring_radius=np.array([2.0]),
                ring_type=np.array([morph.OUTER_RING]),
                ring_completeness=np.ones(1), clump_count=np.zeros(1, int),
                merger=np.array([morph.UNDISTURBED]))
  fields.update({k: np.atleast_1d(v) for k, v in overrides.items()})
  return dataclasses.replace(m, **fields)


def _shown(**overrides) -> float:
  return float(volunteers.visible_ring_strength(_one_ring(**overrides))[0])


def test_an_inner_ring_on_bright_disk_shows_less_than_the_same_ring_outside():
  # Against the disk and bulge beneath it, the same ring has less contrast
  # at 0.9 half-light radii than at 2 (the analytic contrast, no noise) ...
  contrast = lambda **kw: float(render.ring_contrast(_one_ring(**kw))[0])
  assert contrast(ring_radius=0.9) < 0.6 * contrast(ring_radius=2.0)
  # ... so at high S/N volunteers see it less often there.
  assert 0.0 < _shown(ring_radius=0.9) < _shown(ring_radius=2.0) < 1.0
  assert _shown(ring_radius=1.3) < _shown(ring_radius=2.0)


def test_a_ring_is_seen_less_partial_inclined_under_a_bulge_or_in_noise():
  full = _shown()
  assert 0.5 < full < 1.0
  assert _shown(ring_completeness=0.6) < _shown(ring_completeness=0.9) < full
  assert _shown(inclination=1.1) < full
  assert _shown(bulge_fraction=0.7) < full
  assert _shown(snr=30.0) < 0.5 * full  # The sky noise beneath the ring.
  assert _shown(ring=0.8) > full
  assert _shown(ring=0.0) == 0.0
  assert _shown(ring_completeness=0.0) == 0.0


def test_something_odd_answers_carry_visible_rings():
  rng = np.random.default_rng(3)
  m = morph.sample_morphology(20_000, rng, ring_probability=0.6)
  gz2 = Schema.from_dict({'name': 'odd', 'questions': [
      {'question': 'something-odd', 'answers': ['yes', 'no'],
       'asked_if': None}]})
  probs = volunteers.answer_probabilities(gz2, m, rng)[0]
  plain = (m.merger == morph.UNDISTURBED) & (m.clump_count <= 3)
  visible = plain & (volunteers.visible_ring_strength(m) > 0.8)
  none = plain & ~m.has_ring
  assert visible.sum() > 50
  assert probs[visible, 0].mean() > 0.6 > 0.2 > probs[none, 0].mean()


def test_rings_come_with_bars():
  m = morph.sample_morphology(100_000, np.random.default_rng(5),
                              ring_probability=0.2)
  face = (m.kind == morph.DISK) & ~m.edge_on
  barred, unbarred = face & (m.bar > 0), face & (m.bar == 0)
  assert m.has_ring[face].mean() == pytest.approx(0.2, abs=0.01)
  ratio = m.has_ring[barred].mean() / m.has_ring[unbarred].mean()
  assert ratio == pytest.approx(morph.RING_BAR_RATIO, rel=0.1)
  assert not m.has_ring[~face].any()
  # Rings are a minority; inner rings the commonest type.
  ringed = m.has_ring
  assert np.mean(m.ring_type[ringed] == morph.INNER_RING) > 0.6
  assert np.all((m.ring_type == morph.NO_RING) == ~ringed)


def test_ring_chances_keep_the_mean_and_cap_at_one():
  for p in (0.0, 0.1, 0.2, 0.5, 0.65, 0.9, 1.0):
    unbarred, barred = morph.ring_chances(p)
    assert 0.0 <= unbarred <= barred <= 1.0
    mean = morph.BAR_FRACTION * barred + (1 - morph.BAR_FRACTION) * unbarred
    assert mean == pytest.approx(p)
  unbarred, barred = morph.ring_chances(0.2)
  assert barred == pytest.approx(morph.RING_BAR_RATIO * unbarred)
  assert morph.ring_chances(0.9)[1] == 1.0  # Past the cap: all barred.


def test_inner_rings_sit_at_the_bar_end_and_outer_rings_twice_out():
  m = morph.sample_morphology(50_000, np.random.default_rng(6),
                              ring_probability=0.5)
  barred = m.bar > 0
  assert np.all((m.bar_length > 0) == barred)
  lo, hi = morph.BAR_LENGTH_RANGE
  assert np.all((m.bar_length[barred] >= lo) & (m.bar_length[barred] <= hi))
  inner = m.has_ring & (m.ring_type == morph.INNER_RING)
  outer = m.has_ring & (m.ring_type == morph.OUTER_RING)
  at_bar = m.ring_radius[inner & barred] / m.bar_length[inner & barred]
  assert at_bar.size > 1000
  assert np.all((at_bar >= 1.0) & (at_bar <= morph.BAR_END_RANGE[1] + 1e-9))
  free = m.ring_radius[inner & ~barred]
  assert np.all((free >= 0.8) & (free <= 1.3))
  # Outer rings at ~1.6-2.4x the inner scale (unless clipped to the image).
  out_at_bar = m.ring_radius[outer & barred] / m.bar_length[outer & barred]
  clipped = np.isclose(m.ring_radius * m.radius, morph.MAX_RING_EXTENT)
  assert np.all(out_at_bar[~clipped[outer & barred]] >= 1.6 - 1e-9)
  assert np.all(out_at_bar <= 2.4 + 1e-9)
  assert np.median(m.ring_radius[outer]) > 1.6 * np.median(m.ring_radius[inner])
  assert np.all(m.ring_radius * m.radius <= morph.MAX_RING_EXTENT + 1e-9)


def test_partial_rings_and_their_coverage():
  m = morph.sample_morphology(50_000, np.random.default_rng(8),
                              ring_probability=0.5)
  c = m.ring_completeness[m.has_ring]
  partial = c < 1.0
  assert 0.35 < partial.mean() < 0.6
  lo, hi = morph.PARTIAL_COVERAGE_RANGE
  assert np.all((c[partial] >= lo) & (c[partial] <= hi))
  outer = m.ring_type[m.has_ring] == morph.OUTER_RING
  assert partial[outer].mean() > partial[~outer].mean()  # Pseudo-rings.
  assert np.all(m.ring_completeness[~m.has_ring] == 0.0)
  lo, hi = morph.RING_STRENGTH_RANGE
  assert np.all((m.ring[m.has_ring] >= lo) & (m.ring[m.has_ring] <= hi))


def test_morphology_is_deterministic_from_the_seed():
  a = morph.sample_morphology(2000, np.random.default_rng(9))
  b = morph.sample_morphology(2000, np.random.default_rng(9))
  for name, value in a.to_dict().items():
    np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)


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

"""Simulated Galaxy Zoo volunteers: votes from true morphology.

Numpy only. For each question of a schema, `answer_probabilities` turns a
galaxy's true morphology into the chance that one volunteer picks each
answer. Three things make it realistic:

  * visibility: a feature is seen with probability `clarity(strength, size,
    snr)`, which falls for faint, small or weak features (a ring: with
    probability `visible_ring_strength`, from its contrast in the image); a
    volunteer who does not see it gives the question's "can't see it" answer
    (smooth, no, none, can't tell);
  * soft truths: answers on a continuum (bulge size, roundness, winding,
    inclination) blur into their neighbours near the boundaries;
  * disagreement: every galaxy mixes in a random preference of weight 5-20%.

`simulate_votes` then lets each volunteer walk the campaign's decision tree:
the number reaching a question is the number who gave the answer it depends
on (`asked_if`), so votes are always tree-consistent. Questions whose name
(without the campaign suffix) this module does not model get a random
per-galaxy preference, so user schemas still work.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from gzevo_jax.data import morphology as morph
from gzevo_jax.data import render
from gzevo_jax.data.morphology import Morphology
from gzevo_jax.schema import Schema

# Volunteers per galaxy by campaign: (low, high) of a uniform draw, and the
# share of galaxies that got the high count instead of a short retirement
# (GZ DECaLS DR5/DR8 retired most galaxies after ~5 votes, some after ~40).
CAMPAIGN_VOLUNTEERS = {
    'dr12': ((35, 45), 1.0),
    'dr5': ((30, 45), 0.35),
    'dr8': ((30, 45), 0.35),
    'gz2': ((38, 50), 1.0),
    'candels': ((35, 45), 1.0),
    'hubble': ((35, 60), 1.0),
}
SHORT_RETIREMENT = (4, 8)
DEFAULT_VOLUNTEERS = ((20, 40), 1.0)
# Share of labelled galaxies per campaign (GZ-Evo v0.1, roughly).
CAMPAIGN_SHARES = {'dr12': 0.08, 'dr5': 0.25, 'dr8': 0.2, 'gz2': 0.3,
                   'candels': 0.07, 'hubble': 0.1}
SECOND_CAMPAIGN_PROBABILITY = 0.03
# Per-galaxy weight of random disagreement mixed into every question.
DISAGREEMENT_RANGE = (0.05, 0.2)


def clarity(strength: np.ndarray, morphology: Morphology) -> np.ndarray:
  """Chance a volunteer sees a feature of this `strength` (0-1) in [0, 1].

  Falls with low signal-to-noise and small apparent size; 0 for strength 0.
  """
  size = morphology.radius / 0.1
  signal = np.maximum(strength, 0.0) * morphology.snr * size
  return signal**2 / (signal**2 + 12.0**2)


# How a ring shows (see `visible_ring_strength`): sky-noise sigmas counted
# beneath the ring, the effective contrast at which a ring is seen half the
# time, and the steepness. Set by eye on 64 px renders: a ring that adds less
# light than lies beneath it (contrast < 1) is rarely seen; one that adds 2-3
# times as much is obvious.
RING_SKY_SIGMAS = 2.0
RING_CONTRAST_HALF = 0.75
RING_CONTRAST_STEEPNESS = 4.0


def visible_ring_strength(m: Morphology) -> np.ndarray:
  """Ring visibility (0-1) as the image shows it: the chance one sees it.

  `m.ring` alone overstates what a volunteer sees. What shows is the ring's
  contrast C against what lies beneath it at its radius
  (`render.ring_contrast`, as the renderer draws them): the disk and bulge
  light, so an inner ring on bright disk (and bulge) light needs more light
  of its own to be seen, and an outer ring on the faint outer disk stands
  out with less; and RING_SKY_SIGMAS of sky noise over a patch of the ring,
  so a faint ring is lost at low signal-to-noise, and a small galaxy's ring,
  blurred by the PSF, shows less. The contrast is weakened by the ring's
  completeness c (an arc covering 40% of the azimuth is a weak hint of a
  ring, easily taken for an arm) and by inclination (an inclined ring is
  squashed onto the disk; rings stay recognisable to ~60 degrees, so the
  square root of cos(i)). Perception of contrast has a threshold, so the
  effective contrast x = C * c * sqrt(cos(i)) shows through a steep Hill
  function:

      x^k / (x^k + RING_CONTRAST_HALF^k),  k = RING_CONTRAST_STEEPNESS.

  Unlike other features' strengths it is not passed through `clarity`:
  signal-to-noise and size are already in C.
  """
  contrast = render.ring_contrast(m, render.RenderOptions(),
                                  sky_sigmas=RING_SKY_SIGMAS)
  completeness = np.clip(m.ring_completeness, 0.0, 1.0)
  projection = np.sqrt(np.clip(np.cos(m.inclination), 0.0, 1.0))
  x = contrast * completeness * projection
  xk = (x / RING_CONTRAST_HALF)**RING_CONTRAST_STEEPNESS
  return np.where(m.has_ring, xk / (1.0 + xk), 0.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-x))


def _soft_bins(value: np.ndarray, centres: list[float],
               width: float) -> np.ndarray:
  """[n, k] probabilities of the k answers whose centres are nearest value."""
  d = (value[:, None] - np.asarray(centres, float)[None, :]) / width
  w = np.exp(-0.5 * d**2) + 1e-6
  return w / w.sum(1, keepdims=True)


def _one_hot(index: np.ndarray, k: int) -> np.ndarray:
  out = np.zeros((index.shape[0], k))
  out[np.arange(index.shape[0]), index] = 1.0
  return out


def _answer_index(answers: tuple[str, ...], *names: str) -> Optional[int]:
  for name in names:
    if name in answers:
      return answers.index(name)
  return None


# Each model returns (truth [n, k], visibility [n], fallback [k]): what a
# volunteer who sees clearly answers, how likely they see clearly, and what
# they answer otherwise.
_Model = Callable[[Morphology, tuple[str, ...]],
                  tuple[np.ndarray, np.ndarray, np.ndarray]]


def _fallback(answers: tuple[str, ...], *names: str) -> np.ndarray:
  """All weight on the first of `names` present; uniform if none is."""
  i = _answer_index(answers, *names)
  if i is None:
    return np.full(len(answers), 1.0 / len(answers))
  return _one_hot(np.array([i]), len(answers))[0]


def _yes_no(answers: tuple[str, ...], p_yes: np.ndarray) -> np.ndarray:
  yes = _answer_index(answers, 'yes')
  truth = np.zeros((p_yes.shape[0], len(answers)))
  truth[:, yes] = p_yes
  truth[:, 1 - yes] = 1.0 - p_yes
  return truth


def _featureness(m: Morphology) -> np.ndarray:
  """How much a disk shows itself as more than a smooth blob, 0-1."""
  structure = np.maximum.reduce([m.arm_strength, m.bar,
                                 visible_ring_strength(m),
                                 np.minimum(m.clump_count / 3.0, 1.0)])
  featured = 0.5 * (1.0 - m.bulge_fraction) + 0.5 * structure
  return np.where(m.edge_on, 1.0, featured)


def _smooth_or_featured(m: Morphology, answers: tuple[str, ...]):
  featured = _answer_index(answers, 'featured-or-disk', 'features')
  kind_to_answer = np.array([_answer_index(answers, 'smooth'), featured,
                             _answer_index(answers, 'artifact')])
  truth = _one_hot(kind_to_answer[m.kind], len(answers))
  strength = np.where(m.kind == morph.DISK, _featureness(m), 1.0)
  return truth, clarity(strength, m), _fallback(answers, 'smooth')


def _disk_edge_on(m: Morphology, answers: tuple[str, ...]):
  p_yes = _sigmoid((0.27 - m.axis_ratio) / 0.03)
  fallback = _yes_no(answers, np.array([0.3]))[0]
  return _yes_no(answers, p_yes), clarity(np.ones_like(m.snr), m), fallback


def _has_spiral_arms(m: Morphology, answers: tuple[str, ...]):
  strength = m.arm_strength * (1.0 - 0.5 * m.bulge_fraction)
  truth = _yes_no(answers, (m.arm_count > 0).astype(float))
  vis = np.where(m.arm_count > 0, clarity(strength, m), 1.0)
  return truth, vis, _fallback(answers, 'no')


def _bar(m: Morphology, answers: tuple[str, ...]):
  if 'strong' in answers:
    level = np.where(m.bar >= morph.STRONG_BAR, 0, np.where(m.bar > 0, 1, 2))
    order = [_answer_index(answers, a) for a in ('strong', 'weak', 'no')]
    truth = _one_hot(np.array(order)[level], len(answers))
  else:
    truth = _yes_no(answers, (m.bar > 0).astype(float))
  vis = np.where(m.bar > 0, clarity(m.bar, m), 1.0)
  return truth, vis, _fallback(answers, 'no')


_BULGE_SIZE_CENTRES = {'dominant': 0.8, 'large': 0.6, 'obvious': 0.45,
                       'moderate': 0.4, 'small': 0.2, 'just-noticeable': 0.15,
                       'none': 0.0, 'no': 0.0}


def _bulge_size(m: Morphology, answers: tuple[str, ...]):
  centres = [_BULGE_SIZE_CENTRES.get(a, 0.5) for a in answers]
  truth = _soft_bins(m.bulge_fraction, centres, 0.08)
  return truth, clarity(np.ones_like(m.snr), m), np.full(
      len(answers), 1.0 / len(answers))


_ROUNDNESS_CENTRES = {'completely': 0.9, 'round': 0.9, 'in-between': 0.6,
                      'cigar-shaped': 0.3, 'cigar': 0.3}


def _how_rounded(m: Morphology, answers: tuple[str, ...]):
  centres = [_ROUNDNESS_CENTRES.get(a, 0.6) for a in answers]
  truth = _soft_bins(m.axis_ratio, centres, 0.1)
  return truth, clarity(np.ones_like(m.snr), m), _fallback(answers,
                                                          'in-between')


_BULGE_SHAPES = {'boxy': morph.BOXY_BULGE, 'none': morph.NO_BULGE,
                 'no-bulge': morph.NO_BULGE, 'round': morph.ROUNDED_BULGE,
                 'rounded': morph.ROUNDED_BULGE}


def _bulge_shape(m: Morphology, answers: tuple[str, ...]):
  if 'yes' in answers:  # CANDELS: "does it have a bulge?"
    truth = _yes_no(answers, (m.bulge_shape != morph.NO_BULGE).astype(float))
  else:
    shape_of_answer = np.array([_BULGE_SHAPES.get(a, -1) for a in answers])
    truth = (m.bulge_shape[:, None] == shape_of_answer[None, :]).astype(float)
    truth += 1e-6
    truth /= truth.sum(1, keepdims=True)
  vis = clarity(np.clip(m.bulge_fraction + 0.2, 0.0, 1.0), m)
  return truth, vis, _fallback(answers, 'rounded', 'round', 'yes')


_WINDING_CENTRES = {'tight': 10.0, 'medium': 20.0, 'loose': 32.0}


def _spiral_winding(m: Morphology, answers: tuple[str, ...]):
  centres = [_WINDING_CENTRES.get(a, 20.0) for a in answers]
  truth = _soft_bins(m.arm_pitch, centres, 5.0)
  return truth, clarity(m.arm_strength, m), _fallback(answers, 'medium')


def _counts(count: np.ndarray, answers: tuple[str, ...]) -> np.ndarray:
  """One-hot on '1', '2', ... with the last numeric answer meaning 'or more'."""
  numeric = [a for a in answers if a[0].isdigit()]
  index = np.clip(count, 1, len(numeric)) - 1
  truth = _one_hot(np.array([answers.index(a) for a in numeric])[index],
                   len(answers))
  # Neighbouring counts are easy to confuse.
  blurred = truth.copy()
  for shift in (-1, 1):
    blurred += 0.15 * np.roll(truth, shift, axis=1)
  cant = _answer_index(answers, 'cant-tell')
  if cant is not None:
    blurred[:, cant] = 0.0
  return blurred / blurred.sum(1, keepdims=True)


def _spiral_arm_count(m: Morphology, answers: tuple[str, ...]):
  crowding = np.where(m.arm_count > 2, 0.7, 1.0)  # Many arms blur together.
  vis = clarity(m.arm_strength * crowding, m)
  return _counts(m.arm_count, answers), vis, _fallback(answers, 'cant-tell',
                                                       '2')


_MERGER_ANSWERS = {
    'none': (1, 0, 0, 0), 'neither': (1, 0, 0, 0),
    'minor-disturbance': (0, 1, 0, 0), 'major-disturbance': (0, 0, 1, 0),
    'tidal-debris': (0, 1, 1, 0), 'both': (0, 0, 0, 0.4),
    'merger': (0, 0, 0, 1)
}


def _merging(m: Morphology, answers: tuple[str, ...]):
  weights = np.array([_MERGER_ANSWERS.get(a, (0.25,) * 4) for a in answers],
                     float)  # [k, 4 merger states]
  truth = weights.T[m.merger] + 1e-6
  truth /= truth.sum(1, keepdims=True)
  strength = np.where(m.merger > 0, 0.3 + 0.25 * m.merger, 1.0)
  return truth, clarity(strength, m), _fallback(answers, 'none', 'neither')


def _something_odd(m: Morphology, answers: tuple[str, ...]):
  # GZ2's odd features include rings, disturbance, mergers and irregulars.
  ring_seen = visible_ring_strength(m)  # Already a chance of seeing it.
  other = np.maximum(0.3 * m.merger, np.where(m.clump_count > 3, 0.6, 0.0))
  other_seen = np.where(other > 0, clarity(other, m), 0.0)
  odd = (ring_seen > 0) | (other > 0)
  truth = _yes_no(answers, odd.astype(float))
  vis = np.where(odd, 1.0 - (1.0 - ring_seen) * (1.0 - other_seen), 1.0)
  return truth, vis, _fallback(answers, 'no')


def _clumpy_appearance(m: Morphology, answers: tuple[str, ...]):
  strength = np.minimum(m.clump_count / 3.0, 1.0)
  truth = _yes_no(answers, (m.clump_count > 0).astype(float))
  vis = np.where(m.clump_count > 0, clarity(strength, m), 1.0)
  return truth, vis, _fallback(answers, 'no')


def _clump_count(m: Morphology, answers: tuple[str, ...]):
  vis = clarity(np.where(m.clump_count > 4, 0.5, 0.8), m)
  return _counts(m.clump_count, answers), vis, _fallback(answers, 'cant-tell')


def _galaxy_symmetrical(m: Morphology, answers: tuple[str, ...]):
  truth = _yes_no(answers, (m.merger == morph.UNDISTURBED).astype(float))
  return truth, clarity(np.full_like(m.snr, 0.6), m), _fallback(answers, 'yes')


def _clumps_embedded(m: Morphology, answers: tuple[str, ...]):
  truth = _yes_no(answers, (m.kind == morph.DISK).astype(float))
  vis = clarity(1.0 - m.bulge_fraction * (m.kind == morph.DISK), m)
  return truth, vis, _fallback(answers, 'no')


QUESTION_MODELS: dict[str, _Model] = {
    'smooth-or-featured': _smooth_or_featured,
    'disk-edge-on': _disk_edge_on,
    'has-spiral-arms': _has_spiral_arms,
    'bar': _bar,
    'bulge-size': _bulge_size,
    'how-rounded': _how_rounded,
    'edge-on-bulge': _bulge_shape,
    'bulge-shape': _bulge_shape,
    'spiral-winding': _spiral_winding,
    'spiral-arm-count': _spiral_arm_count,
    'merging': _merging,
    'something-odd': _something_odd,
    'clumpy-appearance': _clumpy_appearance,
    'clump-count': _clump_count,
    'galaxy-symmetrical': _galaxy_symmetrical,
    'clumps-embedded-larger-object': _clumps_embedded,
}


def base_question_name(name: str, campaign: Optional[str]) -> str:
  """'bar-dr5' -> 'bar': the question without its campaign suffix."""
  suffix = f'-{campaign}' if campaign else ''
  return name[:-len(suffix)] if suffix and name.endswith(suffix) else name


def answer_probabilities(schema: Schema, m: Morphology,
                         rng: np.random.Generator) -> list[np.ndarray]:
  """Per question of `schema`, [n, answers] choice probabilities."""
  n = m.num_galaxies
  disagreement = rng.uniform(*DISAGREEMENT_RANGE, n)[:, None]
  probs = []
  for q in schema.questions:
    k = len(q.answers)
    model = QUESTION_MODELS.get(base_question_name(q.name, q.campaign))
    random_preference = rng.dirichlet(np.full(k, 1.0), size=n)
    if model is None:
      probs.append(random_preference)
      continue
    truth, vis, fallback = model(m, tuple(q.answers))
    p = vis[:, None] * truth + (1.0 - vis[:, None]) * fallback[None, :]
    p = (1.0 - disagreement) * p + disagreement * random_preference
    probs.append(p / p.sum(1, keepdims=True))
  return probs


def tree_order(schema: Schema) -> list[int]:
  """Question indices with every question after the one it depends on."""
  owner = {c: i for i, q in enumerate(schema.questions) for c in q.columns}
  order, placed = [], set()

  def place(i: int) -> None:
    if i in placed:
      return
    parent = schema.questions[i].asked_if
    if parent is not None:
      place(owner[parent])
    placed.add(i)
    order.append(i)

  for i in range(schema.num_questions):
    place(i)
  return order


def simulate_votes(schema: Schema, answer_probs: list[np.ndarray],
                   volunteers: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
  """Volunteers walk the decision tree; returns int32 [n, num_answers] counts.

  Args:
    schema: the tree. A question is reached by as many volunteers as chose
      its `asked_if` answer, so votes are always tree-consistent.
    answer_probs: per question, [n, answers] choice probabilities.
    volunteers: int [n, num_campaigns]: volunteers of each campaign who
      classified each galaxy (0 where the campaign did not show it). A schema
      with no campaigns has one column.
    rng: random stream.
  """
  n = volunteers.shape[0]
  campaigns = schema.campaigns or (None,)
  votes = np.zeros((n, schema.num_answers), np.int32)
  for i in tree_order(schema):
    q = schema.questions[i]
    if q.asked_if is None:
      reached = volunteers[:, campaigns.index(q.campaign)]
    else:
      reached = votes[:, schema.column_index(q.asked_if)]
    votes[:, schema.question_slices[i]] = rng.multinomial(reached,
                                                          answer_probs[i])
  return votes


def assign_campaigns(schema: Schema, n: int, labelled_fraction: float,
                     rng: np.random.Generator) -> np.ndarray:
  """bool [n, num_campaigns]: which campaigns classified each galaxy.

  A labelled galaxy is in one campaign, drawn with GZ-Evo's shares, and with
  probability SECOND_CAMPAIGN_PROBABILITY also in a second; the rest (the
  unlabelled share) are in none.
  """
  campaigns = schema.campaigns or (None,)
  shares = np.array([CAMPAIGN_SHARES.get(c, 1.0) for c in campaigns])
  shares = shares / shares.sum()
  labelled = rng.random(n) < labelled_fraction
  first = rng.choice(len(campaigns), size=n, p=shares)
  second = rng.choice(len(campaigns), size=n, p=shares)
  twice = labelled & (rng.random(n) < SECOND_CAMPAIGN_PROBABILITY)
  member = np.zeros((n, len(campaigns)), bool)
  member[np.arange(n), first] = labelled
  member[np.arange(n), second] |= twice
  return member


def draw_volunteers(schema: Schema, member: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
  """int [n, num_campaigns] volunteers per galaxy, campaign-typical counts."""
  campaigns = schema.campaigns or (None,)
  out = np.zeros(member.shape, np.int64)
  for c, name in enumerate(campaigns):
    (low, high), long_share = CAMPAIGN_VOLUNTEERS.get(name, DEFAULT_VOLUNTEERS)
    n = member.shape[0]
    count = np.where(rng.random(n) < long_share,
                     rng.integers(low, high + 1, n),
                     rng.integers(SHORT_RETIREMENT[0], SHORT_RETIREMENT[1] + 1,
                                  n))
    out[:, c] = np.where(member[:, c], count, 0)
  return out


def gz_evo_votes(schema: Schema, m: Morphology, labelled_fraction: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Votes int32 [n, answers] and campaign membership bool [n, campaigns]."""
  member = assign_campaigns(schema, m.num_galaxies, labelled_fraction, rng)
  volunteers = draw_volunteers(schema, member, rng)
  probs = answer_probabilities(schema, m, rng)
  return simulate_votes(schema, probs, volunteers, rng), member


RING_VOLUNTEERS = (8, 40)


def ring_votes(m: Morphology, rng: np.random.Generator) -> np.ndarray:
  """int32 [n, 2] (yes, no) answers to "is there a ring?" (GZ Rings style).

  Not part of GZ-Evo's 206 answers: it is the downstream task.
  """
  n = m.num_galaxies
  vis = visible_ring_strength(m)
  has_ring = m.has_ring.astype(float)
  p_yes = vis * has_ring + (1.0 - vis) * 0.05
  disagreement = rng.uniform(*DISAGREEMENT_RANGE, n)
  p_yes = (1.0 - disagreement) * p_yes + disagreement * rng.random(n)
  volunteers = rng.integers(RING_VOLUNTEERS[0], RING_VOLUNTEERS[1] + 1, n)
  yes = rng.binomial(volunteers, p_yes)
  return np.stack([yes, volunteers - yes], axis=1).astype(np.int32)

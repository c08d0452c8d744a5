"""A small synthetic GZ-Evo held in memory: numpy only, no TensorFlow.

Galaxies are drawn from a handful of morphology parameters (smooth or
featured, roundness, edge-on, spiral arms, bar, bulge), rendered on the fly,
and labelled by simulated volunteers walking one campaign's decision tree.
It exists so the train loop, its tests and the smoke config run anywhere; the
TFDS `gz_evo` builder is the full-featured data path.

Batches follow the train loop's contract:
  {'image': float32 [B, H, W, C], 'image_2': float32 [B, H, W, C] (second
   augmented view, two-view objectives only), 'votes': int32 [B, answers]}
and are a pure function of (seed, step), so a resumed run sees the same data.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import numpy as np

from gzevo_jax.schema import Schema

# Volunteers per labelled galaxy (GZ DECaLS: ~5-40; GZ2: ~40-50).
_MIN_VOLUNTEERS, _MAX_VOLUNTEERS = 5, 40


@dataclasses.dataclass(frozen=True)
class Morphology:
  """Per-galaxy true parameters, arrays of shape [num_galaxies]."""
  featured: np.ndarray     # bool: disk galaxy vs smooth elliptical.
  axis_ratio: np.ndarray   # b/a in (0, 1]; small for edge-on disks.
  edge_on: np.ndarray      # bool.
  arms: np.ndarray         # int: 0 (none) or 1-5 spiral arms.
  bar: np.ndarray          # float in [0, 1]: bar strength.
  bulge: np.ndarray        # float in [0, 1]: bulge-to-total light.
  radius: np.ndarray       # scale radius as a fraction of the image size.
  angle: np.ndarray        # position angle, radians.


def sample_morphology(n: int, rng: np.random.Generator) -> Morphology:
  featured = rng.random(n) < 0.55
  edge_on = featured & (rng.random(n) < 0.25)
  arms = np.where(featured & ~edge_on & (rng.random(n) < 0.7),
                  rng.integers(1, 6, n), 0)
  axis_ratio = np.where(edge_on, rng.uniform(0.12, 0.3, n),
                        rng.uniform(0.35, 1.0, n))
  bar = np.where(featured & ~edge_on & (rng.random(n) < 0.35),
                 rng.uniform(0.3, 1.0, n), 0.0)
  bulge = np.where(featured, rng.uniform(0.0, 0.6, n), 1.0)
  return Morphology(featured=featured, axis_ratio=axis_ratio, edge_on=edge_on,
                    arms=arms, bar=bar, bulge=bulge,
                    radius=rng.uniform(0.06, 0.16, n),
                    angle=rng.uniform(0.0, np.pi, n))


def render(m: Morphology, image_size: int, channels: int,
           rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
  """Renders galaxies to float32 [n, H, W, C]: bulge redder than the disk."""
  n = m.featured.shape[0]
  coords = (np.arange(image_size) + 0.5) / image_size - 0.5
  y, x = np.meshgrid(coords, coords, indexing='ij')
  cos, sin = np.cos(m.angle)[:, None, None], np.sin(m.angle)[:, None, None]
  u = cos * x + sin * y
  v = (-sin * x + cos * y) / m.axis_ratio[:, None, None]
  r = np.sqrt(u ** 2 + v ** 2) / m.radius[:, None, None]
  phi = np.arctan2(v, u)
  arms = m.arms[:, None, None]
  spiral = np.where(arms > 0,
                    1.0 + 0.8 * np.cos(arms * phi - 2.5 * np.log(r + 0.3)), 1.0)
  disk = np.exp(-r) * spiral * m.featured[:, None, None]
  bulge_r = np.sqrt(u ** 2 + (v * m.axis_ratio[:, None, None]
                              / np.maximum(m.axis_ratio[:, None, None], 0.6))
                    ** 2) / (0.4 * m.radius[:, None, None])
  bulge = np.exp(-bulge_r ** 0.5 * 2.0)
  bar = m.bar[:, None, None] * np.exp(
      -(u / (1.5 * m.radius[:, None, None])) ** 2
      - (v * m.axis_ratio[:, None, None] / (0.25 * m.radius[:, None, None]))
      ** 2)
  b = m.bulge[:, None, None]
  bulge_light = b * bulge + bar
  disk_light = (1.0 - b) * disk
  red = np.linspace(1.0, 0.5, channels)   # Bulge colour over bands.
  blue = np.linspace(0.6, 1.0, channels)  # Disk colour over bands.
  image = (bulge_light[..., None] * red + disk_light[..., None] * blue)
  image /= image.max(axis=(1, 2, 3), keepdims=True)  # Peak at 1, like a stretch.
  image += noise * rng.standard_normal((n, image_size, image_size, channels))
  return image.astype(np.float32)


def _answer_probabilities(schema: Schema, m: Morphology,
                          rng: np.random.Generator) -> list[np.ndarray]:
  """Per question, [n, answers] probabilities a volunteer picks each answer.

  Questions this toy world models (by their name without the campaign
  suffix) follow the true morphology with some confusion; any other question
  gets a fixed random preference per galaxy.
  """
  n = m.featured.shape[0]
  confusion = 0.15
  probs = []
  for q in schema.questions:
    k = len(q.answers)
    base = q.name.rsplit('-', 1)[0] if q.campaign else q.name
    truth: Optional[np.ndarray] = None
    if base == 'smooth-or-featured':
      truth = np.zeros((n, k))
      truth[np.arange(n), np.where(m.featured, 1, 0)] = 1.0
    elif base == 'disk-edge-on':
      truth = np.stack([m.edge_on, ~m.edge_on], 1).astype(float)
    elif base == 'has-spiral-arms':
      truth = np.stack([m.arms > 0, m.arms == 0], 1).astype(float)
    elif base == 'bar' and k == 2:
      truth = np.stack([m.bar > 0.5, m.bar <= 0.5], 1).astype(float)
    elif base == 'bar' and k == 3:
      truth = np.stack([m.bar > 0.65, (m.bar > 0) & (m.bar <= 0.65),
                        m.bar == 0], 1).astype(float)
    elif base == 'how-rounded':
      idx = np.digitize(m.axis_ratio, [0.45, 0.75])  # cigar, between, round.
      truth = np.zeros((n, k))
      truth[np.arange(n), 2 - idx] = 1.0
    elif base == 'spiral-arm-count':
      truth = np.zeros((n, k))
      truth[np.arange(n), np.clip(m.arms - 1, 0, min(k - 1, 4))] = 1.0
    if truth is None:
      p = rng.dirichlet(np.full(k, 2.0), size=n)
    else:
      p = (1.0 - confusion) * truth + confusion / k
    probs.append(p)
  return probs


def _tree_order(schema: Schema) -> list[int]:
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
                   asked: np.ndarray, volunteers: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
  """Volunteers walk the decision tree; returns int32 [n, num_answers] counts.

  Args:
    schema: the tree; a question is reached by as many volunteers as chose its
      `asked_if` answer, so votes are always tree-consistent.
    answer_probs: per question, [n, answers] choice probabilities.
    asked: bool [n, num_questions]: which questions each galaxy's campaign
      asked (all False for an unlabelled galaxy).
    volunteers: int [n]: volunteers who classified each galaxy.
    rng: random stream.
  """
  n = volunteers.shape[0]
  votes = np.zeros((n, schema.num_answers), np.int32)
  for i in _tree_order(schema):
    q = schema.questions[i]
    reached = (volunteers if q.asked_if is None
               else votes[:, schema.column_index(q.asked_if)])
    reached = np.where(asked[:, i], reached, 0)
    votes[:, schema.question_slices[i]] = rng.multinomial(reached,
                                                          answer_probs[i])
  return votes


@dataclasses.dataclass(frozen=True)
class SyntheticGalaxies:
  """A fixed synthetic catalogue: morphology, campaign and votes per galaxy."""
  morphology: Morphology
  campaign: np.ndarray    # int [n]: index into schema.campaigns, -1 unlabelled.
  votes: np.ndarray       # int32 [n, num_answers].

  @property
  def num_examples(self) -> int:
    return self.votes.shape[0]


def make_catalogue(schema: Schema, num_examples: int,
                   labelled_fraction: float, seed: int) -> SyntheticGalaxies:
  """Samples morphology and one campaign's votes for each labelled galaxy."""
  rng = np.random.default_rng([seed, 0])
  morphology = sample_morphology(num_examples, rng)
  campaigns = schema.campaigns or (None,)
  labelled = rng.random(num_examples) < labelled_fraction
  campaign = np.where(labelled, rng.integers(0, len(campaigns), num_examples),
                      -1)
  question_campaign = np.array([campaigns.index(q.campaign)
                                for q in schema.questions])
  asked = campaign[:, None] == question_campaign[None, :]
  volunteers = rng.integers(_MIN_VOLUNTEERS, _MAX_VOLUNTEERS + 1, num_examples)
  votes = simulate_votes(schema, _answer_probabilities(schema, morphology, rng),
                         asked, volunteers, rng)
  return SyntheticGalaxies(morphology=morphology, campaign=campaign,
                           votes=votes)


def _take(m: Morphology, idx: np.ndarray) -> Morphology:
  return Morphology(**{f.name: getattr(m, f.name)[idx]
                       for f in dataclasses.fields(m)})


def _augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Random dihedral transform per image (flips and 90-degree rotations)."""
  out = np.empty_like(images)
  for i, (k, flip) in enumerate(zip(rng.integers(0, 4, len(images)),
                                    rng.random(len(images)) < 0.5)):
    image = np.rot90(images[i], k)
    out[i] = image[:, ::-1] if flip else image
  return out


def batch_indices(num_examples: int, global_batch_size: int, step: int,
                  seed: int) -> np.ndarray:
  """Example indices of global batch `step`: a fresh permutation each epoch."""
  steps_per_epoch = num_examples // global_batch_size
  if steps_per_epoch < 1:
    raise ValueError(f'global batch size {global_batch_size} exceeds the '
                     f'{num_examples} examples of the dataset')
  epoch, within = divmod(step, steps_per_epoch)
  perm = np.random.default_rng([seed, 1, epoch]).permutation(num_examples)
  return perm[within * global_batch_size:(within + 1) * global_batch_size]


def batches(galaxies: SyntheticGalaxies, *, global_batch_size: int,
            image_size: int, channels: int, two_views: bool, seed: int,
            start_step: int = 0, process_index: int = 0,
            process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """This process's share of every global batch from `start_step` on.

  Process p of P gets rows [p*B/P, (p+1)*B/P) of each global batch, so no
  example is read by two processes in an epoch.
  """
  if global_batch_size % process_count:
    raise ValueError(f'global batch size {global_batch_size} does not split '
                     f'evenly over {process_count} processes')
  per_process = global_batch_size // process_count
  step = start_step
  while True:
    idx = batch_indices(galaxies.num_examples, global_batch_size, step, seed)
    idx = idx[process_index * per_process:(process_index + 1) * per_process]
    rng = np.random.default_rng([seed, 2, step, process_index])
    clean = render(_take(galaxies.morphology, idx), image_size, channels, rng)
    batch = {'image': _augment(clean, rng), 'votes': galaxies.votes[idx]}
    if two_views:
      batch['image_2'] = _augment(clean, rng)
    yield batch
    step += 1

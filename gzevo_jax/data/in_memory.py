"""The synthetic GZ-Evo held in memory: numpy only, no TensorFlow.

The same catalogue, renderer and simulated volunteers as the TFDS
`gz_evo/synthetic` dataset, rendered batch by batch on the fly and augmented
with random flips and quarter turns. For hosts without TensorFlow (many
accelerator hosts), the step benchmark, and unit tests of the train loop.

Batches follow the train loop's contract:
  {'image': float32 [B, H, W, C] in [0, 1], 'image_2': the second view
   (two-view objectives only), 'votes': int32 [B, answers]}
and are a pure function of (seed, step), so a resumed run sees the same data.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from gzevo_jax.data import augment_np
from gzevo_jax.data import render
from gzevo_jax.data import synthetic
from gzevo_jax.schema import Schema


def make_catalogue(schema: Schema, num_examples: int,
                   labelled_fraction: float, seed: int) -> synthetic.Catalogue:
  """Morphology, campaigns and votes of `num_examples` synthetic galaxies."""
  return synthetic.gz_evo_catalogue(schema, num_examples, labelled_fraction,
                                    seed)


def dihedral(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A random flip and quarter turn per image (galaxies have no orientation)."""
  out = np.empty_like(images)
  for i, (k, flip) in enumerate(zip(rng.integers(0, 4, len(images)),
                                    rng.random(len(images)) < 0.5)):
    image = np.rot90(images[i], k)
    out[i] = image[:, ::-1] if flip else image
  return out


def translate(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """`image` [H, W, C] moved by (dy, dx) pixels, the uncovered edge zero."""
  h, w = image.shape[:2]
  out = np.zeros_like(image)
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)])
  return out


def strong_augment(images: np.ndarray, rng: np.random.Generator,
                   max_shift: float = 0.125,
                   max_cutout: float = 0.5) -> np.ndarray:
  """FixMatch's strong view of uint8 images [N, H, W, C], for radio sources.

  After a flip and quarter turn: a rotation by any angle, a shift of up to
  `max_shift` of the side, a gamma change in [1/2, 2] (faint emission
  brighter or fainter) and a cutout square of up to `max_cutout` of the
  side set to the background (0), as FixMatch's RandAugment ends with
  Cutout. Colour operations of RandAugment have no meaning for one band.
  """
  n, h, w = images.shape[:3]
  out = dihedral(images, rng).astype(np.float32) / 255.0
  angles = rng.uniform(0.0, 2 * np.pi, n)
  shifts = np.round(rng.uniform(-max_shift, max_shift, (n, 2)) *
                    (h, w)).astype(int)
  gammas = np.exp(rng.uniform(-np.log(2.0), np.log(2.0), n))
  sides = np.round(rng.uniform(0.0, max_cutout, n) * min(h, w)).astype(int)
  corners = rng.uniform(0.0, 1.0, (n, 2))
  for i in range(n):
    image = translate(augment_np.rotate(out[i], angles[i]), *shifts[i])
    image = np.clip(image, 0.0, 1.0) ** gammas[i]
    y, x = (corners[i] * (h - sides[i], w - sides[i])).astype(int)
    image[y:y + sides[i], x:x + sides[i]] = 0.0
    out[i] = image
  return np.round(out * 255.0).astype(np.uint8)


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


def batches(galaxies: synthetic.Catalogue, *, global_batch_size: int,
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
  options = render.RenderOptions(image_size=image_size, bands=channels)
  num_examples = len(galaxies.ids)
  step = start_step
  while True:
    idx = batch_indices(num_examples, global_batch_size, step, seed)
    idx = idx[process_index * per_process:(process_index + 1) * per_process]
    rng = np.random.default_rng([seed, 2, step, process_index])
    clean = render.render_uint8(galaxies.morphology.take(idx),
                                options).astype(np.float32) / 255.0
    batch = {'image': dihedral(clean, rng),
             'votes': galaxies.labels['votes'][idx]}
    if two_views:
      batch['image_2'] = dihedral(clean, rng)
    yield batch
    step += 1

"""Frozen features of a dataset split from a pretrained encoder.

The encoder runs jit-compiled and data-parallel over this process's local
devices (variables replicated, images split along the batch), so each
process can evaluate on its own; batches come from the evaluation pipeline
(no augmentation, stored order, last batch padded and masked).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, Mapping, Optional

from absl import logging
import flax.linen as nn
import jax
import numpy as np

from gzevo_jax import parallel


@dataclasses.dataclass(frozen=True)
class Features:
  """One split's features, with the ids and labels of its galaxies."""
  ids: np.ndarray  # str [N].
  features: np.ndarray  # float32 [N, D].
  labels: dict[str, np.ndarray]  # Each [N, ...].

  @property
  def num_examples(self) -> int:
    return int(self.features.shape[0])

  def take(self, index: np.ndarray) -> 'Features':
    return Features(self.ids[index], self.features[index], {
        k: v[index] for k, v in self.labels.items()
    })


def local_mesh() -> jax.sharding.Mesh:
  """A `batch` mesh over this process's devices."""
  return parallel.make_mesh(jax.local_devices())


def padded_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> int:
  """`batch_size` rounded up to a multiple of the mesh's devices."""
  n = mesh.devices.size
  return -(-batch_size // n) * n


def make_feature_fn(
    encoder: nn.Module,
    mesh: jax.sharding.Mesh) -> Callable[[Any, jax.Array], jax.Array]:
  """jit: (variables, images [B, H, W, C]) -> features [B, D], data-parallel."""

  def apply(variables, images):
    return encoder.apply(variables, images, train=False)

  return jax.jit(apply,
                 in_shardings=(parallel.replicated(mesh),
                               parallel.batch_sharded(mesh)),
                 out_shardings=parallel.batch_sharded(mesh))


def extract(encoder: nn.Module,
            variables: Mapping[str, Any],
            batches: Iterable[Mapping[str, np.ndarray]],
            *,
            label_keys: tuple[str, ...],
            mesh: jax.sharding.Mesh,
            total: Optional[int] = None,
            what: str = 'features',
            log_every: int = 20) -> Features:
  """Runs the encoder over `batches`, keeping the rows `mask` marks real."""
  feature_fn = make_feature_fn(encoder, mesh)
  variables = parallel.replicate(variables, mesh)
  ids, features, labels = [], [], {k: [] for k in label_keys}
  start, done = time.perf_counter(), 0
  for i, batch in enumerate(batches):
    images = parallel.global_batch({'image': batch['image']}, mesh)['image']
    out = np.asarray(jax.device_get(feature_fn(variables, images)))
    keep = np.asarray(batch['mask'], bool)
    features.append(out[keep].astype(np.float32))
    ids.append(
        np.asarray([
            x.decode() if isinstance(x, bytes) else str(x)
            for x in batch['id_str'][keep]
        ]))
    for k in label_keys:
      labels[k].append(np.asarray(batch[k])[keep])
    done += int(keep.sum())
    if (i + 1) % log_every == 0:
      rate = done / (time.perf_counter() - start)
      logging.info('%s: %d%s galaxies (%.0f/s)', what, done,
                   f'/{total}' if total else '', rate)
  if not features:
    raise ValueError(f'{what}: no examples to extract features from')
  logging.info('%s: %d galaxies in %.1f s', what, done,
               time.perf_counter() - start)
  return Features(np.concatenate(ids), np.concatenate(features), {
      k: np.concatenate(v) for k, v in labels.items()
  })

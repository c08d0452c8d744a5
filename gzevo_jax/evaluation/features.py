"""Frozen features of a dataset split from a pretrained encoder.

The encoder runs jit-compiled and data-parallel over this process's local
devices (variables replicated, images split along the batch), so each
process can evaluate on its own; batches come from the evaluation pipeline
(no augmentation, stored order, last batch padded and masked).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from absl import logging
import flax.linen as nn
import jax
import ml_collections
import numpy as np

from gzevo_jax import checkpoint
from gzevo_jax import config_lib
from gzevo_jax import parallel
from gzevo_jax.evaluation import budgets

Batch = dict[str, np.ndarray]


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


def decode_ids(id_str: np.ndarray) -> np.ndarray:
  """A batch's `id_str` (bytes from tf.data) as a str array."""
  return np.asarray(
      [x.decode() if isinstance(x, bytes) else str(x) for x in id_str])


def local_mesh() -> jax.sharding.Mesh:
  """A `batch` mesh over this process's devices."""
  return parallel.make_mesh(jax.local_devices())


def padded_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> int:
  """`batch_size` rounded up to a multiple of the mesh's devices."""
  n = mesh.devices.size
  return -(-batch_size // n) * n


def make_feature_fn(
    encoder: nn.Module,
    mesh: jax.sharding.Mesh,
    method: Optional[Callable[..., jax.Array]] = None
) -> Callable[[Any, jax.Array], jax.Array]:
  """jit: (variables, images [B, H, W, C]) -> features [B, D], data-parallel.

  `method(module, images, train)` picks another output than `__call__`'s
  (e.g. a model's Dirichlet concentrations), as in `nn.Module.apply`.
  """

  def apply(variables, images):
    return encoder.apply(variables, images, train=False, method=method)

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
            log_every: int = 20,
            method: Optional[Callable[..., jax.Array]] = None) -> Features:
  """Runs the encoder over `batches`, keeping the rows `mask` marks real.

  `method` is passed to `make_feature_fn`.
  """
  feature_fn = make_feature_fn(encoder, mesh, method)
  variables = parallel.replicate(parallel.local_copy(variables), mesh)
  ids, features, labels = [], [], {k: [] for k in label_keys}
  start, done = time.perf_counter(), 0
  for i, batch in enumerate(batches):
    images = parallel.global_batch({'image': batch['image']}, mesh)['image']
    out = np.asarray(jax.device_get(feature_fn(variables, images)))
    keep = np.asarray(batch['mask'], bool)
    features.append(out[keep].astype(np.float32))
    ids.append(decode_ids(batch['id_str'][keep]))
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


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A checkpoint's encoder, ready to run over the splits of one dataset."""
  encoder: nn.Module
  variables: Mapping[str, Any]
  dataset: str  # Its name, e.g. 'gz_rings/synthetic'.
  data: Any  # sources.EvalDataset: its splits through tf.data or Grain.
  pretrained: ml_collections.ConfigDict  # The config the checkpoint stored.
  workdir: str
  step: int
  image_size: int
  batch_size: int  # A multiple of the mesh's devices.
  threads: int
  mesh: jax.sharding.Mesh

  def num_examples(self, split: str) -> int:
    return self.data.num_examples(split)

  def batches(
      self, split: str, keys: tuple[str, ...] = ('id_str',)) -> Iterator[Batch]:
    """One pass of the evaluation pipeline: what the encoder sees."""
    return self.data.batches(split,
                             batch_size=self.batch_size,
                             image_size=self.image_size,
                             keys=keys,
                             threads=self.threads)

  def extract(self, split: str, label_keys: tuple[str, ...] = ()) -> Features:
    """Features of every galaxy of `split`, with the `label_keys` features."""
    return extract(self.encoder,
                   self.variables,
                   self.batches(split, ('id_str', *label_keys)),
                   label_keys=label_keys,
                   mesh=self.mesh,
                   total=self.num_examples(split),
                   what=f'{self.dataset} {split}')

  def facts(self) -> dict[str, Any]:
    """What a results file records about the checkpoint."""
    return {
        'pretrained_workdir': self.workdir,
        'pretrained_step': self.step,
        'pretrained_objective': self.pretrained.objective,
        'encoder': self.pretrained.model.encoder,
        'image_size': self.image_size,
    }


def validate_extraction_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field that `load_extractor` reads."""
  if not config.pretrained_workdir:
    raise ValueError('set --config.pretrained_workdir to the workdir of a '
                     'pretraining run, e.g. runs/hybrid')
  config_lib.check_positive_int(config, 'eval_batch_size')
  config_lib.check_choice('data.source', config.data.source,
                          config_lib.EVAL_DATA_SOURCES)


def validate_downstream(config: ml_collections.ConfigDict,
                        positive_ints: Iterable[str] = (),
                        needs_encoder: bool = True) -> None:
  """Raises ValueError naming a bad field of a `config_lib.downstream_config`.

  Its extraction fields (unless the method reads no encoder), budgets and
  seeds, and the task's own `positive_ints` fields.
  """
  if needs_encoder:
    validate_extraction_config(config)
  budgets.parse_budgets(config.budgets)
  for field in ('num_seeds', *positive_ints):
    config_lib.check_positive_int(config, field)


def check_bands(data: Any, pretrained: ml_collections.ConfigDict,
                config: ml_collections.ConfigDict, step: int) -> None:
  """The downstream images must have the bands the encoder was trained on."""
  channels = data.bands
  if channels != pretrained.data.channels:
    raise checkpoint.IncompatibleCheckpointError(
        f'{config.pretrained_workdir} (step {step}) holds an encoder for '
        f'{pretrained.data.channels}-channel images, but {config.data.dataset} '
        f'has {channels}-channel images; evaluate a checkpoint trained on '
        'matching bands.')


def load_extractor(config: ml_collections.ConfigDict) -> Extractor:
  """The encoder of `config.pretrained_workdir` over `config.data.dataset`.

  Reads `pretrained_workdir`, `pretrained_step`, `eval_batch_size` and
  `data` (dataset, data_dir, manual_dir, skip_bad_rows, image_size: None for
  the checkpoint's, threads); builds the dataset if it can. Raises
  FileNotFoundError without a checkpoint, IncompatibleCheckpointError when
  the dataset's bands differ from the encoder's.
  """
  from gzevo_jax.data import sources  # TensorFlow, lazily for tf.data.
  pretrained, _, step = checkpoint.load_config_and_schema(
      config.pretrained_workdir, config.pretrained_step)
  encoder, variables = checkpoint.restore_encoder(config.pretrained_workdir,
                                                  step)
  data = sources.eval_dataset(config.data)
  check_bands(data, pretrained, config, step)
  mesh = local_mesh()
  return Extractor(encoder=encoder,
                   variables=variables,
                   dataset=config.data.dataset,
                   data=data,
                   pretrained=pretrained,
                   workdir=config.pretrained_workdir,
                   step=step,
                   image_size=config.data.image_size or
                   pretrained.data.image_size,
                   batch_size=padded_batch_size(config.eval_batch_size, mesh),
                   threads=config.data.threads,
                   mesh=mesh)


@dataclasses.dataclass(frozen=True)
class Images:
  """A split held in memory: uint8 images and their labels."""
  images: np.ndarray   # uint8 [N, H, W, C].
  labels: np.ndarray   # int [N] (classes) or float [N] (regression).

  def take(self, index: np.ndarray) -> 'Images':
    return Images(self.images[index], self.labels[index])


def load_images(data: Any, split: str, image_size: int, label_key: str,
                max_examples: int, label_dtype: Any = np.int32) -> Images:
  """Up to `max_examples` galaxies of `split` (a sources.EvalDataset's),
  unaugmented, as uint8; labels as `label_dtype` (float32 for a regression
  target such as a redshift)."""
  images, labels, n = [], [], 0
  for batch in data.batches(split, batch_size=256, image_size=image_size,
                            keys=(label_key,)):
    keep = batch['mask']
    images.append(np.round(batch['image'][keep] * 255).astype(np.uint8))
    labels.append(batch[label_key][keep].astype(label_dtype))
    n += int(keep.sum())
    if n >= max_examples:
      break
  return Images(np.concatenate(images)[:max_examples],
                np.concatenate(labels)[:max_examples])

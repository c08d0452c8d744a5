"""The Grain input pipeline: `pipeline.py`'s batches without TensorFlow.

`config.data.source='grain'` reads the same TFDS datasets from their
array_record files (`array_records.py`; build them with `--file_formats=
tfrecord,array_record`) and makes the same views in numpy (`augment_np.py`).

Training (`train_batches`) keeps the tf.data pipeline's contract: each
process reads its own equal share of the split (`common.shard_range`, as
`tfds.even_splits`), every epoch is a fresh shuffle of that share seeded from
(seed, process), and each galaxy's views are seeded from (seed, process,
epoch, position in the epoch); each epoch ends at its last full batch. Grain
reads at random, so batch k is computed directly: the batches are a pure
function of (seed, step), and starting at step k gives exactly the batches an
uninterrupted run saw from step k on, without re-reading earlier records.
The returned iterator is a `grain.DatasetIterator` whose state
(`{'next_index': step}`) the train loop saves in its Orbax checkpoints.

Not bit-identical to tf.data: Grain shuffles the whole share (no
`data.shuffle_buffer`) and numpy draws other random numbers than
TensorFlow, so a seed gives another (equally distributed) stream.

Evaluation (`eval_batches`): one pass in stored order, no augmentation; the
last batch is padded to full size and `mask` marks the real examples.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Sequence

import grain
import ml_collections
import numpy as np

from gzevo_jax.data import array_records
from gzevo_jax.data import augment
from gzevo_jax.data import augment_np
from gzevo_jax.data import common

Batch = dict[str, np.ndarray]

# Threads when config.data.threads is 0: every core, up to Grain's default.
_MAX_THREADS = 16


def open_dataset(
    data_config: ml_collections.ConfigDict) -> array_records.Dataset:
  """The configured dataset's array_record files (DatasetNotBuiltError)."""
  return array_records.open_dataset(data_config.dataset,
                                    data_config.data_dir)


def examples_per_process(dataset: array_records.Dataset, split: str,
                         process_count: int) -> int:
  """Training examples each process reads per epoch (equal for all)."""
  return dataset.num_examples(split) // process_count


@dataclasses.dataclass(frozen=True)
class _ShardRecords:
  """Records [start, stop) of a split, as a random-access source.

  Grain's source wraps indices of later epochs around its length, so every
  transformation above sees this process's records only.
  """
  records: Any
  start: int
  stop: int

  def __len__(self) -> int:
    return self.stop - self.start

  def __getitem__(self, index: int) -> bytes:
    return self.records[self.start + index]


def _records(dataset: array_records.Dataset, shard: common.Shard,
             drop_remainder: bool) -> grain.MapDataset:
  """This process's serialized records of the split, in stored order."""
  start, stop = common.shard_range(dataset.num_examples(shard.split), shard,
                                   drop_remainder)
  return grain.MapDataset.source(
      _ShardRecords(dataset.source(shard.split), start, stop))


def _read_options(threads: int, prefetch_batches: int) -> grain.ReadOptions:
  """Grain's threads (0: one per core) and batches read ahead."""
  if threads <= 0:
    threads = min(os.cpu_count() or 1, _MAX_THREADS)
  return grain.ReadOptions(num_threads=threads,
                           prefetch_buffer_size=max(prefetch_batches, threads))


@dataclasses.dataclass(frozen=True)
class _TrainViews:
  """(index, record) -> a training example: its views and labels.

  `index` runs over the repeated, shuffled epochs: epoch * per_epoch +
  position, so the views are seeded from (seed, process, epoch, position).
  """
  dataset: array_records.Dataset
  augment_config: ml_collections.ConfigDict
  image_size: int
  two_views: bool
  label_keys: tuple[str, ...]
  seed: int
  process_index: int
  per_epoch: int

  def __call__(self, index: int, record: bytes) -> dict[str, Any]:
    example = self.dataset.parse(record, ('image', *self.label_keys))
    image = example.pop('image').astype(np.float32) * (1.0 / 255.0)
    epoch, position = divmod(index, self.per_epoch)
    seed = (self.seed, self.process_index, epoch, position)
    for view, key in enumerate(('image', 'image_2')[:1 + self.two_views]):
      example[key] = augment_np.augment_image(
          image, (*seed, view), self.augment_config, self.image_size)
    return example


def train_batches(dataset: array_records.Dataset,
                  data_config: ml_collections.ConfigDict, *,
                  local_batch_size: int, two_views: bool, seed: int,
                  start_step: int = 0,
                  shard: common.Shard = common.Shard('train'),
                  label_keys: Sequence[str] = ('votes',)
                  ) -> grain.DatasetIterator:
  """This process's training batches from `start_step` on, forever.

  Each batch: 'image' float32 [B, S, S, C] (S = data_config.image_size),
  'image_2' (second view, when `two_views`), and the `label_keys`. The
  iterator's Grain state is {'next_index': the step of the next batch}.
  """
  augment.validate_augment_config(data_config.augment)
  dataset.check_keys(('image', *label_keys))
  records = _records(dataset, shard, drop_remainder=True)
  per_epoch = len(records)
  if per_epoch // local_batch_size < 1:
    raise ValueError(f'the local batch of {local_batch_size} exceeds the '
                     f'{per_epoch} {shard.split} examples this process reads')
  views = _TrainViews(dataset, data_config.augment, data_config.image_size,
                      two_views, tuple(label_keys), seed, shard.process_index,
                      per_epoch)
  batches = (records.seed(common.derive_seed(seed, shard.process_index, 1))
             .shuffle()  # Each epoch reshuffled (Grain: seed + epoch).
             .map_with_index(views)
             .batch(local_batch_size, drop_remainder=True)  # Per epoch.
             .repeat())
  iterator = iter(batches.to_iter_dataset(_read_options(
      data_config.threads, data_config.prefetch_batches)))
  iterator.set_state({'next_index': start_step})
  return iterator


@dataclasses.dataclass(frozen=True)
class _EvalView:
  """record -> an evaluation example: the resized image, the keys, a mask."""
  dataset: array_records.Dataset
  image_size: int
  keys: tuple[str, ...]

  def __call__(self, record: bytes) -> dict[str, Any]:
    example = self.dataset.parse(record, ('image', *self.keys))
    image = example.pop('image').astype(np.float32) * (1.0 / 255.0)
    example['image'] = augment_np.evaluation_view(image, self.image_size)
    example['mask'] = np.asarray(True)
    return example


def eval_batches(dataset: array_records.Dataset, split: str, *,
                 batch_size: int, image_size: int,
                 keys: Sequence[str] = ('id_str',), threads: int = 0,
                 process_index: int = 0, process_count: int = 1
                 ) -> Iterator[Batch]:
  """`pipeline.eval_batches` from array_record files: the same batches.

  One pass in stored order without augmentation, padded to `batch_size`
  ('mask' False on the padding).
  """
  dataset.check_keys(('image', *keys))
  shard = common.Shard(split, process_index, process_count)
  batches = (_records(dataset, shard, drop_remainder=False)
             .map(_EvalView(dataset, image_size, tuple(keys)))
             .batch(batch_size))
  for batch in batches.to_iter_dataset(_read_options(threads, 2)):
    yield common.pad_batch(batch, batch_size)

"""tf.data input pipelines over the TFDS datasets: training and evaluation.

TensorFlow runs here only, on the CPU (GPUs are hidden from it), and hands
numpy batches to JAX.

Training (`train_batches`): each process reads its own equal share of the
split (`tfds.even_splits`), so no example is read by two processes in an
epoch. Every epoch has its own file order and shuffle, seeded from (seed,
epoch, process), and every example's augmentation is seeded from (seed,
epoch, process, position in the epoch), so the stream of batches is a pure
function of the seed: starting at step k gives exactly the batches an
uninterrupted run saw from step k on. Resuming mid-epoch re-reads (without
decoding) the epoch's earlier records.

Evaluation (`eval_batches`): one pass in stored order, no augmentation; the
last batch is padded to full size and `mask` marks the real examples.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterator, Optional, Sequence

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from gzevo_jax.data import augment
# Shared with the Grain pipeline; kept importable from here.
from gzevo_jax.data.common import Shard, derive_seed, pad_batch  # noqa: F401

# TensorFlow is for input only: keep it off the accelerators JAX uses.
try:
  tf.config.set_visible_devices([], 'GPU')
except RuntimeError:  # TensorFlow was initialised earlier by someone else.
  pass

Batch = dict[str, np.ndarray]


def _tfds_split(shard: Shard, drop_remainder: bool) -> str:
  """The TFDS split string of this process's part (`tfds.even_splits`)."""
  if shard.process_count == 1:
    return shard.split
  return tfds.even_splits(shard.split, n=shard.process_count,
                          drop_remainder=drop_remainder)[shard.process_index]


def examples_per_process(builder: tfds.core.DatasetBuilder, split: str,
                         process_count: int) -> int:
  """Training examples each process reads per epoch (equal for all)."""
  return builder.info.splits[split].num_examples // process_count


def _options(threads: int) -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  if threads > 0:
    options.threading.private_threadpool_size = threads
  return options


def _read(builder: tfds.core.DatasetBuilder, shard: Shard, keys: Sequence[str],
          shuffle_seed: Optional[int], threads: int,
          drop_remainder: bool) -> tf.data.Dataset:
  """Records of `shard` with the image still encoded (decoded after skips)."""
  read_config = tfds.ReadConfig(options=_options(threads),
                                shuffle_seed=shuffle_seed, try_autocache=False)
  ds = builder.as_dataset(split=_tfds_split(shard, drop_remainder),
                          shuffle_files=shuffle_seed is not None,
                          read_config=read_config,
                          decoders={'image': tfds.decode.SkipDecoding()})
  return ds.map(lambda ex: {k: ex[k] for k in ('image', *keys)})


def decode_image(encoded: tf.Tensor, shape: tuple[int, int, int]) -> tf.Tensor:
  """PNG/JPEG bytes -> float32 [H, W, C] in [0, 1]."""
  image = tf.io.decode_image(encoded, channels=shape[-1],
                             expand_animations=False)
  image.set_shape(shape)
  return tf.image.convert_image_dtype(image, tf.float32)


def decode_zlib_tensor(encoded: tf.Tensor,
                       shape: tuple[int, int, int]) -> tf.Tensor:
  """A zlib-compressed uint8 tensor (images of more than 4 bands, which no
  PNG holds) -> float32 [H, W, C] in [0, 1]."""
  raw = tf.io.decode_raw(tf.io.decode_compressed(encoded, 'ZLIB'), tf.uint8)
  image = tf.reshape(raw, shape)
  return tf.image.convert_image_dtype(image, tf.float32)


def image_decoder(builder: tfds.core.DatasetBuilder
                  ) -> Callable[[tf.Tensor], tf.Tensor]:
  """The dataset's stored image (still encoded) -> float32 [H, W, C]."""
  feature = builder.info.features['image']
  shape = tuple(feature.shape)
  if isinstance(feature, tfds.features.Image):
    return functools.partial(decode_image, shape=shape)
  return functools.partial(decode_zlib_tensor, shape=shape)


def train_batches(builder: tfds.core.DatasetBuilder,
                  data_config: ml_collections.ConfigDict, *,
                  local_batch_size: int, two_views: bool, seed: int,
                  start_step: int = 0, shard: Shard = Shard('train'),
                  label_keys: Sequence[str] = ('votes',)
                  ) -> Iterator[Batch]:
  """This process's training batches from `start_step` on, forever.

  Each batch: 'image' float32 [B, S, S, C] (S = data_config.image_size),
  'image_2' (second view, when `two_views`), and the `label_keys`.
  """
  augment.validate_augment_config(data_config.augment)
  per_epoch = examples_per_process(builder, shard.split, shard.process_count)
  steps_per_epoch = per_epoch // local_batch_size
  if steps_per_epoch < 1:
    raise ValueError(f'the local batch of {local_batch_size} exceeds the '
                     f'{per_epoch} {shard.split} examples this process reads')
  epoch, within = divmod(start_step, steps_per_epoch)
  while True:
    yield from _epoch(builder, data_config, epoch=epoch,
                      skip=within * local_batch_size,
                      examples=steps_per_epoch * local_batch_size,
                      local_batch_size=local_batch_size, two_views=two_views,
                      seed=seed, shard=shard,
                      label_keys=label_keys).as_numpy_iterator()
    epoch, within = epoch + 1, 0


def _epoch(builder: tfds.core.DatasetBuilder,
           data_config: ml_collections.ConfigDict, *, epoch: int, skip: int,
           examples: int, local_batch_size: int, two_views: bool, seed: int,
           shard: Shard, label_keys: Sequence[str]) -> tf.data.Dataset:
  """One epoch's batches, starting `skip` examples in."""
  ds = _read(builder, shard, label_keys,
             shuffle_seed=derive_seed(seed, epoch, shard.process_index, 0),
             threads=data_config.threads, drop_remainder=True)
  ds = ds.shuffle(data_config.shuffle_buffer,
                  seed=derive_seed(seed, epoch, shard.process_index, 1))
  ds = ds.take(examples).skip(skip).enumerate(start=skip)
  view_seed = derive_seed(seed, epoch, shard.process_index, 2)
  decode = image_decoder(builder)
  size = data_config.image_size
  aug = data_config.augment

  def views(position, example):
    image = decode(example.pop('image'))
    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.constant(view_seed, tf.int64), position]), 2)
    example['image'] = augment.augment(image, seeds[0], aug, size)
    if two_views:
      example['image_2'] = augment.augment(image, seeds[1], aug, size)
    return example

  ds = ds.map(views, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(local_batch_size, drop_remainder=True).prefetch(
      data_config.prefetch_batches)


def eval_batches(builder: tfds.core.DatasetBuilder, split: str, *,
                 batch_size: int, image_size: int,
                 keys: Sequence[str] = ('id_str',), threads: int = 0,
                 process_index: int = 0, process_count: int = 1
                 ) -> Iterator[Batch]:
  """One pass over this process's part of `split`, no augmentation.

  Batches hold 'image' float32 [batch_size, S, S, C], the `keys`, and 'mask'
  (bool: False on the padding that fills the last batch).
  """
  shard = Shard(split, process_index, process_count)
  ds = _read(builder, shard, keys, shuffle_seed=None, threads=threads,
             drop_remainder=False)
  decode = image_decoder(builder)

  def view(example):
    image = decode(example.pop('image'))
    example['image'] = augment.evaluation_view(image, image_size)
    example['mask'] = tf.constant(True)
    return example

  ds = ds.map(view, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size).prefetch(2)
  for batch in ds.as_numpy_iterator():
    yield pad_batch(batch, batch_size)

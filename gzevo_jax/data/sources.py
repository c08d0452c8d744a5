"""Training data as the train loop sees it, chosen by `config.data.source`.

  'tfds'                 a TFDS dataset (default gz_evo/synthetic), built on
                         first use when it needs no download, read with the
                         tf.data pipeline (`pipeline.py`)
  'grain'                the same TFDS dataset from its array_record files,
                         read with Grain and augmented in numpy
                         (`grain_pipeline.py`): no TensorFlow. Never builds:
                         build with `python -m gzevo_jax.data.build
                         --file_formats=tfrecord,array_record` first
  'in_memory_synthetic'  numpy only, no TensorFlow: for hosts without it

This module imports no TensorFlow itself; the TFDS path imports it lazily.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Iterator, Mapping, Optional

from absl import logging
import jax
import ml_collections

from gzevo_jax import errors
from gzevo_jax import models
from gzevo_jax.data import common
from gzevo_jax.schema import Schema

Batch = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class TrainData:
  """How many examples make an epoch, and this process's batches."""
  num_examples: int                            # Per epoch, all processes.
  batches: Callable[[int], Iterator[Batch]]    # start_step -> iterator.


def _is_synthetic(dataset: str) -> bool:
  return dataset.partition('/')[2].startswith('synthetic')


def prepare_dataset(data_config: ml_collections.ConfigDict):
  """The configured TFDS builder, built first if it can be built here.

  Synthetic datasets build themselves; a real one builds when
  `data.manual_dir` is set, and otherwise is an error saying how to build it.
  With several processes, process 0 builds while the others wait.
  """
  from gzevo_jax.data import build  # TensorFlow and TFDS, lazily.
  from gzevo_jax.data import builders
  builder = builders.builder(data_config.dataset, data_config.data_dir,
                             data_config.skip_bad_rows)
  if builder.is_prepared():
    return builder
  if not _is_synthetic(data_config.dataset) and not data_config.manual_dir:
    raise common.DatasetNotBuiltError(
        f'dataset {data_config.dataset} is not built in {builder.data_dir}. '
        'Download the catalogues and images (`python -m gzevo_jax.data.build '
        f'--dataset={data_config.dataset}` prints what to get and where to '
        'put it), then build with `python -m gzevo_jax.data.build '
        f'--dataset={data_config.dataset} --manual_dir=DIR`, or pass '
        '--config.data.manual_dir=DIR to build it on the way.')
  if jax.process_index() == 0:
    build.prepare(data_config.dataset, data_config.data_dir,
                  data_config.manual_dir, data_config.skip_bad_rows)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f'built {data_config.dataset}')
  return builders.builder(data_config.dataset, data_config.data_dir,
                          data_config.skip_bad_rows)


def _check_compatible(shapes: Mapping[str, tuple[int, ...]],
                      config: ml_collections.ConfigDict,
                      schema: Schema) -> None:
  """The dataset's images must match the model, and its votes (when the
  objective learns from votes) the schema.

  `shapes`: the dataset's feature shapes ('votes', 'image').
  """
  name = config.data.dataset
  channels = shapes['image'][-1]
  if channels != config.data.channels:
    raise common.DataError(f'dataset {name} has {channels}-channel images but '
                           f'config.data.channels={config.data.channels}')
  if not models.uses_votes(config.objective):
    return
  if 'votes' not in shapes:
    raise common.DataError(
        f'dataset {name} has no `votes` feature, which the '
        f'{config.objective} objective learns from; pretrain on a '
        'gz_evo-style dataset, or use objective=contrastive')
  answers = shapes['votes'][0]
  if answers != schema.num_answers:
    raise common.DataError(f'dataset {name} has {answers} vote columns but '
                           f'schema {config.schema!r} has '
                           f'{schema.num_answers} answers')


def check_batch_memory(data_config: ml_collections.ConfigDict,
                       local_batch_size: int, two_views: bool,
                       memory_bytes: Optional[int] = None) -> None:
  """A UserError, before tf.data runs out of memory, if batches cannot fit.

  The pipeline holds about `prefetch_batches` + 2 float32 batches at once;
  they must fit in half of this machine's memory (`memory_bytes`).
  """
  if memory_bytes is None:
    memory_bytes = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  views = 2 if two_views else 1
  batch = (local_batch_size * views * data_config.image_size**2 *
           data_config.channels * 4)
  needed = batch * (data_config.prefetch_batches + 2)
  if needed > memory_bytes / 2:
    raise errors.UserError(
        f'config.data.image_size={data_config.image_size} with a batch of '
        f'{local_batch_size} ({views} view(s), {data_config.channels} '
        f'channels) needs about {needed / 2**30:.1f} GiB for the batches in '
        f'flight, more than half of this machine\'s '
        f'{memory_bytes / 2**30:.1f} GiB; lower data.image_size, '
        'global_batch_size or data.prefetch_batches')


def _in_memory_data(config: ml_collections.ConfigDict, schema: Schema,
                    two_views: bool) -> TrainData:
  """The synthetic catalogue rendered in numpy, batch by batch."""
  from gzevo_jax.data import in_memory  # Numpy only.
  data = config.data
  galaxies = in_memory.make_catalogue(schema, data.num_train_examples,
                                      data.labelled_fraction, config.seed)

  def in_memory_batches(start_step: int) -> Iterator[Batch]:
    return in_memory.batches(
        galaxies, global_batch_size=config.global_batch_size,
        image_size=data.image_size, channels=data.channels,
        two_views=two_views, seed=config.seed, start_step=start_step,
        process_index=jax.process_index(),
        process_count=jax.process_count())

  return TrainData(data.num_train_examples, in_memory_batches)


def check_tfrecord(builder) -> None:
  """tf.data reads tfrecord files only: a DataError naming the fix."""
  from gzevo_jax.data import build  # TFDS, lazily.
  formats = build.available_file_formats(builder)
  if 'tfrecord' not in formats:
    name = builder.info.full_name.rpartition('/')[0]
    raise common.DataError(
        "config.data.source='tfds' reads tfrecord files, but "
        f'{builder.data_dir} holds only {", ".join(sorted(formats))}; read it '
        "with --config.data.source=grain, or add tfrecord files with "
        f'`python -m gzevo_jax.data.build --dataset={name} '
        '--file_formats=tfrecord,array_record`')


def _read(config: ml_collections.ConfigDict, two_views: bool,
          shard: common.Shard, reader: Any, dataset: Any) -> TrainData:
  """This process's batches of a TFDS dataset.

  `reader` is the pipeline module (`pipeline` for tf.data, `grain_pipeline`
  for Grain) and `dataset` what it reads (a TFDS builder, array_record files).
  """
  per_process = reader.examples_per_process(dataset, 'train',
                                            shard.process_count)
  logging.info('training on %s: %d examples per epoch (%d per process)',
               config.data.dataset, per_process * shard.process_count,
               per_process)

  label_keys = ('votes',) if models.uses_votes(config.objective) else ()

  def batches(start_step: int) -> Iterator[Batch]:
    return reader.train_batches(
        dataset, config.data, local_batch_size=shard_batch(config, shard),
        two_views=two_views, seed=config.seed, start_step=start_step,
        shard=shard, label_keys=label_keys)

  return TrainData(per_process * shard.process_count, batches)


def _tfds_data(config: ml_collections.ConfigDict, schema: Schema,
               two_views: bool, shard: common.Shard) -> TrainData:
  """The TFDS dataset through tf.data (built here first when it can be)."""
  from gzevo_jax.data import pipeline  # TensorFlow, lazily.
  builder = prepare_dataset(config.data)
  check_tfrecord(builder)
  features = builder.info.features
  _check_compatible({k: features[k].shape for k in ('votes', 'image')
                     if k in features}, config, schema)
  return _read(config, two_views, shard, pipeline, builder)


def _grain_data(config: ml_collections.ConfigDict, schema: Schema,
                two_views: bool, shard: common.Shard) -> TrainData:
  """The TFDS dataset's array_record files through Grain: no TensorFlow."""
  from gzevo_jax.data import grain_pipeline  # Grain and numpy only.
  dataset = grain_pipeline.open_dataset(config.data)
  _check_compatible({k: f.shape for k, f in dataset.features.items()},
                    config, schema)
  return _read(config, two_views, shard, grain_pipeline, dataset)


@dataclasses.dataclass(frozen=True)
class EvalDataset:
  """A built dataset as evaluation reads it, through tf.data or Grain.

  `batches(split, *, batch_size, image_size, keys, threads)` is one pass in
  stored order without augmentation, padded to `batch_size` ('mask' False on
  the padding): `pipeline.eval_batches` or `grain_pipeline.eval_batches`.
  """
  name: str
  source: str                                    # 'tfds' or 'grain'.
  split_sizes: Mapping[str, int]
  feature_shapes: Mapping[str, Any]              # Name -> shape.
  batches: Callable[..., Iterator[Batch]]

  @property
  def bands(self) -> int:
    return self.feature_shapes['image'][-1]

  def num_examples(self, split: str) -> int:
    return self.split_sizes[split]


def eval_dataset(data_config: ml_collections.ConfigDict) -> EvalDataset:
  """The configured dataset for evaluation, read as `data_config.source` says.

  'tfds' (the default) builds a synthetic dataset on first use and reads
  tfrecord files with tf.data; 'grain' reads the array_record files with
  Grain and needs no TensorFlow ('in_memory_synthetic' pretraining evaluates
  through tf.data: the downstream datasets are TFDS datasets).
  """
  source = data_config.get('source', 'tfds')
  if source == 'grain':
    from gzevo_jax.data import grain_pipeline  # Grain and numpy only.
    dataset = grain_pipeline.open_dataset(data_config)
    return EvalDataset(
        data_config.dataset, 'grain', dict(dataset.split_sizes),
        {k: f.shape for k, f in dataset.features.items()},
        functools.partial(grain_pipeline.eval_batches, dataset))
  from gzevo_jax.data import pipeline  # TensorFlow, lazily.
  builder = prepare_dataset(data_config)
  check_tfrecord(builder)
  return EvalDataset(
      data_config.dataset, 'tfds',
      {name: split.num_examples for name, split in builder.info.splits.items()},
      {name: feature.shape for name, feature in builder.info.features.items()},
      functools.partial(pipeline.eval_batches, builder))


def shard_batch(config: ml_collections.ConfigDict,
                shard: common.Shard) -> int:
  """This process's part of the global batch."""
  return config.global_batch_size // shard.process_count


def train_data(config: ml_collections.ConfigDict, schema: Schema,
               two_views: bool) -> TrainData:
  """The configured training data for this process."""
  data = config.data
  shard = common.Shard('train', jax.process_index(), jax.process_count())
  check_batch_memory(data, shard_batch(config, shard), two_views)
  if data.source == 'in_memory_synthetic':
    return _in_memory_data(config, schema, two_views)
  if data.source == 'tfds':
    return _tfds_data(config, schema, two_views, shard)
  if data.source == 'grain':
    return _grain_data(config, schema, two_views, shard)
  raise ValueError(f'unknown data source {data.source!r}')

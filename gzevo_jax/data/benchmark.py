r"""Input throughput: `python -m gzevo_jax.data.benchmark --config=...`.

Prints the images/s of the training input pipelines for the config (two
augmented views per galaxy when the objective needs them, decoded from the
TFDS dataset, batched as the train loop gets them), with nothing else
running: tf.data (`--sources=tfds`) and Grain (`--sources=grain`), both by
default; the dataset gets its array_record files for Grain first when it
lacks them. `python -m gzevo_jax.benchmark` prints the config's own source
beside the train step's images/s, to show which one is the bottleneck.
`--build` also times building the dataset from scratch into a temporary
directory. The renderer alone: `python -m gzevo_jax.data.render --benchmark`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Sequence

from absl import flags
import ml_collections

from gzevo_jax import cli


def time_build(config: ml_collections.ConfigDict) -> float:
  """Seconds to build the config's dataset from nothing."""
  from gzevo_jax.data import build  # TensorFlow, lazily.
  with tempfile.TemporaryDirectory() as data_dir:
    start = time.perf_counter()
    build.prepare(config.data.dataset, data_dir, config.data.manual_dir)
    return time.perf_counter() - start


def pipeline_images_per_second(config: ml_collections.ConfigDict,
                               batches: int, warmup: int = 5) -> float:
  """Galaxies/s (each with its views) of `config.data.source`'s batches.

  This process's batches (the global batch on one process), as the train
  loop gets them; a 'tfds' dataset is built first when it can be.
  """
  import jax
  from gzevo_jax import models
  from gzevo_jax.data import sources
  from gzevo_jax.schema import get_schema
  data = sources.train_data(config, get_schema(config.schema),
                            models.uses_byol(config.objective))
  it = data.batches(0)
  for _ in range(warmup):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  local_batch = config.global_batch_size // jax.process_count()
  return batches * local_batch / (time.perf_counter() - start)


def source_config(config: ml_collections.ConfigDict,
                  source: str) -> ml_collections.ConfigDict:
  """`config` reading its data from `source`."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.source = source
  return config


def _has_array_record(config: ml_collections.ConfigDict) -> bool:
  from gzevo_jax.data import array_records, common  # No TensorFlow.
  try:
    array_records.open_dataset(config.data.dataset, config.data.data_dir)
  except common.DatasetNotBuiltError:
    return False
  return True


def ensure_formats(config: ml_collections.ConfigDict,
                   sources: Sequence[str]) -> None:
  """Builds or completes the dataset for the sources to time.

  A dataset that already has what Grain reads is used as it is, so a host
  without TensorFlow times Grain on a dataset built elsewhere; building
  (or adding a format) needs TensorFlow.
  """
  if 'tfds' not in sources and _has_array_record(config):
    return
  from gzevo_jax.data import build  # TensorFlow, lazily.
  formats = (['array_record'] if 'grain' in sources else []) + (
      ['tfrecord'] if 'tfds' in sources else [])
  build.prepare(config.data.dataset, config.data.data_dir,
                config.data.manual_dir, file_formats=formats)


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run says what to do with stray arguments.
  config = flags.FLAGS.config
  print(f'dataset {config.data.dataset}, {config.data.image_size} px, '
        f'batch {config.global_batch_size}, objective {config.objective}, '
        f'{os.cpu_count()} CPU cores')
  if flags.FLAGS.build:
    print(f'build: {time_build(config):.1f} s')
  names = flags.FLAGS.sources
  ensure_formats(config, names)
  lines = []
  for source in names:
    rate = pipeline_images_per_second(source_config(config, source),
                                      flags.FLAGS.batches)
    print(f'input pipeline ({source}): {rate:.0f} images/s')
    lines.append(json.dumps(dict(
        part='input', source=source, images_per_s=rate,
        dataset=config.data.dataset, image_size=config.data.image_size,
        global_batch_size=config.global_batch_size,
        objective=config.objective, batches=flags.FLAGS.batches,
        cpu_count=os.cpu_count())))
  if flags.FLAGS.json_out:
    with open(flags.FLAGS.json_out, 'w') as f:
      f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
  # Flags only for the command: gzevo_jax.benchmark imports the functions.
  cli.config_flag('configs/hybrid.py')
  flags.DEFINE_integer('batches', 60, 'batches to time (after 5 warm-up '
                       'batches)')
  flags.DEFINE_bool('build', False, 'also time a fresh build of '
                    'config.data.dataset')
  flags.DEFINE_list('sources', ['tfds', 'grain'], 'input pipelines to time: '
                    'tfds (tf.data) and/or grain')
  flags.DEFINE_string('json_out', None, 'also write one JSON line per source '
                      'to this file')
  cli.run(main)

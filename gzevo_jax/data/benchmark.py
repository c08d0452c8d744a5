r"""Input throughput: `python -m gzevo_jax.data.benchmark --config=...`.

Prints the images/s of the training input pipeline for the config (two
augmented views per galaxy when the objective needs them, decoded from the
TFDS dataset, batched as the train loop gets them), with nothing else
running. `python -m gzevo_jax.benchmark` prints it beside the train step's
images/s, to show which one is the bottleneck. `--build` also times building
the dataset from scratch into a temporary directory. The renderer alone:
`python -m gzevo_jax.data.render --benchmark`.
"""

from __future__ import annotations

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
  """Galaxies/s (each with its views) the train pipeline delivers."""
  from gzevo_jax import models
  from gzevo_jax.data import pipeline, sources
  builder = sources.prepare_dataset(config.data)
  it = pipeline.train_batches(
      builder, config.data, local_batch_size=config.global_batch_size,
      two_views=models.uses_byol(config.objective), seed=config.seed)
  for _ in range(warmup):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * config.global_batch_size / (time.perf_counter() - start)


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run says what to do with stray arguments.
  config = flags.FLAGS.config
  print(f'dataset {config.data.dataset}, {config.data.image_size} px, '
        f'batch {config.global_batch_size}, objective {config.objective}, '
        f'{os.cpu_count()} CPU cores')
  if flags.FLAGS.build:
    print(f'build: {time_build(config):.1f} s')
  rate = pipeline_images_per_second(config, flags.FLAGS.batches)
  print(f'input pipeline: {rate:.0f} images/s')


if __name__ == '__main__':
  # Flags only for the command: gzevo_jax.benchmark imports the functions.
  cli.config_flag('configs/hybrid.py')
  flags.DEFINE_integer('batches', 60, 'batches to time (after 5 warm-up '
                       'batches)')
  flags.DEFINE_bool('build', False, 'also time a fresh build of '
                    'config.data.dataset')
  cli.run(main)

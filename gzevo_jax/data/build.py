"""Builds a dataset: `python -m gzevo_jax.data.build --dataset=gz_evo/synthetic`.

  --dataset=gz_evo/real --manual_dir=DIR      GZ-Evo you downloaded
  --dataset=gz_rings/synthetic                the downstream task
  --beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing
                                              generate with Apache Beam
  --skip_bad_rows                             skip and report bad catalogue
                                              rows instead of failing
  --file_formats=tfrecord,array_record        also write array_record files
                                              (the Grain pipeline reads them,
                                              without TensorFlow); on a built
                                              dataset, adds the missing ones

The train and evaluation commands build a missing synthetic dataset
themselves; real data is built once with this command (or `tfds build`).
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from absl import flags
from absl import logging

from gzevo_jax import cli

_DATASET = flags.DEFINE_string('dataset', 'gz_evo/synthetic',
                               'name/config, e.g. gz_evo/real')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'TFDS data dir (default: $TFDS_DATA_DIR or '
    '~/tensorflow_datasets)')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', None,
                                  'downloaded catalogues and images (real)')
_SKIP_BAD_ROWS = flags.DEFINE_bool(
    'skip_bad_rows', False, 'skip and report bad rows instead of failing')
_FILE_FORMATS = flags.DEFINE_list(
    'file_formats', ['tfrecord'],
    'record formats to write: tfrecord (read by tf.data, config.data.source='
    'tfds) and/or array_record (read by Grain, config.data.source=grain)')
_BEAM_OPTIONS = flags.DEFINE_string(
    'beam_pipeline_options', None,
    'comma-separated Apache Beam options; generates with Beam when set')


# Beam's DirectRunner (and SwitchingDirectRunner) first try to download the
# Prism runner binary; nothing here downloads at run time, so local runs use
# FnApiRunner, the local batch runner DirectRunner falls back to.
_LOCAL_RUNNER = 'FnApiRunner'
_DOWNLOADING_RUNNERS = ('DirectRunner', 'SwitchingDirectRunner')


def beam_options(text: str):
  """'runner=DirectRunner,direct_num_workers=2' -> Beam PipelineOptions."""
  import apache_beam as beam  # Optional dependency: the [beam] extra.
  flags_ = []
  for option in filter(None, (o.strip() for o in text.split(','))):
    key, _, value = option.partition('=')
    if key == 'runner' and value in _DOWNLOADING_RUNNERS:
      logging.info('Beam: runner=%s runs as %s (same local execution, no '
                   'Prism download)', value, _LOCAL_RUNNER)
      option = f'runner={_LOCAL_RUNNER}'
    flags_.append(f'--{option}')
  return beam.options.pipeline_options.PipelineOptions(flags=flags_)


def local_beam_runner():
  """The runner tests and local builds use (see _LOCAL_RUNNER)."""
  from apache_beam.runners.portability.fn_api_runner import fn_runner
  return fn_runner.FnApiRunner()


FILE_FORMATS = ('tfrecord', 'array_record')


def _check_file_formats(file_formats: Sequence[str]) -> tuple[str, ...]:
  formats = tuple(dict.fromkeys(f.strip() for f in file_formats if f.strip()))
  bad = [f for f in formats if f not in FILE_FORMATS]
  if bad or not formats:
    raise ValueError(f'--file_formats={",".join(file_formats)}: choose one or '
                     f'both of {", ".join(FILE_FORMATS)}')
  return formats


def available_file_formats(builder) -> set[str]:
  """The record formats a built dataset has, from its dataset_info.json.

  Read from the info proto: `info.available_file_formats()` of a builder
  made from code misses the alternative formats listed in the file.
  """
  proto = builder.info.as_proto
  return {proto.file_format or 'tfrecord', *proto.alternative_file_formats}


def add_file_formats(builder, file_formats: Sequence[str]):
  """Adds the missing `file_formats` to a built dataset; returns its builder.

  TFDS's own converter rewrites each shard's records unchanged in the other
  format, beside the existing files, and lists the format in
  dataset_info.json (`alternativeFileFormats`).
  """
  from tensorflow_datasets.scripts.cli import convert_format_utils
  from gzevo_jax.data import builders
  available = available_file_formats(builder)
  missing = [f for f in file_formats if f not in available]
  for file_format in missing:
    logging.info('adding %s files to %s', file_format, builder.data_dir)
    convert_format_utils.convert_dataset(
        out_dir=None, out_file_format=file_format,
        dataset_version_dir=[builder.data_dir], num_workers=1)
  if not missing:
    return builder
  # A fresh builder reads the updated dataset_info.json.
  return builders.builder(builder.info.full_name.rpartition('/')[0],
                          builder.data_dir_root)


def prepare(dataset: str, data_dir: Optional[str] = None,
            manual_dir: Optional[str] = None, skip_bad_rows: bool = False,
            beam_pipeline_options: Optional[str] = None,
            file_formats: Sequence[str] = ('tfrecord',)):
  """Builds `dataset` unless it is already built; returns its builder.

  Records are written in the first of `file_formats` ('tfrecord' first
  when listed) and copied into the others; a dataset already built gets the
  formats it lacks.
  """
  import tensorflow_datasets as tfds  # Data only: keep imports at the edge.
  from gzevo_jax.data import builders
  formats = _check_file_formats(file_formats)
  builder = builders.builder(dataset, data_dir, skip_bad_rows)
  if builder.is_prepared():
    return add_file_formats(builder, formats)
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  if beam_pipeline_options:
    download_config.beam_options = beam_options(beam_pipeline_options)
  logging.info('building %s in %s%s', dataset, builder.data_dir,
               ' with Apache Beam' if beam_pipeline_options else '')
  start = time.perf_counter()
  first = 'tfrecord' if 'tfrecord' in formats else formats[0]
  try:
    builder.download_and_prepare(download_config=download_config,
                                 file_format=first)
  except AssertionError as e:
    if 'No examples were yielded' not in str(e):
      raise
    raise _no_examples_error(builder, dataset, e) from None
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  logging.info('built %s in %.0f s: %s', dataset, time.perf_counter() - start,
               splits)
  skipped = builder.info.metadata.get('skipped_rows') if (
      builder.info.metadata) else None
  if skipped:
    logging.warning('%d bad rows were skipped; they are listed under '
                    "'skipped_rows' in %s/metadata.json", len(skipped),
                    builder.data_dir)
  return add_file_formats(builder, formats)


def _no_examples_error(builder, dataset: str,
                       error: AssertionError) -> Exception:
  """TFDS's "No examples were yielded", said as what it means here.

  Images are only opened while examples are made, so rows whose image cannot
  be decoded are skipped there (with skip_bad_rows); when that leaves a split
  empty, the build stops, and this names the rows.
  """
  from gzevo_jax.data import common
  skipped = (builder.info.metadata or {}).get('skipped_rows') or []
  reasons = ''.join(f"\n  {row['file']}: row {row['row']}, id_str "
                    f"{row['id_str']!r}: {row['reason']}"
                    for row in skipped[:3])
  return common.DataError(
      f'{dataset}: {error}; {len(skipped)} row(s) were skipped as bad, which '
      f'left nothing to build there{"; the first:" if skipped else ""}'
      f'{reasons}')


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run says what to do with stray arguments.
  prepare(_DATASET.value, _DATA_DIR.value, _MANUAL_DIR.value,
          _SKIP_BAD_ROWS.value, _BEAM_OPTIONS.value, _FILE_FORMATS.value)


if __name__ == '__main__':
  cli.run(main)

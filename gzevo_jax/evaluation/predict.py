r"""Predictions for users' own galaxies: vote fractions, intervals, embeddings.

  python -m gzevo_jax.main --config=configs/predict.py \
      --config.pretrained_workdir=runs/hybrid --config.input=PATH

PATH is a folder of images (PNG/JPEG, FITS), a CSV/parquet catalogue with a
`file_loc` column, or a built dataset split `NAME:SPLIT` (e.g.
gz_rings/synthetic:test). Writes <workdir>/predictions.parquet: `id_str`
(and `file_loc`), for supervised and hybrid checkpoints each answer's
predicted vote fraction a_j / a_0 (`{question}_{answer}_predicted_fraction`),
with `interval_level` set its central interval under the answer's
Beta(a_j, a_0 - a_j) marginal (`..._lower`, `..._upper`) and
`predicted_summary` (the leading answer of the first question), and the
encoder's `embedding`.

Rows are written in parts of `rows_per_part` as they are predicted, and a
rerun skips every id already written, so a killed run resumes where it
stopped (and a folder that gained images gets just the new ones); the parts
are merged into predictions.parquet at the end, in constant memory.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from typing import Any, Iterator, Mapping, Optional

from absl import logging
import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import special

from gzevo_jax import checkpoint
from gzevo_jax import errors
from gzevo_jax import parallel
from gzevo_jax.data import user_images
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import votes as votes_lib
from gzevo_jax.schema import Schema

OUTPUT_FILE = 'predictions.parquet'
_PARTS_DIR = 'predictions_parts'
_METADATA_KEY = b'gzevo_jax'

Batch = dict[str, np.ndarray]

# ---- Vote-fraction predictions (numpy/scipy).


def vote_fraction_predictions(concentrations: np.ndarray, schema: Schema,
                              interval_level: Optional[float] = None
                              ) -> dict[str, np.ndarray]:
  """Output columns from Dirichlet concentrations a [N, A].

  `{col}_predicted_fraction` = a_j / a_0 (a_0 summed over j's question);
  with `interval_level` L, `{col}_predicted_fraction_lower`/`_upper` are the
  (1 - L)/2 and (1 + L)/2 quantiles of the fraction's marginal
  Beta(a_j, a_0 - a_j); `predicted_summary` is the first question's answer
  with the largest predicted fraction.
  """
  a = np.asarray(concentrations, np.float64)
  fractions = votes_lib.fractions_by_question(a, schema)
  columns = {}
  for i, col in enumerate(schema.label_cols):
    columns[f'{col}_predicted_fraction'] = fractions[:, i].astype(np.float32)
  if interval_level is not None:
    b = votes_lib.question_totals_per_answer(a, schema) - a
    for name, q in (('lower', (1 - interval_level) / 2),
                    ('upper', (1 + interval_level) / 2)):
      bound = special.betaincinv(a, b, q).astype(np.float32)
      for i, col in enumerate(schema.label_cols):
        columns[f'{col}_predicted_fraction_{name}'] = bound[:, i]
  first = schema.questions[0]
  leading = np.argmax(fractions[:, schema.question_slices[0]], axis=1)
  columns['predicted_summary'] = np.asarray(first.answers, object)[leading]
  return columns


def output_schema(schema: Optional[Schema], *, interval_level: Optional[float],
                  embedding_dim: Optional[int], with_file_loc: bool,
                  settings: Mapping[str, Any]) -> pa.Schema:
  """The parquet schema of predictions.parquet; `settings` as its metadata."""
  fields = [pa.field('id_str', pa.string())]
  if with_file_loc:
    fields.append(pa.field('file_loc', pa.string()))
  if schema is not None:
    suffixes = ['']
    if interval_level is not None:
      suffixes += ['_lower', '_upper']
    fields += [pa.field(f'{col}_predicted_fraction{s}', pa.float32())
               for s in suffixes for col in schema.label_cols]
    fields.append(pa.field('predicted_summary', pa.string()))
  if embedding_dim:
    fields.append(pa.field('embedding', pa.list_(pa.float32(), embedding_dim)))
  return pa.schema(fields, metadata={
      _METADATA_KEY: json.dumps(dict(settings), sort_keys=True)})


def batch_table(batch: Batch, outputs: Mapping[str, np.ndarray],
                schema: Optional[Schema], interval_level: Optional[float],
                table_schema: pa.Schema) -> pa.Table:
  """One batch's real (masked-in) rows as a table of `table_schema`."""
  keep = np.asarray(batch['mask'], bool)
  columns = {'id_str': list(batch['id_str'][keep])}
  if 'file_loc' in table_schema.names:
    columns['file_loc'] = list(batch['file_loc'][keep])
  if schema is not None:
    predicted = vote_fraction_predictions(outputs['concentrations'][keep],
                                          schema, interval_level)
    columns.update({k: list(v) if v.dtype == object else v
                    for k, v in predicted.items()})
  if 'embedding' in table_schema.names:
    embedding = np.asarray(outputs['representation'][keep], np.float32)
    columns['embedding'] = pa.FixedSizeListArray.from_arrays(
        embedding.reshape(-1), embedding.shape[1])
  return pa.Table.from_pydict(columns, schema=table_schema)


# ---- Writing, resumably.


class PredictionStore:
  """predictions.parquet in a workdir, grown in parts so a killed run resumes.

  Parts are written whole (to a temporary name, then renamed), so a kill
  loses at most the rows not yet in a part; `merge` streams the previous
  predictions.parquet and the parts into a new one, a row group at a time.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, OUTPUT_FILE)
    self.parts_dir = os.path.join(workdir, _PARTS_DIR)

  def files(self) -> list[str]:
    """predictions.parquet (if any), then the parts in order."""
    parts = []
    if os.path.isdir(self.parts_dir):
      parts = sorted(os.path.join(self.parts_dir, name)
                     for name in os.listdir(self.parts_dir)
                     if name.endswith('.parquet'))
    return [self.path] * os.path.exists(self.path) + parts

  def check_schema(self, expected: pa.Schema) -> None:
    """Existing rows must have the same columns and settings as new ones."""
    for path in self.files():
      found = pq.read_schema(path)
      if not found.equals(expected) or _settings(found) != _settings(expected):
        raise errors.UserError(
            f'{path} holds predictions made with other settings or columns '
            f'({_settings_difference(found, expected)}); write to a new '
            '--workdir, or delete it to start over')

  def done_ids(self) -> set[str]:
    """The ids already written (a rerun skips them)."""
    done = set()
    for path in self.files():
      done.update(pq.read_table(path, columns=['id_str']).column(0).to_pylist())
    return done

  def write_part(self, table: pa.Table) -> str:
    os.makedirs(self.parts_dir, exist_ok=True)
    index = len([p for p in self.files() if p != self.path])
    path = os.path.join(self.parts_dir, f'part-{index:06d}.parquet')
    pq.write_table(table, path + '.tmp')
    os.replace(path + '.tmp', path)
    return path

  def merge(self, table_schema: pa.Schema) -> int:
    """Folds the parts into predictions.parquet; returns its row count."""
    files = self.files()
    if files == [self.path] or not files:
      return pq.ParquetFile(self.path).metadata.num_rows if files else 0
    rows = 0
    with pq.ParquetWriter(self.path + '.tmp', table_schema) as writer:
      for path in files:
        source = pq.ParquetFile(path)
        for group in range(source.num_row_groups):
          table = source.read_row_group(group)
          writer.write_table(table)
          rows += table.num_rows
    os.replace(self.path + '.tmp', self.path)
    for path in files[1:] if files[0] == self.path else files:
      os.remove(path)
    os.rmdir(self.parts_dir)
    return rows


def _settings(table_schema: pa.Schema) -> dict[str, Any]:
  """The settings an output schema carries as metadata."""
  return json.loads((table_schema.metadata or {}).get(_METADATA_KEY, b'{}'))


def _settings_difference(found: pa.Schema, expected: pa.Schema) -> str:
  """What differs between two output schemas, in words."""
  old, new = _settings(found), _settings(expected)
  changed = [f'{k}: {old.get(k)!r} then, {new.get(k)!r} now'
             for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
  return '; '.join(changed) or 'the columns differ'


# ---- Inputs.


def _dataset_input(spec: str, config: ml_collections.ConfigDict, *, size: int,
                   channels: int, batch_size: int,
                   done: set[str]) -> tuple[Iterator[Batch], int]:
  """A built dataset's split `NAME:SPLIT`, through the evaluation pipeline."""
  from gzevo_jax.data import sources  # TensorFlow, lazily for tf.data.
  name, _, split = spec.rpartition(':')
  data = sources.eval_dataset(ml_collections.ConfigDict(dict(
      dataset=name, data_dir=config.data.data_dir,
      manual_dir=config.data.manual_dir,
      skip_bad_rows=config.data.skip_bad_rows, source=config.data.source)))
  if split not in data.split_sizes:
    raise user_images.InputError(
        f'{name} has no split {split!r}; choose one of '
        f'{", ".join(data.split_sizes)}')
  if data.bands != channels:
    raise user_images.InputError(
        f'{name} has {data.bands}-band images, but the checkpoint\'s encoder '
        f'takes {channels}-band images')

  def batches():
    for batch in data.batches(split, batch_size=batch_size, image_size=size,
                              threads=config.data.threads):
      ids = features_lib.decode_ids(batch['id_str'])
      mask = batch['mask'] & np.asarray([i not in done for i in ids], bool)
      yield {'image': batch['image'], 'id_str': ids.astype(object),
             'mask': mask}

  return batches(), data.num_examples(split)


def _file_input(config: ml_collections.ConfigDict,
                galaxies: list[user_images.Galaxy], *, size: int,
                channels: int, batch_size: int, done: set[str],
                log: user_images.ReadLog) -> tuple[Iterator[Batch], int]:
  """A folder's or catalogue's galaxies, less the ids already written."""
  todo = [g for g in galaxies if g.id_str not in done]
  logging.info('%s: %d galaxies, %d already predicted, %d to go',
               config.input, len(galaxies), len(galaxies) - len(todo),
               len(todo))
  batches = user_images.batches(todo, batch_size=batch_size, size=size,
                                channels=channels,
                                fits_stretch=config.fits_stretch,
                                threads=config.data.threads,
                                skip_bad=config.data.skip_bad_rows, log=log)
  return batches, len(todo)


def is_dataset_spec(spec: str) -> bool:
  """`NAME:SPLIT` of a built dataset, rather than a file or folder."""
  return not os.path.exists(spec) and ':' in spec


# ---- Running the model.


def _outputs(module: nn.Module, images: jax.Array,
             train: bool) -> dict[str, jax.Array]:
  """`GalaxyModel` method: the representation and, if any, concentrations."""
  representation = module.encoder(images, train=train)
  out = {'representation': representation}
  if module.head is not None:
    out['concentrations'] = module.head(representation, train=train)
  return out


class _Progress:
  """A progress bar in the log, with throughput, every `every_s` seconds."""

  def __init__(self, total: int, every_s: float = 10.0):
    self.total, self.every_s, self.done = total, every_s, 0
    self.start = self.last = time.perf_counter()

  def rate(self) -> float:
    """Galaxies per second so far."""
    return self.done / max(time.perf_counter() - self.start, 1e-9)

  def update(self, rows: int, force: bool = False) -> None:
    self.done += rows
    now = time.perf_counter()
    if not force and now - self.last < self.every_s:
      return
    self.last = now
    rate = self.rate()
    share = self.done / self.total if self.total else 1.0
    bar = '#' * int(20 * share) + '.' * (20 - int(20 * share))
    left = (self.total - self.done) / rate if rate > 0 else float('nan')
    logging.info('predict [%s] %d/%d galaxies (%.0f%%), %.1f galaxies/s, '
                 '%.0f s left', bar, self.done, self.total, 100 * share,
                 rate, max(left, 0.0))


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field of configs/predict.py."""
  features_lib.validate_extraction_config(config)
  if not config.input:
    raise ValueError('set --config.input to a folder of images, a catalogue '
                     '(.csv/.parquet with file_loc) or a dataset NAME:SPLIT')
  if config.fits_stretch not in user_images.FITS_STRETCHES:
    raise ValueError(f'config.fits_stretch={config.fits_stretch!r}; choose '
                     f'one of {", ".join(user_images.FITS_STRETCHES)}')
  level = config.interval_level
  if level is not None and not 0.0 < level < 1.0:
    raise ValueError(f'config.interval_level={level} must lie in (0, 1), or '
                     'be None for no intervals')
  if not isinstance(config.rows_per_part, int) or config.rows_per_part < 1:
    raise ValueError(f'config.rows_per_part={config.rows_per_part!r} must be '
                     'a positive integer')


def _write_summary(workdir: str, summary: dict[str, Any],
                   log: user_images.ReadLog) -> None:
  """predict.json, and skipped.csv listing the images left out."""
  with open(os.path.join(workdir, 'predict.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  if log.skipped:
    with open(os.path.join(workdir, 'skipped.csv'), 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(('id_str', 'file_loc', 'reason'))
      writer.writerows(log.skipped)


def _log_reading(log: user_images.ReadLog, size: int) -> None:
  for counter, what in ((log.resized, 'resized'),
                        (log.cropped, 'centre-cropped to a square and resized')):
    if counter:
      logging.info('%s %d image(s) to %dx%d: %s', what, sum(counter.values()),
                   size, size, ', '.join(f'{n} of {shape}'
                                         for shape, n in counter.items()))
  if log.skipped:
    logging.warning('skipped %d unreadable image(s), listed in skipped.csv; '
                    'the first: %s', len(log.skipped), log.skipped[0][2])


def _list_files(spec: str) -> Optional[list[user_images.Galaxy]]:
  """The galaxies of a folder or catalogue; None for a dataset NAME:SPLIT.

  Runs before the checkpoint is restored, so bad input fails fast.
  """
  if is_dataset_spec(spec):
    return None
  if not os.path.exists(spec):
    raise FileNotFoundError(
        f'config.input={spec}: no such file or folder (a built dataset is '
        'given as NAME:SPLIT, e.g. gz_rings/synthetic:test)')
  return user_images.list_inputs(spec)


def _open_input(config: ml_collections.ConfigDict,
                galaxies: Optional[list[user_images.Galaxy]], *, size: int,
                channels: int, batch_size: int, done: set[str],
                log: user_images.ReadLog) -> tuple[Iterator[Batch], int]:
  """(batches of the rows still to predict, how many rows that is at most)."""
  kwargs = dict(size=size, channels=channels, batch_size=batch_size, done=done)
  if galaxies is None:
    return _dataset_input(config.input, config, **kwargs)
  return _file_input(config, galaxies, log=log, **kwargs)


def _run_settings(config: ml_collections.ConfigDict,
              pretrained: ml_collections.ConfigDict, step: int,
              size: int) -> dict[str, Any]:
  """What the rows depend on; a resumed run must use the same."""
  return {
      'pretrained_workdir': os.path.abspath(config.pretrained_workdir),
      'pretrained_step': step,
      'objective': pretrained.objective,
      'encoder': pretrained.model.encoder,
      'image_size': size,
      'interval_level': config.interval_level,
      'fits_stretch': config.fits_stretch,
  }


def _embedding_dim(model: nn.Module, variables: Any, size: int,
                   channels: int) -> int:
  """The representation's width, from shapes alone."""
  images = jax.ShapeDtypeStruct((1, size, size, channels), np.float32)
  out = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False, method=_outputs), variables,
      images)
  return int(out['representation'].shape[-1])


def _predict_rows(predict_fn: Any, variables: Any, batches: Iterator[Batch],
                  mesh: jax.sharding.Mesh, to_table: Any,
                  store: PredictionStore, rows_per_part: int,
                  progress: _Progress) -> int:
  """Runs every batch, writing a part each `rows_per_part` rows; new rows."""
  pending, buffered, written = [], 0, 0
  for batch in batches:
    images = jax.device_put(batch['image'], parallel.batch_sharded(mesh))
    outputs = jax.tree.map(np.asarray, predict_fn(variables, images))
    table = to_table(batch, outputs)
    pending.append(table)
    buffered += table.num_rows
    progress.update(int(np.sum(batch['mask'])))
    if buffered >= rows_per_part:
      store.write_part(pa.concat_tables(pending))
      written += buffered
      pending, buffered = [], 0
  if pending:
    store.write_part(pa.concat_tables(pending))
    written += buffered
  return written


@dataclasses.dataclass(frozen=True)
class _Model:
  """A restored checkpoint, and the columns its predictions will have."""
  model: nn.Module
  variables: Any
  schema: Optional[Schema]  # None without a Dirichlet head.
  interval_level: Optional[float]
  image_size: int
  channels: int
  table_schema: pa.Schema


def _restore(config: ml_collections.ConfigDict) -> _Model:
  """The checkpoint of `config.pretrained_workdir`, ready to predict with."""
  pretrained, schema, step = checkpoint.load_config_and_schema(
      config.pretrained_workdir, config.pretrained_step)
  model, variables, _, _ = checkpoint.restore_model(config.pretrained_workdir,
                                                    step)
  size = config.data.image_size or pretrained.data.image_size
  channels = pretrained.data.channels
  if model.head is None:
    logging.info('a %s checkpoint has no Dirichlet head: writing embeddings '
                 'only', pretrained.objective)
    schema = None
  level = config.interval_level if schema else None
  table_schema = output_schema(
      schema, interval_level=level,
      embedding_dim=_embedding_dim(model, variables, size, channels),
      with_file_loc=not is_dataset_spec(config.input),
      settings=_run_settings(config, pretrained, step, size))
  return _Model(model, variables, schema, level, size, channels, table_schema)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """The `predict` task of `python -m gzevo_jax.main`: files into `workdir`."""
  if jax.process_count() > 1:
    raise errors.UserError('predict runs in one process, on all its local '
                           'devices; start it without --distributed')
  galaxies = _list_files(config.input)
  m = _restore(config)
  os.makedirs(workdir, exist_ok=True)
  store = PredictionStore(workdir)
  store.check_schema(m.table_schema)
  mesh = features_lib.local_mesh()
  log = user_images.ReadLog()
  batches, total = _open_input(
      config, galaxies, size=m.image_size, channels=m.channels,
      batch_size=features_lib.padded_batch_size(config.eval_batch_size, mesh),
      done=store.done_ids(), log=log)
  progress = _Progress(total)
  try:
    new_rows = _predict_rows(
        features_lib.make_feature_fn(m.model, mesh, _outputs),
        parallel.replicate(m.variables, mesh), batches, mesh,
        lambda b, o: batch_table(b, o, m.schema, m.interval_level,
                                 m.table_schema),
        store, config.rows_per_part, progress)
  except user_images.InputError as e:
    raise user_images.InputError(
        f'{e}. Set --config.data.skip_bad_rows=True to skip such images (they '
        f'are listed in skipped.csv); the galaxies predicted so far are kept '
        f'in {store.parts_dir} and a rerun resumes after them') from e
  progress.update(0, force=True)
  _log_reading(log, m.image_size)
  rows = store.merge(m.table_schema)
  summary = {'rows': rows, 'new_rows': new_rows, 'skipped': len(log.skipped),
             'resized': dict(log.resized), 'cropped': dict(log.cropped),
             'galaxies_per_second': progress.rate(),
             'output': os.path.abspath(store.path),
             **_settings(m.table_schema)}
  _write_summary(workdir, summary, log)
  if log.skipped and not rows:
    raise user_images.InputError(
        f'every image was skipped as unreadable ({len(log.skipped)}, listed '
        f'in {os.path.join(workdir, "skipped.csv")}): nothing to predict')
  logging.info('wrote %d new rows, %d in all, to %s', new_rows, rows,
               store.path)
  return summary

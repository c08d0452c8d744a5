"""Real GZ-Evo and GZ Rings catalogues from a user's `manual_dir`.

The licence of GZ-Evo forbids redistribution, so users download it themselves
and the TFDS builders read it from `manual_dir`. This module finds the
catalogue tables there, validates them and turns their rows into examples:

* `plan_gz_evo` / `plan_rings` run once, on the driver. They read every table
  without image bytes, check every row, find duplicate ids across tables,
  assign splits with `split_of` and cut the good rows into `WorkUnit`s.
* `gz_evo_examples` / `rings_examples` run on workers (a plain generator or
  an Apache Beam `FlatMap`): they re-read the rows of one unit and decode and
  resize its images. They are top-level functions of plain-data arguments, so
  they pickle.

Bad input always raises `CatalogError` naming the file and row; with
`skip_bad_rows=True` bad rows are skipped and reported instead, never dropped
silently. pyarrow + Pillow + numpy only: no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageFile
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from gzevo_jax.data import common
from gzevo_jax.schema import Schema

ID_COLUMN = 'id_str'
IMAGE_COLUMN = 'image'  # Hugging Face layout: image bytes in the table.
PATH_COLUMNS = ('file_loc', 'subfolder', 'filename')
IMAGES_DIR = 'images'
HF_DATA_DIR = 'data'
RING_COUNT_COLUMNS = ('ring_yes', 'ring_no')
RING_FRACTION_COLUMN = 'ring_fraction'
# How many bad rows a message or log line lists.
MAX_LISTED_ROWS = 20

_MAX_COUNT = np.iinfo(np.int32).max
_NAN = 'is empty or NaN'
_NAN_HINT = (
    'Vote counts must be whole numbers >= 0. Empty cells are read as unknown '
    '(0 votes) only where all of a campaign\'s columns are empty in a row (the '
    'campaign did not ask that galaxy); an empty cell among counts of its '
    'campaign is ambiguous. If it means "nobody chose this answer", fill those '
    'columns with 0 (e.g. pandas: df[vote_columns] = '
    'df[vote_columns].fillna(0)).')

GZ_EVO_INSTRUCTIONS = """\
GZ-Evo's licence does not allow us to redistribute it: download it yourself
into one directory, MANUAL_DIR, in either of two layouts (or both).

(a) Hugging Face layout. Accept the terms of the dataset at
    https://huggingface.co/datasets/mwalmsley/gz_evo, log in
    (`huggingface-cli login`) and download its parquet shards:
        huggingface-cli download mwalmsley/gz_evo --repo-type dataset \\
            --include "data/*" --local-dir MANUAL_DIR
    giving MANUAL_DIR/data/*.parquet. Each shard holds `id_str`, the image
    bytes in an `image` column and one vote-count column per answer.

(b) Catalogue tables plus image files, e.g. as the galaxy-datasets package
    (https://github.com/mwalmsley/galaxy-datasets) lays out a campaign's
    catalogues and images:
        MANUAL_DIR/*.parquet or MANUAL_DIR/*.csv   catalogue tables
        MANUAL_DIR/images/...                      JPG or PNG images
    Each table needs `id_str` (unique across all tables) and the image
    location: `file_loc` (absolute, relative to MANUAL_DIR, or relative to
    MANUAL_DIR/images), or `subfolder` + `filename` (under MANUAL_DIR/images).

Vote counts are columns named `{question}_{answer}` as in the schema, e.g.
`smooth-or-featured-dr5_smooth`, `bar-dr8_weak`; other columns (ra, dec,
*_fraction, *_total-votes, ...) are ignored. Columns of campaigns a table
lacks count as zero votes, and a table with no vote columns holds unlabelled
galaxies. Counts must be whole numbers >= 0. In a row, the columns of a
campaign that did not ask that galaxy may all be empty (null/NaN, as in the
Hugging Face shards): they are unknown answers, 0 votes, counted in the
dataset's metadata.json. An empty cell among counts of its own campaign is
an error.

Splits: train/validation/test come from a hash of `id_str` (any published
train/test split is not used).

Then build:
    tfds build gz_evo --imports=gzevo_jax.data.builders --config=real \\
        --manual_dir=MANUAL_DIR
or
    python -m gzevo_jax.data.build --dataset=gz_evo/real --manual_dir=MANUAL_DIR
"""

RINGS_INSTRUCTIONS = """\
The GZ Rings catalogue cannot be redistributed: download it yourself (e.g.
the gz_rings catalogue and images of the galaxy-datasets package,
https://github.com/mwalmsley/galaxy-datasets) into one directory, MANUAL_DIR:
    MANUAL_DIR/*.parquet or MANUAL_DIR/*.csv   catalogue tables
    MANUAL_DIR/images/...                      JPG or PNG images
(parquet shards with an `image` bytes column, at the top level or under
MANUAL_DIR/data/, work too). Each table needs `id_str` (unique across all
tables), the image location (`file_loc`, absolute, relative to MANUAL_DIR or
to MANUAL_DIR/images; or `subfolder` + `filename` under MANUAL_DIR/images),
and the ring label: vote counts `ring_yes` and `ring_no` (whole numbers >= 0),
and/or `ring_fraction` in [0, 1]. The label is ring_fraction > 0.5, with
ring_fraction = ring_yes / (ring_yes + ring_no) when it is not given.

Splits: train/validation/test come from a hash of `id_str`.

Then build:
    tfds build gz_rings --imports=gzevo_jax.data.builders --config=real \\
        --manual_dir=MANUAL_DIR
or
    python -m gzevo_jax.data.build --dataset=gz_rings/real \\
        --manual_dir=MANUAL_DIR
"""


class CatalogError(common.DataError):
  """A catalogue or image that cannot be used; names the file and row."""


@dataclasses.dataclass(frozen=True)
class BadRow:
  """One row that cannot become an example, and why."""
  file: str  # Path of the table.
  row: int  # 0-based data row of the table.
  id_str: Optional[str]
  reason: str

  def __str__(self) -> str:
    return (f'{_place(self.file, self.row)}, id_str {self.id_str!r}: '
            f'{self.reason}')


def _place(file: str, row: int) -> str:
  """'FILE: row R' (0-based data row), plus the line number in a CSV."""
  line = f' (CSV line {row + 2})' if _is_csv(file) else ''
  return f'{file}: row {row}{line}'


@dataclasses.dataclass(frozen=True)
class WorkUnit:
  """One task for one worker: rows of one table that belong to one split."""
  file: str
  rows: tuple[int, ...]
  split: str


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to build: work units per split, and the rows skipped as bad."""
  units: dict[str, list[WorkUnit]]
  bad_rows: list[BadRow]
  num_rows: int  # Rows in all tables: planned rows + bad rows.
  # Campaign -> empty vote cells of planned rows read as unknown (0 votes)
  # because that campaign did not ask the galaxy.
  empty_unasked_cells: dict[str, int] = dataclasses.field(
      default_factory=dict)


# ---- Finding and reading tables.


def find_tables(manual_dir: str, instructions: str) -> list[str]:
  """Catalogue tables: top-level *.parquet / *.csv, and data/*.parquet."""
  if not os.path.isdir(manual_dir):
    raise CatalogError(f'manual_dir {manual_dir!r} does not exist or is not a '
                       f'directory.\n\n{instructions}')
  tables = [
      os.path.join(manual_dir, f)
      for f in sorted(os.listdir(manual_dir))
      if f.endswith(('.parquet', '.csv'))
  ]
  hf_dir = os.path.join(manual_dir, HF_DATA_DIR)
  if os.path.isdir(hf_dir):
    tables += [
        os.path.join(hf_dir, f)
        for f in sorted(os.listdir(hf_dir))
        if f.endswith('.parquet')
    ]
  tables = [t for t in tables if os.path.isfile(t)]
  if not tables:
    raise CatalogError(
        f'no catalogue tables in manual_dir {manual_dir!r}: expected *.parquet '
        f'or *.csv files at its top level, or parquet shards under '
        f'{os.path.join(manual_dir, HF_DATA_DIR)!r}.\n\n{instructions}')
  return tables


def _is_csv(path: str) -> bool:
  return path.endswith('.csv')


def _column_names(path: str) -> list[str]:
  """Column names of a table, without reading its data."""
  try:
    if _is_csv(path):
      with pa_csv.open_csv(path) as reader:
        return list(reader.schema.names)
    return list(pq.read_schema(path).names)
  except (pa.ArrowException, OSError) as e:
    raise CatalogError(f'{path}: cannot read the table: {e}') from None


def _string_columns(names: Sequence[str]) -> list[str]:
  """Columns read as text whatever they look like (ids, folders like 587722)."""
  return [c for c in names if c in (ID_COLUMN,) + PATH_COLUMNS]


def _read_table(path: str, columns: Sequence[str]) -> pa.Table:
  """The given columns of a whole table; text columns as strings."""
  if _is_csv(path):
    stat = os.stat(path)
    return _read_csv(path, tuple(columns), stat.st_mtime_ns, stat.st_size)
  try:
    table = pq.read_table(path, columns=list(columns))
  except (pa.ArrowException, OSError) as e:
    raise CatalogError(f'{path}: cannot read the table: {e}') from None
  return _strings_as_text(table, path)


@functools.lru_cache(maxsize=2)
def _read_csv(path: str, columns: tuple[str, ...], mtime_ns: int,
              size: int) -> pa.Table:
  """Parses a CSV once per worker process (cached: units share the file)."""
  del mtime_ns, size  # Only part of the cache key.
  options = pa_csv.ConvertOptions(
      include_columns=list(columns),
      column_types={c: pa.string() for c in _string_columns(columns)})
  try:
    return pa_csv.read_csv(path, convert_options=options)
  except (pa.ArrowException, OSError) as e:
    raise CatalogError(f'{path}: cannot read the CSV: {e}') from None


def _strings_as_text(table: pa.Table, path: str) -> pa.Table:
  for name in _string_columns(table.column_names):
    column = table.column(name)
    if not pa.types.is_string(column.type):
      try:
        column = pc.cast(column, pa.string())
      except pa.ArrowException as e:
        raise CatalogError(f'{path}: column {name!r} of type {column.type} '
                           f'cannot be read as text: {e}') from None
      table = table.set_column(table.column_names.index(name), name, column)
  return table


def _read_rows(path: str, columns: Sequence[str],
               rows: Sequence[int]) -> pa.Table:
  """The given rows of a table; for parquet only their row groups are read."""
  rows = np.asarray(rows, dtype=np.int64)
  if _is_csv(path):
    table = _read_table(path, columns)
    _check_rows_exist(path, table.num_rows, rows)
    return table.take(pa.array(rows))
  try:
    parquet = pq.ParquetFile(path)
    sizes = [
        parquet.metadata.row_group(g).num_rows
        for g in range(parquet.metadata.num_row_groups)
    ]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    _check_rows_exist(path, starts[-1], rows)
    group_of_row = np.searchsorted(starts, rows, side='right') - 1
    groups = np.unique(group_of_row)
    table = parquet.read_row_groups(groups.tolist(), columns=list(columns))
  except (pa.ArrowException, OSError) as e:
    raise CatalogError(f'{path}: cannot read the table: {e}') from None
  # Row r sits in the concatenation of the groups read, after the groups
  # before its own.
  offsets = np.cumsum([0] + [sizes[g] for g in groups[:-1]])
  local = rows - starts[group_of_row] + offsets[np.searchsorted(
      groups, group_of_row)]
  return _strings_as_text(table.take(pa.array(local)), path)


def _check_rows_exist(path: str, num_rows: int, rows: np.ndarray) -> None:
  if rows.size and rows.max() >= num_rows:
    raise CatalogError(f'{path}: has {num_rows} rows but row {rows.max()} was '
                       'planned; did the file change since planning?')


# ---- Per-row problems.


class _RowProblem(Exception):
  """A row (usually its image) that cannot be used; the message says why."""


class _Problems:
  """Problems of the rows of one table, kept vectorised.

  For each row: how many problems, and the first one (an index into
  `reasons`, each a string or a function of the row giving one).
  """

  def __init__(self, num_rows: int):
    self.first = np.full(num_rows, -1, dtype=np.int64)
    self.count = np.zeros(num_rows, dtype=np.int64)
    self.reasons: list[Union[str, Callable[[int], str]]] = []
    # Accepted, counted oddities: campaign -> per-row number of empty vote
    # cells read as unknown (the campaign did not ask that galaxy).
    self.empty_unasked: dict[str, np.ndarray] = {}

  def add(self, mask: np.ndarray, reason: Union[str, Callable[[int], str]]):
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
      return
    self.first[(self.first < 0) & mask] = len(self.reasons)
    self.count += mask
    self.reasons.append(reason)

  def reason(self, row: int) -> str:
    reason = self.reasons[self.first[row]]
    text = reason if isinstance(reason, str) else reason(row)
    more = int(self.count[row]) - 1
    plural = 's' if more > 1 else ''
    return text + (f' (and {more} more problem{plural} in this row)'
                   if more else '')


def _numbers(table: pa.Table, name: str, problems: _Problems) -> np.ndarray:
  """float64 values of a column; null -> NaN; text that is no number -> 0."""
  column = table.column(name)
  if (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or
      pa.types.is_decimal(column.type) or pa.types.is_boolean(column.type) or
      pa.types.is_null(column.type)):
    return np.asarray(pc.cast(column,
                              pa.float64()).to_numpy(zero_copy_only=False),
                      dtype=np.float64)
  texts = column.to_pylist()
  values = np.zeros(len(texts))
  not_numbers = np.zeros(len(texts), dtype=bool)
  for i, text in enumerate(texts):
    if text is None or str(text).strip() == '':
      values[i] = np.nan
      continue
    try:
      values[i] = float(text)
    except ValueError:
      not_numbers[i] = True
  problems.add(not_numbers, lambda r: f'{name}={texts[r]!r} is not a number')
  return values


def _counts(table: pa.Table, name: str, problems: _Problems) -> np.ndarray:
  """int32 vote counts of a column; problems noted, bad values become 0."""
  counts, empty = _counts_or_empty(table, name, problems)
  problems.add(empty, f'{name} {_NAN}')
  return counts


def _counts_or_empty(table: pa.Table, name: str,
                     problems: _Problems) -> tuple[np.ndarray, np.ndarray]:
  """(int32 counts, bool empty) of a column; empty cells are 0, not noted.

  Other problems (negative, fractional, too large, not a number) are noted.
  """
  values = _numbers(table, name, problems)
  nan = np.isnan(values)
  with np.errstate(invalid='ignore'):
    negative = values < 0
    too_big = ~negative & (values > _MAX_COUNT)
    fractional = ~nan & ~too_big & (values != np.floor(values))
  problems.add(negative, lambda r: f'{name}={values[r]:g} is negative')
  problems.add(fractional,
               lambda r: f'{name}={values[r]:g} is not a whole number')
  problems.add(too_big, lambda r: f'{name}={values[r]:g} is too large')
  good = ~(nan | negative | fractional | too_big)
  return np.where(good, values, 0).astype(np.int32), nan


def _ids(table: pa.Table, problems: _Problems) -> list[Optional[str]]:
  ids = table.column(ID_COLUMN).to_pylist()
  problems.add(np.array([i is None or not i.strip() for i in ids], dtype=bool),
               f'empty {ID_COLUMN}')
  return ids


# ---- Images.


def _image_columns(path: str, names: Sequence[str]) -> list[str]:
  """The columns that locate a table's images; CatalogError if none do."""
  if IMAGE_COLUMN in names:
    return [IMAGE_COLUMN]
  columns = [c for c in PATH_COLUMNS if c in names]
  if 'file_loc' in columns or 'filename' in columns:
    return columns
  raise CatalogError(
      f'{path}: no image column. Expected `{IMAGE_COLUMN}` (image bytes, as '
      'in the Hugging Face layout), `file_loc`, or `subfolder` + `filename` '
      f'(under manual_dir/{IMAGES_DIR}); columns: {_column_list(names)}')


def _column_list(names: Sequence[str], limit: int = 30) -> str:
  shown = ', '.join(names[:limit])
  return shown + (f', ... ({len(names)} in all)' if len(names) > limit else '')


def _image_candidates(manual_dir: str, file_loc: Optional[str],
                      subfolder: Optional[str],
                      filename: Optional[str]) -> list[str]:
  """Where an image may be, in the order tried."""
  images = os.path.join(manual_dir, IMAGES_DIR)
  candidates = []
  if file_loc:
    candidates += [
        os.path.join(manual_dir, file_loc),
        os.path.join(images, file_loc)
    ]
  if filename:
    candidates.append(os.path.join(images, subfolder or '', filename))
  return list(dict.fromkeys(candidates))  # Absolute file_loc: once.


def _image_locations(
    table: pa.Table
) -> list[tuple[Optional[str], Optional[str], Optional[str]]]:
  """(file_loc, subfolder, filename) of each row; None where absent."""
  columns = [
      table.column(c).to_pylist() if c in table.column_names else [None] *
      table.num_rows for c in PATH_COLUMNS
  ]
  return list(zip(*columns))


def _find_image(manual_dir: str, file_loc: Optional[str],
                subfolder: Optional[str], filename: Optional[str]) -> str:
  """The image file of a row; `_RowProblem` if there is none."""
  candidates = _image_candidates(manual_dir, file_loc, subfolder, filename)
  if not candidates:
    raise _RowProblem('no image location (file_loc / subfolder / filename are '
                      'empty)')
  for path in candidates:
    if os.path.isfile(path):
      return path
  raise _RowProblem(f'image file not found; tried {", ".join(candidates)}')


def _check_image_files(manual_dir: str, table: pa.Table,
                       problems: _Problems) -> None:
  """Notes rows whose image file is missing (files are not opened here)."""
  missing = {}
  for row, location in enumerate(_image_locations(table)):
    try:
      _find_image(manual_dir, *location)
    except _RowProblem as e:
      missing[row] = str(e)
  mask = np.zeros(table.num_rows, dtype=bool)
  mask[list(missing)] = True
  problems.add(mask, missing.__getitem__)


def load_image(data_or_path: Union[bytes, str], image_size: int, channels: int,
               where: str) -> np.ndarray:
  """Decodes an image to uint8 [image_size, image_size, channels].

  Converts to RGB (channels=3) or greyscale L (channels=1), crops the central
  square of non-square images and resizes with Pillow's antialiased bilinear
  filter (as torchvision's antialiased resize in galaxy-datasets / Zoobot).
  Missing, unreadable or truncated images raise CatalogError(where: reason).
  """
  try:
    return _decode(data_or_path, image_size, channels)
  except _RowProblem as e:
    raise CatalogError(f'{where}: {e}') from None


def _decode(data_or_path: Union[bytes, str], image_size: int,
            channels: int) -> np.ndarray:
  if channels not in (1, 3):
    raise ValueError(f'channels must be 1 or 3, got {channels}')
  if ImageFile.LOAD_TRUNCATED_IMAGES:
    # Pillow would pad truncated files with grey; they must fail instead.
    logging.warning('PIL.ImageFile.LOAD_TRUNCATED_IMAGES was True; setting it '
                    'to False so that truncated images are reported.')
    ImageFile.LOAD_TRUNCATED_IMAGES = False
  source = (io.BytesIO(data_or_path)
            if isinstance(data_or_path, (bytes, bytearray)) else data_or_path)
  name = 'image bytes' if isinstance(source, io.BytesIO) else data_or_path
  try:
    with Image.open(source) as image:
      image.load()
      image = image.convert('RGB' if channels == 3 else 'L')
  except FileNotFoundError:
    raise _RowProblem(f'image file not found: {name}') from None
  except Image.UnidentifiedImageError:
    raise _RowProblem(f'not a readable image: {name}') from None
  except (OSError, ValueError, SyntaxError, EOFError,
          Image.DecompressionBombError) as e:
    raise _RowProblem(f'truncated or corrupt image {name}: {e}') from None
  width, height = image.size
  if width != height:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
  if image.size != (image_size, image_size):
    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
  array = np.asarray(image, dtype=np.uint8)
  return array[..., None] if channels == 1 else array


def _image_sources(manual_dir: str,
                   table: pa.Table) -> Callable[[int], Union[bytes, str]]:
  """row -> image bytes or file, for a table read by a worker.

  The function raises `_RowProblem` for a row without a usable image.
  """
  if IMAGE_COLUMN not in table.column_names:
    locations = _image_locations(table)
    return lambda row: _find_image(manual_dir, *locations[row])
  values = table.column(IMAGE_COLUMN).to_pylist()
  return lambda row: _image_value(manual_dir, values[row])


def _image_value(manual_dir: str, value: Any) -> Union[bytes, str]:
  """Bytes or file of an `image` cell: binary, {bytes, path} or a path."""
  if isinstance(value, dict):  # datasets.Image.
    data, path = value.get('bytes'), value.get('path')
  elif isinstance(value, str):
    data, path = None, value
  else:
    data, path = value, None
  if data:
    return data
  if path:  # An image stored by reference.
    candidates = _image_candidates(manual_dir, path, None, None)
    for candidate in candidates:
      if os.path.isfile(candidate):
        return candidate
    raise _RowProblem(f'image has no bytes and its path is not found; tried '
                      f'{", ".join(candidates)}')
  raise _RowProblem(f'{IMAGE_COLUMN} is empty')


# ---- Labels: what distinguishes GZ-Evo from GZ Rings.


def _as_schema(schema: Union[Schema, Mapping[str, Any]]) -> Schema:
  return schema if isinstance(schema, Schema) else Schema.from_dict(schema)


def _gz_evo_label_columns(schema: Schema, path: str,
                          names: Sequence[str]) -> list[str]:
  """The schema's vote columns in a table; partial questions are errors."""
  present = set(names)
  for question in schema.questions:
    have = [c for c in question.columns if c in present]
    if have and len(have) < len(question.columns):
      missing = [c for c in question.columns if c not in present]
      raise CatalogError(
          f'{path}: has vote columns for some answers of question '
          f'{question.name!r} but not {", ".join(missing)}; votes of missing '
          'answers cannot be told apart from zero. Add those columns (0 where '
          'nobody chose the answer).')
  return [c for c in schema.label_cols if c in present]


def _ignored_vote_columns(schema: Schema, names: Sequence[str]) -> list[str]:
  """Columns that look like vote counts but are not label columns.

  That is `{question}_{answer}` columns of the schema's questions with answers
  it lacks, and of questions it lacks that have a `{question}_total-votes`
  column (as galaxy-datasets catalogues do).
  """
  total = '_total-votes'
  questions = set(schema.question_names) | {
      c[:-len(total)] for c in names if c.endswith(total)
  }
  label_cols = set(schema.label_cols)
  return [
      c for c in names if c not in label_cols and not c.endswith(
          ('_fraction', total)) and c.split('_', 1)[0] in questions
  ]


def _gz_evo_labels(schema: Schema, label_columns: Sequence[str],
                   table: pa.Table,
                   problems: _Problems) -> Callable[[int], dict[str, Any]]:
  """Validates the votes of a table; returns row -> label features."""
  votes = np.zeros((table.num_rows, schema.num_answers), dtype=np.int32)
  empty = np.zeros((table.num_rows, schema.num_answers), dtype=bool)
  present = np.zeros(schema.num_answers, dtype=bool)
  for name in label_columns:
    i = schema.column_index(name)
    votes[:, i], empty[:, i] = _counts_or_empty(table, name, problems)
    present[i] = True
  for campaign in schema.campaigns:
    _check_empty_cells(schema, campaign, present, empty, problems)

  def labels(row: int) -> dict[str, Any]:
    return {
        'votes': votes[row].copy(),
        'campaign': common.campaign_label(schema, votes[row]),
        'labelled': bool(votes[row].any())
    }

  return labels


def _check_empty_cells(schema: Schema, campaign: str, present: np.ndarray,
                       empty: np.ndarray, problems: _Problems) -> None:
  """Empty cells of one campaign: unknown if all are, else a problem.

  A row whose columns of `campaign` are all empty was not asked by it (the
  Hugging Face shards hold every campaign's columns, null where a campaign
  did not ask); those cells are counted in `problems.empty_unasked`. An
  empty cell beside counts of its own campaign is ambiguous: a problem.
  """
  columns = np.flatnonzero(schema.campaign_answer_mask(campaign) & present)
  if not len(columns):
    return
  cells = empty[:, columns]
  unasked = cells.all(axis=1)
  ambiguous = cells.any(axis=1) & ~unasked
  problems.add(ambiguous, lambda r: (
      f'{schema.label_cols[columns[np.argmax(cells[r])]]} {_NAN}, but other '
      f'answers of campaign {campaign!r} in this row have counts'))
  problems.empty_unasked[campaign] = np.where(unasked, len(columns), 0)


def _rings_label_columns(path: str, names: Sequence[str]) -> list[str]:
  counts = [c for c in RING_COUNT_COLUMNS if c in names]
  if len(counts) == 1:
    raise CatalogError(f'{path}: has {counts[0]!r} but not the other count of '
                       f'{RING_COUNT_COLUMNS}; give both, or only '
                       f'{RING_FRACTION_COLUMN!r}.')
  if not counts and RING_FRACTION_COLUMN not in names:
    raise CatalogError(
        f'{path}: no ring label; expected vote counts '
        f'{" + ".join(RING_COUNT_COLUMNS)} and/or {RING_FRACTION_COLUMN!r}; '
        f'columns: {_column_list(names)}')
  return counts + [c for c in (RING_FRACTION_COLUMN,) if c in names]


def _rings_labels(label_columns: Sequence[str], table: pa.Table,
                  problems: _Problems) -> Callable[[int], dict[str, Any]]:
  """Validates ring counts / fractions; returns row -> label features."""
  counts = np.zeros((table.num_rows, 2), dtype=np.int32)
  if RING_COUNT_COLUMNS[0] in label_columns:
    for j, name in enumerate(RING_COUNT_COLUMNS):
      counts[:, j] = _counts(table, name, problems)
  if RING_FRACTION_COLUMN in label_columns:
    fraction = _numbers(table, RING_FRACTION_COLUMN, problems)
    problems.add(np.isnan(fraction), f'{RING_FRACTION_COLUMN} {_NAN}')
    with np.errstate(invalid='ignore'):
      outside = (fraction < 0) | (fraction > 1)
    problems.add(
        outside,
        lambda r: f'{RING_FRACTION_COLUMN}={fraction[r]:g} is outside [0, 1]')
  else:
    total = counts.sum(axis=1)
    problems.add(
        total == 0, f'{" + ".join(RING_COUNT_COLUMNS)} is 0 and there is no '
        f'{RING_FRACTION_COLUMN}: the label is undefined')
    fraction = counts[:, 0] / np.maximum(total, 1)

  def labels(row: int) -> dict[str, Any]:
    return {
        'ring_votes': counts[row].copy(),
        'ring_fraction': np.float32(fraction[row]),
        'label': int(common.rings_label(fraction[row]))
    }

  return labels


# Signatures of the label plug-ins of the shared planning / example code.
_LabelColumns = Callable[[str, Sequence[str]], list[str]]
_Labels = Callable[[Sequence[str], pa.Table, _Problems],
                   Callable[[int], dict[str, Any]]]

# ---- Planning (driver).


@dataclasses.dataclass(frozen=True)
class _CheckedTable:
  path: str
  names: list[str]  # All its columns.
  ids: list[Optional[str]]
  problems: _Problems
  label_columns: list[str]


def _check_table(manual_dir: str, path: str, label_columns: _LabelColumns,
                 labels: _Labels) -> _CheckedTable:
  """Reads a table without image bytes and notes the problems of its rows."""
  names = _column_names(path)
  if ID_COLUMN not in names:
    raise CatalogError(f'{path}: no {ID_COLUMN!r} column (a unique id per '
                       f'galaxy); columns: {_column_list(names)}')
  image_columns = _image_columns(path, names)
  label_cols = label_columns(path, names)
  path_cols = [c for c in image_columns if c != IMAGE_COLUMN]
  table = _read_table(path, [ID_COLUMN] + label_cols + path_cols)
  problems = _Problems(table.num_rows)
  ids = _ids(table, problems)
  labels(label_cols, table, problems)
  if path_cols:
    _check_image_files(manual_dir, table, problems)
  return _CheckedTable(path, names, ids, problems, label_cols)


def _describe(bad_rows: Sequence[BadRow]) -> str:
  listed = '\n'.join(f'  {b}' for b in bad_rows[:MAX_LISTED_ROWS])
  more = len(bad_rows) - MAX_LISTED_ROWS
  text = listed + (f'\n  ... and {more} more' if more > 0 else '')
  if any(_NAN in b.reason for b in bad_rows):
    text += f'\n{_NAN_HINT}'
  return text


def _plan(manual_dir: str, instructions: str, label_columns: _LabelColumns,
          labels: _Labels, skip_bad_rows: bool, validation_fraction: float,
          test_fraction: float,
          rows_per_unit: int) -> tuple[Plan, list[_CheckedTable]]:
  """Checks all tables, then assigns the good rows to splits and units."""
  if rows_per_unit < 1:
    raise ValueError(f'rows_per_unit must be >= 1, got {rows_per_unit}')
  if (min(validation_fraction, test_fraction) < 0 or
      validation_fraction + test_fraction > 1):
    raise ValueError('validation_fraction and test_fraction must be >= 0 and '
                     f'sum to <= 1, got {validation_fraction}, '
                     f'{test_fraction}')
  tables = [
      _check_table(manual_dir, path, label_columns, labels)
      for path in find_tables(manual_dir, instructions)
  ]
  bad_rows: list[BadRow] = []
  good_rows: list[list[int]] = []
  first_seen: dict[str, tuple[str, int]] = {}
  for table in tables:
    good = []
    for row, id_str in enumerate(table.ids):
      if table.problems.count[row]:
        bad_rows.append(
            BadRow(table.path, row, id_str, table.problems.reason(row)))
      elif id_str in first_seen:
        bad_rows.append(
            BadRow(
                table.path, row, id_str,
                f'duplicate {ID_COLUMN}; first seen in '
                f'{_place(*first_seen[id_str])}'))
      else:
        first_seen[id_str] = (table.path, row)
        good.append(row)
    good_rows.append(good)

  num_rows = sum(len(t.ids) for t in tables)
  if bad_rows and not skip_bad_rows:
    raise CatalogError(
        f'{len(bad_rows)} bad row(s) of {num_rows} in the catalogues under '
        f'{manual_dir}:\n{_describe(bad_rows)}\nFix them, or pass '
        'skip_bad_rows=True to skip them (they are then reported).')
  if bad_rows and len(bad_rows) == num_rows:
    raise CatalogError(
        f'every one of the {num_rows} row(s) in the catalogues under '
        f'{manual_dir} is bad, so skip_bad_rows would build an empty '
        f'dataset:\n{_describe(bad_rows)}')
  if bad_rows:
    logging.warning(
        'Skipping %d bad row(s) of %d in the catalogues under '
        '%s:\n%s', len(bad_rows), num_rows, manual_dir, _describe(bad_rows))

  units: dict[str, list[WorkUnit]] = {s: [] for s in common.SPLITS}
  for table, good in zip(tables, good_rows):
    by_split: dict[str, list[int]] = {s: [] for s in common.SPLITS}
    for row in good:
      by_split[common.split_of(table.ids[row], validation_fraction,
                               test_fraction)].append(row)
    for split, rows in by_split.items():
      units[split] += [
          WorkUnit(table.path, tuple(rows[i:i + rows_per_unit]), split)
          for i in range(0, len(rows), rows_per_unit)
      ]
  return Plan(units=units, bad_rows=bad_rows, num_rows=num_rows,
              empty_unasked_cells=_empty_unasked_cells(tables, good_rows)
              ), tables


def _empty_unasked_cells(tables: Sequence[_CheckedTable],
                         good_rows: Sequence[list[int]]) -> dict[str, int]:
  """Campaign -> empty cells read as unknown, over the rows to be built."""
  out: dict[str, int] = {}
  for table, good in zip(tables, good_rows):
    for campaign, per_row in table.problems.empty_unasked.items():
      cells = int(per_row[good].sum())
      if cells:
        out[campaign] = out.get(campaign, 0) + cells
  return out


def plan_gz_evo(manual_dir: str,
                schema: Schema,
                *,
                skip_bad_rows: bool = False,
                validation_fraction: float = common.VALIDATION_FRACTION,
                test_fraction: float = common.TEST_FRACTION,
                rows_per_unit: int = 2000) -> Plan:
  """Validates the GZ-Evo catalogues in `manual_dir` and plans the work."""
  plan, tables = _plan(manual_dir, GZ_EVO_INSTRUCTIONS,
                       functools.partial(_gz_evo_label_columns, schema),
                       functools.partial(_gz_evo_labels, schema), skip_bad_rows,
                       validation_fraction, test_fraction, rows_per_unit)
  if plan.empty_unasked_cells:
    logging.info(
        'Read %d empty vote cells as unknown answers (0 votes): all columns '
        'of a campaign were empty in the row, so it did not ask that galaxy. '
        'Per campaign: %s.', sum(plan.empty_unasked_cells.values()),
        ', '.join(f'{c} {n}' for c, n in plan.empty_unasked_cells.items()))
  for table in tables:
    ignored = _ignored_vote_columns(schema, table.names)
    if ignored:
      logging.warning(
          '%s: ignoring columns that look like vote counts but are '
          'not answers of schema %r: %s', table.path, schema.name,
          ', '.join(ignored))
    if table.label_columns:
      logging.info('%s: %d rows, %d vote columns of schema %r.', table.path,
                   len(table.ids), len(table.label_columns), schema.name)
    else:
      logging.info(
          '%s: no vote columns of schema %r, so all %d rows are '
          'unlabelled.', table.path, schema.name, len(table.ids))
  return plan


def plan_rings(manual_dir: str,
               *,
               skip_bad_rows: bool = False,
               validation_fraction: float = common.VALIDATION_FRACTION,
               test_fraction: float = common.TEST_FRACTION,
               rows_per_unit: int = 2000) -> Plan:
  """Validates the GZ Rings catalogues in `manual_dir` and plans the work."""
  plan, _ = _plan(manual_dir, RINGS_INSTRUCTIONS, _rings_label_columns,
                  _rings_labels, skip_bad_rows, validation_fraction,
                  test_fraction, rows_per_unit)
  return plan


# ---- Examples (workers).


def _examples(unit: WorkUnit, manual_dir: str, image_size: int, channels: int,
              skip_bad_rows: bool, on_bad_row: Optional[Callable[[BadRow],
                                                                 None]],
              label_columns: _LabelColumns,
              labels: _Labels) -> Iterator[tuple[str, dict[str, Any]]]:
  """Re-reads the rows of a unit and yields (id_str, example) for each."""
  names = _column_names(unit.file)
  label_cols = label_columns(unit.file, names)
  columns = [ID_COLUMN] + label_cols + _image_columns(unit.file, names)
  table = _read_rows(unit.file, columns, unit.rows)
  problems = _Problems(table.num_rows)
  ids = _ids(table, problems)
  row_labels = labels(label_cols, table, problems)
  image_source = _image_sources(manual_dir, table)
  for i, row in enumerate(unit.rows):
    try:
      if problems.count[i]:  # Planned as good: the file changed since.
        raise _RowProblem(problems.reason(i))
      image = _decode(image_source(i), image_size, channels)
    except _RowProblem as e:
      bad = BadRow(unit.file, row, ids[i], str(e))
      if not skip_bad_rows:
        raise CatalogError(str(bad)) from None
      logging.warning('Skipping bad row: %s', bad)
      if on_bad_row is not None:
        on_bad_row(bad)
      continue
    yield ids[i], {ID_COLUMN: ids[i], 'image': image, **row_labels(i)}


def gz_evo_examples(
    unit: WorkUnit,
    manual_dir: str,
    schema_dict: Union[Mapping[str, Any], Schema],
    image_size: int,
    channels: int,
    skip_bad_rows: bool,
    on_bad_row: Optional[Callable[[BadRow], None]] = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
  """GZ-Evo examples of one work unit.

  Yields (id_str, {'id_str', 'image': uint8 [size, size, channels],
  'votes': int32 [num_answers], 'campaign': str, 'labelled': bool}).
  `schema_dict` is `schema.to_dict()` (a Schema works too: both pickle).
  Rows whose image cannot be used raise CatalogError, or with
  `skip_bad_rows` are logged, passed to `on_bad_row` and skipped.
  """
  schema = _as_schema(schema_dict)
  return _examples(unit, manual_dir, image_size, channels, skip_bad_rows,
                   on_bad_row, functools.partial(_gz_evo_label_columns, schema),
                   functools.partial(_gz_evo_labels, schema))


def rings_examples(
    unit: WorkUnit,
    manual_dir: str,
    image_size: int,
    channels: int,
    skip_bad_rows: bool,
    on_bad_row: Optional[Callable[[BadRow], None]] = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
  """GZ Rings examples of one work unit.

  Yields (id_str, {'id_str', 'image', 'ring_votes': int32 [2] (yes, no;
  zeros when only ring_fraction is given), 'ring_fraction': float32,
  'label': int (ring_fraction > 0.5)}). Bad images as in `gz_evo_examples`.
  """
  return _examples(unit, manual_dir, image_size, channels, skip_bad_rows,
                   on_bad_row, _rings_label_columns, _rings_labels)

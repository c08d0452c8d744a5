"""Finding and reading the tables of a real catalogue in a user's `manual_dir`.

The tables are parquet or CSV files, read with pyarrow: their column names
without their data, whole columns (without image bytes, on the driver), or
the rows of one work unit (on a worker, reading only the parquet row groups
that hold them). Text columns (ids, image folders) are always read as text.
`CatalogError`, which names the file (and row), is the error of every module
that reads a real catalogue.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from gzevo_jax.data import common

ID_COLUMN = 'id_str'
IMAGE_COLUMN = 'image'  # Hugging Face layout: image bytes in the table.
PATH_COLUMNS = ('file_loc', 'subfolder', 'filename')
HF_DATA_DIR = 'data'


class CatalogError(common.DataError):
  """A catalogue or image that cannot be used; names the file and row."""


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


# Hugging Face names a split's parquet shards SPLIT-00000-of-00030.parquet
# (older uploads add -<hash> before the suffix).
_PUBLISHED_SHARD = re.compile(
    r'^(train|validation|test)-\d+-of-\d+(-[0-9a-f]+)?\.parquet$')


def published_split(path: str) -> Optional[str]:
  """The split a Hugging Face shard's name publishes it in; None otherwise."""
  match = _PUBLISHED_SHARD.match(os.path.basename(path))
  return match[1] if match else None


def is_csv(path: str) -> bool:
  """Whether a table is a CSV file (else parquet)."""
  return path.endswith('.csv')


def column_names(path: str) -> list[str]:
  """Column names of a table, without reading its data."""
  try:
    if is_csv(path):
      with pa_csv.open_csv(path) as reader:
        return list(reader.schema.names)
    return list(pq.read_schema(path).names)
  except (pa.ArrowException, OSError) as e:
    raise CatalogError(f'{path}: cannot read the table: {e}') from None


def _string_columns(names: Sequence[str]) -> list[str]:
  """Columns read as text whatever they look like (ids, folders like 587722)."""
  return [c for c in names if c in (ID_COLUMN,) + PATH_COLUMNS]


def read_table(path: str, columns: Sequence[str]) -> pa.Table:
  """The given columns of a whole table; text columns as strings."""
  if is_csv(path):
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
  """The table with its id and path columns cast to text."""
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


def read_rows(path: str, columns: Sequence[str],
              rows: Sequence[int]) -> pa.Table:
  """The given rows of a table; for parquet only their row groups are read."""
  rows = np.asarray(rows, dtype=np.int64)
  if is_csv(path):
    table = read_table(path, columns)
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


def column_list(names: Sequence[str], limit: int = 30) -> str:
  """The first `limit` column names, for an error message."""
  shown = ', '.join(names[:limit])
  return shown + (f', ... ({len(names)} in all)' if len(names) > limit else '')

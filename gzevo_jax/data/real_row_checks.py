"""Rows of a catalogue table that cannot become examples, and why.

The checks of a table's cells run vectorised over whole columns and note
each row's problems in `Problems`; rows with any are reported as `BadRow`s,
which name the file, the row (and its CSV line) and the first problem.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gzevo_jax.data import real_tables

# How many bad rows a message or log line lists.
MAX_LISTED_ROWS = 20

_MAX_COUNT = np.iinfo(np.int32).max
# The reason given for an empty cell (and what `describe_bad_rows` explains).
NAN = 'is empty or NaN'
_NAN_HINT = (
    'Vote counts must be whole numbers >= 0. Empty cells are read as unknown '
    '(0 votes) only where all of a campaign\'s columns are empty in a row (the '
    'campaign did not ask that galaxy); an empty cell among counts of its '
    'campaign is ambiguous. If it means "nobody chose this answer", fill those '
    'columns with 0 (e.g. pandas: df[vote_columns] = '
    'df[vote_columns].fillna(0)).')


@dataclasses.dataclass(frozen=True)
class BadRow:
  """One row that cannot become an example, and why."""
  file: str  # Path of the table.
  row: int  # 0-based data row of the table.
  id_str: Optional[str]
  reason: str

  def __str__(self) -> str:
    return (f'{place(self.file, self.row)}, id_str {self.id_str!r}: '
            f'{self.reason}')


def place(file: str, row: int) -> str:
  """'FILE: row R' (0-based data row), plus the line number in a CSV."""
  line = f' (CSV line {row + 2})' if real_tables.is_csv(file) else ''
  return f'{file}: row {row}{line}'


class RowProblem(Exception):
  """A row (usually its image) that cannot be used; the message says why."""


class Problems:
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


def numbers(table: pa.Table, name: str, problems: Problems) -> np.ndarray:
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


def counts(table: pa.Table, name: str, problems: Problems) -> np.ndarray:
  """int32 vote counts of a column; problems noted, bad values become 0."""
  values, empty = counts_or_empty(table, name, problems)
  problems.add(empty, f'{name} {NAN}')
  return values


def counts_or_empty(table: pa.Table, name: str,
                    problems: Problems) -> tuple[np.ndarray, np.ndarray]:
  """(int32 counts, bool empty) of a column; empty cells are 0, not noted.

  Other problems (negative, fractional, too large, not a number) are noted.
  """
  values = numbers(table, name, problems)
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


def ids(table: pa.Table, problems: Problems) -> list[Optional[str]]:
  """The id of each row; an empty id is a problem."""
  values = table.column(real_tables.ID_COLUMN).to_pylist()
  problems.add(np.array([i is None or not i.strip() for i in values],
                        dtype=bool), f'empty {real_tables.ID_COLUMN}')
  return values


def describe_bad_rows(bad_rows: Sequence[BadRow]) -> str:
  """The first MAX_LISTED_ROWS bad rows, one a line, and how to fix them."""
  listed = '\n'.join(f'  {b}' for b in bad_rows[:MAX_LISTED_ROWS])
  more = len(bad_rows) - MAX_LISTED_ROWS
  text = listed + (f'\n  ... and {more} more' if more > 0 else '')
  if any(NAN in b.reason for b in bad_rows):
    text += f'\n{_NAN_HINT}'
  return text

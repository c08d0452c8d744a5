"""Labels, what tells GZ-Evo from GZ Rings and gz_radio: their columns and
checked values.

GZ-Evo's labels are the schema's vote counts (a campaign that did not ask a
galaxy may leave all its columns empty); GZ Rings' label is a ring fraction
above one half, given or computed from the ring vote counts; the radio FR
task's is the `fr_class` column (FRI or FRII), and a radio pool has none. The planning
and example code takes a `LabelColumns` and a `Labels` function of either.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
import pyarrow as pa

from gzevo_jax.data import common
from gzevo_jax.data import real_row_checks
from gzevo_jax.data import real_tables
from gzevo_jax.data.real_row_checks import NAN, Problems
from gzevo_jax.data.real_tables import CatalogError
from gzevo_jax.schema import Schema

RING_COUNT_COLUMNS = ('ring_yes', 'ring_no')
RING_FRACTION_COLUMN = 'ring_fraction'
FR_CLASS_COLUMN = 'fr_class'
# The values an fr_class cell may hold, and the label each means.
FR_CLASS_VALUES = {'FRI': 0, 'FRII': 1, '0': 0, '1': 1}

# Signatures of the label plug-ins of the shared planning / example code:
# (table path, its column names) -> the label columns it has; and (label
# columns, table, problems) -> row -> label features, noting bad values.
LabelColumns = Callable[[str, Sequence[str]], list[str]]
Labels = Callable[[Sequence[str], pa.Table, Problems],
                  Callable[[int], dict[str, Any]]]


def as_schema(schema: Union[Schema, Mapping[str, Any]]) -> Schema:
  """A Schema, from itself or from its `to_dict()` (what workers get)."""
  return schema if isinstance(schema, Schema) else Schema.from_dict(schema)


def gz_evo_label_columns(schema: Schema, path: str,
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


def ignored_vote_columns(schema: Schema, names: Sequence[str]) -> list[str]:
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


def gz_evo_labels(schema: Schema, label_columns: Sequence[str],
                  table: pa.Table,
                  problems: Problems) -> Callable[[int], dict[str, Any]]:
  """Validates the votes of a table; returns row -> label features."""
  votes = np.zeros((table.num_rows, schema.num_answers), dtype=np.int32)
  empty = np.zeros((table.num_rows, schema.num_answers), dtype=bool)
  present = np.zeros(schema.num_answers, dtype=bool)
  for name in label_columns:
    i = schema.column_index(name)
    votes[:, i], empty[:, i] = real_row_checks.counts_or_empty(table, name,
                                                               problems)
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
                       empty: np.ndarray, problems: Problems) -> None:
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
      f'{schema.label_cols[columns[np.argmax(cells[r])]]} {NAN}, but other '
      f'answers of campaign {campaign!r} in this row have counts'))
  problems.empty_unasked[campaign] = np.where(unasked, len(columns), 0)


def rings_label_columns(path: str, names: Sequence[str]) -> list[str]:
  """A table's ring count and/or fraction columns; one count is an error."""
  counts = [c for c in RING_COUNT_COLUMNS if c in names]
  if len(counts) == 1:
    raise CatalogError(f'{path}: has {counts[0]!r} but not the other count of '
                       f'{RING_COUNT_COLUMNS}; give both, or only '
                       f'{RING_FRACTION_COLUMN!r}.')
  if not counts and RING_FRACTION_COLUMN not in names:
    raise CatalogError(
        f'{path}: no ring label; expected vote counts '
        f'{" + ".join(RING_COUNT_COLUMNS)} and/or {RING_FRACTION_COLUMN!r}; '
        f'columns: {real_tables.column_list(names)}')
  return counts + [c for c in (RING_FRACTION_COLUMN,) if c in names]


def rings_labels(label_columns: Sequence[str], table: pa.Table,
                 problems: Problems) -> Callable[[int], dict[str, Any]]:
  """Validates ring counts / fractions; returns row -> label features."""
  counts = np.zeros((table.num_rows, 2), dtype=np.int32)
  if RING_COUNT_COLUMNS[0] in label_columns:
    for j, name in enumerate(RING_COUNT_COLUMNS):
      counts[:, j] = real_row_checks.counts(table, name, problems)
  if RING_FRACTION_COLUMN in label_columns:
    fraction = real_row_checks.numbers(table, RING_FRACTION_COLUMN, problems)
    problems.add(np.isnan(fraction), f'{RING_FRACTION_COLUMN} {NAN}')
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



def radio_label_columns(path: str, names: Sequence[str]) -> list[str]:
  """The FR task's label column; its absence is an error naming the file."""
  if FR_CLASS_COLUMN not in names:
    raise CatalogError(
        f'{path}: no {FR_CLASS_COLUMN!r} column (FRI or FRII per source); '
        f'columns: {real_tables.column_list(names)}. An unlabelled pool is '
        'built with the real_pool config instead.')
  return [FR_CLASS_COLUMN]


def radio_labels(label_columns: Sequence[str], table: pa.Table,
                 problems: Problems) -> Callable[[int], dict[str, Any]]:
  """Validates fr_class (FRI, FRII, 0 or 1); returns row -> {'label'}."""
  del label_columns
  texts = [None if v is None else str(v).strip()
           for v in table.column(FR_CLASS_COLUMN).to_pylist()]
  # Integer-valued floats (a CSV column of 0/1 with a gap reads as float).
  texts = [t[:-2] if t and t.endswith('.0') else t for t in texts]
  bad = np.array([t not in FR_CLASS_VALUES for t in texts], dtype=bool)
  problems.add(bad, lambda r: (
      f'{FR_CLASS_COLUMN}={texts[r]!r} is not one of '
      f'{", ".join(FR_CLASS_VALUES)}' if texts[r] else
      f'{FR_CLASS_COLUMN} is empty (an unlabelled source belongs in a '
      'real_pool catalogue)'))

  def labels(row: int) -> dict[str, Any]:
    return {'label': np.int32(FR_CLASS_VALUES.get(texts[row], -1))}

  return labels


def no_label_columns(path: str, names: Sequence[str]) -> list[str]:
  """An unlabelled pool reads no label column."""
  del path, names
  return []


def unlabelled(label_columns: Sequence[str], table: pa.Table,
               problems: Problems) -> Callable[[int], dict[str, Any]]:
  """Every row of a pool: label -1."""
  del label_columns, table, problems
  return lambda row: {'label': np.int32(-1)}

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
silently. pyarrow + Pillow + numpy only: no TensorFlow. The parts live in
their own modules: `real_tables` (finding and reading tables),
`real_row_checks` (per-row problems), `real_images` (locating and decoding
images) and `real_labels` (what GZ-Evo and GZ Rings label rows with).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from absl import logging

from gzevo_jax.data import common
from gzevo_jax.data import real_images
from gzevo_jax.data import real_labels
from gzevo_jax.data import real_row_checks
from gzevo_jax.data import real_tables
from gzevo_jax.data.real_labels import LabelColumns, Labels
from gzevo_jax.data.real_row_checks import BadRow, Problems, RowProblem
from gzevo_jax.data.real_tables import CatalogError, ID_COLUMN, IMAGE_COLUMN
from gzevo_jax.schema import Schema

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

Splits: the published split is kept. Rows of a Hugging Face test shard
(data/test-*-of-*.parquet) are the test split; validation is carved from the
train shards by a hash of `id_str`, so no official test galaxy is trained
on. Tables without a split in their name are split by the hash alone.

Schema: `gz_evo/real` and `real_128` read the votes with GZ-Evo v0.1's
decision tree (the paper's six campaigns; UKIDSS vote columns are ignored
with a warning, so UKIDSS-only galaxies become unlabelled); `real_v1` and
`real_v1_128` with gz_evo_v1, the release's seven campaigns (UKIDSS
included; the CANDELS/Hubble clump counts left out, as galaxy-datasets
does).

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


RADIO_INSTRUCTIONS = """\
Real radio sources (e.g. MiraBest, Porter & Scaife 2023, or Radio Galaxy Zoo
cut-outs) are read from a directory, MANUAL_DIR:
    MANUAL_DIR/*.parquet or MANUAL_DIR/*.csv   catalogue tables
    MANUAL_DIR/images/...                      FITS, PNG or JPG images
Each table needs `id_str` (unique across all tables) and the image location
(`file_loc`, absolute, relative to MANUAL_DIR or to MANUAL_DIR/images; or
`subfolder` + `filename` under MANUAL_DIR/images). For the FR task
(gz_radio/real) each row also needs `fr_class`: FRI or FRII (or 0 or 1); an
unlabelled pool (gz_radio/real_pool) needs no label column.

FITS images (any flux unit; NaN where blanked; leading frequency and Stokes
axes of length 1 are dropped) get the radio preprocessing of the synthetic
sources: each image in units of its noise (median and median absolute
deviation), clipped at 3 sigma and log-stretched. PNG and JPEG images are
taken as already preprocessed (as MiraBest's are). Non-square images keep
their central square; all are resized to the config's image size.

Splits: train/validation/test come from a hash of `id_str`.

Then build:
    python -m gzevo_jax.data.build --dataset=gz_radio/real \\
        --manual_dir=MANUAL_DIR
"""


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


@dataclasses.dataclass(frozen=True)
class _CheckedTable:
  """A table's ids, columns and row problems, as planning read them."""
  path: str
  names: list[str]  # All its columns.
  ids: list[Optional[str]]
  problems: Problems
  label_columns: list[str]


def _check_table(manual_dir: str, path: str, label_columns: LabelColumns,
                 labels: Labels) -> _CheckedTable:
  """Reads a table without image bytes and notes the problems of its rows."""
  names = real_tables.column_names(path)
  if ID_COLUMN not in names:
    raise CatalogError(f'{path}: no {ID_COLUMN!r} column (a unique id per '
                       f'galaxy); columns: {real_tables.column_list(names)}')
  image_columns = real_images.image_columns(path, names)
  label_cols = label_columns(path, names)
  path_cols = [c for c in image_columns if c != IMAGE_COLUMN]
  table = real_tables.read_table(path, [ID_COLUMN] + label_cols + path_cols)
  problems = Problems(table.num_rows)
  ids = real_row_checks.ids(table, problems)
  labels(label_cols, table, problems)
  if path_cols:
    real_images.check_image_files(manual_dir, table, problems)
  return _CheckedTable(path, names, ids, problems, label_cols)


def _check_plan_arguments(validation_fraction: float, test_fraction: float,
                          rows_per_unit: int) -> None:
  """Raises ValueError unless the split fractions and unit size make sense."""
  if rows_per_unit < 1:
    raise ValueError(f'rows_per_unit must be >= 1, got {rows_per_unit}')
  if (min(validation_fraction, test_fraction) < 0 or
      validation_fraction + test_fraction > 1):
    raise ValueError('validation_fraction and test_fraction must be >= 0 and '
                     f'sum to <= 1, got {validation_fraction}, '
                     f'{test_fraction}')


def _good_and_bad_rows(
    tables: Sequence[_CheckedTable]
) -> tuple[list[list[int]], list[BadRow]]:
  """Each table's good rows, and the bad rows of all tables.

  A row is bad with a problem, or with an id that an earlier row (of any
  table) has.
  """
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
                f'{real_row_checks.place(*first_seen[id_str])}'))
      else:
        first_seen[id_str] = (table.path, row)
        good.append(row)
    good_rows.append(good)
  return good_rows, bad_rows


def _report_bad_rows(bad_rows: Sequence[BadRow], num_rows: int,
                     manual_dir: str, skip_bad_rows: bool) -> None:
  """Raises CatalogError listing bad rows, or with skip_bad_rows logs them.

  Raises anyway when every row is bad: the dataset would be empty.
  """
  if not bad_rows:
    return
  described = real_row_checks.describe_bad_rows(bad_rows)
  if not skip_bad_rows:
    raise CatalogError(
        f'{len(bad_rows)} bad row(s) of {num_rows} in the catalogues under '
        f'{manual_dir}:\n{described}\nFix them, or pass '
        'skip_bad_rows=True to skip them (they are then reported).')
  if len(bad_rows) == num_rows:
    raise CatalogError(
        f'every one of the {num_rows} row(s) in the catalogues under '
        f'{manual_dir} is bad, so skip_bad_rows would build an empty '
        f'dataset:\n{described}')
  logging.warning(
      'Skipping %d bad row(s) of %d in the catalogues under '
      '%s:\n%s', len(bad_rows), num_rows, manual_dir, described)


def row_split(published: Optional[str], id_str: str,
              validation_fraction: float, test_fraction: float) -> str:
  """A row's split: its shard's published split, else a hash of its id.

  Rows of a published test (or validation) shard stay there; validation is
  carved from a published train split only, by the hash, so no official
  test galaxy is ever trained on. Tables without a published split are
  split by the hash alone (`common.split_of`).
  """
  if published in ('test', 'validation'):
    return published
  if published == 'train':
    return common.split_of(id_str, validation_fraction, 0.0)
  return common.split_of(id_str, validation_fraction, test_fraction)


def _work_units(tables: Sequence[_CheckedTable],
                good_rows: Sequence[list[int]], validation_fraction: float,
                test_fraction: float,
                rows_per_unit: int) -> dict[str, list[WorkUnit]]:
  """Split -> units of up to rows_per_unit good rows of one table each."""
  units: dict[str, list[WorkUnit]] = {s: [] for s in common.SPLITS}
  for table, good in zip(tables, good_rows):
    by_split: dict[str, list[int]] = {s: [] for s in common.SPLITS}
    published = real_tables.published_split(table.path)
    for row in good:
      by_split[row_split(published, table.ids[row], validation_fraction,
                         test_fraction)].append(row)
    for split, rows in by_split.items():
      units[split] += [
          WorkUnit(table.path, tuple(rows[i:i + rows_per_unit]), split)
          for i in range(0, len(rows), rows_per_unit)
      ]
  return units


def _plan(manual_dir: str, instructions: str, label_columns: LabelColumns,
          labels: Labels, skip_bad_rows: bool, validation_fraction: float,
          test_fraction: float,
          rows_per_unit: int) -> tuple[Plan, list[_CheckedTable]]:
  """Checks all tables, then assigns the good rows to splits and units."""
  _check_plan_arguments(validation_fraction, test_fraction, rows_per_unit)
  tables = [
      _check_table(manual_dir, path, label_columns, labels)
      for path in real_tables.find_tables(manual_dir, instructions)
  ]
  good_rows, bad_rows = _good_and_bad_rows(tables)
  num_rows = sum(len(t.ids) for t in tables)
  _report_bad_rows(bad_rows, num_rows, manual_dir, skip_bad_rows)
  units = _work_units(tables, good_rows, validation_fraction, test_fraction,
                      rows_per_unit)
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
  plan, tables = _plan(
      manual_dir, GZ_EVO_INSTRUCTIONS,
      functools.partial(real_labels.gz_evo_label_columns, schema),
      functools.partial(real_labels.gz_evo_labels, schema), skip_bad_rows,
      validation_fraction, test_fraction, rows_per_unit)
  if plan.empty_unasked_cells:
    logging.info(
        'Read %d empty vote cells as unknown answers (0 votes): all columns '
        'of a campaign were empty in the row, so it did not ask that galaxy. '
        'Per campaign: %s.', sum(plan.empty_unasked_cells.values()),
        ', '.join(f'{c} {n}' for c, n in plan.empty_unasked_cells.items()))
  for table in tables:
    ignored = real_labels.ignored_vote_columns(schema, table.names)
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
  plan, _ = _plan(manual_dir, RINGS_INSTRUCTIONS,
                  real_labels.rings_label_columns, real_labels.rings_labels,
                  skip_bad_rows, validation_fraction, test_fraction,
                  rows_per_unit)
  return plan


def plan_radio(manual_dir: str,
               *,
               labelled: bool,
               skip_bad_rows: bool = False,
               validation_fraction: float = common.VALIDATION_FRACTION,
               test_fraction: float = common.TEST_FRACTION,
               rows_per_unit: int = 2000) -> Plan:
  """Validates real radio catalogues (the FR task when `labelled`, else a
  pool) in `manual_dir` and plans the work."""
  plan, _ = _plan(manual_dir, RADIO_INSTRUCTIONS, *_radio_labels(labelled),
                  skip_bad_rows, validation_fraction, test_fraction,
                  rows_per_unit)
  return plan


def _radio_labels(labelled: bool) -> tuple[LabelColumns, Labels]:
  if labelled:
    return real_labels.radio_label_columns, real_labels.radio_labels
  return real_labels.no_label_columns, real_labels.unlabelled


def radio_examples(
    unit: WorkUnit,
    manual_dir: str,
    image_size: int,
    channels: int,
    skip_bad_rows: bool,
    on_bad_row: Optional[Callable[[BadRow], None]] = None,
    *,
    labelled: bool,
) -> Iterator[tuple[str, dict[str, Any]]]:
  """Real radio examples of one work unit.

  Yields (id_str, {'id_str', 'image': uint8 [size, size, 1], 'label': int32
  (0 FRI, 1 FRII; -1 in a pool)}); FITS images get the radio preprocessing
  (`real_images.decode_radio`). Bad images as in `gz_evo_examples`.
  """
  return _examples(unit, manual_dir, image_size, channels, skip_bad_rows,
                   on_bad_row, *_radio_labels(labelled),
                   decode=real_images.decode_radio)


def _examples(unit: WorkUnit, manual_dir: str, image_size: int, channels: int,
              skip_bad_rows: bool, on_bad_row: Optional[Callable[[BadRow],
                                                                 None]],
              label_columns: LabelColumns, labels: Labels,
              decode: Callable[..., Any] = real_images.decode
              ) -> Iterator[tuple[str, dict[str, Any]]]:
  """Re-reads the rows of a unit and yields (id_str, example) for each."""
  names = real_tables.column_names(unit.file)
  label_cols = label_columns(unit.file, names)
  columns = ([ID_COLUMN] + label_cols +
             real_images.image_columns(unit.file, names))
  table = real_tables.read_rows(unit.file, columns, unit.rows)
  problems = Problems(table.num_rows)
  ids = real_row_checks.ids(table, problems)
  row_labels = labels(label_cols, table, problems)
  image_source = real_images.image_sources(manual_dir, table)
  for i, row in enumerate(unit.rows):
    try:
      if problems.count[i]:  # Planned as good: the file changed since.
        raise RowProblem(problems.reason(i))
      image = decode(image_source(i), image_size, channels)
    except RowProblem as e:
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
  schema = real_labels.as_schema(schema_dict)
  return _examples(
      unit, manual_dir, image_size, channels, skip_bad_rows, on_bad_row,
      functools.partial(real_labels.gz_evo_label_columns, schema),
      functools.partial(real_labels.gz_evo_labels, schema))


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
                   on_bad_row, real_labels.rings_label_columns,
                   real_labels.rings_labels)

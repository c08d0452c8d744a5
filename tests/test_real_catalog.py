"""Real catalogues in manual_dir: layouts, labels, splits and bad input."""

import logging
import os
import pickle
import subprocess
import sys

import numpy as np
from PIL import Image
from PIL import ImageFile
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import real_fixtures as rf

from gzevo_jax.data import common
from gzevo_jax.data import real
from gzevo_jax.data import real_images
from gzevo_jax.data import real_tables
from gzevo_jax.schema import GZ_EVO_V0_1 as SCHEMA

BAD_ROW = 3


def build_gz_evo(manual_dir,
                 plan,
                 image_size=rf.IMAGE_SIZE,
                 channels=3,
                 skip_bad_rows=False,
                 on_bad_row=None):
  """id -> example over all units of a plan; also checks the yielded keys."""
  examples = {}
  for units in plan.units.values():
    for unit in units:
      for key, example in real.gz_evo_examples(unit, manual_dir,
                                               SCHEMA.to_dict(), image_size,
                                               channels, skip_bad_rows,
                                               on_bad_row):
        assert key == example['id_str'] and key not in examples
        examples[key] = example
  return examples


def build_rings(manual_dir, plan, image_size=rf.IMAGE_SIZE, channels=3):
  return {
      key: example
      for units in plan.units.values() for unit in units for key, example in
      real.rings_examples(unit, manual_dir, image_size, channels, False)
  }


def assert_images_match(written, examples):
  for id_str in written.ids:
    image = examples[id_str]['image']
    assert image.dtype == np.uint8 and image.shape == (40, 40, 3)
    error = np.abs(image.astype(int) - written.images[id_str]).mean()
    assert error == 0 if written.lossless else error < 3, (id_str, error)


def assert_votes_match(written, examples):
  for id_str in written.ids:
    example = examples[id_str]
    assert example['votes'].dtype == np.int32
    assert example['votes'].shape == (SCHEMA.num_answers,)
    np.testing.assert_array_equal(example['votes'], written.votes[id_str])
    assert example['labelled'] == bool(written.votes[id_str].any())


def campaigns_cycle(first, second, n):
  """Campaign labels the fixtures give rows 0..n-1 (see _galaxy_campaigns)."""
  return [[first, second, f'{first}+{second}', ''][i % 4] for i in range(n)]


# ---- Layouts.


def test_csv_with_file_loc(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path))
  plan = real.plan_gz_evo(str(tmp_path), SCHEMA)
  examples = build_gz_evo(str(tmp_path), plan)
  assert sorted(examples) == sorted(written.ids)
  assert plan.num_rows == len(written.ids) and not plan.bad_rows
  assert_votes_match(written, examples)
  assert_images_match(written, examples)
  assert [examples[i]['campaign'] for i in written.ids
         ] == campaigns_cycle('dr5', 'dr8', len(written.ids))


def test_parquet_with_subfolder_and_filename_jpg(tmp_path):
  written = rf.write_parquet_subfolder(str(tmp_path))
  examples = build_gz_evo(str(tmp_path),
                          real.plan_gz_evo(str(tmp_path), SCHEMA))
  assert sorted(examples) == sorted(written.ids)
  assert_votes_match(written, examples)
  assert_images_match(written, examples)
  assert [examples[i]['campaign'] for i in written.ids
         ] == campaigns_cycle('gz2', 'candels', len(written.ids))


def test_hugging_face_parquet_with_struct_and_binary_images(tmp_path):
  shards = [
      rf.write_hf_parquet(str(tmp_path), shard=0, struct_images=True),
      rf.write_hf_parquet(str(tmp_path),
                          n=13,
                          seed=7,
                          shard=1,
                          struct_images=False)
  ]
  # Units of 3 rows cut across the shards' row groups of 5.
  plan = real.plan_gz_evo(str(tmp_path), SCHEMA, rows_per_unit=3)
  assert {u.file for us in plan.units.values() for u in us
         } == {w.table for w in shards}
  examples = build_gz_evo(str(tmp_path), plan)
  assert len(examples) == 25
  for written in shards:
    assert_votes_match(written, examples)
    assert_images_match(written, examples)
    assert [examples[i]['campaign'] for i in written.ids
           ] == campaigns_cycle('dr12', 'hubble', len(written.ids))


def test_unlabelled_table_is_logged_and_all_unlabelled(tmp_path, caplog):
  written = rf.write_unlabelled(str(tmp_path))
  with caplog.at_level(logging.INFO):
    examples = build_gz_evo(str(tmp_path),
                            real.plan_gz_evo(str(tmp_path), SCHEMA))
  assert sorted(examples) == sorted(written.ids)
  assert not any(e['labelled'] or e['votes'].any() or e['campaign']
                 for e in examples.values())
  assert_images_match(written, examples)
  assert any('unlabelled.parquet' in r.getMessage() and 'all 12 rows are '
             'unlabelled' in r.getMessage() for r in caplog.records)


def test_columns_of_missing_campaigns_are_zero(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path))
  examples = build_gz_evo(str(tmp_path),
                          real.plan_gz_evo(str(tmp_path), SCHEMA))
  asked = (SCHEMA.campaign_answer_mask('dr5') |
           SCHEMA.campaign_answer_mask('dr8'))
  votes = np.stack([examples[i]['votes'] for i in written.ids])
  assert votes[:, asked].sum() > 0
  assert votes[:, ~asked].sum() == 0


def test_empty_cells_of_campaigns_that_did_not_ask_are_unknown(tmp_path):
  """The Hugging Face shards' shape: every campaign's columns, null where a
  campaign did not ask the galaxy; votes round-trip exactly, nulls count."""
  written = rf.write_hf_parquet(str(tmp_path), unasked_empty=True)
  assert pq.read_table(written.table).column(
      'smooth-or-featured-dr12_smooth').null_count > 0
  plan = real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert not plan.bad_rows
  expected = rf.empty_vote_cells(written)
  assert set(expected) == {'dr12', 'hubble'}
  assert plan.empty_unasked_cells == expected
  examples = build_gz_evo(str(tmp_path), plan)
  assert_votes_match(written, examples)
  assert [examples[i]['campaign'] for i in written.ids
         ] == campaigns_cycle('dr12', 'hubble', len(written.ids))


def test_an_empty_cell_beside_counts_of_its_campaign_is_an_error(tmp_path):
  written = rf.write_hf_parquet(str(tmp_path), unasked_empty=True)
  column = 'smooth-or-featured-dr12_smooth'
  row = 0  # Asked by dr12 only (see campaigns_cycle).
  rf.set_cell(written, column, row, None)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert_names_row(str(e.value), 'train-00000-of-00002.parquet', written.ids[row],
                   f"{column} is empty or NaN, but other answers of campaign "
                   "'dr12' in this row have counts", row=row, csv=False)
  assert 'fill those columns with 0' in str(e.value)


def test_splits_follow_split_of_and_units_are_chunked(tmp_path):
  rf.write_csv_file_loc(str(tmp_path), n=40)
  plan = real.plan_gz_evo(str(tmp_path),
                          SCHEMA,
                          validation_fraction=0.3,
                          test_fraction=0.3,
                          rows_per_unit=4)
  ids = pa_csv.read_csv(os.path.join(
      tmp_path, 'catalog_csv.csv')).column('id_str').to_pylist()
  assert set(plan.units) == set(common.SPLITS)
  seen = []
  for split, units in plan.units.items():
    assert units, split
    for unit in units:
      assert unit.split == split and 1 <= len(unit.rows) <= 4
      assert list(unit.rows) == sorted(unit.rows)
      for row in unit.rows:
        assert common.split_of(ids[row], 0.3, 0.3) == split
      seen += unit.rows
  assert sorted(seen) == list(range(40))


def test_all_layouts_in_one_manual_dir(tmp_path):
  d = str(tmp_path)
  written = [
      rf.write_csv_file_loc(d),
      rf.write_parquet_subfolder(d),
      rf.write_hf_parquet(d),
      rf.write_unlabelled(d)
  ]
  plan = real.plan_gz_evo(d, SCHEMA, rows_per_unit=5)
  examples = build_gz_evo(d, plan, image_size=16, channels=1)
  assert sorted(examples) == sorted(i for w in written for i in w.ids)
  assert plan.num_rows == len(examples)
  assert all(e['image'].shape == (16, 16, 1) for e in examples.values())


def test_work_is_picklable_and_schema_object_works(tmp_path):
  rf.write_hf_parquet(str(tmp_path))
  plan = real.plan_gz_evo(str(tmp_path), SCHEMA)
  unit = plan.units['train'][0]
  assert pickle.loads(pickle.dumps(plan)) == plan
  fn = pickle.loads(pickle.dumps(real.gz_evo_examples))
  from_dict = list(fn(unit, str(tmp_path), SCHEMA.to_dict(), 8, 3, False))
  from_schema = list(
      real.gz_evo_examples(unit, str(tmp_path), SCHEMA, 8, 3, False))
  assert len(from_dict) == len(unit.rows) > 0
  for (k1, e1), (k2, e2) in zip(from_dict, from_schema):
    assert k1 == k2
    np.testing.assert_array_equal(e1['votes'], e2['votes'])
    np.testing.assert_array_equal(e1['image'], e2['image'])


def test_module_does_not_import_tensorflow():
  code = ('import sys, gzevo_jax.data.real; '
          'sys.exit("tensorflow" in sys.modules)')
  assert subprocess.run([sys.executable, '-c', code]).returncode == 0


def test_vote_columns_not_in_schema_are_warned_about(tmp_path, caplog):
  written = rf.write_csv_file_loc(str(tmp_path))
  written.columns['smooth-or-featured-euclid_smooth'] = [3] * 16
  written.columns['smooth-or-featured-euclid_total-votes'] = [3] * 16
  written.columns['bar-dr8_maybe'] = [1] * 16
  rf.write_table(written.table, written.columns)
  with caplog.at_level(logging.WARNING):
    examples = build_gz_evo(str(tmp_path),
                            real.plan_gz_evo(str(tmp_path), SCHEMA))
  warnings = [
      r.getMessage() for r in caplog.records if 'ignoring' in r.getMessage()
  ]
  assert len(warnings) == 1
  assert warnings[0].endswith('smooth-or-featured-euclid_smooth, bar-dr8_maybe')
  assert_votes_match(written, examples)  # Ignored, not added.


# ---- Rings.


def test_rings_with_counts_and_with_fraction_only(tmp_path):
  d = str(tmp_path)
  counts, fraction = rf.write_rings_counts(d), rf.write_rings_fraction(d)
  plan = real.plan_rings(d)
  examples = build_rings(d, plan)
  assert sorted(examples) == sorted(counts.ids + fraction.ids)
  for written in (counts, fraction):
    for id_str in written.ids:
      example = examples[id_str]
      assert example['ring_votes'].dtype == np.int32
      np.testing.assert_array_equal(example['ring_votes'],
                                    written.ring_votes[id_str])
      assert example['ring_fraction'] == pytest.approx(
          written.ring_fraction[id_str], abs=1e-6)
      assert example['label'] == int(written.ring_fraction[id_str] > 0.5)
    assert_images_match(written, examples)
  assert {e['label'] for e in examples.values()} == {0, 1}


@pytest.mark.parametrize('column,value,reason', [
    ('ring_fraction', 1.5, 'ring_fraction=1.5 is outside [0, 1]'),
    ('ring_fraction', -0.1, 'ring_fraction=-0.1 is outside [0, 1]'),
    ('ring_fraction', float('nan'), 'ring_fraction is empty or NaN'),
    ('ring_fraction', None, 'ring_fraction is empty or NaN'),
])
def test_rings_bad_fraction(tmp_path, column, value, reason):
  written = rf.write_rings_fraction(str(tmp_path))
  written.columns[column][BAD_ROW] = value
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_rings(str(tmp_path))
  assert_names_row(str(e.value), 'rings_fraction.parquet', written.ids[BAD_ROW],
                   reason)


@pytest.mark.parametrize('yes,no,reason', [
    (-1, 3, 'ring_yes=-1 is negative'),
    (2.5, 3, 'ring_yes=2.5 is not a whole number'),
    (0, 0, 'ring_yes + ring_no is 0 and there is no ring_fraction'),
])
def test_rings_bad_counts(tmp_path, yes, no, reason):
  written = rf.write_rings_counts(str(tmp_path))
  written.columns['ring_yes'][BAD_ROW] = yes
  written.columns['ring_no'][BAD_ROW] = no
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_rings(str(tmp_path))
  assert_names_row(str(e.value),
                   'rings_counts.csv',
                   written.ids[BAD_ROW],
                   reason,
                   csv=True)


@pytest.mark.parametrize('drop,message', [
    (('ring_yes', 'ring_no'), 'no ring label'),
    (('ring_no',), "has 'ring_yes' but not the other count"),
])
def test_rings_without_label_columns(tmp_path, drop, message):
  written = rf.write_rings_counts(str(tmp_path))
  for column in drop:
    del written.columns[column]
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError, match=message) as e:
    real.plan_rings(str(tmp_path))
  assert 'rings_counts.csv' in str(e.value)


# ---- load_image.


@pytest.mark.parametrize('fmt', ['PNG', 'JPEG'])
def test_uniform_image_keeps_its_colour(tmp_path, fmt):
  colour = (200, 30, 90)
  data = rf.encode_image(np.full((40, 40, 3), colour, np.uint8), fmt)
  path = os.path.join(tmp_path, 'uniform')
  with open(path, 'wb') as f:
    f.write(data)
  for source in (data, path):
    image = real_images.load_image(source, 16, 3, 'here')
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    tolerance = 0 if fmt == 'PNG' else 2
    assert np.abs(image.astype(int) - colour).max() <= tolerance
  grey = real_images.load_image(data, 16, 1, 'here')
  assert grey.shape == (16, 16, 1)
  expected = Image.new('RGB', (1, 1), colour).convert('L').getpixel((0, 0))
  assert np.abs(grey.astype(int) - expected).max() <= tolerance


def test_resize_keeps_layout_and_crops_the_centre():
  halves = np.zeros((40, 40, 3), np.uint8)
  halves[:, 20:] = 255  # Left black, right white.
  image = real_images.load_image(rf.encode_image(halves, 'PNG'), 20, 3, 'here')
  assert (image[:, :9] == 0).all() and (image[:, 11:] == 255).all()
  wide = np.zeros((40, 60, 3), np.uint8)
  wide[:, 10:50] = (0, 255, 0)  # Red-free centre square; black sides.
  image = real_images.load_image(rf.encode_image(wide, 'PNG'), 10, 3, 'here')
  assert (image == (0, 255, 0)).all()
  tall = np.zeros((60, 40), np.uint8)
  tall[10:50] = 77
  image = real_images.load_image(rf.encode_image(tall, 'PNG'), 40, 3, 'here')
  assert image.shape == (40, 40, 3) and (image == 77).all()


# ---- Bad input.


def assert_names_row(message,
                     file_name,
                     id_str,
                     reason,
                     row=BAD_ROW,
                     csv=False):
  assert file_name in message, message
  assert f'row {row}' in message, message
  assert repr(id_str) in message, message
  assert reason in message, message
  if csv:
    assert f'CSV line {row + 2}' in message, message


@pytest.mark.parametrize('manual_dir', ['missing', 'empty'])
def test_missing_or_empty_manual_dir_says_what_to_download(
    tmp_path, manual_dir):
  d = os.path.join(tmp_path, manual_dir)
  if manual_dir == 'empty':
    os.makedirs(os.path.join(d, 'images'))
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(d, SCHEMA)
  assert d in str(e.value)
  assert real.GZ_EVO_INSTRUCTIONS in str(e.value)
  assert 'huggingface-cli download mwalmsley/gz_evo' in str(e.value)
  with pytest.raises(real_tables.CatalogError, match='gz_rings'):
    real.plan_rings(d)


@pytest.mark.parametrize('drop,message', [
    (('id_str',), "no 'id_str' column"),
    (('file_loc',), 'no image column'),
])
def test_missing_required_columns(tmp_path, drop, message):
  written = rf.write_csv_file_loc(str(tmp_path))
  for column in drop:
    del written.columns[column]
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError, match=message) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert 'catalog_csv.csv' in str(e.value)


VOTE = 'smooth-or-featured-dr5_smooth'


@pytest.mark.parametrize('writer,file_name,csv', [
    (rf.write_csv_file_loc, 'catalog_csv.csv', True),
    (rf.write_hf_parquet, 'train-00000-of-00002.parquet', False),
])
@pytest.mark.parametrize('value,reason', [
    (-1, f'{VOTE}=-1 is negative'),
    (2.5, f'{VOTE}=2.5 is not a whole number'),
    (float('nan'), f'{VOTE} is empty or NaN'),
    (None, f'{VOTE} is empty or NaN'),
])
def test_bad_vote_counts(tmp_path, writer, file_name, csv, value, reason):
  written = writer(str(tmp_path), campaigns=('dr5', 'dr8'))
  rf.set_cell(written, VOTE, BAD_ROW, value)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert_names_row(str(e.value),
                   file_name,
                   written.ids[BAD_ROW],
                   reason,
                   csv=csv)
  assert ('fill those columns with 0' in str(e.value)) == ('NaN' in reason)


def test_vote_count_that_is_not_a_number(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path))
  values = written.columns[VOTE].to_pylist()
  values[BAD_ROW] = '3a'
  written.columns[VOTE] = [str(v) for v in values]
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert_names_row(str(e.value),
                   'catalog_csv.csv',
                   written.ids[BAD_ROW],
                   f"{VOTE}='3a' is not a number",
                   csv=True)


def test_question_with_missing_answer_columns(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path))
  del written.columns['bar-dr8_weak']
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError, match="'bar-dr8'.*bar-dr8_weak"):
    real.plan_gz_evo(str(tmp_path), SCHEMA)


def test_missing_image_file(tmp_path):
  written = rf.write_parquet_subfolder(str(tmp_path))
  os.remove(
      os.path.join(tmp_path, 'images', written.columns['subfolder'][BAD_ROW],
                   written.columns['filename'][BAD_ROW]))
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert_names_row(str(e.value), 'catalog_parquet.parquet',
                   written.ids[BAD_ROW], 'image file not found; tried')


def corrupt_image(written, manual_dir, how):
  """Overwrites the CSV fixture's image of BAD_ROW; returns its path."""
  path = os.path.join(manual_dir, 'images', 'csv_images',
                      f'{written.ids[BAD_ROW]}.png')
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(b'not an image' if how == 'unreadable' else data[:len(data) // 2])
  return path


@pytest.mark.parametrize('how,reason', [
    ('unreadable', 'not a readable image'),
    ('truncated', 'truncated or corrupt image'),
])
def test_unreadable_or_truncated_image(tmp_path, how, reason):
  written = rf.write_csv_file_loc(str(tmp_path))
  path = corrupt_image(written, str(tmp_path), how)
  plan = real.plan_gz_evo(str(tmp_path), SCHEMA)
  with pytest.raises(real_tables.CatalogError) as e:
    build_gz_evo(str(tmp_path), plan)
  assert_names_row(str(e.value),
                   'catalog_csv.csv',
                   written.ids[BAD_ROW],
                   reason,
                   csv=True)
  assert path in str(e.value)


def test_truncated_image_fails_even_if_pillow_was_told_to_pad(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path))
  path = corrupt_image(written, str(tmp_path), 'truncated')
  ImageFile.LOAD_TRUNCATED_IMAGES = True
  try:
    with pytest.raises(real_tables.CatalogError, match='truncated'):
      real_images.load_image(path, 16, 3, 'here')
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_hf_image_without_bytes(tmp_path):
  written = rf.write_hf_parquet(str(tmp_path))
  images = written.columns['image'].to_pylist()
  images[BAD_ROW] = {'bytes': None, 'path': None}
  written.columns['image'] = pa.array(images, written.columns['image'].type)
  pq.write_table(pa.table(written.columns), written.table)
  plan = real.plan_gz_evo(str(tmp_path), SCHEMA)
  with pytest.raises(real_tables.CatalogError) as e:
    build_gz_evo(str(tmp_path), plan)
  assert_names_row(str(e.value), 'train-00000-of-00002.parquet', written.ids[BAD_ROW],
                   'image is empty')


def test_duplicate_id_within_a_table(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path))
  written.columns['id_str'][7] = written.ids[BAD_ROW]
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert_names_row(str(e.value),
                   'catalog_csv.csv',
                   written.ids[BAD_ROW],
                   'duplicate id_str; first seen in',
                   row=7,
                   csv=True)
  assert f'catalog_csv.csv: row {BAD_ROW} (CSV line' in str(e.value)


def test_duplicate_id_across_tables(tmp_path):
  first = rf.write_csv_file_loc(str(tmp_path))
  second = rf.write_unlabelled(str(tmp_path))
  second.columns['id_str'][5] = first.ids[BAD_ROW]
  rf.write_table(second.table, second.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  message = str(e.value)
  assert_names_row(message,
                   'unlabelled.parquet',
                   first.ids[BAD_ROW],
                   'duplicate id_str',
                   row=5)
  assert f'first seen in {first.table}: row {BAD_ROW}' in message


@pytest.mark.parametrize('writer,value,file_name', [
    (rf.write_csv_file_loc, '', 'catalog_csv.csv'),
    (rf.write_unlabelled, None, 'unlabelled.parquet'),
])
def test_empty_id(tmp_path, writer, value, file_name):
  written = writer(str(tmp_path))
  written.columns['id_str'][BAD_ROW] = value
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  assert_names_row(str(e.value), file_name, value, 'empty id_str')


def test_file_changed_since_planning(tmp_path):
  written = rf.write_hf_parquet(str(tmp_path))
  plan = real.plan_gz_evo(str(tmp_path), SCHEMA)
  pq.write_table(pa.table(written.columns).slice(0, 2), written.table)
  with pytest.raises(real_tables.CatalogError, match='did the file change'):
    build_gz_evo(str(tmp_path), plan)


def test_error_lists_the_first_rows_and_counts_the_rest(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path), n=30)
  written.columns[VOTE] = [None] * 30  # Beside counts of dr5 (or zeros).
  written.columns['file_loc'] = ['gone.png'] * 30  # A second problem.
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA)
  message = str(e.value)
  assert message.startswith('30 bad row(s) of 30')
  assert 'and 10 more' in message and written.ids[19] in message
  assert written.ids[20] not in message
  assert '(and 1 more problem in this row)' in message
  assert message.count('fill those columns with 0') == 1
  assert 'skip_bad_rows=True' in message


# ---- skip_bad_rows: skipped rows are reported, never dropped silently.


def test_skip_bad_rows_in_plan(tmp_path, caplog):
  d = str(tmp_path)
  csv = rf.write_csv_file_loc(d)
  unlabelled = rf.write_unlabelled(d)
  values = csv.columns[VOTE].to_pylist()
  values[1], values[2] = -4, float('nan')
  csv.columns[VOTE] = values
  csv.columns['id_str'][5] = ''
  rf.write_table(csv.table, csv.columns)
  unlabelled.columns['id_str'][0] = csv.ids[9]  # Duplicate: second is bad.
  rf.write_table(unlabelled.table, unlabelled.columns)
  os.remove(
      os.path.join(d, 'images', 'unlabelled',
                   unlabelled.columns['filename'][4]))
  with caplog.at_level(logging.WARNING):
    plan = real.plan_gz_evo(d, SCHEMA, skip_bad_rows=True)
  bad = [(b.file, b.row, b.id_str) for b in plan.bad_rows]
  assert bad == [(csv.table, 1, csv.ids[1]), (csv.table, 2, csv.ids[2]),
                 (csv.table, 5, ''), (unlabelled.table, 0, csv.ids[9]),
                 (unlabelled.table, 4, unlabelled.ids[4])]
  assert 'negative' in plan.bad_rows[0].reason
  assert 'duplicate' in plan.bad_rows[3].reason
  assert 'not found' in plan.bad_rows[4].reason
  warning = ' '.join(r.getMessage() for r in caplog.records)
  assert 'Skipping 5 bad row(s) of 28' in warning
  assert unlabelled.ids[4] in warning
  examples = build_gz_evo(d, plan)
  assert len(examples) + len(plan.bad_rows) == plan.num_rows == 28
  assert csv.ids[9] in examples and csv.ids[1] not in examples
  assert not {b.id_str for b in plan.bad_rows[:2]} & set(examples)


def test_skip_bad_images_in_examples(tmp_path, caplog):
  d = str(tmp_path)
  written = rf.write_csv_file_loc(d)
  corrupt_image(written, d, 'truncated')
  plan = real.plan_gz_evo(d, SCHEMA, skip_bad_rows=True)
  assert not plan.bad_rows  # Images are only opened by the workers.
  skipped = []
  with caplog.at_level(logging.WARNING):
    examples = build_gz_evo(d,
                            plan,
                            skip_bad_rows=True,
                            on_bad_row=skipped.append)
  assert [(b.file, b.row, b.id_str) for b in skipped
         ] == [(written.table, BAD_ROW, written.ids[BAD_ROW])]
  assert 'truncated' in skipped[0].reason
  assert len(examples) + len(skipped) == plan.num_rows
  assert any(written.ids[BAD_ROW] in r.getMessage() for r in caplog.records)


def test_skip_bad_rows_that_would_skip_every_row_is_an_error(tmp_path):
  written = rf.write_csv_file_loc(str(tmp_path), n=6)
  written.columns[VOTE] = [-1] * 6
  rf.write_table(written.table, written.columns)
  with pytest.raises(real_tables.CatalogError) as e:
    real.plan_gz_evo(str(tmp_path), SCHEMA, skip_bad_rows=True)
  message = str(e.value)
  assert message.startswith('every one of the 6 row(s)')
  assert 'empty dataset' in message and written.ids[0] in message


@pytest.mark.parametrize('name,split', [
    ('train-00000-of-00030.parquet', 'train'),
    ('test-00006-of-00007.parquet', 'test'),
    ('validation-00000-of-00001-3f2a9c0b.parquet', 'validation'),
    ('train-00000.parquet', None),       # Not Hugging Face's shard naming.
    ('catalog_train.parquet', None),
    ('test-00000-of-00001.csv', None),
])
def test_published_split_from_shard_names(name, split):
  assert real_tables.published_split(os.path.join('data', name)) == split


def test_published_train_rows_only_lose_a_validation_share():
  ids = [f'galaxy-{i}' for i in range(400)]
  splits = [real.row_split('train', i, 0.2, 0.3) for i in ids]
  assert 'test' not in splits
  assert 50 < splits.count('validation') < 110  # About 20% of 400.
  assert all(real.row_split('test', i, 0.2, 0.3) == 'test' for i in ids)
  assert [real.row_split(None, i, 0.2, 0.3) for i in ids] == [
      common.split_of(i, 0.2, 0.3) for i in ids]

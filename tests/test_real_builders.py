"""The `real` configs of gz_evo and gz_rings, built from small manual_dirs.

The catalogue reader itself is tested in test_real_catalog.py; this checks
that the TFDS builders write what the manual_dir holds, in process and with
Beam, and that bad input stops (or, when asked, is skipped and reported).
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import real_fixtures as rf
from gzevo_jax import schema as schema_lib
from gzevo_jax.data import builders, common, real_tables
from gzevo_jax.data import build
from gzevo_jax.data.build import prepare
from gzevo_jax.schema import GZ_EVO_V0_1 as SCHEMA

SIZE = rf.IMAGE_SIZE  # Stored at the fixtures' size: lossless images match.


def _build(builder_class, manual_dir, data_dir, beam=False, **kwargs):
  config = builders.GalaxyConfig(name='real_test', source='real',
                                 image_size=SIZE, image_format='png',
                                 galaxies_per_unit=7)
  builder = builder_class(config=config, data_dir=str(data_dir), **kwargs)
  download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  if beam:
    download_config.beam_runner = build.local_beam_runner()
  builder.download_and_prepare(download_config=download_config)
  return builder


def _all_examples(builder):
  out = {}
  for split in common.SPLITS:
    if split not in builder.info.splits:
      continue
    ds = builder.as_dataset(split=split, shuffle_files=False)
    for ex in tfds.as_numpy(ds):
      out[ex['id_str'].decode()] = (split, ex)
  return out


@pytest.fixture(scope='module')
def manual_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('manual'))
  written = [rf.write_csv_file_loc(root), rf.write_parquet_subfolder(root),
             rf.write_hf_parquet(root, shard=0, unasked_empty=True),
             rf.write_hf_parquet(root, shard=1, struct_images=False,
                                 split='test', n=16, seed=3),
             rf.write_unlabelled(root)]
  return root, written


@pytest.fixture(scope='module')
def built(manual_dir, tmp_path_factory):
  root, _ = manual_dir
  return _build(builders.GzEvo, root, tmp_path_factory.mktemp('tfds'))


def test_every_layout_is_written_with_its_votes(manual_dir, built):
  _, written = manual_dir
  examples = _all_examples(built)
  assert len(examples) == sum(len(w.ids) for w in written)
  for w in written:
    for id_str in w.ids:
      split, ex = examples[id_str]
      assert split == _expected_split(w.table, id_str)
      np.testing.assert_array_equal(ex['votes'], w.votes[id_str])
      assert ex['labelled'] == (w.votes[id_str].sum() > 0)
      assert ex['campaign'].decode() == common.campaign_label(
          SCHEMA, w.votes[id_str])
      if w.lossless:
        np.testing.assert_array_equal(ex['image'], w.images[id_str])
      else:  # JPEG on disk.
        assert np.abs(ex['image'].astype(float) -
                      w.images[id_str]).mean() < 4.0
  assert built.info.metadata['skipped_rows'] == []
  # Null cells of campaigns that did not ask (the first HF shard) are
  # counted in metadata.json, and their votes above round-tripped exactly.
  reloaded = tfds.builder_from_directory(built.data_dir)
  assert reloaded.info.metadata['empty_unasked_vote_cells'] == (
      rf.empty_vote_cells(written[2]))
  assert rf.empty_vote_cells(written[2])


def _expected_split(table, id_str):
  """Published test shards stay test; published train shards lose only a
  validation share (by the hash); other tables are split by the hash."""
  name = os.path.basename(table)
  if name.startswith('test-'):
    return 'test'
  if name.startswith('train-'):
    return ('validation' if common.split_of(id_str, test_fraction=0.0) ==
            'validation' else 'train')
  return common.split_of(id_str)


def test_published_test_galaxies_are_never_trained_on(manual_dir, built):
  _, written = manual_dir
  test_shard, train_shard = written[3], written[2]
  assert os.path.basename(test_shard.table).startswith('test-')
  examples = _all_examples(built)
  assert {examples[i][0] for i in test_shard.ids} == {'test'}
  assert {examples[i][0] for i in train_shard.ids} <= {'train', 'validation'}
  # Split by the hash alone, most of them would be trained on.
  assert sum(common.split_of(i) == 'train' for i in test_shard.ids) > 8


def test_gz_evo_v1_keeps_ukidss_votes(tmp_path):
  v1 = schema_lib.load_builtin('gz_evo_v1')
  written = rf.write_hf_parquet(str(tmp_path / 'manual'), n=12, schema=v1,
                                campaigns=('dr12', 'ukidss'),
                                unasked_empty=True)
  config = builders.GalaxyConfig(name='real_v1_test', source='real',
                                 image_size=SIZE, image_format='png',
                                 schema='gz_evo_v1')
  builder = builders.GzEvo(config=config, data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / 'manual')))
  examples = _all_examples(builder)
  ukidss = v1.campaign_answer_mask('ukidss')
  assert sum(bool(v[ukidss].any()) for v in written.votes.values()) >= 4
  for id_str, votes in written.votes.items():
    np.testing.assert_array_equal(examples[id_str][1]['votes'], votes)
    assert examples[id_str][1]['campaign'].decode() == (
        common.campaign_label(v1, votes))


def test_beam_builds_the_same_examples(manual_dir, built, tmp_path):
  pytest.importorskip('apache_beam')
  root, _ = manual_dir
  beam_built = _build(builders.GzEvo, root, tmp_path, beam=True)
  a, b = _all_examples(built), _all_examples(beam_built)
  assert a.keys() == b.keys()
  for id_str, (split, ex) in a.items():
    assert b[id_str][0] == split
    np.testing.assert_array_equal(b[id_str][1]['image'], ex['image'])
    np.testing.assert_array_equal(b[id_str][1]['votes'], ex['votes'])


def test_named_real_config_resizes_to_its_resolution(manual_dir, tmp_path):
  root, written = manual_dir
  builder = prepare('gz_evo/real_128', data_dir=str(tmp_path),
                    manual_dir=root)
  ex = next(iter(tfds.as_numpy(builder.as_dataset(split='train'))))
  assert ex['image'].shape == (128, 128, 3)
  assert builder.info.features['image'].encoding_format == 'jpeg'
  total = sum(s.num_examples for s in builder.info.splits.values())
  assert total == sum(len(w.ids) for w in written)


def test_missing_manual_dir_says_what_to_download(tmp_path):
  with pytest.raises(real_tables.CatalogError, match='does not exist') as error:
    _build(builders.GzEvo, tmp_path / 'nowhere', tmp_path / 'tfds')
  assert 'manual_dir' in str(error.value) or 'manual' in str(error.value)
  assert 'GZ-Evo' in str(error.value)


def test_bad_count_stops_the_build_naming_file_and_row(tmp_path):
  root = str(tmp_path / 'manual')
  w = rf.write_csv_file_loc(root)
  column = next(c for c in w.columns if c.startswith('smooth-or-featured-dr5'))
  rf.set_cell(w, column, 3, -2)
  with pytest.raises(real_tables.CatalogError) as error:
    _build(builders.GzEvo, root, tmp_path / 'tfds')
  message = str(error.value)
  assert 'catalog_csv.csv' in message and 'row 3' in message
  assert w.ids[3] in message


def test_skip_bad_rows_builds_the_rest_and_lists_the_skipped(tmp_path):
  root = str(tmp_path / 'manual')
  w = rf.write_csv_file_loc(root)
  column = next(c for c in w.columns if c.startswith('bar-dr8'))
  rf.set_cell(w, column, 1, 2.5)
  truncated = os.path.join(root, 'images', 'csv_images', f'{w.ids[5]}.png')
  with open(truncated, 'rb') as f:
    data = f.read()
  with open(truncated, 'wb') as f:
    f.write(data[:len(data) // 2])
  builder = _build(builders.GzEvo, root, tmp_path / 'tfds',
                   skip_bad_rows=True)
  examples = _all_examples(builder)
  assert set(examples) == set(w.ids) - {w.ids[1], w.ids[5]}
  # The list survives in the dataset's metadata.
  reloaded = tfds.builder_from_directory(builder.data_dir)
  skipped = reloaded.info.metadata['skipped_rows']
  assert sorted(s['id_str'] for s in skipped) == sorted([w.ids[1], w.ids[5]])
  assert all('catalog_csv.csv' in s['file'] for s in skipped)


def test_skipping_every_row_while_generating_is_an_error(tmp_path):
  """Images are opened only when examples are made: all unreadable there."""
  root = str(tmp_path / 'manual')
  w = rf.write_csv_file_loc(root, n=6)
  for id_str in w.ids:
    with open(os.path.join(root, 'images', 'csv_images', f'{id_str}.png'),
              'wb') as f:
      f.write(b'not an image')
  with pytest.raises(common.DataError,
                     match=r'gz_evo/real: .*No examples were yielded.*; 6 '
                     r'row\(s\) were skipped as bad, which left nothing'):
    prepare('gz_evo/real', data_dir=str(tmp_path / 'tfds'), manual_dir=root,
            skip_bad_rows=True)
  assert not builders.builder('gz_evo/real',
                              str(tmp_path / 'tfds')).is_prepared()


def test_rings_real_with_counts_and_fraction(tmp_path):
  root = str(tmp_path / 'manual')
  counts, fractions = rf.write_rings_counts(root), rf.write_rings_fraction(root)
  examples = _all_examples(_build(builders.GzRings, root, tmp_path / 'tfds'))
  assert len(examples) == len(counts.ids) + len(fractions.ids)
  for w in (counts, fractions):
    for id_str in w.ids:
      _, ex = examples[id_str]
      np.testing.assert_array_equal(ex['ring_votes'], w.ring_votes[id_str])
      assert ex['ring_fraction'] == pytest.approx(w.ring_fraction[id_str],
                                                  abs=1e-6)
      assert ex['label'] == int(w.ring_fraction[id_str] > 0.5)

"""The TFDS builders on synthetic data: content, splits, determinism, Beam."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gzevo_jax.data import build, builders, common, synthetic
from gzevo_jax.data.build import prepare
from gzevo_jax.schema import GZ_EVO_V0_1 as SCHEMA


def _examples(builder, split='train'):
  ds = builder.as_dataset(split=split, shuffle_files=False)
  return {ex['id_str'].decode(): ex for ex in tfds.as_numpy(ds)}


@pytest.fixture(scope='module')
def gz_evo(tmp_path_factory):
  return prepare('gz_evo/synthetic_tiny',
                 data_dir=str(tmp_path_factory.mktemp('tfds')))


def test_gz_evo_splits_cover_the_catalogue_by_id(gz_evo):
  splits = gz_evo.info.splits
  total = sum(splits[s].num_examples for s in common.SPLITS)
  assert total == 600
  assert splits['train'].num_examples > 400
  for split in common.SPLITS:
    for id_str in _examples(gz_evo, split):
      assert common.split_of(id_str) == split


def test_gz_evo_examples_match_the_catalogue(gz_evo):
  config = gz_evo.builder_config
  catalogue = synthetic.gz_evo_catalogue(SCHEMA, config.num_galaxies,
                                         config.labelled_fraction, config.seed)
  row_of = {i: n for n, i in enumerate(catalogue.ids)}
  examples = _examples(gz_evo)
  labelled = 0
  for id_str, ex in examples.items():
    row = row_of[id_str]
    votes = catalogue.labels['votes'][row]
    np.testing.assert_array_equal(ex['votes'], votes)
    assert ex['labelled'] == (votes.sum() > 0)
    assert ex['campaign'].decode() == common.campaign_label(SCHEMA, votes)
    assert ex['image'].shape == (32, 32, 3) and ex['image'].dtype == np.uint8
    assert ex['truth']['kind'] == catalogue.morphology.kind[row]
    np.testing.assert_allclose(ex['truth']['snr'],
                               catalogue.morphology.snr[row], rtol=1e-6)
    labelled += ex['labelled']
  assert 0.2 < labelled / len(examples) < 0.4
  # Images differ between galaxies and are not blank.
  images = np.stack([ex['image'] for ex in examples.values()])
  assert images.std(axis=0).mean() > 5


def test_metadata_carries_the_schema(gz_evo):
  metadata = gz_evo.info.metadata
  assert metadata['answer_columns'] == list(SCHEMA.label_cols)


def test_the_same_build_twice_is_identical(gz_evo, tmp_path):
  again = prepare('gz_evo/synthetic_tiny', data_dir=str(tmp_path))
  a, b = _examples(gz_evo, 'validation'), _examples(again, 'validation')
  assert a.keys() == b.keys()
  for id_str in a:
    np.testing.assert_array_equal(a[id_str]['image'], b[id_str]['image'])
    np.testing.assert_array_equal(a[id_str]['votes'], b[id_str]['votes'])


def test_beam_direct_runner_builds_the_same_examples(gz_evo, tmp_path):
  beam = pytest.importorskip('apache_beam')
  del beam
  built = prepare('gz_evo/synthetic_tiny', data_dir=str(tmp_path),
                  beam_pipeline_options='runner=DirectRunner')
  assert built.info.splits['train'].num_examples == (
      gz_evo.info.splits['train'].num_examples)
  a, b = _examples(gz_evo, 'test'), _examples(built, 'test')
  assert a.keys() == b.keys()
  for id_str in a:
    np.testing.assert_array_equal(a[id_str]['image'], b[id_str]['image'])
    np.testing.assert_array_equal(a[id_str]['votes'], b[id_str]['votes'])


def test_local_beam_runs_never_download_a_runner():
  pytest.importorskip('apache_beam')
  from apache_beam.options.pipeline_options import StandardOptions
  options = build.beam_options('runner=DirectRunner, direct_num_workers=2')
  assert options.view_as(StandardOptions).runner == 'FnApiRunner'
  assert options.get_all_options()['direct_num_workers'] == 2
  other = build.beam_options('runner=DataflowRunner,project=p')
  assert other.view_as(StandardOptions).runner == 'DataflowRunner'


def test_gz_rings_labels_follow_ring_votes(tmp_path):
  rings = prepare('gz_rings/synthetic_tiny', data_dir=str(tmp_path))
  examples = _examples(rings)
  labels = np.array([ex['label'] for ex in examples.values()])
  for ex in examples.values():
    yes, no = ex['ring_votes']
    assert ex['ring_fraction'] == pytest.approx(yes / (yes + no))
    assert ex['label'] == int(ex['ring_fraction'] > 0.5)
    assert ex['truth']['kind'] == 1  # Disks only, like GZ Rings.
  assert 0.15 < labels.mean() < 0.4  # A minority, as in GZ Rings.
  truth = np.array([ex['truth']['ring'] > 0 for ex in examples.values()])
  assert np.mean(labels[~truth]) < 0.1  # No ring: almost never labelled one.
  assert 0.2 < np.mean(labels[truth]) < 0.7  # Hidden rings are labelled none.
  assert 'ring' not in ' '.join(SCHEMA.label_cols)
  # The new truth fields travel with the examples.
  ex = next(iter(examples.values()))
  assert {'bar_length', 'ring_type', 'ring_completeness'} <= set(ex['truth'])


@pytest.fixture(scope='module')
def rings_catalogue():
  """The full gz_rings/synthetic catalogue (no images: catalogues are fast)."""
  config = {c.name: c for c in builders.GzRings.BUILDER_CONFIGS}['synthetic']
  return synthetic.rings_catalogue(config.num_galaxies, config.seed)


def test_the_rings_test_split_holds_2000_galaxies(rings_catalogue):
  splits = [common.split_of(i) for i in rings_catalogue.ids]
  assert splits.count('test') >= 2000
  tiny = {c.name: c for c in builders.GzRings.BUILDER_CONFIGS}[
      'synthetic_tiny']
  assert tiny.num_galaxies <= 400 and tiny.image_size == 32


def test_a_minority_of_the_rings_task_is_labelled_ringed(rings_catalogue):
  votes = rings_catalogue.labels['ring_votes']
  labels = common.rings_label(votes[:, 0] / votes.sum(1))
  assert 0.22 < labels.mean() < 0.32
  m = rings_catalogue.morphology
  assert np.all((m.kind == 1) & ~m.edge_on)
  assert m.snr.min() >= synthetic.RINGS_MIN_SNR
  # Rings come with bars, so the label says something about bars.
  assert m.has_ring[m.bar > 0].mean() > 1.8 * m.has_ring[m.bar == 0].mean()
  assert np.corrcoef(labels, m.bar)[0, 1] > 0.15


def test_versions_and_release_notes():
  assert str(builders.GzEvo.VERSION) == '1.2.0'
  assert str(builders.GzRings.VERSION) == '2.0.0'
  assert '1.2.0' in builders.GzEvo.RELEASE_NOTES
  assert '2.0.0' in builders.GzRings.RELEASE_NOTES


def test_unknown_config_lists_the_choices():
  with pytest.raises(ValueError, match='synthetic, synthetic_tiny'):
    builders.builder('gz_evo/huge')

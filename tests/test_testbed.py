"""The rings-task measurement command: numbers, table and JSON."""

import json

import numpy as np
import pytest

from gzevo_jax.data import builders, synthetic, testbed


@pytest.fixture(scope='module')
def small():
  return testbed.report(num_galaxies=3000, draws=8, gz_evo_galaxies=4000)


def test_report_numbers_are_consistent(small):
  rings = small['rings']
  assert rings['galaxies'] == 3000
  assert 200 < rings['test_split'] < 400  # About 10%, by hash of id.
  assert 0.0 < rings['labelled_ringed'] < rings['truly_ringed'] < 1.0
  assert rings['majority_accuracy'] == pytest.approx(
      max(rings['labelled_ringed'], 1 - rings['labelled_ringed']))
  assert rings['majority_accuracy'] <= rings['bayes_accuracy'] <= 1.0
  assert rings['bayes_accuracy'] > 0.85  # Labels follow what the image shows.
  assert rings['corr_label_bar'] > 0.1  # Rings come with bars ...
  assert rings['ringed_if_barred'] > 1.5 * rings['ringed_if_unbarred']
  assert rings['corr_label_bulge_fraction'] < 0  # ... and hide under bulges.
  # The GZ-Evo-visible truth (no ring) predicts the label better than the
  # majority class does.
  assert (rings['gz_evo_features_accuracy'] >
          rings['gz_evo_features_majority'] + 0.02)
  assert rings['inner_ring_share'] > 0.5
  gz_evo = small['gz_evo']
  assert gz_evo['galaxies'] == 4000
  assert 0 < gz_evo['ring_information'] <= gz_evo['visible_ring'] < (
      gz_evo['ringed'])
  assert gz_evo['ring_information'] <= gz_evo['in_gz2']


def test_bayes_accuracy_and_helpers():
  assert testbed.bayes_accuracy(np.array([0.0, 1.0, 0.5, 0.9])) == (
      pytest.approx((1 + 1 + 0.5 + 0.9) / 4))
  assert testbed.majority_accuracy(np.array([1, 0, 0, 0])) == 0.75
  assert testbed.correlation(np.ones(4), np.arange(4)) == 0.0
  np.testing.assert_array_equal(
      testbed.labels_of(np.array([[3, 1], [1, 3], [0, 0]])), [1, 0, 0])
  features = np.random.default_rng(0).normal(size=(400, 3))
  labels = (features[:, 0] > 0).astype(int)
  logistic, majority, auc = testbed.held_out_accuracy(features, labels)
  assert logistic > 0.95 and 0.35 < majority < 0.65 and auc > 0.98
  # Noise unrelated to the label: an AUC near 0.5.
  _, _, auc = testbed.held_out_accuracy(features[:, 1:], labels)
  assert 0.4 < auc < 0.6


def test_defaults_are_the_builders_configs():
  rings = {c.name: c for c in builders.GzRings.BUILDER_CONFIGS}['synthetic']
  assert rings.num_galaxies == synthetic.RINGS_NUM_GALAXIES
  assert rings.seed == synthetic.RINGS_SEED
  evo = {c.name: c for c in builders.GzEvo.BUILDER_CONFIGS}['synthetic']
  assert evo.num_galaxies == testbed.GZ_EVO_NUM_GALAXIES
  assert evo.labelled_fraction == testbed.GZ_EVO_LABELLED_FRACTION
  assert evo.seed == testbed.GZ_EVO_SEED
  assert evo.schema == testbed.GZ_EVO_SCHEMA


def test_main_prints_a_table_and_writes_json(tmp_path, capsys):
  out = tmp_path / 'testbed.json'
  testbed.main(['--num_galaxies=1500', '--draws=4', f'--json_out={out}'])
  printed = capsys.readouterr().out
  assert printed.startswith('| quantity | value |')
  assert 'Bayes accuracy' in printed and 'test split' in printed
  result = json.loads(out.read_text())
  assert result['rings']['galaxies'] == 1500
  assert set(result) == {'rings', 'gz_evo'}


@pytest.mark.parametrize('args, message', [
    (['--num_galaxies=0'], '--num_galaxies must be a positive integer'),
    (['--draws=-1'], '--draws must be a positive integer'),
    (['--json_out=/nonexistent/dir/x.json'], 'does not exist'),
])
def test_bad_flags_are_one_line_errors(args, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    testbed.main(args)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err

"""The photo-z task: unstratified budgets and a smoke run on five bands."""

import json
import os

import numpy as np
import pytest

from conftest import REPO_ROOT
from gzevo_jax import config_lib
from gzevo_jax import train
from gzevo_jax.data.common import DataError
from gzevo_jax.evaluation import budgets
from gzevo_jax.evaluation import photoz


def test_sample_subset_sizes_repeats_and_seeds():
  a = budgets.sample_subset(100, 30, seed=0)
  assert len(a) == 30 and len(set(a)) == 30 and np.all(np.diff(a) > 0)
  assert not np.array_equal(a, budgets.sample_subset(100, 30, seed=1))
  np.testing.assert_array_equal(a, budgets.sample_subset(100, 30, seed=0))
  assert len(budgets.sample_subset(100, None, seed=0)) == 100
  with pytest.raises(budgets.BudgetError, match='exceeds the 100'):
    budgets.sample_subset(100, 101, seed=0)


def test_bad_alphas_are_a_config_error():
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'photoz.py'))
  config.pretrained_workdir = 'runs/x'
  config.ridge.alphas = (-1.0,)
  with pytest.raises(ValueError, match='ridge.alphas'):
    photoz.validate(config)


def test_photoz_smoke_on_five_bands(tmp_path):
  from gzevo_jax.data import build
  data_dir = str(tmp_path / 'tfds')
  build.prepare('sdss5/synthetic_tiny', data_dir=data_dir)
  pretrain = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'sdss_contrastive.py:smoke'))
  pretrain.data.data_dir = data_dir
  pretrain.train_duration = '2 steps'
  pretrain.knn_monitor.every_steps = 0
  train.train_and_evaluate(pretrain, str(tmp_path / 'pretrain'))
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'photoz.py:smoke'))
  config.pretrained_workdir = str(tmp_path / 'pretrain')
  config.data.data_dir = data_dir
  results = photoz.run(config, str(tmp_path / 'photoz'))
  assert {r['budget'] for r in results['runs']} == {50, 472}
  assert len(results['runs']) == 4  # 2 budgets x 2 seeds.
  for row in results['runs']:
    assert row['sigma_mad'] >= 0 and 0 <= row['outlier_rate'] <= 1
    assert row['alpha'] in config.ridge.alphas
  table = (tmp_path / 'photoz' / 'photoz.md').read_text()
  assert table.startswith('| labels | bias | σ_MAD | outlier rate |')
  assert len(table.strip().splitlines()) == 4
  with open(tmp_path / 'photoz' / 'results.json') as f:
    assert json.load(f)['pretrained_objective'] == 'contrastive'
  config.data.target_key = 'redshfit'  # A typo names the field and choices.
  with pytest.raises(DataError, match="target_key='redshfit'.*redshift"):
    photoz.run(config, str(tmp_path / 'typo'))

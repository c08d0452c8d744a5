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


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
  """A two-step five-band contrastive run and its dataset directory."""
  from gzevo_jax.data import build
  root = tmp_path_factory.mktemp('photoz')
  data_dir = str(root / 'tfds')
  build.prepare('sdss5/synthetic_tiny', data_dir=data_dir)
  pretrain = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'sdss_contrastive.py:smoke'))
  pretrain.data.data_dir = data_dir
  pretrain.train_duration = '2 steps'
  pretrain.knn_monitor.every_steps = 0
  train.train_and_evaluate(pretrain, str(root / 'pretrain'))
  return str(root / 'pretrain'), data_dir


def _config(pretrained, variant='smoke'):
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', f'photoz.py:{variant}'))
  config.pretrained_workdir, config.data.data_dir = pretrained
  return config


def test_photoz_smoke_on_five_bands(tmp_path, pretrained):
  config = _config(pretrained)
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


@pytest.mark.parametrize('variant, init', [('finetune+smoke', 'pretrained'),
                                           ('direct+smoke', 'scratch')])
def test_photoz_finetune_and_direct_smoke(tmp_path, pretrained, variant,
                                          init):
  config = _config(pretrained, variant)
  assert config.method == 'finetune' and config.init == init
  config.budgets, config.num_seeds = (50,), 1
  results = photoz.run(config, str(tmp_path / 'photoz'))
  (row,) = results['runs']
  assert row['budget'] == 50 and row['sigma_mad'] >= 0
  assert 1 <= row['best_epoch'] <= config.max_epochs
  assert results['init'] == init
  assert (tmp_path / 'photoz' / 'photoz.md').read_text().startswith(
      '| labels | bias |')


def test_photoz_finetune_resumes_without_training_again(tmp_path, pretrained,
                                                        monkeypatch):
  from gzevo_jax.evaluation import finetune
  config = _config(pretrained, 'direct+smoke')
  config.budgets, config.num_seeds = (50,), 2
  first = photoz.run(config, str(tmp_path / 'photoz'))
  def no_training(*args, **kwargs):
    raise AssertionError('a finished (budget, seed) was trained again')
  monkeypatch.setattr(finetune, 'train_classifier', no_training)
  again = photoz.run(config, str(tmp_path / 'photoz'))
  assert again['runs'] == json.loads(json.dumps(first['runs']))
  config.max_epochs += 1  # Another config: the saved rows are not reused.
  with pytest.raises(AssertionError, match='trained again'):
    photoz.run(config, str(tmp_path / 'photoz'))


def test_the_photometric_baseline_needs_no_encoder(tmp_path, pretrained):
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'photoz.py:photometry+smoke'))
  assert config.method == 'photometry' and not config.pretrained_workdir
  config.data.data_dir = pretrained[1]
  results = photoz.run(config, str(tmp_path / 'photoz'))
  assert len(results['runs']) == 4  # 2 budgets x 2 seeds.
  for row in results['runs']:
    assert row['k'] in config.knn.ks and row['k'] <= row['budget']
    assert row['sigma_mad'] >= 0 and 0 <= row['outlier_rate'] <= 1
  assert results['image_size'] == 32
  with open(tmp_path / 'photoz' / 'results.csv') as f:
    assert f.readline().strip() == (
        'budget,seed,bias,sigma_mad,outlier_rate,alpha,k')
  config.data.image_size = 64
  with pytest.raises(ValueError, match='image_size=64.*32 px'):
    photoz.run(config, str(tmp_path / 'resized'))
  config.data.image_size, config.knn.ks = None, (0,)
  with pytest.raises(ValueError, match='knn.ks'):
    photoz.validate(config)


def test_an_unknown_method_is_a_config_error():
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'photoz.py'))
  config.pretrained_workdir = 'runs/x'
  config.method = 'knn'
  with pytest.raises(ValueError, match="config.method='knn'.*ridge, "
                     'finetune, photometry'):
    photoz.validate(config)


def test_the_regression_loss_is_the_mean_squared_error():
  from gzevo_jax.evaluation import finetune
  outputs = np.array([[0.5], [0.1], [-0.2]], np.float32)
  labels = np.array([0.3, 0.1, 0.4], np.float32)
  expected = np.mean((outputs[:, 0] - labels)**2)
  assert float(finetune.training_loss(outputs, labels, True)) == (
      pytest.approx(expected))


def test_a_regression_head_learns_a_learnable_target():
  """Mean brightness is easy to learn: validation error falls below half
  that of predicting the training mean."""
  import jax
  import jax.numpy as jnp
  from gzevo_jax.evaluation import features as features_lib
  from gzevo_jax.evaluation import finetune
  from gzevo_jax.models import encoders
  rng = np.random.default_rng(0)
  def split(n):
    level = rng.uniform(0, 1, n).astype(np.float32)
    images = (level[:, None, None, None] * 200 +
              rng.integers(0, 40, (n, 8, 8, 1))).astype(np.uint8)
    return features_lib.Images(images, level)
  train_split, val = split(256), split(64)
  model = finetune.Classifier(encoders.build_encoder(
      'resnet18', width_multiplier=0.0625, small_image_stem=True), 1)
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)),
                         train=False)
  config = _config(('runs/x', None), 'direct+smoke')
  config.max_epochs, config.patience, config.learning_rate = 15, 15, 3e-3
  _, info = finetune.train_classifier(model, variables, train_split, val,
                                      config, 0, regression=True)
  baseline = np.mean((val.labels - train_split.labels.mean())**2)
  assert info["val_loss"] < 0.5 * baseline


def test_the_morphology_probe_runs_on_five_bands(tmp_path, pretrained):
  """Hayat et al.'s other task: morphology from the five-band encoder, by
  the linear probe on sdss5's `label` (smooth, featured, artifact)."""
  from gzevo_jax.evaluation import linear_probe
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'linear_probe.py:smoke'))
  config.pretrained_workdir, config.data.data_dir = pretrained
  config.data.dataset = 'sdss5/synthetic_tiny'
  config.budgets, config.num_seeds = (60,), 1
  results = linear_probe.run(config, str(tmp_path / 'morphology'))
  assert {r['budget'] for r in results['runs']} == {60}
  assert len(results['test_labels']) > 0
  assert set(results['test_labels']) <= {0, 1, 2}

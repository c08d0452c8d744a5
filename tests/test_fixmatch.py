"""FixMatch beside supervised training: strong views, the step's masking and
ratio, the tables, and the experiment at smoke scale."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gzevo_jax import config_lib
from gzevo_jax.data import in_memory
from gzevo_jax.evaluation import ablation
from gzevo_jax.evaluation import calibration
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import finetune
from gzevo_jax.evaluation import fixmatch
from gzevo_jax.models import encoders

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(variant='smoke'):
  return config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', f'fixmatch.py:{variant}'))


def test_translate_moves_pixels_and_zeroes_the_uncovered_edge():
  image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) + 1
  moved = in_memory.translate(image, 1, -2)
  np.testing.assert_array_equal(moved[1:, :2], image[:3, 2:])
  assert not moved[0].any() and not moved[:, 2:].any()
  np.testing.assert_array_equal(in_memory.translate(image, 0, 0), image)


def test_strong_views_are_seeded_uint8_and_differ_from_the_image():
  images = np.random.default_rng(1).integers(1, 256, (6, 16, 16, 1),
                                             dtype=np.uint8)
  one = in_memory.strong_augment(images, np.random.default_rng(5))
  two = in_memory.strong_augment(images, np.random.default_rng(5))
  np.testing.assert_array_equal(one, two)
  assert one.dtype == np.uint8 and one.shape == images.shape
  assert not np.array_equal(one, images)
  # A cutout of half the side leaves a zero square in a full-intensity image.
  full = np.full((8, 16, 16, 1), 255, np.uint8)
  cut = in_memory.strong_augment(full, np.random.default_rng(0),
                                 max_shift=0.0, max_cutout=0.5)
  assert (cut == 0).any()
  unchanged = in_memory.strong_augment(full, np.random.default_rng(0),
                                       max_shift=0.0, max_cutout=0.0)
  # Without shift or cutout, rotating a constant image changes nothing.
  np.testing.assert_array_equal(unchanged, full)


def _tiny_classifier():
  encoder = encoders.build_encoder('resnet18', width_multiplier=0.0625,
                                   small_image_stem=True)
  return finetune.Classifier(encoder, 2)


def _images(n, seed, size=8):
  rng = np.random.default_rng(seed)
  return features_lib.Images(
      rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
      rng.integers(0, 2, n).astype(np.int32))


@pytest.mark.parametrize('threshold, expected', [(0.5, 1.0), (1.0, 0.0)])
def test_the_step_masks_pseudo_labels_below_the_threshold(threshold, expected):
  # Two classes: the top probability is always >= 0.5, and at
  # initialisation never 1.
  model = _tiny_classifier()
  images = jnp.asarray(_images(12, 0).images, jnp.float32) / 255
  variables = model.init(jax.random.PRNGKey(0), images[:1], train=False)
  tx = finetune.make_optimizer(variables['params'], 1e-3, 1.0, 0.0, 1, 10)
  out = finetune._fixmatch_step(
      variables['params'], variables['batch_stats'],
      tx.init(variables['params']), images[:4], jnp.zeros(4, jnp.int32),
      images[4:8], images[8:], model=model, tx=tx, threshold=threshold,
      weight=1.0)
  assert float(out[-1]) == expected
  assert np.isfinite(float(out[3]))


def test_each_step_draws_ratio_unlabelled_images_per_labelled_one(
    monkeypatch):
  shapes = []
  real_step = finetune._fixmatch_step

  def recording_step(*args, **kwargs):
    shapes.append((args[3].shape[0], args[5].shape[0], args[6].shape[0]))
    return real_step(*args, **kwargs)

  monkeypatch.setattr(finetune, '_fixmatch_step', recording_step)
  config = _config()
  config.batch_size, config.max_epochs, config.min_steps_per_epoch = 4, 1, 3
  model = _tiny_classifier()
  train, val = _images(4, 1), _images(6, 2)
  variables = model.init(jax.random.PRNGKey(0),
                         jnp.zeros((1, 8, 8, 1)), train=False)
  pool = finetune.UnlabelledPool(_images(50, 3).images, ratio=3,
                                 threshold=0.5, weight=1.0)
  _, info = finetune.train_classifier(model, variables, train, val, config,
                                      0, pool)
  assert shapes == [(4, 12, 12)] * 3
  assert info['mask_rate'] == 1.0  # Threshold 0.5 with two classes.


def test_confidence_bins_agree_with_the_probability_bins():
  rng = np.random.default_rng(0)
  prob = rng.dirichlet(np.ones(3), 200)
  labels = rng.integers(0, 3, 200)
  a = calibration.reliability_bins(prob, labels, 10)
  b = calibration.confidence_bins(prob.max(1), prob.argmax(1) == labels, 10)
  np.testing.assert_array_equal(a.counts, b.counts)
  np.testing.assert_allclose(a.accuracy, b.accuracy, equal_nan=True)
  assert a.ece == pytest.approx(b.ece)
  with pytest.raises(ValueError, match='confidence'):
    calibration.confidence_bins(prob.max(1), labels[:5] == 0)


def _row(arm, seed, predicted, confidence=(0.9, 0.9, 0.9, 0.9)):
  return {'method': arm, 'budget': 10, 'seed': seed,
          'test_predicted': predicted, 'test_confidence': list(confidence)}


def test_differences_are_paired_accuracy_and_ece_differences():
  labels = np.array([0, 1, 0, 1])
  rows = [_row('supervised', 0, [0, 0, 0, 0]),   # 2 of 4 right.
          _row('supervised', 1, [0, 1, 1, 1]),   # 3 of 4.
          _row('fixmatch', 0, [0, 1, 0, 1], (0.9, 0.9, 1.0, 1.0)),  # 4 of 4.
          _row('fixmatch', 1, [0, 1, 0, 1])]
  accuracy, ece = fixmatch.differences(rows, labels, num_bins=10)
  assert accuracy['method'] == 'fixmatch' and accuracy['budget'] == 10
  assert accuracy['baseline'] == 'supervised'
  assert accuracy['metric'] == 'accuracy' and ece['metric'] == 'ece'
  assert accuracy['mean'] == pytest.approx(((4 - 2) + (4 - 3)) / 8)
  assert accuracy['low'] <= accuracy['mean'] <= accuracy['high']
  # ECE: supervised |0.5 - 0.9| and |0.75 - 0.9| (all in one bin); fixmatch
  # (0.9, 1] holds every prediction: |1 - 0.95| and |1 - 0.9|.
  assert ece['mean'] == pytest.approx(((0.05 - 0.4) + (0.1 - 0.15)) / 2)
  assert ece['low'] <= ece['mean'] <= ece['high']
  table = fixmatch.markdown_table(fixmatch.summarise(
      [dict(r, accuracy=0.5, balanced_accuracy=0.5, roc_auc=0.5, ece=0.1)
       for r in rows]), [accuracy, ece])
  accuracy_table, ece_table = table.split('**Expected calibration error**')
  for part, d in ((accuracy_table, accuracy), (ece_table, ece)):
    header, _, line = part.strip().splitlines()[-3:]
    assert header == '| labels | supervised | fixmatch | fixmatch − supervised |'
    assert line.endswith(f"| {d['mean']:+.3f} [{d['low']:+.3f}, "
                         f"{d['high']:+.3f}] |")


def test_shift_pair_is_added_without_moving_the_other_intervals(
    monkeypatch):
  """fixmatch − fixmatch_shift is compared too, and the intervals against
  supervised training are those computed without that pair."""
  labels = np.array([0, 1, 0, 1, 1, 0])
  rng = np.random.default_rng(1)
  rows = [dict(_row(arm, seed, list(rng.integers(0, 2, 6)),
                    rng.uniform(0.5, 1.0, 6)), budget=budget)
          for budget in (10, 30) for arm in fixmatch.ARMS
          for seed in range(3)]
  diffs = fixmatch.differences(rows, labels)
  assert [(d['method'], d['baseline']) for d in diffs[:6:2]] == list(
      fixmatch.PAIRS)
  monkeypatch.setattr(fixmatch, 'PAIRS', fixmatch.PAIRS[:2])
  assert fixmatch.differences(rows, labels) == [
      d for d in diffs if d['baseline'] == 'supervised']
  correct = lambda arm: ablation.correct_matrix(
      [r for r in rows if r['method'] == arm and r['budget'] == 30], labels)
  drop = [d for d in diffs if d['budget'] == 30 and
          d['baseline'] == 'fixmatch_shift' and d['metric'] == 'accuracy']
  assert drop[0]['mean'] == pytest.approx(
      correct('fixmatch').mean() - correct('fixmatch_shift').mean())
  assert drop[0]['low'] <= drop[0]['mean'] <= drop[0]['high']


def test_resampled_ece_matches_the_binned_ece_of_each_resample():
  """The one-bincount ECE of every bootstrap sample equals ECE computed
  bin by bin on that sample."""
  rng = np.random.default_rng(3)
  confidence = rng.uniform(0.3, 1.0, 80)
  correct = rng.random(80) < confidence
  draw = rng.integers(0, 80, (6, 80))
  fast = calibration.resampled_ece(confidence, correct, draw, 15)
  for r, d in enumerate(draw):
    assert fast[r] == pytest.approx(
        calibration.confidence_bins(confidence[d], correct[d], 15).ece)
  assert calibration.resampled_ece(confidence, correct, np.arange(80), 15)[
      0] == pytest.approx(calibration.confidence_bins(confidence, correct,
                                                      15).ece)


@pytest.mark.parametrize('field, value, message', [
    ('arms', ('supervised', 'mixmatch'), 'config.arms'),
    ('fixmatch.threshold', 0.0, 'config.fixmatch.threshold'),
    ('fixmatch.ratio', 0, 'fixmatch.ratio'),
    ('fixmatch.weight', -1.0, 'config.fixmatch.weight'),
    ('budgets', (0,), 'budget'),
])
def test_bad_fields_are_named(field, value, message):
  config = _config()
  config_lib.set_dotted(config, field, value)
  with pytest.raises(ValueError, match=message):
    fixmatch.validate(config)


@pytest.fixture(scope='module')
def radio_dir(tmp_path_factory):
  """The tiny FR task and both tiny pools, built once."""
  from gzevo_jax.data import build
  path = str(tmp_path_factory.mktemp('tfds'))
  for name in ('synthetic_tiny', 'synthetic_pool_tiny',
               'synthetic_pool_shift_tiny'):
    build.prepare(f'gz_radio/{name}', data_dir=path)
  return path


def test_a_pool_with_other_bands_is_an_error(radio_dir):
  from gzevo_jax.data import build
  build.prepare('gz_rings/synthetic_tiny', data_dir=radio_dir)
  config = _config()
  config.data.data_dir = radio_dir
  config.unlabelled.shift = 'gz_rings/synthetic_tiny'
  with pytest.raises(ValueError, match=r"config.unlabelled.shift="
                     r"'gz_rings/synthetic_tiny' has 3-band images, but the "
                     r"task 'gz_radio/synthetic_tiny' has 1"):
    fixmatch.load_pool(config, 'shift', (32, 32, 1))


def test_the_smoke_experiment_writes_its_table_and_resumes(tmp_path,
                                                          radio_dir,
                                                          monkeypatch):
  config = _config()
  config.data.data_dir = radio_dir
  config.budgets = (20,)
  config.num_seeds = 1
  config.max_epochs = 1
  out = fixmatch.run(config, str(tmp_path))
  assert [(r['method'], r['budget']) for r in out['runs']] == [
      ('supervised', 20), ('fixmatch', 20), ('fixmatch_shift', 20)]
  for row in out['runs']:
    assert 0.0 <= row['ece'] <= 1.0
    assert len(row['test_confidence']) == len(out['test_labels'])
    assert ('mask_rate' in row) == (row['method'] != 'supervised')
  table = (tmp_path / 'fixmatch.md').read_text()
  assert table.startswith('**Test accuracy**\n\n| labels | supervised | '
                          'fixmatch | fixmatch_shift |')
  assert '**Expected calibration error**' in table
  assert table.count('| fixmatch − fixmatch_shift |') == 2
  assert table.count('| 20 |') == 2
  for name in ('reliability.png', 'results.json', 'results.csv'):
    assert (tmp_path / name).stat().st_size > 0

  def no_training(*args, **kwargs):
    raise AssertionError('a finished run was trained again')

  monkeypatch.setattr(finetune, 'train_and_score', no_training)
  again = fixmatch.run(config, str(tmp_path))
  assert again['runs'] == out['runs']

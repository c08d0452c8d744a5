"""FixMatch beside supervised training, at label budgets, with and without
dataset shift: accuracy and calibration (after Slijepcevic et al. 2022).

  python -m gzevo_jax.main --config=configs/fixmatch.py

Arms (`config.arms`), each trained from scratch on the same labelled subset
per (budget, seed), from the same initial weights, with the same optimizer,
augmentation of the labelled images, early stopping and step budget:
  supervised      the labelled images only
  fixmatch        plus FixMatch on the unlabelled pool of the task's own
                  survey (`config.unlabelled.same`)
  fixmatch_shift  plus FixMatch on the pool of the other survey
                  (`config.unlabelled.shift`): the dataset-shift case

FixMatch (Sohn et al. 2020): each step draws `ratio` unlabelled images per
labelled one; a weak view (flip and quarter turn) predicts a pseudo-label,
kept where its probability reaches `threshold`, and a strong view
(`in_memory.strong_augment`) is trained towards it with weight `weight`.

Writes fixmatch.md (test accuracy and expected calibration error per arm and
budget, mean ± std over seeds, and the differences of `PAIRS` in both, with
a paired 95% bootstrap interval over seeds and test sources),
reliability.png (per arm and budget, seeds pooled), results.json and
results.csv.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from absl import logging
import ml_collections
import numpy as np

from gzevo_jax import config_lib
from gzevo_jax.evaluation import ablation
from gzevo_jax.evaluation import budgets as budgets_lib
from gzevo_jax.evaluation import calibration
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import finetune
from gzevo_jax.evaluation import linear_probe
from gzevo_jax.evaluation import probe as probe_lib

ARMS = ('supervised', 'fixmatch', 'fixmatch_shift')
POOL_OF_ARM = {'fixmatch': 'same', 'fixmatch_shift': 'shift'}
# (method, baseline) pairs compared in fixmatch.md: each FixMatch arm
# against supervised training, and the same-survey pool against the
# shifted one (what dataset shift costs).
PAIRS = (('fixmatch', 'supervised'), ('fixmatch_shift', 'supervised'),
         ('fixmatch', 'fixmatch_shift'))
METRICS = ('accuracy', 'balanced_accuracy', 'roc_auc', 'ece')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  budgets_lib.parse_budgets(config.budgets)
  for field in ('num_seeds', 'batch_size', 'max_epochs', 'patience',
                'max_examples', 'min_steps_per_epoch', 'calibration_bins', 'fixmatch.ratio',
                'unlabelled.max_examples'):
    config_lib.check_positive_int(config, field)
  config_lib.check_choice('data.source', config.data.source,
                          config_lib.EVAL_DATA_SOURCES)
  arms = tuple(config.arms)
  if not arms or any(arm not in ARMS for arm in arms):
    raise ValueError(f'config.arms={config.arms!r} must name one or more of '
                     f'{", ".join(ARMS)}')
  if not 0.0 < config.fixmatch.threshold <= 1.0:
    raise ValueError('config.fixmatch.threshold must lie in (0, 1], got '
                     f'{config.fixmatch.threshold}')
  if config.fixmatch.weight < 0:
    raise ValueError('config.fixmatch.weight must be >= 0, got '
                     f'{config.fixmatch.weight}')
  if not 0.0 < config.learning_rate:
    raise ValueError(f'config.learning_rate must be > 0, got '
                     f'{config.learning_rate}')


def _data_config(config: ml_collections.ConfigDict,
                 dataset: str) -> ml_collections.ConfigDict:
  """config.data reading another dataset (an unlabelled pool)."""
  data = ml_collections.ConfigDict(config.data.to_dict())
  data.dataset = dataset
  return data


def load_pool(config: ml_collections.ConfigDict, which: str,
              image_shape: tuple[int, int, int]) -> np.ndarray:
  """Up to `unlabelled.max_examples` uint8 images of a pool's train split,
  resized to the task's images as evaluation resizes any dataset.

  A pool with another number of bands than the task is a ValueError naming
  both datasets.
  """
  from gzevo_jax.data import sources  # TensorFlow, lazily.
  dataset = config.unlabelled[which]
  data = sources.eval_dataset(_data_config(config, dataset))
  if data.bands != image_shape[-1]:
    raise ValueError(f'config.unlabelled.{which}={dataset!r} has '
                     f'{data.bands}-band images, but the task '
                     f'{config.data.dataset!r} has {image_shape[-1]}')
  images = features_lib.load_images(data, 'train', image_shape[0],
                                    config.data.label_key,
                                    config.unlabelled.max_examples).images
  logging.info('unlabelled pool %s (%s): %d images', which, dataset,
               len(images))
  return images


def _pool(config: ml_collections.ConfigDict,
          images: np.ndarray) -> finetune.UnlabelledPool:
  f = config.fixmatch
  return finetune.UnlabelledPool(images, ratio=f.ratio,
                                 threshold=f.threshold, weight=f.weight)


def _train_arm(config: ml_collections.ConfigDict, arm: str,
               model: finetune.Classifier,
               splits: dict[str, features_lib.Images],
               budget_list: list[Optional[int]],
               pool: Optional[finetune.UnlabelledPool],
               workdir: str) -> list[dict[str, Any]]:
  """Every budget x seed of one arm; resumes from workdir/<arm>/progress."""
  progress = finetune.SeedProgress(os.path.join(workdir, arm), config,
                                   ignore=('arms',))
  image_shape = splits['train'].images.shape[1:]
  test_labels = splits['test'].labels

  def train_one(budget: Optional[int], seed: int) -> dict[str, Any]:
    index = budgets_lib.sample_budget(splits['train'].labels, budget, seed)
    variables = finetune.initial_variables(config, model, image_shape, seed)
    row, prob = finetune.train_and_score(model, variables, splits, index,
                                         config, seed, arm, pool)
    row['ece'] = calibration.expected_calibration_error(
        prob, test_labels, config.calibration_bins)
    row['test_confidence'] = [round(float(p), 4) for p in prob.max(axis=1)]
    return row

  return finetune.resumable_runs(progress, budget_list, config.num_seeds,
                                 train_one, arm)


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Mean and spread over seeds per (arm, budget)."""
  out = []
  for arm in ARMS:
    for budget in sorted({r['budget'] for r in rows if r['method'] == arm}):
      group = [r for r in rows if r['method'] == arm and r['budget'] == budget]
      out.append({'method': arm, 'budget': budget,
                  **{m: probe_lib.summarise([r[m] for r in group])
                     for m in METRICS}})
  return out


def _runs(rows: list[dict[str, Any]], arm: str, budget: int) -> list[dict]:
  return sorted((r for r in rows if r['method'] == arm and
                 r['budget'] == budget), key=lambda r: r['seed'])


def differences(rows: list[dict[str, Any]], labels: np.ndarray,
                num_bins: int = 15, seed: int = 0) -> list[dict[str, Any]]:
  """Each pair of `PAIRS` (method minus baseline), per budget, in test
  accuracy (metric 'accuracy') and expected calibration error ('ece',
  `num_bins` bins): the mean over seeds and a paired bootstrap 95% interval
  (same subsets and initial weights per seed, same test sources)."""
  rngs = _random_streams(seed)
  out = []
  for budget in sorted({r['budget'] for r in rows}):
    for arm, baseline in PAIRS:
      runs, base = _runs(rows, arm, budget), _runs(rows, baseline, budget)
      if not base or len(runs) != len(base):
        continue
      pair = {'method': arm, 'baseline': baseline, 'budget': budget}
      out.append({**pair, 'metric': 'accuracy',
                  **ablation.paired_difference(
                      ablation.correct_matrix(runs, labels),
                      ablation.correct_matrix(base, labels),
                      rngs[('accuracy', baseline)])})
      out.append({**pair, 'metric': 'ece',
                  **_ece_difference(runs, base, labels, num_bins,
                                    rngs[('ece', baseline)])})
  return out


def _random_streams(seed: int) -> dict[tuple[str, str], np.random.Generator]:
  """One random stream per (metric, baseline), each drawn from in budget
  order, so the shift pair (added later) leaves the intervals against
  supervised training as they were."""
  baselines = dict.fromkeys(baseline for _, baseline in PAIRS)
  keys = [(metric, b) for b in baselines for metric in ('accuracy', 'ece')]
  return {key: np.random.default_rng(seed if i == 0 else [seed, i])
          for i, key in enumerate(keys)}


def _ece_difference(runs: list[dict], base: list[dict], labels: np.ndarray,
                    num_bins: int, rng: np.random.Generator
                    ) -> dict[str, float]:
  """ECE of `runs` minus `base` (seed-paired), with a bootstrap interval."""
  def ece(row, draw):
    correct = np.asarray(row['test_predicted']) == labels
    return calibration.resampled_ece(row['test_confidence'], correct, draw,
                                     num_bins)

  return ablation.paired_bootstrap(
      lambda draw: np.stack([ece(a, draw) - ece(b, draw)
                             for a, b in zip(runs, base)]),
      (len(base), len(labels)), rng)


def _mean_std(summary: list[dict[str, Any]], arm: str, budget: int,
              metric: str) -> str:
  for row in summary:
    if row['method'] == arm and row['budget'] == budget:
      return f"{row[metric]['mean']:.3f} ± {row[metric]['std']:.3f}"
  return '—'


def _difference(diffs: list[dict[str, Any]], pair: tuple[str, str],
                budget: int, metric: str) -> str:
  for d in diffs:
    if ((d['method'], d['baseline'], d['budget'], d['metric']) ==
        (*pair, budget, metric)):
      return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
  return '—'


def markdown_table(summary: list[dict[str, Any]],
                   diffs: list[dict[str, Any]]) -> str:
  """Two tables, test accuracy then ECE: each arm per budget, and the
  differences of `PAIRS` with intervals."""
  arms = [a for a in ARMS if any(r['method'] == a for r in summary)]
  pairs = [p for p in PAIRS if p[0] in arms and p[1] in arms]
  budgets = sorted({r['budget'] for r in summary})
  tables = []
  for metric, title in (('accuracy', 'Test accuracy'),
                        ('ece', 'Expected calibration error')):
    header = ['labels'] + arms + [f'{a} − {b}' for a, b in pairs]
    lines = [f'**{title}**', '', '| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for budget in budgets:
      cells = ([str(budget)] +
               [_mean_std(summary, a, budget, metric) for a in arms] +
               [_difference(diffs, p, budget, metric) for p in pairs])
      lines.append('| ' + ' | '.join(cells) + ' |')
    tables.append('\n'.join(lines) + '\n')
  return '\n'.join(tables)


def reliability_panels(rows: list[dict[str, Any]], labels: np.ndarray,
                       num_bins: int) -> list[list[tuple]]:
  """(bins, title) per arm (rows) and budget (columns), seeds pooled."""
  panels = []
  for arm in ARMS:
    arm_rows = [r for r in rows if r['method'] == arm]
    if not arm_rows:
      continue
    line = []
    for budget in sorted({r['budget'] for r in arm_rows}):
      runs = _runs(rows, arm, budget)
      confidence = np.concatenate([r['test_confidence'] for r in runs])
      predicted = np.concatenate([r['test_predicted'] for r in runs])
      correct = predicted == np.tile(labels, len(runs))
      bins = calibration.confidence_bins(confidence, correct, num_bins)
      line.append((bins, f'{arm}, {budget} labels'))
    panels.append(line)
  return panels


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Every arm x budget x seed: train, early-stop, score; files to workdir."""
  from gzevo_jax.data import sources  # TensorFlow, lazily.
  validate(config)
  data = sources.eval_dataset(config.data)
  image_size = config.data.image_size or data.feature_shapes['image'][0]
  splits, budget_list = finetune.load_task(data, config, image_size)
  model = finetune.build_classifier(config.model,
                                    finetune.num_classes(splits))
  image_shape = splits['train'].images.shape[1:]
  rows = []
  for arm in config.arms:
    pool = None
    if arm in POOL_OF_ARM:
      pool = _pool(config, load_pool(config, POOL_OF_ARM[arm], image_shape))
    rows += _train_arm(config, arm, model, splits, budget_list, pool, workdir)
  labels = splits['test'].labels
  summary = summarise(rows)
  diffs = differences(rows, labels, config.calibration_bins)
  results = {'config': config.to_dict(), 'image_size': image_size,
             'runs': rows, 'summary': summary, 'differences': diffs,
             'test_labels': [int(v) for v in labels]}
  _write(results, markdown_table(summary, diffs),
         reliability_panels(rows, labels, config.calibration_bins), workdir)
  return results


def _write(results: dict[str, Any], table: str, panels: list[list[tuple]],
           workdir: str) -> None:
  """fixmatch.md, reliability.png, results.json and results.csv."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'fixmatch.md'), 'w') as f:
    f.write(table)
  calibration.plot_reliability_grid(panels,
                                    os.path.join(workdir, 'reliability.png'))
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1, default=float)
  linear_probe.write_summary_csv(os.path.join(workdir, 'results.csv'),
                                 results['summary'], METRICS)
  logging.info('wrote fixmatch.md, reliability.png, results.json and '
               'results.csv to %s', workdir)
  print(table)

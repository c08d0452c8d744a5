"""Linear probe (and kNN) at several label budgets, from any Orbax checkpoint.

  python -m gzevo_jax.main --config=configs/linear_probe.py \
      --config.pretrained_workdir=runs/hybrid

restores the pretrained encoder, extracts frozen features of the downstream
dataset's train, validation and test splits, then for every label budget and
seed: samples that many labelled training galaxies (class balance kept),
fits an L2-regularised logistic regression (regularisation chosen on the
validation split) and a kNN classifier, and scores both on the test split.
Writes results.json, results.csv and label_efficiency.png to the workdir.
"""

from __future__ import annotations

import csv
import json
import os
import time
from typing import Any, Optional, Sequence

from absl import logging
import ml_collections
import numpy as np

from gzevo_jax.evaluation import budgets as budgets_lib
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import knn as knn_lib
from gzevo_jax.evaluation import probe as probe_lib

SPLITS = ('train', 'validation', 'test')
METRICS = ('accuracy', 'balanced_accuracy', 'roc_auc')


def extract_splits(config: ml_collections.ConfigDict
                   ) -> tuple[dict[str, features_lib.Features], dict]:
  """Frozen features of every split, and facts about the checkpoint."""
  extractor = features_lib.load_extractor(config)
  out = {s: extractor.extract(s, (config.data.label_key,)) for s in SPLITS}
  return out, {**extractor.facts(),
               'feature_dim': int(out['train'].features.shape[1])}


def evaluate_budget(splits: dict[str, features_lib.Features],
                    config: ml_collections.ConfigDict, budget: Optional[int],
                    seed: int) -> dict[str, dict[str, float]]:
  """Probe and kNN test metrics with `budget` training labels (one seed)."""
  key = config.data.label_key
  train, val, test = (splits[s] for s in SPLITS)
  index = budgets_lib.sample_budget(train.labels[key], budget, seed)
  x, y = train.features[index], train.labels[key][index]
  probe = probe_lib.fit_probe(x,
                              y,
                              val.features,
                              val.labels[key],
                              c_grid=list(config.probe.c_grid),
                              max_iter=config.probe.max_iter)
  probe_prob = probe.predict_proba(test.features)
  results = {
      'linear_probe': {
          **probe_lib.classification_metrics(test.labels[key], probe_prob),
          'C': float(probe.c),
          'validation_balanced_accuracy': float(probe.val_balanced_accuracy),
          'test_predicted': predicted_classes(probe_prob),
      }
  }
  num_classes = int(max(train.labels[key].max(), test.labels[key].max())) + 1
  k = min(config.knn.k, len(index))
  knn_prob = knn_lib.knn_predict(x,
                                 y,
                                 test.features,
                                 k=k,
                                 temperature=config.knn.temperature,
                                 num_classes=num_classes)
  results['knn'] = {
      **probe_lib.classification_metrics(test.labels[key], knn_prob),
      'test_predicted': predicted_classes(knn_prob)}
  return results


def predicted_classes(prob: np.ndarray) -> list[int]:
  """Each test galaxy's predicted class, kept with the results so that
  differences between arms can be bootstrapped over the same galaxies."""
  return [int(c) for c in np.argmax(np.asarray(prob), axis=1)]


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  features_lib.validate_downstream(config, ('knn.k', 'probe.max_iter'))
  if config.knn.temperature <= 0:
    raise ValueError('config.knn.temperature must be positive, got '
                     f'{config.knn.temperature}')


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """The whole probe: features, every budget x seed, files in `workdir`."""
  validate(config)
  budget_list = budgets_lib.parse_budgets(config.budgets)
  splits, facts = extract_splits(config)
  labels = splits['train'].labels[config.data.label_key]
  for budget in budget_list:  # Fail before any fitting, not halfway.
    budgets_lib.sample_budget(labels, budget, 0)
  rows = []
  for budget in budget_list:
    start = time.perf_counter()
    for seed in range(config.num_seeds):
      for method, metrics in evaluate_budget(splits, config, budget,
                                             seed).items():
        rows.append({
            'budget': budget or len(labels),
            'seed': seed,
            'method': method,
            **metrics
        })
    logging.info('budget %s: %d seeds in %.1f s', budget or 'all',
                 config.num_seeds,
                 time.perf_counter() - start)
  results = {
      'config': config.to_dict(),
      **facts, 'runs': rows,
      'summary': summarise(rows),
      'test_labels': [int(v) for v in
                      splits['test'].labels[config.data.label_key]],
  }
  write_results(results, workdir)
  return results


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Mean and spread over seeds, per (method, budget)."""
  out = []
  for method in sorted({r['method'] for r in rows}):
    for budget in sorted({r['budget'] for r in rows}):
      group = [
          r for r in rows if r['method'] == method and r['budget'] == budget
      ]
      if group:
        out.append({
            'method': method,
            'budget': budget,
            **{
                m: probe_lib.summarise([r[m] for r in group]) for m in METRICS
            }
        })
  return out


def write_summary_csv(path: str, summary: list[dict[str, Any]],
                      metrics: Sequence[str]) -> str:
  """One row per (method, budget): each metric's mean and std over seeds."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['method', 'budget'] +
                    [f'{m}_{s}' for m in metrics for s in ('mean', 'std')])
    for row in summary:
      writer.writerow([row['method'], row['budget']] +
                      [row[m][s] for m in metrics for s in ('mean', 'std')])
  return path


def write_results(results: dict[str, Any], workdir: str) -> list[str]:
  """results.json, results.csv and label_efficiency.png in `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  paths = [
      os.path.join(workdir, name)
      for name in ('results.json', 'results.csv', 'label_efficiency.png')
  ]
  with open(paths[0], 'w') as f:
    json.dump(results, f, indent=1, default=float)
  write_summary_csv(paths[1], results['summary'], METRICS)
  plot_label_efficiency(results['summary'],
                        paths[2],
                        title=f"{results['pretrained_objective']} "
                        f"({results['pretrained_workdir']})")
  for path in paths:
    logging.info('wrote %s', path)
  return paths


def plot_label_efficiency(summary: list[dict[str, Any]],
                          path: str,
                          title: str = '') -> str:
  """Accuracy and ROC AUC against label budget, mean ± std over seeds."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout='constrained')
  for ax, metric in zip(axes, ('accuracy', 'roc_auc')):
    for method in sorted({r['method'] for r in summary}):
      rows = sorted((r for r in summary if r['method'] == method),
                    key=lambda r: r['budget'])
      x = [r['budget'] for r in rows]
      mean = np.array([r[metric]['mean'] for r in rows])
      std = np.array([r[metric]['std'] for r in rows])
      ax.plot(x, mean, marker='o', label=method)
      ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xscale('log')
    ax.set_xlabel('labelled training galaxies')
    ax.set_ylabel(metric.replace('_', ' '))
    ax.grid(alpha=0.3)
  axes[0].legend()
  fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path

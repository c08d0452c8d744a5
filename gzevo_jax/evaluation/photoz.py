"""Photometric redshifts from a pretrained encoder: a ridge probe per budget.

  python -m gzevo_jax.main --config=configs/photoz.py \
      --config.pretrained_workdir=runs/sdss_contrastive

Extracts frozen features of every split of the five-band dataset, then for
each label budget and seed fits a ridge regression (`regression.py`; its
L2 strength picked on the validation split) on a random subset of the
training galaxies' redshifts and scores the test split: normalised bias,
sigma_MAD and outlier rate. Writes results.json, results.csv and
photoz.md (mean ± std over seeds per budget) to the workdir.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

from absl import logging
import ml_collections

from gzevo_jax import config_lib
from gzevo_jax.data import common
from gzevo_jax.evaluation import budgets as budgets_lib
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import probe as probe_lib
from gzevo_jax.evaluation import regression

SPLITS = ('train', 'validation', 'test')
METRICS = ('bias', 'sigma_mad', 'outlier_rate')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  features_lib.validate_downstream(config)
  if not config.ridge.alphas or min(config.ridge.alphas) < 0:
    raise ValueError('config.ridge.alphas must be non-negative L2 strengths, '
                     f'got {config.ridge.alphas}')


def evaluate_budget(splits: dict[str, features_lib.Features], key: str,
                    alphas: tuple[float, ...], budget: int | None,
                    seed: int) -> dict[str, float]:
  """Test photo-z metrics of a ridge probe on `budget` training galaxies."""
  train, val, test = (splits[s] for s in SPLITS)
  index = budgets_lib.sample_subset(train.num_examples, budget, seed)
  fit = regression.fit_ridge_probe(train.features[index],
                                   train.labels[key][index], val.features,
                                   val.labels[key], alphas)
  return {**regression.photoz_metrics(test.labels[key],
                                      fit.predict(test.features)),
          'alpha': fit.alpha}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Mean and spread over seeds of each metric, per budget."""
  return [{'budget': budget,
           **{m: probe_lib.summarise([r[m] for r in rows
                                      if r['budget'] == budget])
              for m in METRICS}}
          for budget in sorted({r['budget'] for r in rows})]


def markdown_table(summary: list[dict[str, Any]]) -> str:
  """Budgets down, the three metrics across, mean ± std over seeds."""
  lines = ['| labels | bias | σ_MAD | outlier rate |', '|---|---|---|---|']
  for row in summary:
    cells = [f'{row[m]["mean"]:.4f} ± {row[m]["std"]:.4f}' for m in METRICS]
    lines.append(f'| {row["budget"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _write(results: dict[str, Any], workdir: str) -> None:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1, default=float)
  with open(os.path.join(workdir, 'results.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, ['budget', 'seed', *METRICS, 'alpha'])
    writer.writeheader()
    writer.writerows(results['runs'])
  with open(os.path.join(workdir, 'photoz.md'), 'w') as f:
    f.write(results['table'])


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Features, every budget x seed, files in `workdir`."""
  validate(config)
  key = config.data.target_key
  budget_list = budgets_lib.parse_budgets(config.budgets)
  extractor = features_lib.load_extractor(config)
  if extractor.data.feature_shapes.get(key, None) != ():
    raise common.DataError(
        f'config.data.target_key={key!r}: {config.data.dataset} has no '
        f'scalar feature {key!r}; it has '
        f'{", ".join(sorted(extractor.data.feature_shapes))}')
  splits = {s: extractor.extract(s, (key,)) for s in SPLITS}
  for budget in budget_list:  # Fail before any fitting, not halfway.
    budgets_lib.sample_subset(splits['train'].num_examples, budget, 0)
  rows = []
  for budget in budget_list:
    for seed in range(config.num_seeds):
      rows.append({'budget': budget or splits['train'].num_examples,
                   'seed': seed,
                   **evaluate_budget(splits, key, tuple(config.ridge.alphas),
                                     budget, seed)})
  summary = summarise(rows)
  results = {'config': config_lib.plain_data(config), **extractor.facts(),
             'runs': rows, 'summary': summary,
             'table': markdown_table(summary)}
  _write(results, workdir)
  logging.info('photo-z (test, mean ± std over seeds):\n%s', results['table'])
  return results

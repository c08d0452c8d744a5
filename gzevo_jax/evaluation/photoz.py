"""Photometric redshifts from a pretrained encoder, per label budget: a
ridge probe of its frozen features, finetuning with a regression head, or
the same network trained from scratch (the direct baseline).

  python -m gzevo_jax.main --config=configs/photoz.py \
      --config.pretrained_workdir=runs/sdss_contrastive          # ridge
  python -m gzevo_jax.main --config=configs/photoz.py:finetune \
      --config.pretrained_workdir=runs/sdss_contrastive
  python -m gzevo_jax.main --config=configs/photoz.py:direct \
      --config.pretrained_workdir=runs/sdss_contrastive
  python -m gzevo_jax.main --config=configs/photoz.py:photometry   # no encoder

`method='ridge'` extracts frozen features of every split of the five-band
dataset, then for each label budget and seed fits a ridge regression
(`regression.py`; its L2 strength picked on the validation split) on a
random subset of the training galaxies' redshifts. `method='finetune'`
trains the encoder plus a one-output head by squared error on the same
subsets, with `finetune.py`'s loop (AdamW, layer-wise lr decay, flips and
quarter turns, early stopping on validation error); `init='scratch'` (the
:direct variant) starts from random weights. `method='photometry'` (no encoder) is the
classic photometric baseline: aperture colours and magnitude of the stored
images (`multiband.photometry`) and a k-nearest-neighbour regressor
(`regression.fit_knn_probe`, k picked on validation). Each way the test
split is scored: normalised bias, sigma_MAD and outlier rate. Writes results.json,
results.csv and photoz.md (mean ± std over seeds per budget).
"""

from __future__ import annotations

import csv
import functools
import json
import os
from typing import Any, Callable

from absl import logging
import ml_collections
import numpy as np

from gzevo_jax import config_lib
from gzevo_jax.data import common
from gzevo_jax.evaluation import budgets as budgets_lib
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import probe as probe_lib
from gzevo_jax.evaluation import regression

SPLITS = ('train', 'validation', 'test')
METRICS = ('bias', 'sigma_mad', 'outlier_rate')


METHODS = ('ridge', 'finetune', 'photometry')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  config_lib.check_choice('method', config.method, METHODS)
  features_lib.validate_downstream(
      config, needs_encoder=config.method != 'photometry')
  if config.method == 'photometry' and (
      not config.knn.ks or min(config.knn.ks) < 1):
    raise ValueError('config.knn.ks must be positive neighbour counts, got '
                     f'{config.knn.ks}')
  if not config.ridge.alphas or min(config.ridge.alphas) < 0:
    raise ValueError('config.ridge.alphas must be non-negative L2 strengths, '
                     f'got {config.ridge.alphas}')
  if config.method == 'finetune':
    from gzevo_jax.evaluation import finetune  # JAX models, lazily.
    finetune.validate(config)


def probe_rows(splits: dict[str, tuple[np.ndarray, np.ndarray]],
               budget_list: list[int | None], num_seeds: int,
               fit_probe: Callable[..., Any], choice: str
               ) -> list[dict[str, Any]]:
  """Test photo-z metrics of a probe per budget x seed.

  `splits` maps each split to (features, redshifts); `fit_probe(train_x,
  train_y, validation_x, validation_y)` fits on a random training subset
  and picks its own setting on validation, recorded as its field `choice`.
  """
  (train_x, train_z), (val_x, val_z), (test_x, test_z) = (
      splits[s] for s in SPLITS)
  for budget in budget_list:  # Fail before any fitting, not halfway.
    budgets_lib.sample_subset(len(train_z), budget, 0)
  rows = []
  for budget in budget_list:
    for seed in range(num_seeds):
      index = budgets_lib.sample_subset(len(train_z), budget, seed)
      fit = fit_probe(train_x[index], train_z[index], val_x, val_z)
      rows.append({'budget': len(index), 'seed': seed,
                   **regression.photoz_metrics(test_z, fit.predict(test_x)),
                   choice: getattr(fit, choice)})
  return rows


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
    writer = csv.DictWriter(f, ['budget', 'seed', *METRICS, 'alpha', 'k'],
                            extrasaction='ignore')
    writer.writeheader()
    writer.writerows(results['runs'])
  with open(os.path.join(workdir, 'photoz.md'), 'w') as f:
    f.write(results['table'])


def check_target(config: ml_collections.ConfigDict,
                 feature_shapes: dict[str, Any]) -> None:
  """The target must be a scalar feature of the dataset."""
  key = config.data.target_key
  if feature_shapes.get(key, None) != ():
    raise common.DataError(
        f'config.data.target_key={key!r}: {config.data.dataset} has no '
        f'scalar feature {key!r}; it has '
        f'{", ".join(sorted(feature_shapes))}')


def _ridge_runs(config: ml_collections.ConfigDict,
                budget_list: list[int | None]
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
  """Ridge probe rows of every budget x seed, and the extraction facts."""
  key = config.data.target_key
  extractor = features_lib.load_extractor(config)
  check_target(config, extractor.data.feature_shapes)
  splits = {}
  for split in SPLITS:
    features = extractor.extract(split, (key,))
    splits[split] = (features.features, features.labels[key])
  fit_probe = functools.partial(regression.fit_ridge_probe,
                                alphas=tuple(config.ridge.alphas))
  return (probe_rows(splits, budget_list, config.num_seeds, fit_probe,
                     'alpha'), extractor.facts())


def _finetune_runs(config: ml_collections.ConfigDict,
                   budget_list: list[int | None], workdir: str
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
  """Finetuned (or, init='scratch', directly trained) regression rows of
  every budget x seed, and what was trained.

  Each finished (budget, seed) is kept in workdir/progress.json, so a
  killed run resumes at the first unfinished one (default scale is hours).
  """
  from gzevo_jax import checkpoint  # JAX, lazily.
  from gzevo_jax.data import sources
  from gzevo_jax.evaluation import finetune
  key = config.data.target_key
  pretrained, _, step = checkpoint.load_config_and_schema(
      config.pretrained_workdir, config.pretrained_step)
  data = sources.eval_dataset(config.data)
  features_lib.check_bands(data, pretrained, config, step)
  check_target(config, dict(data.feature_shapes))
  image_size = config.data.image_size or pretrained.data.image_size
  splits = {s: features_lib.load_images(data, s, image_size, key,
                                        config.max_examples, np.float32)
            for s in SPLITS}
  for budget in budget_list:  # Fail before any training, not halfway.
    budgets_lib.sample_subset(len(splits['train'].labels), budget, 0)
  model = finetune.build_classifier(pretrained.model, 1)
  image_shape = splits['train'].images.shape[1:]

  def train_one(budget: int | None, seed: int) -> dict[str, Any]:
    index = budgets_lib.sample_subset(len(splits['train'].labels), budget,
                                      seed)
    variables = finetune.initial_variables(config, model, image_shape, seed)
    variables, info = finetune.train_classifier(
        model, variables, splits['train'].take(index), splits['validation'],
        config, seed, regression=True)
    predicted = finetune.predict_outputs(model, variables,
                                         splits['test'].images)[:, 0]
    return {'budget': len(index), 'seed': seed,
            **regression.photoz_metrics(splits['test'].labels, predicted),
            **info}

  rows = finetune.resumable_runs(finetune.SeedProgress(workdir, config),
                                 budget_list, config.num_seeds, train_one)
  facts = {'pretrained_workdir': config.pretrained_workdir,
           'pretrained_step': step, 'init': config.init,
           'image_size': image_size}
  return rows, facts


def _photometry_runs(config: ml_collections.ConfigDict,
                     budget_list: list[int | None]
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
  """k-NN rows on aperture photometry of every budget x seed (no encoder),
  and how the images were measured."""
  from gzevo_jax.data import multiband
  from gzevo_jax.data import sources
  key = config.data.target_key
  data = sources.eval_dataset(config.data)
  check_target(config, dict(data.feature_shapes))
  shape = tuple(data.feature_shapes['image'])
  if len(shape) != 3 or shape[-1] != len(multiband.BANDS):
    raise common.DataError(
        f'{config.data.dataset}: photometry needs {len(multiband.BANDS)}-band '
        f'images ({", ".join(multiband.BANDS)}), its images are {shape}')
  if config.data.image_size and config.data.image_size != shape[0]:
    raise ValueError(f'config.data.image_size={config.data.image_size}: '
                     'photometry measures the stored images; leave it unset '
                     f'(they are {shape[0]} px)')
  splits = {}
  for split in SPLITS:
    images = features_lib.load_images(data, split, shape[0], key,
                                      config.max_examples, np.float32)
    splits[split] = (multiband.photometry(images.images), images.labels)
  fit_probe = functools.partial(regression.fit_knn_probe,
                                ks=tuple(config.knn.ks))
  rows = probe_rows(splits, budget_list, config.num_seeds, fit_probe, 'k')
  facts = {'method': 'photometry', 'image_size': shape[0],
           'aperture_radius': multiband.APERTURE_RADIUS,
           'features': 'colours z-i, i-r, r-g, g-u and the r magnitude'}
  return rows, facts


_PROBES = {'ridge': _ridge_runs, 'photometry': _photometry_runs}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Every budget x seed by the configured method; files in `workdir`."""
  validate(config)
  budget_list = budgets_lib.parse_budgets(config.budgets)
  if config.method == 'finetune':
    rows, facts = _finetune_runs(config, budget_list, workdir)
  else:
    rows, facts = _PROBES[config.method](config, budget_list)
  summary = summarise(rows)
  results = {'config': config_lib.plain_data(config), **facts,
             'runs': rows, 'summary': summary,
             'table': markdown_table(summary)}
  _write(results, workdir)
  logging.info('photo-z (test, mean ± std over seeds):\n%s', results['table'])
  return results

"""Finetuning and direct training of a classifier at several label budgets.

  python -m gzevo_jax.main --config=configs/finetune.py \
      --config.pretrained_workdir=runs/hybrid            # finetune
  python -m gzevo_jax.main --config=configs/finetune.py:direct \
      --config.pretrained_workdir=runs/hybrid            # from scratch

The classifier is the pretrained encoder (or, for `init='scratch'`, the same
architecture freshly initialised: the direct-training baseline) plus a linear
head. It trains on a budget of labelled galaxies with AdamW and Zoobot-style
layer-wise learning-rate decay (the head at `learning_rate`, each encoder
stage below it `layer_decay` times slower, the stem slowest), flips and
quarter turns as augmentation, and early stopping on validation loss (the
best epoch's weights are kept). Test metrics per budget and seed go to the
same results.json / results.csv / label_efficiency.png as the linear probe.

The same loop (`train_classifier`) serves two other tasks: with an
`UnlabelledPool` every step is a FixMatch step (`fixmatch.py`), and with
`regression=True` a one-output head learns a float target by squared error
(photo-z finetuning, `photoz.py`).

The downstream split is held in memory as uint8 (`max_examples` caps it), and
training runs on one device, so this suits the synthetic rings and GZ
Rings-sized tasks rather than pod-scale finetuning.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gzevo_jax import checkpoint
from gzevo_jax import config_lib
from gzevo_jax import losses
from gzevo_jax import models
from gzevo_jax import optim
from gzevo_jax.data import in_memory
from gzevo_jax.evaluation import budgets as budgets_lib
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import linear_probe
from gzevo_jax.evaluation import probe as probe_lib

INITS = ('pretrained', 'scratch')


class Classifier(nn.Module):
  """Encoder + linear head."""
  encoder: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, images: jax.Array, train: bool) -> jax.Array:
    features = self.encoder(images, train=train)
    return nn.Dense(self.num_classes, name='head')(features)


_STAGE = re.compile(r'^(stage|downsample)(\d+)')


def layer_depth(top_level_name: str, num_stages: int = 4) -> int:
  """0 for the stem, k for stage k (a downsample into stage k+1 counts as
  k+1), num_stages + 1 for anything above the last stage (final norm, head)."""
  match = _STAGE.match(top_level_name)
  if match:
    return int(match[2]) + (1 if match[1] == 'downsample' else 0)
  return 0 if top_level_name.startswith('stem') else num_stages + 1


def depth_labels(params: Any) -> Any:
  """The depth label ('depth_D') of every parameter of a Classifier."""
  def label(name: str, subtree: Any) -> Any:
    return jax.tree.map(lambda _: f'depth_{layer_depth(name)}', subtree)

  encoder = {k: label(k, v) for k, v in params['encoder'].items()}
  return {'encoder': encoder, 'head': label('head', params['head'])}


def make_optimizer(params: Any, learning_rate: float, layer_decay: float,
                   weight_decay: float, warmup_steps: int,
                   total_steps: int) -> optax.GradientTransformation:
  """AdamW with lr learning_rate * layer_decay ** (top depth - depth)."""
  labels = depth_labels(params)
  depths = sorted({int(x.split('_')[1]) for x in jax.tree.leaves(labels)})
  top = max(depths)
  transforms = {
      f'depth_{d}': optax.adamw(
          optim.learning_rate_schedule(learning_rate * layer_decay**(top - d),
                                       warmup_steps, total_steps),
          weight_decay=weight_decay, mask=optim.decay_mask)
      for d in depths}
  return optax.multi_transform(transforms, labels)


def _to_float(images: np.ndarray) -> jnp.ndarray:
  return jnp.asarray(images, jnp.float32) / 255.0


def training_loss(outputs: jax.Array, labels: jax.Array,
                  regression: bool) -> jax.Array:
  """Cross-entropy of class logits, or (regression, one output) the mean
  squared error."""
  if regression:
    return jnp.mean((outputs[:, 0] - labels)**2)
  return optax.softmax_cross_entropy_with_integer_labels(outputs,
                                                         labels).mean()


@functools.partial(jax.jit, static_argnames=('model', 'tx', 'regression'))
def _train_step(params, batch_stats, opt_state, images, labels, *, model, tx,
                regression=False):
  def loss_fn(p):
    outputs, updates = model.apply({'params': p, 'batch_stats': batch_stats},
                                   images, train=True, mutable=['batch_stats'])
    return training_loss(outputs, labels, regression), updates['batch_stats']

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), batch_stats, opt_state, loss


@dataclasses.dataclass(frozen=True)
class UnlabelledPool:
  """FixMatch's unlabelled stream (Sohn et al. 2020).

  Each step draws `ratio` (mu) unlabelled images per labelled one; the
  weak view's confident (>= `threshold`) predictions are pseudo-labels for
  the strong view, whose loss counts `weight` (lambda_u) times.
  """
  images: np.ndarray   # uint8 [N, H, W, C].
  ratio: int
  threshold: float
  weight: float


@functools.partial(jax.jit,
                   static_argnames=('model', 'tx', 'threshold', 'weight'))
def _fixmatch_step(params, batch_stats, opt_state, images, labels, weak,
                   strong, *, model, tx, threshold, weight):
  """One FixMatch step: labelled, weak and strong views in one forward pass
  (BatchNorm sees all three, as in the reference implementation)."""
  labelled, unlabelled = images.shape[0], weak.shape[0]

  def loss_fn(p):
    logits, updates = model.apply(
        {'params': p, 'batch_stats': batch_stats},
        jnp.concatenate([images, weak, strong]), train=True,
        mutable=['batch_stats'])
    supervised = training_loss(logits[:labelled], labels, regression=False)
    pseudo, mask = losses.fixmatch_unlabelled_loss(
        logits[labelled:labelled + unlabelled],
        logits[labelled + unlabelled:], threshold)
    return supervised + weight * pseudo, (updates['batch_stats'],
                                          jnp.mean(mask))

  (loss, (batch_stats, mask_rate)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return (optax.apply_updates(params, updates), batch_stats, opt_state, loss,
          mask_rate)


@functools.partial(jax.jit, static_argnames=('model',))
def _logits(variables, images, *, model):
  return model.apply(variables, images, train=False)


def predict_outputs(model: Classifier, variables: Any, images: np.ndarray,
                    batch_size: int = 256) -> np.ndarray:
  """The head's outputs [N, outputs], no augmentation."""
  return np.concatenate([
      np.asarray(_logits(variables,
                         _to_float(images[start:start + batch_size]),
                         model=model))
      for start in range(0, len(images), batch_size)])


def predict_proba(model: Classifier, variables: Any, images: np.ndarray,
                  batch_size: int = 256) -> np.ndarray:
  """Softmax probabilities [N, classes], no augmentation."""
  return np.asarray(jax.nn.softmax(
      predict_outputs(model, variables, images, batch_size)))


def validation_loss(model: Classifier, variables: Any,
                    val: features_lib.Images, regression: bool) -> float:
  """What early stopping watches: the validation cross-entropy, or
  (regression) mean squared error."""
  if regression:
    predicted = predict_outputs(model, variables, val.images)[:, 0]
    return float(np.mean((predicted - val.labels)**2))
  prob = predict_proba(model, variables, val.images)
  return float(-np.mean(np.log(np.maximum(
      prob[np.arange(len(val.labels)), val.labels], 1e-12))))


def train_classifier(model: Classifier, variables: Any, train: features_lib.Images,
                     val: features_lib.Images, config: ml_collections.ConfigDict,
                     seed: int, pool: Optional[UnlabelledPool] = None,
                     regression: bool = False
                     ) -> tuple[Any, dict[str, Any]]:
  """Trains with early stopping on validation loss; returns the best weights.

  Runs at most `config.max_epochs` epochs of `len(train) // batch_size`
  steps (at least `min_steps_per_epoch`), stopping after `config.patience`
  epochs without a lower validation loss. With a `pool`, every step is a
  FixMatch step, and the info adds the share of unlabelled images that
  passed the threshold over the run ('mask_rate'). With `regression`, the
  model has one output trained by squared error on float labels.
  """
  if pool is not None and regression:
    raise ValueError('FixMatch needs class labels, not a regression target')
  batch_size = min(config.batch_size, len(train.labels))
  # Small budgets still get `min_steps_per_epoch` steps between validations.
  steps_per_epoch = max(len(train.labels) // batch_size,
                        config.min_steps_per_epoch)
  total = steps_per_epoch * config.max_epochs
  params, batch_stats = variables['params'], variables.get('batch_stats', {})
  tx = make_optimizer(params, config.learning_rate, config.layer_decay,
                      config.weight_decay, steps_per_epoch, total)
  opt_state = tx.init(params)
  rng = np.random.default_rng([seed, 7])
  best = (np.inf, variables, 0)
  mask_rates = []
  for epoch in range(1, config.max_epochs + 1):
    passes = -(-steps_per_epoch * batch_size // len(train.labels))
    order = np.concatenate([rng.permutation(len(train.labels))
                            for _ in range(passes)])
    for step in range(steps_per_epoch):
      index = order[step * batch_size:(step + 1) * batch_size]
      images = _to_float(in_memory.dihedral(train.images[index], rng))
      labels = jnp.asarray(train.labels[index])
      if pool is None:
        params, batch_stats, opt_state, _ = _train_step(
            params, batch_stats, opt_state, images, labels, model=model,
            tx=tx, regression=regression)
        continue
      drawn = pool.images[rng.integers(0, len(pool.images),
                                       pool.ratio * batch_size)]
      params, batch_stats, opt_state, _, mask_rate = _fixmatch_step(
          params, batch_stats, opt_state, images, labels,
          _to_float(in_memory.dihedral(drawn, rng)),
          _to_float(in_memory.strong_augment(drawn, rng)), model=model,
          tx=tx, threshold=pool.threshold, weight=pool.weight)
      mask_rates.append(mask_rate)
    current = {'params': params, 'batch_stats': batch_stats}
    val_loss = validation_loss(model, current, val, regression)
    if val_loss < best[0]:
      best = (val_loss, current, epoch)
    elif epoch - best[2] >= config.patience:
      break
  info = {'best_epoch': best[2], 'epochs': epoch, 'val_loss': best[0]}
  if pool is not None:
    info['mask_rate'] = float(np.mean(jax.device_get(mask_rates)))
  return best[1], info


def initial_variables(config: ml_collections.ConfigDict, model: Classifier,
                       image_shape: tuple[int, int, int], seed: int) -> Any:
  """Pretrained encoder + fresh head, or all fresh ('scratch')."""
  variables = jax.jit(lambda key: model.init(
      key, jnp.zeros((1, *image_shape)), train=False))(
          jax.random.PRNGKey(seed))
  variables = jax.tree.map(np.asarray, variables)
  if config.init == 'pretrained':
    _, pretrained = checkpoint.restore_encoder(config.pretrained_workdir,
                                               config.pretrained_step)
    variables['params']['encoder'] = pretrained['params']
    if pretrained['batch_stats']:
      variables['batch_stats']['encoder'] = pretrained['batch_stats']
  return variables


class SeedProgress:
  """Finished (budget, seed) rows in workdir/progress.json, for resuming.

  Finetuning every budget and seed takes long; a killed run restarts at
  the first unfinished seed. Rows are reused only when the file was written
  with the same config. `record` (optional) is a second copy meant to move
  between machines (the ablation commits it): its config leaves out the
  fields that name this machine's files (config_lib.MACHINE_FIELDS), so it
  is read where workdir has no progress of its own, and must only be shared
  by runs whose pretrained encoder is the same recipe and seed. `ignore`
  names top-level fields that do not change a row (FixMatch's `arms`: one
  arm's rows are reused by a run of several).
  """

  def __init__(self, workdir: str, config: ml_collections.ConfigDict,
               record: Optional[str] = None, ignore: Sequence[str] = ()):
    self.path = os.path.join(workdir, 'progress.json')
    self.record = record
    self.ignore = tuple(ignore)
    self.config = config_lib.plain_data(config)
    self.portable = config_lib.flat_fields(self.config)
    self.rows = (self._load(self.path, self.config) or
                 (self._load(record, self.portable) if record else None) or {})

  def _load(self, path: str,
            config: dict[str, Any]) -> Optional[dict[str, Any]]:
    if not os.path.exists(path):
      return None
    with open(path) as f:
      saved = json.load(f)
    if (self._compared(saved.get('config') or {}) !=
        self._compared(config)):
      logging.info('ignoring %s: written with another config', path)
      return None
    logging.info('resuming %s: %d budget x seed runs done', path,
                 len(saved['rows']))
    return saved['rows']

  def _compared(self, config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in self.ignore}

  @staticmethod
  def _key(budget: Optional[int], seed: int) -> str:
    return f'{budget or "all"}/{seed}'

  def row(self, budget: Optional[int], seed: int) -> Optional[dict[str, Any]]:
    return self.rows.get(self._key(budget, seed))

  def add(self, budget: Optional[int], seed: int, row: dict[str, Any]) -> None:
    self.rows[self._key(budget, seed)] = row
    _write_json(self.path, {'config': self.config, 'rows': self.rows})
    if self.record:
      _write_json(self.record, {'config': self.portable, 'rows': self.rows})


def resumable_runs(progress: SeedProgress, budget_list: list[Optional[int]],
                   num_seeds: int,
                   train_one: Callable[[Optional[int], int], dict[str, Any]],
                   name: str = '') -> list[dict[str, Any]]:
  """The row of every budget x seed, budget-major: from `progress` where an
  earlier (killed) run finished it, else from train_one(budget, seed), kept
  in `progress` at once. Logs each budget's wall time (`name` prefixes it).
  """
  rows = []
  for budget in budget_list:
    start = time.perf_counter()
    for seed in range(num_seeds):
      row = progress.row(budget, seed)
      if row is None:
        row = train_one(budget, seed)
        progress.add(budget, seed, row)
      rows.append(row)
    logging.info('%sbudget %s: %d seeds in %.1f s',
                 f'{name}, ' if name else '', budget or 'all', num_seeds,
                 time.perf_counter() - start)
  return rows


def _write_json(path: str, data: Any) -> None:
  """Writes data to path atomically (a kill leaves the old file or the new)."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  temporary = path + '.tmp'
  with open(temporary, 'w') as f:
    json.dump(data, f, default=float)
  os.replace(temporary, path)


def as_direct_baseline(config: ml_collections.ConfigDict) -> None:
  """The direct-training baseline: the pretrained run's architecture only."""
  config.init = 'scratch'
  config.layer_decay = 1.0  # Nothing to preserve in random weights.


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  features_lib.validate_downstream(
      config, ('batch_size', 'max_epochs', 'patience', 'max_examples',
               'min_steps_per_epoch'))
  if config.init not in INITS:
    raise ValueError(f'config.init={config.init!r} is not valid; choose one '
                     f'of {", ".join(INITS)}')
  if not 0.0 < config.layer_decay <= 1.0:
    raise ValueError('config.layer_decay must lie in (0, 1], got '
                     f'{config.layer_decay}')


def train_and_score(model: Classifier, variables: Any,
                    splits: dict[str, features_lib.Images], index: np.ndarray,
                    config: ml_collections.ConfigDict, seed: int,
                    method: str, pool: Optional[UnlabelledPool] = None
                    ) -> tuple[dict[str, Any], np.ndarray]:
  """One (budget, seed) run: train on `index` (and `pool`), early-stop,
  score on test; (the row, the test class probabilities)."""
  variables, info = train_classifier(model, variables,
                                     splits['train'].take(index),
                                     splits['validation'], config, seed, pool)
  prob = predict_proba(model, variables, splits['test'].images)
  metrics = probe_lib.classification_metrics(splits['test'].labels, prob)
  # The best epoch's validation score: what an experiment may choose by.
  validation = probe_lib.classification_metrics(
      splits['validation'].labels,
      predict_proba(model, variables, splits['validation'].images))
  row = {'budget': len(index), 'seed': seed, 'method': method, **metrics,
         **info,
         'validation_balanced_accuracy': validation['balanced_accuracy'],
         'test_predicted': linear_probe.predicted_classes(prob)}
  return row, prob


def load_task(data: Any, config: ml_collections.ConfigDict, image_size: int
              ) -> tuple[dict[str, features_lib.Images], list[Optional[int]]]:
  """The labelled splits in memory and the budgets, each budget checked
  against the train split before anything trains (not halfway)."""
  splits = {s: features_lib.load_images(data, s, image_size,
                                        config.data.label_key,
                                        config.max_examples)
            for s in linear_probe.SPLITS}
  budget_list = budgets_lib.parse_budgets(config.budgets)
  for budget in budget_list:
    budgets_lib.sample_budget(splits['train'].labels, budget, 0)
  return splits, budget_list


def num_classes(splits: dict[str, features_lib.Images]) -> int:
  """Classes of integer labels 0..C-1 over every split."""
  return int(max(s.labels.max() for s in splits.values())) + 1


def build_classifier(model_config: ml_collections.ConfigDict,
                     num_outputs: int) -> Classifier:
  """The configured encoder plus a head of `num_outputs` (classes, or 1 for
  a regression), for one device (BatchNorm needs no cross-device axis)."""
  encoder = models.build_encoder_from_config(model_config).clone(
      bn_axis_name=None)
  return Classifier(encoder, num_outputs)


def run(config: ml_collections.ConfigDict, workdir: str,
        progress_record: Optional[str] = None) -> dict[str, Any]:
  """Every budget x seed: train, early-stop, score on test; files to workdir.

  progress_record: a machine-independent copy of the per-seed progress
  (see SeedProgress), so that a later sitting elsewhere goes on from it.
  """
  from gzevo_jax.data import sources  # TensorFlow, lazily.
  validate(config)
  pretrained, _, step = checkpoint.load_config_and_schema(
      config.pretrained_workdir, config.pretrained_step)
  data = sources.eval_dataset(config.data)
  features_lib.check_bands(data, pretrained, config, step)
  image_size = config.data.image_size or pretrained.data.image_size
  splits, budget_list = load_task(data, config, image_size)
  model = build_classifier(pretrained.model, num_classes(splits))
  image_shape = splits['train'].images.shape[1:]
  def train_one(budget: Optional[int], seed: int) -> dict[str, Any]:
    index = budgets_lib.sample_budget(splits['train'].labels, budget, seed)
    variables = initial_variables(config, model, image_shape, seed)
    return train_and_score(model, variables, splits, index, config, seed,
                           f'finetune_{config.init}')[0]

  rows = resumable_runs(SeedProgress(workdir, config, progress_record),
                        budget_list, config.num_seeds, train_one)
  results = {'config': config.to_dict(),
             'pretrained_workdir': config.pretrained_workdir,
             'pretrained_step': step,
             'pretrained_objective': pretrained.objective,
             'encoder': pretrained.model.encoder, 'image_size': image_size,
             'runs': rows, 'summary': linear_probe.summarise(rows),
             'test_labels': [int(v) for v in splits['test'].labels]}
  linear_probe.write_results(results, workdir)
  return results


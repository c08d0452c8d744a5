"""Linear probes on frozen features, and the metrics that score them.

A probe is L2-regularised logistic regression (binary or multinomial, lbfgs)
on features standardised with the training subset's statistics, so the
validation and test sets never leak into the fit. The inverse regularisation C
is chosen on the validation set by balanced accuracy, which a majority-class
predictor cannot game when classes are imbalanced.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import warnings

from absl import logging
import numpy as np
from sklearn import exceptions
from sklearn import linear_model
from sklearn import metrics

# Inverse regularisation strengths tried by default: 1e-4 ... 1e2.
DEFAULT_C_GRID = tuple(np.logspace(-4, 2, 7))


@dataclasses.dataclass(frozen=True)
class Probe:
  """A fitted probe: chosen C, train-subset standardisation, and the model."""
  c: float
  mean: np.ndarray  # [D] training-subset feature means.
  std: np.ndarray  # [D] training-subset feature stds; 1 where a feature is flat.
  model: linear_model.LogisticRegression
  val_balanced_accuracy: float
  converged: bool = True  # Whether lbfgs converged within max_iter.

  def predict_proba(self, x: np.ndarray) -> np.ndarray:
    """[N, C] class probabilities; column j is class j."""
    return self.model.predict_proba(_standardise(x, self.mean, self.std))


def _standardise(x: np.ndarray, mean: np.ndarray,
                 std: np.ndarray) -> np.ndarray:
  """(x - mean) / std in float64, which lbfgs converges in reliably."""
  return (np.asarray(x, np.float64) - mean) / std


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
  """Mean recall over the classes present in y_true.

  Classes that are predicted but never true are left out of the mean (they have
  no recall), which is what sklearn's balanced_accuracy_score does too, but
  without its warning.
  """
  present = np.unique(y_true)
  return float(
      np.mean(metrics.recall_score(y_true, y_pred, labels=present,
                                   average=None)))


def _check_features_labels(x: np.ndarray, y: np.ndarray,
                           name: str) -> tuple[np.ndarray, np.ndarray]:
  """Returns ([N, D] features, [N] int labels), or raises naming the split."""
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim != 2 or y.shape != x.shape[:1] or not x.shape[0]:
    raise ValueError(f'{name} features must be [N, D] and labels [N] with '
                     f'N > 0; got {x.shape} and {y.shape}.')
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f'{name} labels must be integers; got {y.dtype}.')
  return x, y


def _check_probe_splits(train_x: np.ndarray, train_y: np.ndarray,
                        val_x: np.ndarray, val_y: np.ndarray) -> None:
  """Raises ValueError unless the splits' feature sizes and classes agree.

  The training labels must cover 0..K-1 (K >= 2), so that probability column
  j is class j, and the validation labels must lie in that range.
  """
  if val_x.shape[1] != train_x.shape[1]:
    raise ValueError(f'train and validation feature sizes differ: '
                     f'{train_x.shape[1]} vs {val_x.shape[1]}.')
  num_classes = int(train_y.max()) + 1
  if num_classes < 2 or not np.array_equal(np.unique(train_y),
                                           np.arange(num_classes)):
    raise ValueError(f'train labels must cover 0..K-1 with K >= 2; got '
                     f'classes {np.unique(train_y).tolist()}.')
  if val_y.min() < 0 or val_y.max() >= num_classes:
    raise ValueError(f'validation labels must lie in 0..{num_classes - 1}; '
                     f'got {np.unique(val_y).tolist()}.')


def fit_probe(train_x: np.ndarray,
              train_y: np.ndarray,
              val_x: np.ndarray,
              val_y: np.ndarray,
              c_grid: Sequence[float] = DEFAULT_C_GRID,
              max_iter: int = 1000) -> Probe:
  """Fits a logistic-regression probe, choosing C by validation balanced accuracy.

  Each C is fitted on the training subset only; the C with the highest
  validation balanced accuracy wins, ties going to the smaller C (stronger
  regularisation). The returned model is the one fitted at that C (no refit on
  train + val).

  Args:
    train_x: [N, D] training features.
    train_y: [N] labels in 0..K-1 with every class present (as
      `budgets.sample_budget` guarantees), so probability column j is class j.
    val_x: [M, D] validation features.
    val_y: [M] validation labels in 0..K-1.
    c_grid: positive inverse regularisation strengths to try.
    max_iter: lbfgs iteration cap per fit.

  Returns:
    The fitted Probe.
  """
  train_x, train_y = _check_features_labels(train_x, train_y, 'train')
  val_x, val_y = _check_features_labels(val_x, val_y, 'validation')
  _check_probe_splits(train_x, train_y, val_x, val_y)
  c_values = sorted(float(c) for c in c_grid)
  if not c_values or c_values[0] <= 0:
    raise ValueError(f'c_grid must be non-empty and positive; got {c_grid!r}.')

  train64 = np.asarray(train_x, np.float64)
  mean, std = train64.mean(axis=0), train64.std(axis=0)
  # A flat feature (common at tiny budgets) carries no signal: leave it at 0
  # rather than divide by 0.
  std = np.where(std > 0, std, 1.0)
  train_z = _standardise(train64, mean, std)
  val_z = _standardise(val_x, mean, std)

  best = None
  for c in c_values:  # Ascending, so a strict > keeps the smaller C on ties.
    model, converged = _fit_lbfgs(train_z, train_y, c, max_iter)
    score = _balanced_accuracy(val_y, model.predict(val_z))
    if best is None or score > best.val_balanced_accuracy:
      best = Probe(c=c,
                   mean=mean,
                   std=std,
                   model=model,
                   val_balanced_accuracy=score,
                   converged=converged)
  if not best.converged:
    logging.warning('probe: lbfgs did not converge in max_iter=%d at the '
                    'chosen C=%g; a larger max_iter may change the probe',
                    max_iter, best.c)
  return best


def _fit_lbfgs(x: np.ndarray, y: np.ndarray, c: float,
               max_iter: int) -> tuple[linear_model.LogisticRegression, bool]:
  """One fit at C, and whether lbfgs converged.

  At large C on (nearly) separable features the optimum lies at infinite
  weights, so hitting max_iter there is expected; `fit_probe` reports it
  only for the chosen C, instead of one sklearn warning per fit.
  """
  model = linear_model.LogisticRegression(C=c, solver='lbfgs',
                                          max_iter=max_iter)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always', exceptions.ConvergenceWarning)
    model.fit(x, y)
  converged = True
  for w in caught:  # Pass on every other warning.
    if issubclass(w.category, exceptions.ConvergenceWarning):
      converged = False
    else:
      warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
  return model, converged


def classification_metrics(y_true: np.ndarray,
                           prob: np.ndarray) -> dict[str, float]:
  """Accuracy, balanced accuracy and ROC AUC of class probabilities.

  Args:
    y_true: [N] labels in 0..C-1.
    prob: [N, C] scores; column j is class j, prediction is the argmax.

  Returns:
    accuracy; balanced_accuracy (mean recall over the classes in y_true);
    roc_auc: binary (C = 2) the AUC of prob[:, 1], multiclass the macro mean
    over classes in y_true of each class's one-vs-rest AUC. NaN when y_true has
    a single class, where AUC is undefined.
  """
  y_true, prob = np.asarray(y_true), np.asarray(prob)
  if prob.ndim != 2 or y_true.shape != prob.shape[:1] or not y_true.size:
    raise ValueError(f'y_true must be [N] and prob [N, C] with N > 0; got '
                     f'{y_true.shape} and {prob.shape}.')
  if y_true.min() < 0 or y_true.max() >= prob.shape[1]:
    raise ValueError(f'labels must lie in 0..{prob.shape[1] - 1}; got '
                     f'{np.unique(y_true).tolist()}.')
  y_pred = prob.argmax(axis=1)
  present = np.unique(y_true)
  if present.size < 2:
    roc_auc = float('nan')
  elif prob.shape[1] == 2:
    roc_auc = metrics.roc_auc_score(y_true, prob[:, 1])
  else:
    roc_auc = np.mean(
        [metrics.roc_auc_score(y_true == c, prob[:, c]) for c in present])
  return {
      'accuracy': float(metrics.accuracy_score(y_true, y_pred)),
      'balanced_accuracy': _balanced_accuracy(y_true, y_pred),
      'roc_auc': float(roc_auc),
  }


def summarise(values: Sequence[float]) -> dict[str, float]:
  """Mean, population std (ddof=0), min, max and count over seeds.

  NaNs (e.g. an undefined AUC) are ignored, as np.nanmean would, and n counts
  only the rest; if every value is NaN, each statistic is NaN and n is 0.
  """
  values = np.asarray(values, np.float64).ravel()
  kept = values[~np.isnan(values)]
  if not kept.size:
    nan = float('nan')
    return {'mean': nan, 'std': nan, 'min': nan, 'max': nan, 'n': 0}
  return {
      'mean': float(np.mean(kept)),
      'std': float(np.std(kept)),
      'min': float(np.min(kept)),
      'max': float(np.max(kept)),
      'n': int(kept.size),
  }

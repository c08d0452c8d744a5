"""Regression from frozen features: a ridge probe and photo-z metrics.

For photometric redshifts (Hayat et al. 2021 and most photo-z work), with
Δz = (z_pred - z_true) / (1 + z_true):

  bias          mean of Δz (the normalised bias)
  sigma_mad     1.4826 x median |Δz - median Δz| (the robust scatter; 1.4826
                makes it the standard deviation for Gaussian Δz)
  outlier_rate  share of galaxies with |Δz| > 0.15

The ridge probe standardises the features with the training split's mean
and standard deviation, fits an intercept and weights in closed form for
each L2 strength, and keeps the strength with the lowest validation mean
squared Δz (validation, never test).

The k-nearest-neighbour probe is the classic photometric photo-z (e.g.
Beck et al. 2016 for SDSS): the mean redshift of the k training galaxies
nearest in standardised photometry, k picked the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from sklearn import neighbors

OUTLIER_THRESHOLD = 0.15
_MAD_TO_SIGMA = 1.4826


def photoz_metrics(z_true: np.ndarray, z_pred: np.ndarray) -> dict[str, float]:
  """Normalised bias, sigma_MAD and outlier rate of Δz = Δ/(1 + z_true)."""
  z_true = np.asarray(z_true, np.float64)
  z_pred = np.asarray(z_pred, np.float64)
  if z_true.shape != z_pred.shape or z_true.ndim != 1 or not len(z_true):
    raise ValueError(f'need two equal-length 1-D arrays, got {z_true.shape} '
                     f'and {z_pred.shape}')
  dz = (z_pred - z_true) / (1.0 + z_true)
  return {'bias': float(dz.mean()),
          'sigma_mad': float(_MAD_TO_SIGMA * np.median(
              np.abs(dz - np.median(dz)))),
          'outlier_rate': float(np.mean(np.abs(dz) > OUTLIER_THRESHOLD))}


@dataclasses.dataclass(frozen=True)
class RidgeFit:
  """A fitted ridge probe: predicts y from raw features."""
  mean: np.ndarray
  scale: np.ndarray
  weights: np.ndarray
  intercept: float
  alpha: float

  def predict(self, x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, np.float64) - self.mean) / self.scale
            ) @ self.weights + self.intercept


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> RidgeFit:
  """Ridge regression on standardised features, intercept unpenalised:
  argmin |y - b - x_s w|^2 + alpha |w|^2, solved exactly."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.ndim != 2 or y.shape != (len(x),) or len(x) < 2:
    raise ValueError(f'need features [n, d] and targets [n], n >= 2; got '
                     f'{x.shape} and {y.shape}')
  mean, scale = _standardiser(x)
  xs = (x - mean) / scale
  intercept = y.mean()
  gram = xs.T @ xs + alpha * np.eye(xs.shape[1])
  weights = np.linalg.solve(gram, xs.T @ (y - intercept))
  return RidgeFit(mean, scale, weights, float(intercept), float(alpha))


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The training features' mean and standard deviation (1 where flat)."""
  std = x.std(axis=0)
  return x.mean(axis=0), np.where(std > 0, std, 1.0)


def _mean_squared_dz(z_true: np.ndarray, z_pred: np.ndarray) -> float:
  return float(np.mean(((z_pred - z_true) / (1.0 + z_true))**2))


def _best_on_validation(fits: list, validation_x: np.ndarray,
                        validation_y: np.ndarray):
  """The fit with the lowest validation mean squared Δz (first of equals)."""
  losses = [_mean_squared_dz(np.asarray(validation_y, np.float64),
                             f.predict(validation_x)) for f in fits]
  return fits[int(np.argmin(losses))]


def fit_ridge_probe(train_x: np.ndarray, train_y: np.ndarray,
                    validation_x: np.ndarray, validation_y: np.ndarray,
                    alphas: Sequence[float]) -> RidgeFit:
  """The ridge fit whose L2 strength has the lowest validation mean
  squared Δz (first of equals)."""
  if not alphas or min(alphas) < 0:
    raise ValueError(f'alphas must be non-negative, got {alphas}')
  return _best_on_validation([fit_ridge(train_x, train_y, a) for a in alphas],
                             validation_x, validation_y)


@dataclasses.dataclass(frozen=True)
class KnnFit:
  """A fitted k-nearest-neighbour regressor on standardised features."""
  mean: np.ndarray
  scale: np.ndarray
  model: neighbors.KNeighborsRegressor
  k: int

  def predict(self, x: np.ndarray) -> np.ndarray:
    return self.model.predict((np.asarray(x, np.float64) - self.mean) /
                              self.scale)


def fit_knn_probe(train_x: np.ndarray, train_y: np.ndarray,
                  validation_x: np.ndarray, validation_y: np.ndarray,
                  ks: Sequence[int]) -> KnnFit:
  """The k-NN mean regressor whose k (those <= the training size) has the
  lowest validation mean squared Δz (first of equals)."""
  x = np.asarray(train_x, np.float64)
  usable = [k for k in ks if 1 <= k <= len(x)]
  if not usable:
    raise ValueError(f'no k in {tuple(ks)} fits {len(x)} training examples')
  mean, scale = _standardiser(x)
  y = np.asarray(train_y, np.float64)
  fits = [KnnFit(mean, scale, neighbors.KNeighborsRegressor(k).fit(
      (x - mean) / scale, y), k) for k in usable]
  return _best_on_validation(fits, validation_x, validation_y)

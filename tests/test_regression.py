"""The ridge probe and photo-z metrics, against hand computations and
scikit-learn."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from gzevo_jax.evaluation import regression


def test_photoz_metrics_by_hand():
  z_true = np.array([0.0, 0.1, 0.2, 0.5, 1.0])
  z_pred = np.array([0.01, 0.1, 0.35, 0.5, 0.75])
  dz = np.array([0.01, 0.0, 0.125, 0.0, -0.125])
  metrics = regression.photoz_metrics(z_true, z_pred)
  assert metrics['bias'] == pytest.approx(0.002)
  # median Δz = 0; |Δz - 0| = 0.01, 0, 0.125, 0, 0.125 -> median 0.01.
  assert metrics['sigma_mad'] == pytest.approx(1.4826 * 0.01)
  assert metrics['outlier_rate'] == 0.0
  z_pred[4] = 0.6  # Δz = -0.2: an outlier.
  assert regression.photoz_metrics(z_true, z_pred)['outlier_rate'] == 0.2
  np.testing.assert_allclose(dz[:4], (z_pred - z_true)[:4] /
                             (1 + z_true[:4]), atol=1e-12)


def test_sigma_mad_is_the_standard_deviation_for_gaussian_scatter():
  rng = np.random.default_rng(0)
  z_true = rng.uniform(0.0, 0.5, 200_000)
  z_pred = z_true + 0.03 * (1 + z_true) * rng.standard_normal(z_true.shape)
  metrics = regression.photoz_metrics(z_true, z_pred)
  assert metrics['sigma_mad'] == pytest.approx(0.03, rel=0.01)
  assert abs(metrics['bias']) < 1e-3


def test_bad_metric_inputs_are_errors():
  with pytest.raises(ValueError, match='equal-length'):
    regression.photoz_metrics(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize('alpha', [0.0, 0.5, 30.0])
def test_ridge_matches_scikit_learn_on_standardised_features(alpha):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(80, 6)) * [1, 2, 3, 0.5, 10, 1] + 4.0
  y = x @ rng.normal(size=6) + 0.3 * rng.standard_normal(80) + 2.0
  fit = regression.fit_ridge(x, y, alpha)
  xs = (x - x.mean(0)) / x.std(0)
  reference = Ridge(alpha=alpha).fit(xs, y)
  np.testing.assert_allclose(fit.weights, reference.coef_, rtol=1e-6,
                             atol=1e-9)
  assert fit.intercept == pytest.approx(reference.intercept_)
  np.testing.assert_allclose(fit.predict(x[:5]), reference.predict(xs[:5]))


def test_the_probe_picks_the_strength_on_validation():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(300, 5))
  z = 0.3 + x @ np.array([0.05, -0.02, 0.03, 0.0, 0.01])  # Exactly linear.
  alphas = (1e-6, 1.0, 1e6)
  fit = regression.fit_ridge_probe(x[:100], z[:100], x[100:200], z[100:200],
                                   alphas)
  assert fit.alpha == 1e-6  # The least shrinkage fits the line best.
  assert regression.photoz_metrics(z[200:], fit.predict(x[200:]))[
      'sigma_mad'] < 1e-6
  # Validation targets with no relation to the features: the flattest fit
  # (the training mean) is the best there, whatever training says.
  flat = np.full(100, z[:100].mean())
  assert regression.fit_ridge_probe(x[:100], z[:100], x[100:200], flat,
                                    alphas).alpha == 1e6
  with pytest.raises(ValueError, match='non-negative'):
    regression.fit_ridge_probe(x, z, x, z, alphas=(-1.0,))


def _knn_by_hand(train_x, train_y, x, k):
  """Mean target of the k nearest (standardised Euclidean) training rows."""
  mean, scale = train_x.mean(0), train_x.std(0)
  a, b = (train_x - mean) / scale, (x - mean) / scale
  distance = ((b[:, None, :] - a[None, :, :])**2).sum(-1)
  return train_y[np.argsort(distance, axis=1)[:, :k]].mean(1)


def test_the_knn_probe_picks_k_on_validation_and_averages_neighbours():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 3)) * [1.0, 10.0, 0.1]  # Unequal scales.
  y = 0.2 + 0.05 * np.tanh(x[:, 0] + x[:, 1] / 10) + 0.01 * rng.normal(
      size=300)
  train, val, test = slice(0, 200), slice(200, 250), slice(250, 300)
  fit = regression.fit_knn_probe(x[train], y[train], x[val], y[val],
                                 (1, 5, 20, 500))
  losses = {k: np.mean(((_knn_by_hand(x[train], y[train], x[val], k) -
                         y[val]) / (1 + y[val]))**2) for k in (1, 5, 20)}
  assert fit.k == min(losses, key=losses.get)  # 500 > 200 rows: skipped.
  np.testing.assert_allclose(fit.predict(x[test]),
                             _knn_by_hand(x[train], y[train], x[test],
                                          fit.k), rtol=1e-10)
  with pytest.raises(ValueError, match=r'no k in \(500,\) fits 200'):
    regression.fit_knn_probe(x[train], y[train], x[val], y[val], (500,))

"""Evaluation numerics against independent references: numpy, scipy, by hand."""

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats

from gzevo_jax.evaluation import budgets
from gzevo_jax.evaluation import knn
from gzevo_jax.evaluation import probe

# Class sizes of an imbalanced labelled set (a rare 4th class, like rings).
CLASS_SIZES = (700, 200, 90, 10)


def _imbalanced_labels(seed=0):
  labels = np.repeat(np.arange(len(CLASS_SIZES)), CLASS_SIZES)
  return np.random.default_rng(seed).permutation(labels)


# ----------------------------------------------------------------- budgets


@pytest.mark.parametrize('budget', [10, 37, 100, 333, 999, 1000])
def test_budget_size_and_class_proportions(budget):
  labels = _imbalanced_labels()
  idx = budgets.sample_budget(labels, budget, seed=3)
  assert idx.size == budget
  assert np.unique(idx).size == budget
  assert idx.min() >= 0 and idx.max() < labels.size
  counts = np.bincount(labels[idx], minlength=len(CLASS_SIZES))
  ideal = budget * np.array(CLASS_SIZES) / labels.size
  assert np.all(np.abs(counts - ideal) <= 1), (counts, ideal)
  assert np.all(counts >= 1)


def test_budget_equal_to_num_classes_gives_one_each():
  labels = _imbalanced_labels()
  idx = budgets.sample_budget(labels, len(CLASS_SIZES), seed=0)
  np.testing.assert_array_equal(np.sort(labels[idx]), np.arange(4))


def test_budget_largest_remainder_rounding():
  # Shares 0.5/0.3/0.2 of 7 -> ideals 3.5/2.1/1.4: floors 3/2/1, the one left
  # goes to the largest remainder (class 0).
  labels = np.repeat([0, 1, 2], [50, 30, 20])
  idx = budgets.sample_budget(labels, 7, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[idx]), [4, 2, 1])


def test_budget_seeds():
  labels = _imbalanced_labels()
  a = budgets.sample_budget(labels, 100, seed=0)
  np.testing.assert_array_equal(a, budgets.sample_budget(labels, 100, seed=0))
  assert not np.array_equal(a, budgets.sample_budget(labels, 100, seed=1))


def test_budget_all():
  labels = _imbalanced_labels()
  np.testing.assert_array_equal(budgets.sample_budget(labels, None, seed=0),
                                np.arange(labels.size))


def test_budget_errors():
  labels = _imbalanced_labels()
  with pytest.raises(budgets.BudgetError, match=r'1001.*1000.*all'):
    budgets.sample_budget(labels, 1001, seed=0)
  assert issubclass(budgets.BudgetError, ValueError)
  with pytest.raises(budgets.BudgetError, match=r'3 .*4 classes'):
    budgets.sample_budget(labels, 3, seed=0)
  for bad in (0, -5, 2.5, True):
    with pytest.raises(ValueError, match='positive integer'):
      budgets.sample_budget(labels, bad, seed=0)
  with pytest.raises(ValueError, match='1-D integer'):
    budgets.sample_budget(labels.astype(float), 10, seed=0)


def test_parse_budgets():
  assert budgets.parse_budgets([10, 'all', np.int64(100)]) == [10, None, 100]
  for bad in (0, -5, 2.5, '10', 'ALL', True, None):
    with pytest.raises(ValueError, match=repr(bad).replace('.', r'\.')):
      budgets.parse_budgets([10, bad])
  with pytest.raises(ValueError, match='non-empty'):
    budgets.parse_budgets([])
  with pytest.raises(ValueError, match='non-empty'):
    budgets.parse_budgets('all')


# ------------------------------------------------------------------- probe


def _hyperplane_data(rng, n, dim=20, flip=0.05):
  """Gaussian features; labels from a fixed hyperplane, a fraction flipped."""
  w = np.linspace(-1.0, 2.0, dim)
  x = rng.normal(size=(n, dim)).astype(np.float32) * np.linspace(0.5, 5, dim)
  y = (x @ w > 0.3).astype(np.int64)
  flipped = rng.random(n) < flip
  return x, np.where(flipped, 1 - y, y)


def test_probe_finds_hyperplane():
  rng = np.random.default_rng(0)
  (tx, ty), (vx,
             vy), (sx,
                   sy) = (_hyperplane_data(rng, n) for n in (1000, 500, 2000))
  fitted = probe.fit_probe(tx, ty, vx, vy, probe.DEFAULT_C_GRID)
  got = probe.classification_metrics(sy, fitted.predict_proba(sx))
  # Bayes rate is 0.95 (5% of labels flipped); chance is ~0.5.
  assert got['accuracy'] > 0.9
  assert got['balanced_accuracy'] > 0.9
  assert got['roc_auc'] > 0.9
  assert fitted.c in probe.DEFAULT_C_GRID


def test_probe_finds_multiclass_linear_structure():
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(4, 16)) * 3

  def draw(n):
    y = rng.integers(0, 4, n)
    return (centres[y] + rng.normal(size=(n, 16))).astype(np.float32), y

  (tx, ty), (vx, vy), (sx, sy) = draw(400), draw(200), draw(1000)
  c_grid = (0.01, 1.0, 100.0)
  fitted = probe.fit_probe(tx, ty, vx, vy, c_grid)
  prob = fitted.predict_proba(sx)
  assert prob.shape == (1000, 4)
  np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-6)
  assert probe.classification_metrics(sy, prob)['accuracy'] > 0.9
  assert fitted.c in c_grid


def test_probe_random_labels_stay_at_chance():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(4000, 20)).astype(np.float32)
  y = rng.integers(0, 2, 4000)
  fitted = probe.fit_probe(x[:1000], y[:1000], x[1000:2000], y[1000:2000])
  got = probe.classification_metrics(y[2000:], fitted.predict_proba(x[2000:]))
  # 2000 test examples: chance 0.5 with a standard error of ~0.011.
  assert 0.44 < got['accuracy'] < 0.56
  assert 0.44 < got['roc_auc'] < 0.56


def test_probe_ties_choose_strongest_regularisation():
  # Flat features: every C fits the same intercept-only model, so every C ties
  # on validation, and the smallest C must win whatever the grid's order.
  x = np.ones((40, 3), np.float32)
  y = np.tile([0, 0, 1], 14)[:40]
  fitted = probe.fit_probe(x, y, x, y, c_grid=(10.0, 0.1, 1.0))
  assert fitted.c == 0.1
  assert np.all(np.isfinite(fitted.predict_proba(x)))


def test_probe_standardises_with_train_statistics_only():
  rng = np.random.default_rng(3)
  tx, ty = _hyperplane_data(rng, 300, dim=5)
  vx, vy = _hyperplane_data(rng, 100, dim=5)
  scaled_vx = vx.copy()
  scaled_vx[:, 2] *= 1000.0
  fitted = probe.fit_probe(tx, ty, vx, vy, (1.0,))
  fitted_scaled_val = probe.fit_probe(tx, ty, scaled_vx, vy, (1.0,))
  np.testing.assert_allclose(fitted.mean, tx.astype(np.float64).mean(0))
  np.testing.assert_allclose(fitted.std, tx.astype(np.float64).std(0))
  np.testing.assert_array_equal(fitted_scaled_val.mean, fitted.mean)
  np.testing.assert_array_equal(fitted_scaled_val.std, fitted.std)
  # And predictions apply exactly that standardisation to new features.
  new_x = rng.normal(size=(7, 5))
  logit = ((new_x - fitted.mean) / fitted.std @ fitted.model.coef_[0] +
           fitted.model.intercept_[0])
  np.testing.assert_allclose(fitted.predict_proba(new_x)[:, 1],
                             1 / (1 + np.exp(-logit)),
                             rtol=1e-10)


# ----------------------------------------------------------------- metrics


def test_metrics_by_hand_binary():
  y = np.array([0, 0, 0, 1, 1])
  p1 = np.array([0.1, 0.4, 0.6, 0.3, 0.8])
  got = probe.classification_metrics(y, np.stack([1 - p1, p1], axis=1))
  # Predictions 0,0,1,0,1: 3 of 5 right; recalls 2/3 and 1/2; positive scores
  # beat 4 of the 6 (positive, negative) pairs.
  assert got['accuracy'] == pytest.approx(3 / 5)
  assert got['balanced_accuracy'] == pytest.approx((2 / 3 + 1 / 2) / 2)
  assert got['roc_auc'] == pytest.approx(4 / 6)


def _pair_count_auc(pos, neg):
  """P(score_pos > score_neg) + P(tie) / 2 by explicit pair counting."""
  diff = pos[:, None] - neg[None, :]
  return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_metrics_multiclass_against_numpy_and_mann_whitney():
  rng = np.random.default_rng(4)
  y = rng.integers(0, 4, 300)
  prob = rng.dirichlet(np.ones(4), 300)
  prob[np.arange(300), y] += 0.2  # Better than chance, not perfect.
  prob /= prob.sum(axis=1, keepdims=True)
  got = probe.classification_metrics(y, prob)
  pred = prob.argmax(1)
  recalls = [np.mean(pred[y == c] == c) for c in range(4)]
  aucs = []
  for c in range(4):
    pos, neg = prob[y == c, c], prob[y != c, c]
    u = stats.mannwhitneyu(pos, neg, alternative='two-sided').statistic
    aucs.append(u / (pos.size * neg.size))
    assert aucs[-1] == pytest.approx(_pair_count_auc(pos, neg))
  assert got['accuracy'] == pytest.approx(np.mean(pred == y))
  assert got['balanced_accuracy'] == pytest.approx(np.mean(recalls))
  assert got['roc_auc'] == pytest.approx(np.mean(aucs))
  assert 0.5 < got['roc_auc'] < 1.0


def test_metrics_single_class_auc_is_nan():
  got = probe.classification_metrics(
      np.array([1, 1, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
  assert np.isnan(got['roc_auc'])
  assert got['accuracy'] == pytest.approx(2 / 3)
  assert got['balanced_accuracy'] == pytest.approx(2 / 3)


def test_summarise_ignores_nan():
  got = probe.summarise([1.0, 2.0, float('nan'), 3.0])
  assert got == pytest.approx({
      'mean': 2.0,
      'std': np.sqrt(2 / 3),
      'min': 1.0,
      'max': 3.0,
      'n': 3
  })
  empty = probe.summarise([float('nan')])
  assert empty['n'] == 0 and np.isnan(empty['mean'])


# --------------------------------------------------------------------- kNN


def _reference_knn(train, labels, queries, k, temperature, num_classes):
  """Loop-per-query float64 weighted kNN; also the k-th/(k+1)-th sim gap."""
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  out = np.zeros((len(queries), num_classes))
  min_gap = np.inf
  for i, q in enumerate(queries):
    sims = train @ (q / np.linalg.norm(q))
    order = np.argsort(-sims)
    if k < len(sims):
      min_gap = min(min_gap, sims[order[k - 1]] - sims[order[k]])
    for j in order[:k]:
      out[i, labels[j]] += np.exp(sims[j] / temperature)
  return out / out.sum(axis=1, keepdims=True), min_gap


@pytest.mark.parametrize('k,temperature',
                         list(itertools.product((1, 5, 20), (0.07, 0.5, 10.0))))
def test_knn_matches_brute_force(k, temperature):
  rng = np.random.default_rng(k)
  train = rng.normal(size=(200, 16)) * rng.uniform(0.1, 10, (200, 1))
  labels = rng.integers(0, 3, 200)
  queries = rng.normal(size=(30, 16))
  want, gap = _reference_knn(train, labels, queries, k, temperature, 3)
  assert gap > 1e-5  # No near-ties at the k-th neighbour: the answer is unique.
  got = knn.knn_predict(train.astype(np.float32),
                        labels,
                        queries.astype(np.float32),
                        k=k,
                        temperature=temperature,
                        num_classes=3)
  assert got.shape == (30, 3) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, atol=2e-5)
  if k == 1:  # A single neighbour: a one-hot vote.
    np.testing.assert_array_equal(got.max(axis=1), 1.0)


def test_knn_small_temperature_does_not_overflow():
  rng = np.random.default_rng(5)
  train, labels = rng.normal(size=(50, 8)), rng.integers(0, 2, 50)
  queries = rng.normal(size=(10, 8))
  want, _ = _reference_knn(train, labels, queries, 10, 0.05, 2)
  got = knn.knn_predict(train,
                        labels,
                        queries,
                        k=10,
                        temperature=0.002,
                        num_classes=2)
  assert np.all(np.isfinite(got))
  # At T=0.002 the nearest neighbour dominates: its class gets ~all the mass.
  nearest_only, _ = _reference_knn(train, labels, queries, 1, 1.0, 2)
  np.testing.assert_allclose(got, nearest_only, atol=1e-3)
  assert not np.allclose(got, want, atol=1e-3)


def test_knn_finds_clusters():
  rng = np.random.default_rng(6)
  centres = np.eye(5, 32) * 10
  labels = np.repeat(np.arange(5), 40)
  train = centres[labels] + rng.normal(size=(200, 32))
  query_labels = rng.integers(0, 5, 100)
  queries = centres[query_labels] + rng.normal(size=(100, 32))
  got = knn.knn_predict(train,
                        labels,
                        queries,
                        k=20,
                        temperature=0.07,
                        num_classes=5)
  np.testing.assert_array_equal(got.argmax(axis=1), query_labels)
  assert np.all(got.max(axis=1) > 0.9)


def test_knn_chunking_matches_one_chunk():
  rng = np.random.default_rng(7)
  train, labels = rng.normal(size=(300, 12)), rng.integers(0, 4, 300)
  queries = rng.normal(size=(53, 12))
  kwargs = dict(k=7, temperature=0.1, num_classes=4)
  whole = knn.knn_predict(train, labels, queries, chunk_size=1024, **kwargs)
  for chunk_size in (1, 8, 53):
    # Same neighbours and weights; XLA may round a different batch shape's
    # matmul differently in the last bit, so not bitwise.
    got = knn.knn_predict(train,
                          labels,
                          queries,
                          chunk_size=chunk_size,
                          **kwargs)
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)


def test_knn_errors():
  train, labels = np.ones((10, 4)), np.zeros(10, np.int64)
  with pytest.raises(ValueError, match=r'k=11 .*train set size 10'):
    knn.knn_predict(train, labels, train, k=11, temperature=0.1, num_classes=2)
  with pytest.raises(ValueError, match='0..1'):
    knn.knn_predict(train,
                    labels + 2,
                    train,
                    k=3,
                    temperature=0.1,
                    num_classes=2)
  with pytest.raises(ValueError, match='temperature'):
    knn.knn_predict(train, labels, train, k=3, temperature=0.0, num_classes=2)


def test_probe_reports_lbfgs_convergence_for_the_chosen_c(caplog):
  """Hitting max_iter gives no sklearn warning per fit: the probe records
  whether the chosen C converged, and logs one line when it did not."""
  rng = np.random.default_rng(4)
  tx, ty = _hyperplane_data(rng, 300, dim=8)
  vx, vy = _hyperplane_data(rng, 100, dim=8)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    capped = probe.fit_probe(tx, ty, vx, vy, (1.0,), max_iter=2)
    free = probe.fit_probe(tx, ty, vx, vy, (1.0,), max_iter=1000)
  assert not caught
  assert not capped.converged and free.converged
  assert capped.model.n_iter_[0] == 2 and free.model.n_iter_[0] < 1000
  assert [r.getMessage() for r in caplog.records if 'lbfgs' in r.getMessage()
          ] == ['probe: lbfgs did not converge in max_iter=2 at the chosen '
                'C=1; a larger max_iter may change the probe']

"""Expected calibration error and the reliability diagram."""

import numpy as np
import pytest

from gzevo_jax.evaluation import calibration


def _reference_ece(prob, labels, num_bins):
  """Guo et al.'s definition, one bin at a time."""
  confidence, predicted = prob.max(1), prob.argmax(1)
  total = 0.0
  for lo, hi in zip(np.linspace(0, 1, num_bins + 1)[:-1],
                    np.linspace(0, 1, num_bins + 1)[1:]):
    inside = (confidence > lo) & (confidence <= hi)
    if inside.any():
      gap = abs(np.mean(predicted[inside] == labels[inside]) -
                np.mean(confidence[inside]))
      total += inside.mean() * gap
  return total


def test_ece_matches_the_binwise_definition():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5000, 4)) * 2
  prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  labels = rng.integers(0, 4, 5000)
  for bins in (5, 15):
    assert calibration.expected_calibration_error(prob, labels, bins) == (
        pytest.approx(_reference_ece(prob, labels, bins), abs=1e-12))


def test_ece_by_hand():
  # Two examples at confidence 0.9 (one right), two at 0.6 (both right):
  # bins (0.8, 1]: |0.5 - 0.9| = 0.4; (0.4, 0.6]: |1 - 0.6| = 0.4.
  prob = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
  labels = np.array([0, 0, 0, 1])
  bins = calibration.reliability_bins(prob, labels, num_bins=5)
  assert bins.ece == pytest.approx(0.4)
  assert bins.counts.tolist() == [0, 0, 2, 0, 2]
  assert bins.accuracy[4] == 0.5 and bins.confidence[2] == pytest.approx(0.6)


def test_a_calibrated_classifier_has_ece_near_zero():
  rng = np.random.default_rng(1)
  confidence = rng.uniform(0.5, 1.0, 200_000)
  right = rng.random(200_000) < confidence  # Right as often as confident.
  prob = np.stack([confidence, 1 - confidence], axis=1)
  labels = np.where(right, 0, 1)
  assert calibration.expected_calibration_error(prob, labels) < 0.005


def test_the_reliability_diagram_is_written(tmp_path):
  rng = np.random.default_rng(2)
  prob = rng.dirichlet(np.ones(3), 300)
  bins = calibration.reliability_bins(prob, rng.integers(0, 3, 300))
  path = calibration.plot_reliability(bins, str(tmp_path / 'r.png'), 'test')
  assert (tmp_path / 'r.png').stat().st_size > 5_000 and path.endswith('r.png')


def test_bad_shapes_are_errors():
  with pytest.raises(ValueError, match=r'probabilities \[N, C\]'):
    calibration.reliability_bins(np.ones(3), np.zeros(3))

"""Calibration of class probabilities: expected calibration error and a
reliability diagram (Guo et al. 2017), for the semi-supervised comparison.

Predictions are binned by confidence (the top class probability) into
`num_bins` equal-width bins on (0, 1]; in each bin, accuracy is the share
whose top class is right and confidence the mean top probability. ECE is
the bin-count-weighted mean of |accuracy - confidence|: 0 for a perfectly
calibrated classifier.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ReliabilityBins:
  """Per confidence bin: its edges, count, mean confidence and accuracy
  (NaN where empty)."""
  edges: np.ndarray        # [num_bins + 1], 0 to 1.
  counts: np.ndarray       # [num_bins].
  confidence: np.ndarray   # [num_bins].
  accuracy: np.ndarray     # [num_bins].

  @property
  def ece(self) -> float:
    filled = self.counts > 0
    gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
    return float(np.sum(self.counts[filled] * gaps) / self.counts.sum())


def reliability_bins(prob: np.ndarray, labels: np.ndarray,
                     num_bins: int = 15) -> ReliabilityBins:
  """Bins [N, C] class probabilities of N examples with true `labels`."""
  prob = np.asarray(prob, np.float64)
  labels = np.asarray(labels)
  if prob.ndim != 2 or labels.shape != (len(prob),) or not len(prob):
    raise ValueError(f'need probabilities [N, C] and labels [N]; got '
                     f'{prob.shape} and {labels.shape}')
  return confidence_bins(prob.max(axis=1), prob.argmax(axis=1) == labels,
                         num_bins)


def bin_index(confidence: np.ndarray, num_bins: int) -> np.ndarray:
  """Each confidence's bin among `num_bins` equal-width right-closed bins
  (a, b] on (0, 1]; a confidence of exactly 0 joins the first."""
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  return np.clip(np.searchsorted(edges, confidence, side='left') - 1, 0,
                 num_bins - 1)


def confidence_bins(confidence: np.ndarray, correct: np.ndarray,
                    num_bins: int = 15) -> ReliabilityBins:
  """Bins predictions by their `confidence` [N]; `correct` [N] says whether
  each prediction was right."""
  confidence = np.asarray(confidence, np.float64)
  correct = np.asarray(correct, bool)
  if confidence.shape != correct.shape or confidence.ndim != 1:
    raise ValueError(f'need confidence [N] and correct [N]; got '
                     f'{confidence.shape} and {correct.shape}')
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  index = bin_index(confidence, num_bins)
  counts = np.bincount(index, minlength=num_bins)
  with np.errstate(invalid='ignore', divide='ignore'):
    mean_confidence = np.bincount(index, confidence, num_bins) / counts
    accuracy = np.bincount(index, correct.astype(np.float64),
                           num_bins) / counts
  return ReliabilityBins(edges, counts, mean_confidence, accuracy)


def resampled_ece(confidence: np.ndarray, correct: np.ndarray,
                  draw: np.ndarray, num_bins: int = 15) -> np.ndarray:
  """ECE of each resample of one model's predictions, for bootstrap
  intervals: `draw` [R, M] indexes the N predictions (`confidence` and
  `correct`, [N]); returns [R].

  A prediction's bin depends on its confidence alone, so ECE on a sample
  is sum over bins |sum of (correct - confidence)| / M, one weighted
  bincount for all resamples.
  """
  confidence = np.asarray(confidence, np.float64)
  index = bin_index(confidence, num_bins)
  gap = np.asarray(correct, np.float64) - confidence
  draw = np.atleast_2d(draw)
  flat = (np.arange(len(draw))[:, None] * num_bins + index[draw]).ravel()
  sums = np.bincount(flat, gap[draw].ravel(), len(draw) * num_bins)
  return np.abs(sums.reshape(len(draw), num_bins)).sum(1) / draw.shape[1]


def expected_calibration_error(prob: np.ndarray, labels: np.ndarray,
                               num_bins: int = 15) -> float:
  """ECE of [N, C] probabilities against `labels`, equal-width bins."""
  return reliability_bins(prob, labels, num_bins).ece


def _draw_reliability(ax, bins: ReliabilityBins, title: str) -> None:
  """Accuracy against confidence per bin, and the diagonal, on `ax`."""
  centres = (bins.edges[:-1] + bins.edges[1:]) / 2
  width = np.diff(bins.edges)
  filled = bins.counts > 0
  ax.bar(centres[filled], bins.accuracy[filled], width=width[filled],
         edgecolor='black', alpha=0.7, label='accuracy')
  ax.plot([0, 1], [0, 1], 'k--', label='perfect calibration')
  ax.set_xlabel('confidence')
  ax.set_ylabel('accuracy')
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1)
  ax.set_title(f'{title} (ECE {bins.ece:.3f})'.strip(), fontsize=9)


def plot_reliability(bins: ReliabilityBins, path: str, title: str = '') -> str:
  """Writes the reliability diagram (accuracy against confidence per bin,
  the diagonal being perfect calibration) to `path`; returns it."""
  return plot_reliability_grid([[(bins, title)]], path)


def plot_reliability_grid(panels: list[list[tuple[ReliabilityBins, str]]],
                          path: str) -> str:
  """Reliability diagrams in rows and columns ((bins, title) per panel),
  one figure at `path`; returns it."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  rows, cols = len(panels), max(len(row) for row in panels)
  fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.4 * rows),
                           squeeze=False, layout='constrained')
  for r, row in enumerate(panels):
    for c in range(cols):
      if c < len(row):
        _draw_reliability(axes[r][c], *row[c])
      else:
        axes[r][c].axis('off')
  axes[0][0].legend(loc='upper left', fontsize=8)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path

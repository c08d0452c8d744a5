"""Label budgets: stratified labelled subsets for few-label downstream probes.

A budget is how many labelled examples a downstream probe may train on. The
subset keeps the class balance of the full labelled set, so a small budget
measures how well features separate classes, not how rare a class happened to
be in one draw. Every entry of `labels` counts as labelled: drop unlabelled
rows before calling.
"""

from __future__ import annotations

from collections.abc import Sequence
import numbers

import numpy as np

from gzevo_jax.data import common

# The budget spelling for "every labelled example".
ALL = 'all'


class BudgetError(common.DataError):
  """A label budget that the labelled set cannot satisfy."""


def _check_budget_value(budget: object) -> int:
  """Returns budget as an int if it is a positive integer, else raises."""
  if (isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or
      budget <= 0):
    raise ValueError(f'Label budget {budget!r} must be a positive integer or '
                     f'{ALL!r}.')
  return int(budget)


def parse_budgets(spec: Sequence[int | str]) -> list[int | None]:
  """Parses budgets such as [100, 1000, 'all'] into [100, 1000, None].

  None stands for "all labelled examples", as in `sample_budget`. Order is kept.

  Raises:
    ValueError: if spec is empty or an entry is neither a positive integer nor
      'all' (floats such as 100.0 and bools are rejected, not truncated).
  """
  if isinstance(spec, str) or not len(spec):
    raise ValueError(f'Label budgets must be a non-empty list of positive '
                     f'integers or {ALL!r}; got {spec!r}.')
  return [None if item == ALL else _check_budget_value(item) for item in spec]


def _stratified_counts(class_sizes: np.ndarray, budget: int) -> np.ndarray:
  """Splits budget over classes in proportion to class_sizes.

  Largest-remainder (Hamilton) rounding makes the counts sum to exactly
  `budget`, each within 1 of its ideal share. Then every class that got 0 takes
  one example from the class furthest above its ideal share, so each class is
  represented (this can move a count further than 1 from its ideal only when
  budget is close to the number of classes).
  """
  ideal = budget * class_sizes / class_sizes.sum()
  counts = np.floor(ideal).astype(np.int64)
  shortfall = budget - counts.sum()
  # Stable sort: equal remainders go to the lower class index first.
  by_remainder = np.argsort(-(ideal - counts), kind='stable')
  counts[by_remainder[:shortfall]] += 1
  for empty in np.flatnonzero(counts == 0):
    surplus = np.where(counts > 1, counts - ideal, -np.inf)
    counts[np.argmax(surplus)] -= 1
    counts[empty] = 1
  return counts


def sample_budget(labels: np.ndarray, budget: int | None,
                  seed: int) -> np.ndarray:
  """Indices of a class-stratified subset of `budget` labelled examples.

  Args:
    labels: [N] integer class labels, all of them labelled.
    budget: subset size; None for all N examples.
    seed: draws differ between seeds and repeat for the same seed.

  Returns:
    Sorted int64 indices into labels, without repeats: `budget` of them, with
    each class's count its largest-remainder rounded share of the budget and
    at least 1 per class.

  Raises:
    BudgetError: if budget exceeds N or is below the number of classes.
    ValueError: if labels are not a non-empty 1-D integer array, or budget is
      not a positive integer.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1 or not labels.size or not np.issubdtype(
      labels.dtype, np.integer):
    raise ValueError(f'labels must be a non-empty 1-D integer array; got '
                     f'shape {labels.shape} dtype {labels.dtype}.')
  if budget is None:
    return np.arange(labels.size, dtype=np.int64)
  budget = _check_budget_value(budget)
  if budget > labels.size:
    raise BudgetError(
        f'Label budget {budget} exceeds the {labels.size} labelled examples '
        f'available; lower the budget or use {ALL!r}.')
  classes, class_sizes = np.unique(labels, return_counts=True)
  if budget < classes.size:
    raise BudgetError(
        f'Label budget {budget} is smaller than the {classes.size} classes, '
        f'so some class would get no example; use a budget of at least '
        f'{classes.size}.')
  rng = np.random.default_rng(seed)
  counts = _stratified_counts(class_sizes, budget)
  chosen = [
      rng.choice(np.flatnonzero(labels == c), size=n, replace=False)
      for c, n in zip(classes, counts)
  ]
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def sample_subset(num_examples: int, budget: int | None,
                  seed: int) -> np.ndarray:
  """Sorted indices of `budget` of `num_examples` examples drawn uniformly
  without repeats (all for None): the budget for a regression target,
  which has no classes to stratify."""
  if budget is None:
    return np.arange(num_examples, dtype=np.int64)
  budget = _check_budget_value(budget)
  if budget > num_examples:
    raise BudgetError(
        f'Label budget {budget} exceeds the {num_examples} labelled examples '
        f'available; lower the budget or use {ALL!r}.')
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(num_examples, size=budget,
                            replace=False)).astype(np.int64)

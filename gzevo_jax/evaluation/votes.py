"""How well a supervised or hybrid checkpoint predicts held-out volunteer votes.

  evaluate_votes('runs/supervised')   # -> <workdir>/evaluation/votes.json, .png

The Dirichlet head predicts concentrations a (one per answer) for each
galaxy; for a question q answered by N = sum_j k_j volunteers, the votes k
are then Dirichlet-Multinomial(N, a_q), whose expected vote fractions are
a_j / a_0 (a_0 = sum of a over q's answers). Every metric averages over the
galaxies with N >= 1 on the question concerned: unasked questions (zero
votes, most of GZ-Evo's answers) carry no information and are left out.

The metric functions are pure numpy/scipy on votes [N, A] and concentrations
[N, A] in the schema's label-column order. This module imports no TensorFlow;
`evaluate_votes` imports the data pipeline when it runs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from absl import logging
import flax.linen as nn
import jax
import numpy as np
from scipy import stats

from gzevo_jax import checkpoint
from gzevo_jax import losses
from gzevo_jax import models
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.schema import Schema

LEVELS = (0.5, 0.8, 0.95)

# ---- Running a checkpoint.


def _concentrations(module: nn.Module, images: jax.Array,
                    train: bool) -> jax.Array:
  """`GalaxyModel` method: just the Dirichlet head's output."""
  return module(images, train=train)['concentrations']


def predict_concentrations(
    model: models.GalaxyModel, variables: Mapping[str, Any],
    batches: Iterable[Mapping[str, np.ndarray]],
    mesh: jax.sharding.Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The model's concentrations for every masked-in row of `batches`.

  Batches need 'image', 'id_str', 'votes' and 'mask' (as `eval_batches`
  yields them); the model runs jit-compiled and data-parallel over `mesh`.

  Returns:
    (concentrations float32 [N, A], votes int32 [N, A], ids str [N]).
  """
  if model.head is None:
    raise ValueError('the model has no Dirichlet head: only supervised and '
                     'hybrid models predict votes')
  out = features_lib.extract(model,
                             variables,
                             batches,
                             label_keys=('votes',),
                             mesh=mesh,
                             what='concentrations',
                             method=_concentrations)
  return out.features, out.labels['votes'].astype(np.int32), out.ids


# ---- Metrics (numpy/scipy).


def _check(votes: np.ndarray, concentrations: np.ndarray,
           schema: Schema) -> tuple[np.ndarray, np.ndarray]:
  """Both as float64 [N, A], or a ValueError naming the shapes."""
  k = np.asarray(votes, np.float64)
  a = np.asarray(concentrations, np.float64)
  if k.ndim != 2 or k.shape != a.shape or k.shape[1] != schema.num_answers:
    raise ValueError(f'votes {k.shape} and concentrations {a.shape} must both '
                     f'be [N, {schema.num_answers}] for schema {schema.name!r}')
  return k, a


def _question_sums(x: np.ndarray, schema: Schema) -> np.ndarray:
  """[N, A] -> [N, Q]: sums over each question's answers."""
  return np.add.reduceat(x, [s.start for s in schema.question_slices], axis=1)


def _per_answer(x: np.ndarray, schema: Schema) -> np.ndarray:
  """[N, Q] -> [N, A]: each question's value repeated for its answers."""
  return x[:, schema.answer_question_index]


def question_totals_per_answer(x: np.ndarray, schema: Schema) -> np.ndarray:
  """[N, A] -> [N, A]: each answer's question total (a_0 of concentrations)."""
  return _per_answer(_question_sums(x, schema), schema)


def fractions_by_question(x: np.ndarray, schema: Schema) -> np.ndarray:
  """x_j / (sum of x over j's question), 0 where that sum is 0.

  Of concentrations, the expected vote fractions a_j / a_0.
  """
  totals = question_totals_per_answer(x, schema)
  return np.divide(x, totals, out=np.zeros_like(x), where=totals > 0)


def _mean_over_answered(values: np.ndarray, answered: np.ndarray) -> np.ndarray:
  """[N, Q] -> [Q]: mean over the rows answered, NaN for unanswered columns."""
  count = answered.sum(axis=0)
  total = np.where(answered, values, 0.0).sum(axis=0)
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def answered_counts(votes: np.ndarray, schema: Schema) -> np.ndarray:
  """int [Q]: how many galaxies have at least one vote on each question."""
  return (_question_sums(np.asarray(votes, np.float64), schema) > 0).sum(0)


def per_question_nll(votes: np.ndarray, concentrations: np.ndarray,
                     schema: Schema) -> np.ndarray:
  """float64 [Q]: mean Dirichlet-Multinomial NLL of each question's votes.

  nll_q = mean over galaxies with N_q >= 1 of -log DirMult(k_q | N_q, a_q),
  with -log p from `losses.dirichlet_multinomial_nll`; NaN for a question no
  galaxy answered.
  """
  k, a = _check(votes, concentrations, schema)
  nll = np.asarray(losses.dirichlet_multinomial_nll(k, a, schema), np.float64)
  return _mean_over_answered(nll, _question_sums(k, schema) > 0)


def vote_fraction_mae(votes: np.ndarray, concentrations: np.ndarray,
                      schema: Schema) -> np.ndarray:
  """float64 [Q]: mean absolute error of the predicted vote fractions.

  mae_q = mean over galaxies with N_q >= 1 of
          (1 / |q|) sum_{j in q} |a_j / a_0 - k_j / N_q|,
  where |q| is the number of answers; NaN for a question no galaxy answered.
  """
  k, a = _check(votes, concentrations, schema)
  error = np.abs(
      fractions_by_question(a, schema) - fractions_by_question(k, schema))
  answers_per_question = np.bincount(schema.answer_question_index)
  per_galaxy = _question_sums(error, schema) / answers_per_question
  return _mean_over_answered(per_galaxy, _question_sums(k, schema) > 0)


def interval_coverage(votes: np.ndarray,
                      concentrations: np.ndarray,
                      schema: Schema,
                      levels: Sequence[float] = LEVELS) -> dict[float, float]:
  """Share of observed vote counts inside the central predictive intervals.

  For each (galaxy, answer j) whose question has N >= 1 votes, the model's
  predictive distribution of k_j is Beta-Binomial(N, a_j, a_0 - a_j) (the
  Dirichlet-Multinomial's marginal). The central interval at level L runs
  from its (1 - L)/2 to its (1 + L)/2 quantile, [lo, hi]; coverage is the
  share of pairs with lo <= k_j <= hi (NaN if there are none).

  Quantiles come from `scipy.stats.betabinom` through the identity
  lo <= k <= hi  <=>  cdf(k) >= (1 - L)/2 and cdf(k - 1) < (1 + L)/2
  (ppf(q) is the least k with cdf(k) >= q), which needs one cdf per pair
  rather than a slow discrete ppf per pair and level.

  The counts are discrete, so the interval holds at least L of the
  probability: a calibrated model covers a bit more than L (most so for
  small N), an overconfident one much less, an underconfident one more.
  """
  k, a = _check(votes, concentrations, schema)
  for level in levels:
    if not 0.0 < level < 1.0:
      raise ValueError(f'coverage levels must lie in (0, 1), got {level}')
  n = _per_answer(_question_sums(k, schema), schema)
  a0 = _per_answer(_question_sums(a, schema), schema)
  used = n > 0
  if not used.any():
    return {float(level): float('nan') for level in levels}
  predictive = stats.betabinom(n[used], a[used], a0[used] - a[used])
  k = k[used]
  below = predictive.cdf(k - 1)  # P(K < k); 0 at k = 0.
  at_most = below + predictive.pmf(k)  # P(K <= k).
  return {
      float(level):
          float(
              np.mean((at_most >= (1 - level) / 2) & (below < (1 + level) / 2)))
      for level in levels
  }


def reliability(votes: np.ndarray,
                concentrations: np.ndarray,
                schema: Schema,
                bins: int = 10) -> dict[str, np.ndarray]:
  """Predicted against observed vote fractions, in bins of the prediction.

  Over (galaxy, answer) pairs whose question has N >= 1 votes, the predicted
  fraction a_j / a_0 is binned into `bins` equal bins of [0, 1]; per bin:
  'count' pairs, 'mean_predicted' a_j / a_0 and 'mean_observed' k_j / N (NaN
  for empty bins), plus the 'bin_edges' [bins + 1]. A calibrated model has
  mean_observed ~ mean_predicted in every bin.
  """
  if bins < 1:
    raise ValueError(f'bins must be positive, got {bins}')
  k, a = _check(votes, concentrations, schema)
  used = _per_answer(_question_sums(k, schema), schema) > 0
  predicted = fractions_by_question(a, schema)[used]
  observed = fractions_by_question(k, schema)[used]
  edges = np.linspace(0.0, 1.0, bins + 1)
  index = np.digitize(predicted, edges[1:-1])  # 0 .. bins - 1 on [0, 1].
  count = np.bincount(index, minlength=bins)

  def bin_mean(x: np.ndarray) -> np.ndarray:
    total = np.bincount(index, weights=x, minlength=bins)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)

  return {
      'bin_edges': edges,
      'count': count,
      'mean_predicted': bin_mean(predicted),
      'mean_observed': bin_mean(observed)
  }


def plot_reliability(bins: Mapping[str, np.ndarray],
                     path: str,
                     title: str = '') -> str:
  """Saves a reliability diagram (with the diagonal) of `reliability`'s bins.

  `bins` may also be its JSON form in votes.json (None for empty bins).
  """
  bins = {k: np.asarray(v, np.float64) for k, v in bins.items()}
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, (top, bottom) = plt.subplots(2,
                                    1,
                                    figsize=(4.5, 5.5),
                                    sharex=True,
                                    height_ratios=(3, 1),
                                    layout='constrained')
  top.plot([0, 1], [0, 1], ls='--', color='grey', label='calibrated')
  top.plot(bins['mean_predicted'],
           bins['mean_observed'],
           marker='o',
           label='model')
  top.set_xlim(0, 1)
  top.set_ylim(0, 1)
  top.set_ylabel('observed vote fraction')
  top.legend(loc='upper left')
  top.grid(alpha=0.3)
  edges = bins['bin_edges']
  bottom.bar(edges[:-1],
             bins['count'],
             width=np.diff(edges),
             align='edge',
             color='grey',
             alpha=0.6)
  bottom.set_yscale('log')
  bottom.set_xlabel('predicted vote fraction')
  bottom.set_ylabel('answers')
  fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


# ---- One checkpoint, end to end.


def _finite_or_none(x: Any) -> Optional[float]:
  """A JSON-safe float: None for NaN (empty bins, unanswered questions)."""
  x = float(x)
  return x if np.isfinite(x) else None


def _json_list(values: np.ndarray) -> list[Any]:
  """Ints as they are, floats through `_finite_or_none`."""
  return [
      x if isinstance(x, int) else _finite_or_none(x)
      for x in np.asarray(values).tolist()
  ]


def vote_metrics(votes: np.ndarray,
                 concentrations: np.ndarray,
                 schema: Schema,
                 levels: Sequence[float] = LEVELS,
                 bins: int = 10) -> dict[str, Any]:
  """Every metric, JSON-ready.

  'nll_per_galaxy' is the mean over galaxies of the NLL summed over their
  questions (the supervised training loss), i.e. sum_q nll_q * n_q / N.
  """
  nll = per_question_nll(votes, concentrations, schema)
  mae = vote_fraction_mae(votes, concentrations, schema)
  answered = answered_counts(votes, schema)
  num_galaxies = len(votes)
  nll_per_galaxy = np.nansum(nll * answered) / max(num_galaxies, 1)
  mean_mae = np.nanmean(mae) if answered.any() else np.nan
  coverage = interval_coverage(votes, concentrations, schema, levels)
  bin_stats = reliability(votes, concentrations, schema, bins)
  questions = [{
      'question': name,
      'num_galaxies': int(n),
      'nll': _finite_or_none(q_nll),
      'vote_fraction_mae': _finite_or_none(q_mae)
  } for name, n, q_nll, q_mae in zip(schema.question_names, answered, nll, mae)]
  return {
      'num_galaxies': num_galaxies,
      'nll_per_galaxy': _finite_or_none(nll_per_galaxy),
      'mean_vote_fraction_mae': _finite_or_none(mean_mae),
      'questions': questions,
      'coverage': {
          str(k): _finite_or_none(v) for k, v in coverage.items()
      },
      'reliability': {
          k: _json_list(v) for k, v in bin_stats.items()
      },
  }


def _labelled_only(
    batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, Any]]:
  """Masks out galaxies without a single vote, so they are dropped."""
  for batch in batches:
    yield {**batch, 'mask': batch['mask'] & (batch['votes'].sum(axis=1) > 0)}


def evaluate_votes(workdir: str,
                   *,
                   split: str = 'test',
                   step: Optional[int] = None,
                   batch_size: int = 256,
                   out_dir: Optional[str] = None) -> dict[str, Any]:
  """Vote-prediction quality of a supervised or hybrid checkpoint.

  Runs the checkpoint's model over the labelled galaxies of `split` of the
  dataset it trained on (its stored `config.data`, at its image size) and
  writes votes.json (`vote_metrics` plus where it came from) and
  reliability.png to `out_dir` (default `<workdir>/evaluation`).
  """
  config, _, step = checkpoint.load_config_and_schema(workdir, step)
  if not models.uses_votes(config.objective):
    raise checkpoint.IncompatibleCheckpointError(
        f'{workdir} (step {step}) holds a {config.objective} checkpoint, '
        'which has no Dirichlet head to predict votes with; evaluate a '
        'supervised or hybrid checkpoint (or probe this one with '
        'configs/linear_probe.py)')
  from gzevo_jax.data import sources  # TensorFlow, lazily for tf.data.
  model, variables, config, schema = checkpoint.restore_model(workdir, step)
  data = sources.eval_dataset(config.data)
  mesh = features_lib.local_mesh()
  batch_size = features_lib.padded_batch_size(batch_size, mesh)
  batches = data.batches(split,
                         batch_size=batch_size,
                         image_size=config.data.image_size,
                         keys=('id_str', 'votes'),
                         threads=config.data.threads)
  concentrations, votes, _ = predict_concentrations(model, variables,
                                                    _labelled_only(batches),
                                                    mesh)
  results = {
      'workdir': os.path.abspath(workdir),
      'step': step,
      'objective': config.objective,
      'dataset': config.data.dataset,
      'split': split,
      **vote_metrics(votes, concentrations, schema),
  }
  out_dir = out_dir or os.path.join(workdir, 'evaluation')
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'votes.json'), 'w') as f:
    json.dump(results, f, indent=1)
  plot_reliability(
      results['reliability'],
      os.path.join(out_dir, 'reliability.png'),
      title=f'{config.objective} step {step}: {config.data.dataset} {split}')
  logging.info(
      '%s step %d on %s %s: %d labelled galaxies, NLL %s per galaxy, '
      'vote-fraction MAE %s, coverage %s (by level); wrote %s',
      config.objective, step, config.data.dataset, split,
      results['num_galaxies'], results['nll_per_galaxy'],
      results['mean_vote_fraction_mae'], results['coverage'], out_dir)
  return results


def validate(config) -> None:
  """Raises ValueError naming a bad field of configs/votes.py."""
  features_lib.validate_extraction_config(config)
  if not isinstance(config.data.split, str) or not config.data.split:
    raise ValueError('config.data.split must name a split, e.g. test')


def run(config, workdir: str) -> dict[str, Any]:
  """The `votes` task of `python -m gzevo_jax.main`: files into `workdir`."""
  return evaluate_votes(config.pretrained_workdir, split=config.data.split,
                        step=config.pretrained_step,
                        batch_size=config.eval_batch_size, out_dir=workdir)

"""Vote-prediction metrics against simulation and hand values, and end to end."""

import json

import jax
import numpy as np
import pytest
from scipy import stats

from conftest import tiny_config
from tiny import tiny_checkpoint
from gzevo_jax import checkpoint, train, train_state
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import votes as votes_lib
from gzevo_jax.schema import Schema

# Two answered questions and one nobody answers.
SCHEMA = Schema.from_dict({
    'name':
        'tiny',
    'questions': [
        {
            'question': 'shape',
            'answers': ['round', 'oval', 'edge']
        },
        {
            'question': 'bar',
            'answers': ['yes', 'no']
        },
        {
            'question': 'rings',
            'answers': ['one', 'many']
        },
    ]
})


def _simulate(alpha, totals, seed=0):
  """Votes drawn from the model itself: p ~ Dirichlet(a_q), k ~ Mult(N, p)."""
  rng = np.random.default_rng(seed)
  votes = np.zeros(alpha.shape, np.int64)
  for q, columns in enumerate(SCHEMA.question_slices):
    for g in range(len(alpha)):
      p = rng.dirichlet(alpha[g, columns])
      votes[g, columns] = rng.multinomial(totals[g, q], p)
  return votes


def _random_model(num_galaxies, min_votes, max_votes, seed=0):
  rng = np.random.default_rng(seed)
  alpha = rng.uniform(1.0, 10.0, (num_galaxies, SCHEMA.num_answers))
  totals = rng.integers(min_votes, max_votes + 1,
                        (num_galaxies, SCHEMA.num_questions))
  return alpha, _simulate(alpha, totals, seed + 1)


# ---------------------------------------------------------------- coverage


def test_coverage_is_calibrated_on_votes_from_the_model():
  # Many votes per question: the counts are nearly continuous, so a
  # calibrated model covers each level almost exactly (never much below).
  alpha, votes = _random_model(3000, 200, 400)
  coverage = votes_lib.interval_coverage(votes, alpha, SCHEMA)
  assert set(coverage) == set(votes_lib.LEVELS)
  for level, c in coverage.items():
    assert level - 0.015 <= c <= level + 0.03, (level, c)


def test_coverage_of_an_overconfident_model_is_far_too_low():
  alpha, votes = _random_model(3000, 200, 400)
  coverage = votes_lib.interval_coverage(votes, alpha * 100, SCHEMA)
  for level, c in coverage.items():
    assert c < level / 2, (level, c)


def test_coverage_matches_scipy_quantiles():
  # Few votes: discreteness matters, and the cdf identity must agree with
  # betabinom.ppf exactly, pair by pair.
  alpha, votes = _random_model(150, 1, 8, seed=3)
  n = votes_lib._per_answer(votes_lib._question_sums(votes, SCHEMA), SCHEMA)
  a0 = votes_lib._per_answer(votes_lib._question_sums(alpha, SCHEMA), SCHEMA)
  used = n > 0
  for level in votes_lib.LEVELS:
    lo, hi = (stats.betabinom.ppf(q, n[used], alpha[used],
                                  a0[used] - alpha[used])
              for q in ((1 - level) / 2, (1 + level) / 2))
    expected = np.mean((lo <= votes[used]) & (votes[used] <= hi))
    got = votes_lib.interval_coverage(votes, alpha, SCHEMA, levels=[level])
    assert got == {level: pytest.approx(expected, abs=1e-12)}
  # Discreteness: a calibrated model covers more than 50% with so few votes.
  assert votes_lib.interval_coverage(votes, alpha, SCHEMA,
                                     levels=[0.5])[0.5] > 0.55


def test_coverage_rejects_bad_levels():
  alpha, votes = _random_model(5, 1, 3)
  with pytest.raises(ValueError, match='levels must lie in'):
    votes_lib.interval_coverage(votes, alpha, SCHEMA, levels=[1.0])


# ---------------------------------------------------- NLL and MAE by hand

# Galaxy 0: shape predicted perfectly, bar unanswered (its concentrations
# must not count). Galaxy 1: one vote on bar. Nobody answers rings.
VOTES = np.array([[2, 1, 1, 0, 0, 0, 0], [0, 0, 4, 1, 0, 0, 0]])
ALPHA = np.array([[2.0, 1.0, 1.0, 1.0, 9.0, 1.0, 1.0],
                  [1.0, 1.0, 2.0, 1.0, 3.0, 1.0, 1.0]])


def test_vote_fraction_mae_by_hand():
  mae = votes_lib.vote_fraction_mae(VOTES, ALPHA, SCHEMA)
  # shape: galaxy 0 exact; galaxy 1 predicts (1/4, 1/4, 1/2) for (0, 0, 1).
  # bar: galaxy 1 only, predicts (1/4, 3/4) for (1, 0).
  np.testing.assert_allclose(mae[:2], [(0 + (1 / 4 + 1 / 4 + 1 / 2) / 3) / 2,
                                       (3 / 4 + 3 / 4) / 2])
  assert np.isnan(mae[2])


def test_per_question_nll_by_hand():
  nll = votes_lib.per_question_nll(VOTES, ALPHA, SCHEMA)
  shape = -np.mean([
      stats.dirichlet_multinomial.logpmf(VOTES[g, :3], ALPHA[g, :3],
                                         VOTES[g, :3].sum()) for g in (0, 1)
  ])
  # One vote: P(answer j) = a_j / a_0 = 1 / 4.
  np.testing.assert_allclose(nll[:2], [shape, np.log(4.0)], rtol=1e-5)
  assert np.isnan(nll[2])


def test_metrics_reject_mismatched_shapes():
  with pytest.raises(ValueError, match=r'must both be \[N, 7\]'):
    votes_lib.vote_fraction_mae(VOTES[:, :5], ALPHA[:, :5], SCHEMA)


# ------------------------------------------------------------- reliability


def test_reliability_counts_and_perfect_predictions():
  rng = np.random.default_rng(0)
  votes = rng.integers(1, 20, (200, SCHEMA.num_answers))
  votes[:50, 3:5] = 0  # bar unanswered by 50 galaxies,
  votes[:, 5:] = 0  # rings by all.
  # Concentrations proportional to the votes: predicted = observed fractions.
  alpha = np.where(votes > 0, 3.0 * votes, 1.0)
  bins = votes_lib.reliability(votes, alpha, SCHEMA, bins=10)
  assert bins['count'].sum() == 200 * 3 + 150 * 2
  filled = bins['count'] > 0
  assert filled.sum() >= 5
  np.testing.assert_allclose(bins['mean_predicted'][filled],
                             bins['mean_observed'][filled])
  edges = bins['bin_edges']
  assert np.all(bins['mean_predicted'][filled] >= edges[:-1][filled])
  assert np.all(bins['mean_predicted'][filled] <= edges[1:][filled])
  assert np.all(np.isnan(bins['mean_observed'][~filled]))
  # Flat predictions (all 1/3 and 1/2) fill two bins, off the diagonal.
  flat = votes_lib.reliability(votes, np.ones_like(alpha), SCHEMA, bins=10)
  assert (flat['count'] > 0).sum() == 2


def test_plot_reliability_writes_png(tmp_path):
  alpha, votes = _random_model(50, 1, 10)
  path = votes_lib.plot_reliability(votes_lib.reliability(votes, alpha, SCHEMA),
                                    str(tmp_path / 'r.png'))
  with open(path, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


# -------------------------------------------------------------- end to end


@pytest.fixture(scope='module')
def supervised_workdir(tmp_path_factory):
  """A 2-step supervised checkpoint."""
  return tiny_checkpoint('supervised',
                         str(tmp_path_factory.mktemp('supervised')))


@pytest.fixture
def contrastive_workdir(tmp_path):
  """A contrastive checkpoint whose state is a stub: the refusal must come
  from the stored config, before any weights are restored."""
  config = tiny_config('contrastive')
  with checkpoint.make_manager(str(tmp_path)) as manager:
    checkpoint.save(manager, 0, {'step': np.zeros((), np.int32)}, config,
                    train_state.build_setup(config).schema)
  return str(tmp_path)


def test_evaluate_votes_end_to_end(supervised_workdir):
  from gzevo_jax.data import pipeline, sources
  workdir = supervised_workdir
  results = votes_lib.evaluate_votes(workdir, batch_size=60)
  out_dir = f'{workdir}/evaluation'
  with open(f'{out_dir}/votes.json') as f:
    written = json.load(f)
  assert written == results
  assert {
      'num_galaxies', 'nll_per_galaxy', 'mean_vote_fraction_mae', 'questions',
      'coverage', 'reliability', 'step'
  } <= set(results)
  assert results['step'] == 2 and results['split'] == 'test'
  # Exactly the test galaxies with votes.
  config, schema, _ = checkpoint.load_config_and_schema(workdir)
  builder = sources.prepare_dataset(config.data)
  labelled = sum(
      int((b['votes'][b['mask']].sum(axis=1) > 0).sum())
      for b in pipeline.eval_batches(
          builder, 'test', batch_size=64, image_size=8, keys=('votes',)))
  assert results['num_galaxies'] == labelled > 0
  assert np.isfinite(
      results['nll_per_galaxy']) and results['nll_per_galaxy'] > 0
  assert [q['question'] for q in results['questions']
         ] == list(schema.question_names)
  answered = [q for q in results['questions'] if q['num_galaxies']]
  assert answered and all(np.isfinite(q['nll']) for q in answered)
  assert set(results['coverage']) == {'0.5', '0.8', '0.95'}
  assert sum(results['reliability']['count']) > results['num_galaxies']
  with open(f'{out_dir}/reliability.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_contrastive_checkpoint_is_refused(contrastive_workdir):
  with pytest.raises(ValueError, match='contrastive checkpoint.*no Dirichlet'):
    votes_lib.evaluate_votes(contrastive_workdir)
  model = train_state.build_setup(tiny_config('contrastive')).model
  with pytest.raises(ValueError, match='no Dirichlet head'):
    votes_lib.predict_concentrations(model, {}, [], features_lib.local_mesh())


def test_restore_model_matches_restore_encoder(supervised_workdir):
  from gzevo_jax.data import pipeline, sources
  workdir = supervised_workdir
  model, variables, config, schema = checkpoint.restore_model(workdir)
  encoder, encoder_variables = checkpoint.restore_encoder(workdir)
  assert config.objective == 'supervised'
  assert model.head is not None
  for part in ('params', 'batch_stats'):
    jax.tree.map(np.testing.assert_array_equal, variables[part]['encoder'],
                 encoder_variables[part])
  # The data-parallel predictions are the model's own, row for row.
  batch = next(
      pipeline.eval_batches(sources.prepare_dataset(config.data),
                            'test',
                            batch_size=8,
                            image_size=config.data.image_size,
                            keys=('id_str', 'votes')))
  batch = {**batch, 'mask': np.arange(8) < 5}  # As if 3 rows were padding.
  concentrations, votes, ids = votes_lib.predict_concentrations(
      model, variables, [batch], features_lib.local_mesh())
  direct = model.apply(variables, batch['image'], train=False)
  np.testing.assert_allclose(concentrations,
                             direct['concentrations'][:5],
                             rtol=1e-5)
  assert concentrations.shape == (5, schema.num_answers)
  assert votes.dtype == np.int32 and len(ids) == 5

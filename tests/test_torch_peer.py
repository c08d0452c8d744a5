"""The PyTorch peer of the benchmark: the same step, so the ratio is fair.

The tests that need torch are skipped where the optional [peer] extra is not
installed; the turn-taking and the error without torch are tested always.
"""

import importlib.util

import jax
import numpy as np
import optax
import pytest

from conftest import tiny_config
from gzevo_jax import benchmark
from gzevo_jax import errors
from gzevo_jax import losses
from gzevo_jax import models
from gzevo_jax import optim
from gzevo_jax import parallel
from gzevo_jax import train_state
from gzevo_jax.schema import get_schema


def test_runs_take_turns_step_by_step():
  order = []
  runs = {'a': lambda: order.append('a'), 'b': lambda: order.append('b')}
  times = benchmark.time_alternating(runs, steps=3, warmup=1)
  assert order == ['a', 'b'] + ['a', 'b'] * 3  # Warm-up, then turns.
  assert {k: len(v) for k, v in times.items()} == {'a': 3, 'b': 3}
  assert all(t >= 0 for v in times.values() for t in v)


def test_without_torch_the_peer_is_one_clear_error(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec',
                      lambda name, *a: None if name == 'torch' else real(
                          name, *a))
  with pytest.raises(errors.UserError, match=r"pip install -e '.\[peer\]'"):
    benchmark.load_torch_peer()
  with pytest.raises(errors.UserError, match='clone of the repository'):
    benchmark.load_torch_peer('/nowhere/torch_peer.py')


@pytest.fixture(scope='module')
def peer():
  pytest.importorskip('torch')
  return benchmark.load_torch_peer()


def _config(objective='hybrid'):
  config = tiny_config(objective)
  config.data.image_size = 32
  config.model.width_multiplier = 0.125
  return config


def test_dirichlet_multinomial_matches_the_jax_loss(peer):
  torch = peer.torch
  schema = get_schema('gz_evo_v0_1')
  rng = np.random.default_rng(0)
  counts = rng.integers(0, 12, (5, schema.num_answers)).astype(np.float32)
  counts[0] = 0  # A galaxy with no votes at all.
  alpha = rng.uniform(1.0, 101.0, counts.shape).astype(np.float32)
  expected = losses.dirichlet_multinomial_nll(counts, alpha, schema)
  got = peer.dirichlet_multinomial_nll(
      torch.from_numpy(counts), torch.from_numpy(alpha),
      torch.as_tensor(np.asarray(schema.answer_question_index)),
      schema.num_questions)
  np.testing.assert_allclose(got.numpy(), np.asarray(expected), rtol=1e-4,
                             atol=1e-3)


def test_byol_loss_matches_the_jax_loss(peer):
  torch = peer.torch
  rng = np.random.default_rng(1)
  p1, p2, t1, t2 = (rng.normal(size=(6, 16)).astype(np.float32)
                    for _ in range(4))
  for form in ('squared_distance', 'negative_cosine'):
    got = peer.byol_loss(*map(torch.from_numpy, (p1, p2, t1, t2)), form=form)
    np.testing.assert_allclose(float(got),
                               float(losses.byol_loss(p1, p2, t1, t2, form)),
                               rtol=1e-5)


def test_lars_matches_optax_lars(peer):
  """Three steps on a matrix and a bias: decay and trust ratio on the
  matrix only, momentum on both, as gzevo_jax.optim builds optax.lars."""
  torch = peer.torch
  rng = np.random.default_rng(2)
  params = {'w': rng.normal(size=(4, 3)).astype(np.float32),
            'b': rng.normal(size=(3,)).astype(np.float32)}
  grads = [{k: rng.normal(size=v.shape).astype(np.float32)
            for k, v in params.items()} for _ in range(3)]
  opt_config = _config().optimizer
  opt_config.name, opt_config.weight_decay = 'lars', 0.1
  opt_config.decay_norm_and_bias = False
  tx = optim.build_optimizer(opt_config, 0.3)
  state, jax_params = tx.init(params), params
  for g in grads:
    updates, state = tx.update(g, state, jax_params)
    jax_params = optax.apply_updates(jax_params, updates)
  spec = peer.PeerSpec(objective='supervised', batch_size=1, image_size=8,
                       channels=1, answer_question_index=[0],
                       learning_rate=0.3, weight_decay=0.1,
                       trust_coefficient=opt_config.trust_coefficient,
                       momentum=opt_config.momentum)
  tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
  lars = peer.Lars(list(tensors.values()), spec)
  for g in grads:
    for k, t in tensors.items():
      t.grad = torch.from_numpy(g[k])
    lars.step()
  for k, t in tensors.items():
    np.testing.assert_allclose(t.detach().numpy(), jax_params[k], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize('objective', ['supervised', 'contrastive', 'hybrid'])
def test_the_peer_model_has_the_same_parameters(peer, objective):
  """Same layers and shapes: the parameter counts of every part agree."""
  config = _config(objective)
  setup = train_state.build_setup(config, num_train_examples=64)
  params = train_state.create_train_state(setup).params
  spec = peer.PeerSpec(**benchmark.peer_spec_fields(config, threads=1))
  model = peer.GalaxyModel(spec)
  count = lambda tree: sum(np.size(x) for x in jax.tree.leaves(tree))  # noqa: E731
  for part in ('encoder', 'projector', 'predictor', 'head'):
    mine = getattr(model, part)
    assert (part in params) == (mine is not None), part
    if mine is not None:
      assert count(params[part]) == sum(p.numel() for p in mine.parameters())


def test_comparison_times_both_steps(peer):
  config = _config('hybrid')
  result = benchmark.compare_with_peer(config, peer, steps=2, warmup=1,
                                       mesh=parallel.make_mesh(jax.devices()[:1]),
                                       peak=None)
  assert len(result.jax.step_times_s) == len(result.peer_step_times_s) == 2
  assert result.speed_ratio == pytest.approx(result.peer_step_s /
                                             result.jax.step_s)
  text = benchmark.format_comparison(result)
  assert 'JAX speed / torch speed' in text and 'torch 2.' in text
  assert models.uses_byol(result.jax.objective)

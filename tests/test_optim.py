"""Schedules, optimizers (bias/norm exclusion) and the BYOL EMA."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gzevo_jax import config_lib, optim


def _opt_config(name, **kw):
  c = config_lib.base_config('hybrid').optimizer
  c.name = name
  for k, v in kw.items():
    c[k] = v
  return c


def test_warmup_then_cosine():
  sched = optim.learning_rate_schedule(peak=1.0, warmup_steps=10,
                                       total_steps=110)
  assert float(sched(0)) == 0.0
  assert float(sched(5)) == pytest.approx(0.5)
  assert float(sched(10)) == pytest.approx(1.0)
  # Half way through the decay, cosine is at 0.5.
  assert float(sched(60)) == pytest.approx(0.5, abs=1e-6)
  assert float(sched(110)) == pytest.approx(0.0, abs=1e-7)


def test_peak_learning_rate_scales_with_batch():
  c = _opt_config('lars', base_learning_rate=0.2, lr_reference_batch_size=256)
  assert optim.peak_learning_rate(c, 512) == pytest.approx(0.4)
  c.lr_reference_batch_size = 0
  assert optim.peak_learning_rate(c, 512) == pytest.approx(0.2)


def test_ema_tau_schedule():
  assert float(optim.ema_tau(0, 100, 0.99)) == pytest.approx(0.99)
  assert float(optim.ema_tau(100, 100, 0.99)) == pytest.approx(1.0)
  expected = 1 - 0.01 * (math.cos(math.pi * 0.25) + 1) / 2
  assert float(optim.ema_tau(25, 100, 0.99)) == pytest.approx(expected)


def test_ema_update_moves_target_by_the_scheduled_amount():
  target = {'w': jnp.zeros((3,)), 'b': jnp.full((2,), 4.0)}
  online = {'w': jnp.ones((3,)), 'b': jnp.zeros((2,))}
  new = optim.ema_update(target, online, 0.9)
  np.testing.assert_allclose(new['w'], 0.1)
  np.testing.assert_allclose(new['b'], 3.6)


def _params():
  return {'dense': {'kernel': jnp.ones((4, 3)), 'bias': jnp.ones((3,))},
          'bn': {'scale': jnp.ones((3,))}}


@pytest.mark.parametrize('name', ['adamw', 'lars'])
def test_bias_and_norm_params_get_no_weight_decay(name):
  """With zero gradient, only weight decay moves a parameter."""
  tx = optim.build_optimizer(_opt_config(name, weight_decay=0.1),
                             lambda step: 0.5)
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  assert np.all(np.asarray(updates['dense']['kernel']) < 0)
  assert np.all(np.asarray(updates['dense']['bias']) == 0)
  assert np.all(np.asarray(updates['bn']['scale']) == 0)


def test_lars_trust_ratio_applies_to_kernels_only():
  """LARS scales a kernel's step by trust * |w| / |g|; biases take plain SGD."""
  tx = optim.build_optimizer(_opt_config('lars', weight_decay=0.0,
                                         momentum=0.0,
                                         trust_coefficient=1e-3),
                             lambda step: 1.0)
  params = _params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 2.0), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  kernel_ratio = 1e-3 * np.linalg.norm(np.ones((4, 3))) / np.linalg.norm(
      np.full((4, 3), 2.0))
  np.testing.assert_allclose(updates['dense']['kernel'], -2.0 * kernel_ratio,
                             rtol=1e-5)
  np.testing.assert_allclose(updates['dense']['bias'], -2.0, rtol=1e-6)


def test_unknown_optimizer():
  with pytest.raises(ValueError, match='adamw, lars, sgd'):
    optim.build_optimizer(_opt_config('rmsprop'), lambda s: 0.1)


def test_sgd_matches_pytorch_update_rule():
  """torch.optim.SGD: buf = mu * buf + (g + wd * p); p -= lr * buf."""
  lr, mu, wd = 0.1, 0.9, 0.01
  params = {'w': jnp.array([[1.0, -2.0]]), 'b': jnp.array([0.5])}
  grads = [{'w': jnp.array([[0.3, 0.1]]), 'b': jnp.array([-0.2])},
           {'w': jnp.array([[-0.1, 0.4]]), 'b': jnp.array([0.05])}]
  for decay_all in (False, True):
    tx = optim.build_optimizer(
        _opt_config('sgd', momentum=mu, weight_decay=wd,
                    decay_norm_and_bias=decay_all), lambda s: lr)
    state, p = tx.init(params), params
    ref = {k: np.asarray(v, np.float64) for k, v in params.items()}
    buf = {k: np.zeros_like(v) for k, v in ref.items()}
    for g in grads:
      updates, state = tx.update(g, state, p)
      p = jax.tree.map(lambda a, u: a + u, p, updates)
      for k in ref:
        decays = decay_all or ref[k].ndim > 1
        d = np.asarray(g[k], np.float64) + (wd * ref[k] if decays else 0.0)
        buf[k] = mu * buf[k] + d
        ref[k] = ref[k] - lr * buf[k]
    for k in ref:
      np.testing.assert_allclose(p[k], ref[k], rtol=1e-6, atol=1e-7)


def test_constant_ema_schedule():
  for step in (0, 37, 100):
    assert float(optim.ema_tau(step, 100, 0.99, 'constant')) == (
        pytest.approx(0.99))
  with pytest.raises(ValueError, match='cosine, constant'):
    optim.ema_tau(0, 100, 0.99, 'linear')

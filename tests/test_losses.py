"""Losses against independent references: scipy, numpy, finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gzevo_jax import losses
from gzevo_jax.schema import GZ_EVO_V0_1, Schema, Question

SMALL = Schema('small', (Question('q1', ('a', 'b', 'c')),
                         Question('q2', ('yes', 'no'), asked_if='q1_a'),
                         Question('q3', ('x', 'y', 'z', 'w'))))


def _random_votes(rng, schema, batch, p_unknown=0.4, max_votes=40):
  counts = rng.integers(0, max_votes, (batch, schema.num_answers))
  unknown = rng.random((batch, schema.num_questions)) < p_unknown
  counts[unknown[:, schema.answer_question_index]] = 0
  conc = rng.uniform(1.0, 101.0, (batch, schema.num_answers))
  return counts, conc


def _scipy_nll(counts, conc, schema):
  out = np.zeros((counts.shape[0], schema.num_questions))
  for b in range(counts.shape[0]):
    for q, sl in enumerate(schema.question_slices):
      n = counts[b, sl].sum()
      if n:
        out[b, q] = -stats.dirichlet_multinomial.logpmf(counts[b, sl],
                                                        conc[b, sl], n)
  return out


@pytest.mark.parametrize('schema', [SMALL, GZ_EVO_V0_1], ids=lambda s: s.name)
def test_dirichlet_multinomial_matches_scipy(schema):
  counts, conc = _random_votes(np.random.default_rng(0), schema, batch=6)
  nll = losses.dirichlet_multinomial_nll(counts, conc, schema)
  assert nll.shape == (6, schema.num_questions) and nll.dtype == jnp.float32
  np.testing.assert_allclose(nll, _scipy_nll(counts, conc, schema),
                             rtol=2e-5, atol=2e-4)


def test_no_votes_gives_exactly_zero_loss_and_gradient():
  rng = np.random.default_rng(1)
  counts, conc = _random_votes(rng, GZ_EVO_V0_1, batch=4)
  counts[:, GZ_EVO_V0_1.question_slices[3]] = 0  # One unknown question...
  counts[2] = 0                                  # ...and a whole galaxy.
  nll_fn = lambda c: losses.dirichlet_multinomial_nll(counts, c, GZ_EVO_V0_1)
  nll = nll_fn(jnp.asarray(conc, jnp.float32))
  assert np.all(np.asarray(nll[:, 3]) == 0.0)
  assert np.all(np.asarray(nll[2]) == 0.0)
  grad = jax.grad(lambda c: nll_fn(c).sum())(jnp.asarray(conc, jnp.float32))
  assert np.all(np.asarray(grad[:, GZ_EVO_V0_1.question_slices[3]]) == 0.0)
  assert np.all(np.asarray(grad[2]) == 0.0)
  assert np.all(np.isfinite(grad))
  # Questions with votes do get gradient.
  assert np.any(np.asarray(grad[0]) != 0.0)


def test_gradient_matches_finite_differences_of_scipy():
  """d(-log p)/d(alpha) against central differences of scipy in float64."""
  rng = np.random.default_rng(2)
  counts, conc = _random_votes(rng, SMALL, batch=3, p_unknown=0.0)
  grad = jax.grad(lambda c: losses.dirichlet_multinomial_nll(
      counts, c, SMALL).sum())(jnp.asarray(conc, jnp.float32))
  eps = 1e-5
  numeric = np.zeros_like(conc)
  for i in np.ndindex(conc.shape):
    up, down = conc.copy(), conc.copy()
    up[i] += eps
    down[i] -= eps
    numeric[i] = (_scipy_nll(counts, up, SMALL).sum() -
                  _scipy_nll(counts, down, SMALL).sum()) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-4)


def test_lgamma_is_evaluated_in_float32_for_bfloat16_inputs():
  counts, conc = _random_votes(np.random.default_rng(3), GZ_EVO_V0_1, batch=4,
                               max_votes=300)
  conc_bf16 = jnp.asarray(conc, jnp.bfloat16)
  nll_bf16 = losses.dirichlet_multinomial_nll(counts, conc_bf16, GZ_EVO_V0_1)
  assert nll_bf16.dtype == jnp.float32
  # Same as float32 evaluation on the bf16-rounded concentrations...
  reference = _scipy_nll(counts, np.asarray(conc_bf16, np.float64),
                         GZ_EVO_V0_1)
  # (float32 lgamma of arguments ~400 carries ~1e-4 absolute rounding.)
  np.testing.assert_allclose(nll_bf16, reference, rtol=1e-4, atol=2e-3)
  # ...which bfloat16 arithmetic would not achieve (lgamma(300) ~ 1400 has
  # an ulp of 8 in bfloat16).
  from jax.scipy.special import gammaln
  bf16_terms = gammaln(jnp.asarray(counts, jnp.bfloat16) + conc_bf16)
  f32_terms = gammaln(jnp.asarray(counts, jnp.float32) +
                      conc_bf16.astype(jnp.float32))
  assert np.max(np.abs(np.asarray(bf16_terms, np.float32) - f32_terms)) > 0.5


def test_shape_mismatch_is_a_clear_error():
  with pytest.raises(ValueError, match='206'):
    losses.dirichlet_multinomial_nll(np.zeros((2, 10)), np.ones((2, 10)),
                                     GZ_EVO_V0_1)


def _numpy_byol(p1, p2, t1, t2):
  n = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  cos_12 = np.sum(n(p1) * n(t2), -1)
  cos_21 = np.sum(n(p2) * n(t1), -1)
  return np.mean((2 - 2 * cos_12) + (2 - 2 * cos_21))


def test_byol_loss_matches_two_minus_two_cosine():
  rng = np.random.default_rng(4)
  p1, p2, t1, t2 = (rng.normal(size=(8, 16)).astype(np.float32)
                    for _ in range(4))
  np.testing.assert_allclose(losses.byol_loss(p1, p2, t1, t2),
                             _numpy_byol(p1, p2, t1, t2), rtol=1e-5)
  # Identical directions give zero loss; opposite ones the maximum, 8.
  assert float(losses.byol_loss(p1, p2, 3 * p2, 2 * p1)) == pytest.approx(
      0.0, abs=1e-5)
  assert float(losses.byol_loss(p1, p2, -p2, -p1)) == pytest.approx(8.0,
                                                                    rel=1e-5)


def test_byol_negative_cosine_form_against_numpy():
  """The paper's code: -(cos(p1, t2) + cos(p2, t1)) / 2, batch mean."""
  rng = np.random.default_rng(41)
  p1, p2, t1, t2 = (rng.normal(size=(8, 16)) for _ in range(4))

  def cos(a, b):
    return np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(
        b, axis=-1)

  expected = -0.5 * np.mean(cos(p1, t2) + cos(p2, t1))
  got = losses.byol_loss(*(np.float32(x) for x in (p1, p2, t1, t2)),
                         form='negative_cosine')
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Same minimiser as the squared distance, whose value is 4 + 4 * this one.
  np.testing.assert_allclose(
      losses.byol_loss(*(np.float32(x) for x in (p1, p2, t1, t2))),
      4.0 + 4.0 * expected, rtol=1e-5)
  with pytest.raises(ValueError, match='squared_distance, negative_cosine'):
    losses.byol_loss(p1, p2, t1, t2, form='cosine')


def test_byol_loss_stops_gradient_into_targets():
  rng = np.random.default_rng(5)
  p1, p2, t1, t2 = (jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
                    for _ in range(4))
  g_pred, g_t1, g_t2 = jax.grad(
      lambda p, a, b: losses.byol_loss(p, p2, a, b), argnums=(0, 1, 2))(
          p1, t1, t2)
  assert np.any(np.asarray(g_pred) != 0)
  assert np.all(np.asarray(g_t1) == 0) and np.all(np.asarray(g_t2) == 0)


def test_byol_loss_is_finite_for_a_zero_vector():
  z = jnp.zeros((2, 4))
  x = jnp.ones((2, 4))
  assert np.isfinite(float(losses.byol_loss(z, x, x, x)))
  grad = jax.grad(lambda p: losses.byol_loss(p, x, x, x))(z)
  assert np.all(np.isfinite(grad))


def test_hybrid_plain_weighting():
  byol, sup = jnp.float32(2.0), jnp.float32(30.0)
  assert float(losses.hybrid_loss(byol, sup, 0.5)) == pytest.approx(17.0)


def test_hybrid_rescaled_weighting_value_and_gradient():
  """w * sg(|L_byol| / L_sup) * L_sup: value w|L_byol|, gradient rescaled."""
  w = 0.5

  def parts(x):
    return x[0] ** 2, 10.0 * x[1] ** 2  # byol, supervised

  def total(x):
    b, s = parts(x)
    return losses.hybrid_loss(b, s, w, rescale=True)

  x = jnp.array([1.5, 2.0])
  b, s = parts(x)
  assert float(total(x)) == pytest.approx(float(b + w * abs(b)), rel=1e-6)
  grad = jax.grad(total)(x)
  factor = w * abs(float(b)) / float(s)
  np.testing.assert_allclose(grad, [2 * 1.5, factor * 20.0 * 2.0], rtol=1e-6)


def test_rescaled_weight_is_zero_for_an_unlabelled_batch():
  assert float(losses.supervised_weight(jnp.float32(3.0), jnp.float32(0.0),
                                        1.0, rescale=True)) == 0.0
  assert float(losses.hybrid_loss(jnp.float32(3.0), jnp.float32(0.0), 1.0,
                                  rescale=True)) == 3.0


def _fixmatch_reference(weak_logits, strong_logits, threshold):
  """FixMatch's unlabelled loss, one example at a time, in numpy."""
  total, mask = 0.0, []
  for weak, strong in zip(np.asarray(weak_logits, np.float64),
                          np.asarray(strong_logits, np.float64)):
    p = np.exp(weak - weak.max())
    p /= p.sum()
    keep = p.max() >= threshold
    mask.append(float(keep))
    if keep:
      log_q = strong - strong.max() - np.log(np.exp(strong - strong.max()).sum())
      total -= log_q[np.argmax(p)]
  return total / len(weak_logits), np.array(mask)


def test_fixmatch_masks_unconfident_examples_and_matches_numpy():
  rng = np.random.default_rng(0)
  weak = rng.normal(size=(64, 3)) * 3
  strong = rng.normal(size=(64, 3))
  loss, mask = losses.fixmatch_unlabelled_loss(jnp.asarray(weak),
                                               jnp.asarray(strong), 0.95)
  expected_loss, expected_mask = _fixmatch_reference(weak, strong, 0.95)
  np.testing.assert_array_equal(np.asarray(mask), expected_mask)
  assert 0 < expected_mask.mean() < 1  # Some kept, some masked.
  assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
  # Threshold 0 keeps every example; above 1, none (and the loss is 0).
  assert float(losses.fixmatch_unlabelled_loss(
      jnp.asarray(weak), jnp.asarray(strong), 0.0)[1].mean()) == 1.0
  none = losses.fixmatch_unlabelled_loss(jnp.asarray(weak),
                                         jnp.asarray(strong), 1.01)
  assert float(none[0]) == 0.0 and float(none[1].sum()) == 0.0


def test_fixmatch_pseudo_labels_carry_no_gradient():
  weak = jnp.array([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
  strong = jnp.array([[0.5, 0.1, 0.2], [0.1, 0.2, 0.3]])
  grad_weak, grad_strong = jax.grad(
      lambda w, s: losses.fixmatch_unlabelled_loss(w, s, 0.5)[0],
      argnums=(0, 1))(weak, strong)
  np.testing.assert_array_equal(np.asarray(grad_weak), 0.0)
  assert float(jnp.abs(grad_strong).sum()) > 0

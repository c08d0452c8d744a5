"""Pure, jit-able losses: Dirichlet-Multinomial over votes, BYOL, the hybrid,
and FixMatch's unlabelled term.

See ARCHITECTURE.md ("The science in one page") for the formulas. All three are
plain functions of arrays, so they run inside any transform (jit, grad,
shard_map) and are tested against scipy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from gzevo_jax.schema import Schema

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

# Norm floor for L2 normalisation: keeps the gradient finite for a zero vector.
_NORMALIZE_EPS = 1e-6


def _per_question_sum(x: Array, schema: Schema) -> Array:
  """Sums [batch, answers] over each question's answers -> [batch, questions]."""
  return jax.ops.segment_sum(
      x.T, schema.answer_question_index, num_segments=schema.num_questions,
      indices_are_sorted=True).T


def _log_factorial(k: Array) -> Array:
  """log(k!) that is exactly 0 at k = 0 (float32 lgamma(1) is not)."""
  return jnp.where(k > 0, gammaln(k + 1.0), 0.0)


def dirichlet_multinomial_nll(counts: ArrayLike, concentrations: ArrayLike,
                              schema: Schema) -> Array:
  """Per-question Dirichlet-Multinomial negative log-likelihood of vote counts.

  For question q with answer counts k (N = sum k) and predicted concentrations
  a (a0 = sum a):
    -log p = -[lgamma(N+1) + lgamma(a0) - lgamma(N+a0)
               + sum_j (lgamma(k_j+a_j) - lgamma(a_j) - lgamma(k_j+1))].
  A question with no votes contributes exactly 0 with exactly zero gradient
  (every lgamma term cancels with its twin), which is how GZ-Evo's unknown
  answers are ignored without masking.

  Args:
    counts: [batch, num_answers] vote counts (any numeric dtype).
    concentrations: [batch, num_answers] positive concentrations, in the
      schema's label-column order (any float dtype; bfloat16 is upcast).
    schema: the decision tree the columns follow.

  Returns:
    float32 [batch, num_questions] negative log-likelihoods.
  """
  # lgamma of large arguments loses everything in bfloat16: always float32.
  k = jnp.asarray(counts).astype(jnp.float32)
  a = jnp.asarray(concentrations).astype(jnp.float32)
  if k.shape != a.shape or k.shape[-1] != schema.num_answers:
    raise ValueError(f'counts {k.shape} and concentrations {a.shape} must both '
                     f'be [batch, {schema.num_answers}] for schema '
                     f'{schema.name!r}')
  # With no votes, lgamma(0 + a) - lgamma(a) and lgamma(a0) - lgamma(0 + a0)
  # are the same float32 numbers subtracted: exactly 0, gradient exactly 0.
  per_answer = gammaln(k + a) - gammaln(a) - _log_factorial(k)
  n = _per_question_sum(k, schema)
  a0 = _per_question_sum(a, schema)
  log_p = (_log_factorial(n) + gammaln(a0) - gammaln(n + a0)
           + _per_question_sum(per_answer, schema))
  return -log_p


def l2_normalize(x: Array, axis: int = -1) -> Array:
  """x / ||x||, with the norm floored so a zero vector stays finite."""
  x = x.astype(jnp.float32)
  # Flooring the squared norm (not the norm) keeps d/dx finite at x = 0.
  squared = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, _NORMALIZE_EPS ** 2))


BYOL_FORMS = ('squared_distance', 'negative_cosine')


def byol_loss(pred_1: Array, pred_2: Array, target_1: Array,
              target_2: Array, form: str = 'squared_distance') -> Array:
  """Symmetrised BYOL regression loss (Grill et al. 2020), a scalar.

  pred_i is the online prediction of view i, target_i the target projection
  of view i; the targets are wrapped in stop_gradient here so callers cannot
  forget. With n = L2 normalisation and the batch mean over galaxies:
    'squared_distance' (BYOL's paper): |n(p1) - n(t2)|^2 + |n(p2) - n(t1)|^2,
      which is 4 - 2 (cos(p1, t2) + cos(p2, t1)), in [0, 8];
    'negative_cosine' (the hybrid paper's code, lightly's
      NegativeCosineSimilarity): -(cos(p1, t2) + cos(p2, t1)) / 2, in [-1, 1].
  The two differ by an affine map: the same minimiser, a gradient 4 times
  smaller, and a value near -1 (not 0) once converged, which matters for the
  rescaled hybrid weighting (it scales the supervised term by |L_byol|).
  """
  target_1 = jax.lax.stop_gradient(target_1)
  target_2 = jax.lax.stop_gradient(target_2)

  if form == 'squared_distance':
    def term(p: Array, t: Array) -> Array:
      return jnp.sum(jnp.square(l2_normalize(p) - l2_normalize(t)), axis=-1)
    return jnp.mean(term(pred_1, target_2) + term(pred_2, target_1))
  if form == 'negative_cosine':
    def term(p: Array, t: Array) -> Array:
      return -0.5 * jnp.sum(l2_normalize(p) * l2_normalize(t), axis=-1)
    return jnp.mean(term(pred_1, target_2) + term(pred_2, target_1))
  raise ValueError(f'unknown BYOL loss form {form!r}; choose one of '
                   f'{", ".join(BYOL_FORMS)}')


def supervised_weight(byol: Array, supervised: Array, weight: float,
                      rescale: bool) -> Array:
  """The factor multiplying the supervised term in the hybrid loss.

  Plain: `weight`. Rescaled (the paper's code): `weight * |L_byol| / L_sup`
  with both under stop_gradient, so the supervised term is held at `weight`
  times the contrastive term's size every step while its gradient direction is
  unchanged. A batch with no votes (L_sup = 0) gets factor 0 instead of inf.
  """
  if not rescale:
    return jnp.asarray(weight, jnp.float32)
  byol = jax.lax.stop_gradient(byol).astype(jnp.float32)
  supervised = jax.lax.stop_gradient(supervised).astype(jnp.float32)
  safe = jnp.where(supervised > 0, supervised, 1.0)
  return jnp.where(supervised > 0, weight * jnp.abs(byol) / safe, 0.0)


def hybrid_loss(byol: Array, supervised: Array, weight: float,
                rescale: bool = False) -> Array:
  """L_byol + factor * L_sup, with `supervised_weight` giving the factor."""
  return byol + supervised_weight(byol, supervised, weight, rescale) * supervised


def fixmatch_unlabelled_loss(weak_logits: Array, strong_logits: Array,
                             threshold: float) -> tuple[Array, Array]:
  """FixMatch's unlabelled term (Sohn et al. 2020) and its mask.

  Each unlabelled example's weakly augmented view gives a pseudo-label, the
  argmax of its predicted distribution, kept only where that distribution's
  maximum is at least `threshold`; the strongly augmented view is trained
  towards it with cross-entropy. Pseudo-labels are under stop-gradient.
  Returns (the loss averaged over all unlabelled examples, masked ones
  counting 0, as in the paper; the float mask [batch]).
  """
  weak_prob = jax.nn.softmax(jax.lax.stop_gradient(weak_logits), axis=-1)
  pseudo_label = jnp.argmax(weak_prob, axis=-1)
  mask = (jnp.max(weak_prob, axis=-1) >= threshold).astype(jnp.float32)
  log_prob = jax.nn.log_softmax(strong_logits, axis=-1)
  cross_entropy = -jnp.take_along_axis(log_prob, pseudo_label[:, None],
                                       axis=-1)[:, 0]
  return jnp.mean(mask * cross_entropy), mask

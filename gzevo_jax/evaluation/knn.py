"""Weighted k-nearest-neighbour classification of frozen features.

The non-parametric probe of Wu et al. (2018) as used by DINO: features are
L2-normalised, each query takes the k training features with the highest
cosine similarity, and each neighbour votes for its class with weight
exp(similarity / temperature). Queries go through in fixed-size chunks, so
memory is [chunk_size, num_train], whatever the number of queries.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Norm floor for L2 normalisation: a zero feature stays zero instead of NaN.
_NORMALIZE_EPS = 1e-12


def _l2_normalize(x: jax.Array) -> jax.Array:
  """Rows scaled to unit L2 norm, in float32."""
  x = x.astype(jnp.float32)
  norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
  return x / jnp.maximum(norm, _NORMALIZE_EPS)


@functools.partial(jax.jit, static_argnames=('k', 'num_classes'))
def _knn_chunk(train_unit: jax.Array, train_labels: jax.Array,
               queries: jax.Array, temperature: jax.Array, k: int,
               num_classes: int) -> jax.Array:
  """[B, num_classes] neighbour-vote probabilities for a chunk of queries."""
  # HIGHEST: no reduced-precision (bf16/tf32) matmul that would reorder close
  # neighbours on accelerators.
  sims = jnp.matmul(_l2_normalize(queries),
                    train_unit.T,
                    precision=jax.lax.Precision.HIGHEST)
  top_sims, top_idx = jax.lax.top_k(sims, k)
  # Subtracting each query's best similarity rescales its weights by a common
  # factor that the normalisation cancels, and keeps exp from overflowing at
  # small temperatures.
  weights = jnp.exp((top_sims - top_sims[:, :1]) / temperature)
  votes = jax.nn.one_hot(train_labels[top_idx], num_classes, dtype=jnp.float32)
  scores = jnp.einsum('bk,bkc->bc', weights, votes)
  return scores / scores.sum(axis=-1, keepdims=True)


def _check_knn_inputs(train_features: np.ndarray, train_labels: np.ndarray,
                      query_features: np.ndarray, *, k: int,
                      temperature: float, num_classes: int,
                      chunk_size: int) -> None:
  """Raises ValueError naming the first argument of `knn_predict` that is off."""
  if (train_features.ndim != 2 or query_features.ndim != 2 or
      train_features.shape[1] != query_features.shape[1] or
      train_labels.shape != train_features.shape[:1]):
    raise ValueError(
        f'Need train features [N, D], train labels [N] and query features '
        f'[Q, D]; got {train_features.shape}, {train_labels.shape} and '
        f'{query_features.shape}.')
  num_train = train_features.shape[0]
  if not 1 <= k <= num_train:
    raise ValueError(f'k={k} must be between 1 and the train set size '
                     f'{num_train}.')
  if not temperature > 0:
    raise ValueError(f'temperature must be positive; got {temperature}.')
  if chunk_size < 1:
    raise ValueError(f'chunk_size must be positive; got {chunk_size}.')
  if (not np.issubdtype(train_labels.dtype, np.integer) or
      train_labels.min() < 0 or train_labels.max() >= num_classes):
    raise ValueError(f'train labels must be integers in 0..{num_classes - 1}; '
                     f'got dtype {train_labels.dtype}, range '
                     f'{train_labels.min()}..{train_labels.max()}.')


def knn_predict(train_features: np.ndarray,
                train_labels: np.ndarray,
                query_features: np.ndarray,
                *,
                k: int,
                temperature: float,
                num_classes: int,
                chunk_size: int = 1024) -> np.ndarray:
  """Class probabilities of queries from their k nearest training features.

  Args:
    train_features: [N, D] features (normalised here; any scale).
    train_labels: [N] integer labels in 0..num_classes-1.
    query_features: [Q, D] features to classify.
    k: neighbours per query, 1..N.
    temperature: positive; smaller values favour the closest neighbours.
    num_classes: number of classes C.
    chunk_size: queries per compiled step; bounds memory at chunk_size x N.

  Returns:
    float32 [Q, C] probabilities: each class's summed neighbour weight over the
    total; the predicted class is the argmax.
  """
  train_features = np.asarray(train_features)
  train_labels = np.asarray(train_labels)
  query_features = np.asarray(query_features)
  _check_knn_inputs(train_features, train_labels, query_features, k=k,
                    temperature=temperature, num_classes=num_classes,
                    chunk_size=chunk_size)
  num_queries = query_features.shape[0]
  if not num_queries:
    return np.zeros((0, num_classes), np.float32)
  # One compiled shape: the last chunk is zero-padded and its padding dropped.
  chunk = min(chunk_size, num_queries)
  padded = -num_queries % chunk
  queries = np.pad(query_features, ((0, padded), (0, 0)))
  train_unit = _l2_normalize(jnp.asarray(train_features))
  labels = jnp.asarray(train_labels, jnp.int32)
  temperature = jnp.float32(temperature)
  probs = [
      np.asarray(
          _knn_chunk(train_unit,
                     labels,
                     queries[start:start + chunk],
                     temperature,
                     k=k,
                     num_classes=num_classes))
      for start in range(0, queries.shape[0], chunk)
  ]
  return np.concatenate(probs)[:num_queries]

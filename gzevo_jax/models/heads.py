"""Heads on top of an encoder: BYOL projector/predictor MLPs, the Dirichlet head,
and `GalaxyModel`, which composes them for all three objectives."""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

# Dirichlet concentrations lie in (1, 1 + _CONCENTRATION_RANGE): bounded below
# by 1 so every predicted distribution is unimodal-or-flat, and above so the
# loss cannot be driven to a point mass by one confident batch (Zoobot).
_CONCENTRATION_RANGE = 100.0


class MLP(nn.Module):
  """Dense(hidden) -> BatchNorm -> ReLU -> Dense(out): BYOL projector/predictor."""
  hidden_dim: int
  out_dim: int
  dtype: Any = jnp.float32
  bn_axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nn.Dense(self.hidden_dim, dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     epsilon=1e-5, dtype=self.dtype,
                     axis_name=self.bn_axis_name)(x)
    x = nn.relu(x)
    return nn.Dense(self.out_dim, dtype=self.dtype)(x).astype(jnp.float32)


class DirichletHead(nn.Module):
  """Features -> one Dirichlet concentration per label column, 1 + 100*sigmoid.

  `dropout` > 0 drops features before the dense layer in training, as
  Zoobot's head and the hybrid paper's code do (rate 0.2 there).
  """
  num_answers: int
  dtype: Any = jnp.float32
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.dropout > 0:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    logits = nn.Dense(self.num_answers, dtype=self.dtype)(x)
    return 1.0 + _CONCENTRATION_RANGE * nn.sigmoid(logits.astype(jnp.float32))


class GalaxyModel(nn.Module):
  """Encoder plus the heads an objective needs.

  `__call__` is the online network: representation, and where present the
  projection, prediction (BYOL) and Dirichlet concentrations. `target` is the
  BYOL target network (encoder -> projector), applied with the EMA parameters;
  it touches only the `encoder` and `projector` subtrees, so the target state
  holds just those.
  """
  encoder: nn.Module
  projector: Optional[nn.Module] = None
  predictor: Optional[nn.Module] = None
  head: Optional[nn.Module] = None

  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    representation = self.encoder(x, train=train)
    out = {'representation': representation}
    if self.projector is not None:
      out['projection'] = self.projector(representation, train=train)
      out['prediction'] = self.predictor(out['projection'], train=train)
    if self.head is not None:
      out['concentrations'] = self.head(representation, train=train)
    return out

  def target(self, x: jax.Array, train: bool) -> jax.Array:
    return self.projector(self.encoder(x, train=train), train=train)

  def represent(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.encoder(x, train=train)

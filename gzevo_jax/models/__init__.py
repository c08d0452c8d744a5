"""Models: encoders (ResNet, ConvNeXt), BYOL MLPs, the Dirichlet head, and
`build_model`, which assembles what a config's objective needs."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from gzevo_jax.models.encoders import ENCODERS, build_encoder, encoder_feature_dim
from gzevo_jax.models.heads import DirichletHead, GalaxyModel, MLP

# Name of the device axis the train step maps over; BatchNorm averages its
# statistics over it.
BATCH_AXIS = 'batch'

__all__ = ['BATCH_AXIS', 'DirichletHead', 'ENCODERS', 'GalaxyModel', 'MLP',
           'build_encoder', 'build_encoder_from_config', 'build_model',
           'encoder_feature_dim',
           'uses_byol', 'uses_votes']


def uses_byol(objective: str) -> bool:
  """Whether an objective has the BYOL term (two views, target network)."""
  return objective in ('contrastive', 'hybrid')


def uses_votes(objective: str) -> bool:
  """Whether an objective has the Dirichlet term (a head on the votes)."""
  return objective in ('supervised', 'hybrid')


def build_encoder_from_config(model_config: ml_collections.ConfigDict):
  """The encoder a config names, with cross-device BatchNorm."""
  kwargs = dict(width_multiplier=model_config.width_multiplier,
                small_image_stem=model_config.small_image_stem,
                dtype=jnp.dtype(model_config.dtype),
                bn_axis_name=BATCH_AXIS,
                drop_path_rate=model_config.drop_path_rate)
  return build_encoder(model_config.encoder, **kwargs)


def build_model(config: ml_collections.ConfigDict,
                num_answers: int) -> GalaxyModel:
  """Encoder plus the projector/predictor (BYOL) and/or head (votes)."""
  m = config.model
  dtype = jnp.dtype(m.dtype)
  projector = predictor = head = None
  if uses_byol(config.objective):
    projector = MLP(m.projector_hidden_dim, m.projection_dim, dtype=dtype,
                    bn_axis_name=BATCH_AXIS)
    predictor = MLP(m.predictor_hidden_dim, m.projection_dim, dtype=dtype,
                    bn_axis_name=BATCH_AXIS)
  if uses_votes(config.objective):
    head = DirichletHead(num_answers, dtype=dtype, dropout=m.head_dropout)
  return GalaxyModel(encoder=build_encoder_from_config(m), projector=projector,
                     predictor=predictor, head=head)

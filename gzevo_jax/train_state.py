"""The train state and what it is built from: config -> Setup -> TrainState.

  setup = build_setup(config)          # model, optimizer, schedules
  state = create_train_state(setup)    # one explicit pytree

Training (`train`) steps this state and `checkpoint` saves it; restoring a
checkpoint needs its template, so both build it from here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gzevo_jax import config_lib
from gzevo_jax import models
from gzevo_jax import optim
from gzevo_jax.schema import Schema, get_schema


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree.

  `target_params` / `target_batch_stats` hold the BYOL target network
  (encoder + projector, an EMA of the online ones) and are empty for the
  supervised objective. `rng` is the base key; each step and device folds in
  its own indices, so randomness is a pure function of (seed, step, device).
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  target_params: Any
  target_batch_stats: Any
  opt_state: Any
  rng: jax.Array


@dataclasses.dataclass(frozen=True)
class Durations:
  steps_per_epoch: int
  total_steps: int
  warmup_steps: int


@dataclasses.dataclass(frozen=True)
class Setup:
  """What the step needs besides state: built once from the config."""
  config: ml_collections.ConfigDict
  schema: Schema
  model: models.GalaxyModel
  tx: optax.GradientTransformation
  lr_schedule: optax.Schedule
  durations: Durations

  @property
  def objective(self) -> str:
    return self.config.objective

  @property
  def image_shape(self) -> tuple[int, int, int]:
    d = self.config.data
    return (d.image_size, d.image_size, d.channels)


def resolve_durations(config: ml_collections.ConfigDict,
                      num_train_examples: int) -> Durations:
  """Total and warmup steps from whichever of steps / epochs the config sets."""
  steps_per_epoch = num_train_examples // config.global_batch_size
  if steps_per_epoch < 1:
    raise ValueError(f'config.global_batch_size={config.global_batch_size} '
                     f'exceeds the {num_train_examples} training examples')

  total = config_lib.parse_duration(config.train_duration, steps_per_epoch,
                                    'train_duration')
  if total < 1:
    raise ValueError(f'config.train_duration={config.train_duration!r} is '
                     'less than one step')
  warmup = config_lib.parse_duration(config.warmup_duration, steps_per_epoch,
                                     'warmup_duration')
  return Durations(steps_per_epoch=steps_per_epoch, total_steps=total,
                   warmup_steps=warmup)


def build_setup(config: ml_collections.ConfigDict,
                schema: Optional[Schema] = None,
                num_train_examples: Optional[int] = None) -> Setup:
  """Validates the config and builds model, optimizer and schedules.

  `schema` overrides `config.schema` (a checkpoint carries its own);
  `num_train_examples` (an epoch) defaults to config.data.num_train_examples.
  """
  config_lib.validate(config)
  schema = get_schema(config.schema) if schema is None else schema
  if num_train_examples is None:
    num_train_examples = config.data.num_train_examples
  durations = resolve_durations(config, num_train_examples)
  lr_schedule = optim.learning_rate_schedule(
      optim.peak_learning_rate(config.optimizer, config.global_batch_size),
      durations.warmup_steps, durations.total_steps)
  return Setup(config=config, schema=schema,
               model=models.build_model(config, schema.num_answers),
               tx=optim.build_optimizer(config.optimizer, lr_schedule),
               lr_schedule=lr_schedule, durations=durations)


def target_subtrees(tree: Mapping[str, Any]) -> dict[str, Any]:
  """The encoder and projector parts of an online variable collection."""
  return {k: tree[k] for k in ('encoder', 'projector') if k in tree}


def create_train_state(setup: Setup, seed: Optional[int] = None) -> TrainState:
  """Initialises parameters, target network and optimizer (on the host)."""
  seed = setup.config.seed if seed is None else seed
  init_rng, state_rng = jax.random.split(jax.random.PRNGKey(seed))
  dummy = jnp.zeros((1, *setup.image_shape), jnp.float32)
  # train=False: BatchNorm needs no cross-device axis to initialise.
  variables = setup.model.init(init_rng, dummy, train=False)
  params = variables['params']
  batch_stats = variables.get('batch_stats', {})
  two_views = models.uses_byol(setup.objective)
  # The target starts as a copy of the online encoder + projector (BYOL).
  target_params = target_subtrees(params) if two_views else {}
  target_batch_stats = target_subtrees(batch_stats) if two_views else {}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=batch_stats,
                    target_params=jax.tree.map(jnp.copy, target_params),
                    target_batch_stats=jax.tree.map(jnp.copy,
                                                    target_batch_stats),
                    opt_state=setup.tx.init(params), rng=state_rng)


def encoder_variables(state: TrainState) -> dict[str, Any]:
  """The online encoder's variables, ready for `encoder.apply`."""
  return {'params': state.params['encoder'],
          'batch_stats': state.batch_stats.get('encoder', {})}

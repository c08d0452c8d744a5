"""Orbax checkpoints: save, resume, and restore the encoder or model downstream.

Each checkpoint step holds three items: `state` (the TrainState pytree),
`config` (the run's config as JSON) and `schema` (the decision tree as JSON),
so a checkpoint alone is enough to rebuild the model that wrote it.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Optional, TYPE_CHECKING

from absl import logging
import flax.linen as nn
import jax
import ml_collections
import orbax.checkpoint as ocp

from gzevo_jax import config_lib
from gzevo_jax import errors
from gzevo_jax.config_lib import get_dotted
from gzevo_jax.schema import Schema

if TYPE_CHECKING:  # Avoid an import cycle: train imports this module.
  from gzevo_jax import models, train
  from gzevo_jax.train import TrainState

CHECKPOINT_SUBDIR = 'checkpoints'
UNREADABLE_SUBDIR = 'checkpoints_unreadable'
# Config fields that change the shape of the state: a checkpoint written with
# other values cannot be resumed or restored into this config's model.
_STATE_SHAPING_FIELDS = ('objective', 'model', 'optimizer.name')


class IncompatibleCheckpointError(errors.UserError):
  """The checkpoint was written by a model of another shape."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)


def make_manager(workdir: str, max_to_keep: Optional[int] = None,
                 async_save: bool = False,
                 for_reading: bool = False) -> ocp.CheckpointManager:
  """A manager for `workdir/checkpoints` (keep-N, optionally async).

  `for_reading` does not create the directory (downstream restores).
  """
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
      create=not for_reading)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: 'TrainState',
         config: ml_collections.ConfigDict, schema: Schema) -> None:
  """Starts an (async) save of `state` with the config and schema."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      config=ocp.args.JsonSave(json.loads(config.to_json())),
      schema=ocp.args.JsonSave(schema.to_dict())), force=True)


def _shaping_differences(saved: dict, config: ml_collections.ConfigDict
                         ) -> list[str]:
  current = json.loads(config.to_json())
  diffs = []
  for field in _STATE_SHAPING_FIELDS:
    a, b = get_dotted(saved, field), get_dotted(current, field)
    if isinstance(a, dict):
      diffs += [f'{field}.{k}: {a.get(k)!r} in the checkpoint, {b.get(k)!r} '
                f'here' for k in sorted(set(a) | set(b))
                if k != 'dtype' and a.get(k) != b.get(k)]
    elif a != b:
      diffs.append(f'{field}: {a!r} in the checkpoint, {b!r} here')
  return diffs


def _abstract(tree: Any) -> Any:
  """Shape/dtype/sharding of each array: the target Orbax restores into."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=getattr(x, 'sharding', None)),
      tree)


def _check_same_model(manager: ocp.CheckpointManager, step: int,
                      config: ml_collections.ConfigDict) -> None:
  saved_config = manager.restore(step, args=ocp.args.Composite(
      config=ocp.args.JsonRestore()))['config']
  diffs = _shaping_differences(saved_config, config)
  if diffs:
    raise IncompatibleCheckpointError(
        f'{manager.directory} holds a checkpoint (step {step}) from another '
        f'model configuration ({"; ".join(diffs)}). Use a new --workdir, or '
        'the config that wrote it.')


def _set_aside(manager: ocp.CheckpointManager, step: int) -> None:
  """Moves an unreadable step out of the way (kept for inspection).

  Otherwise training would stop again when it reaches that step and finds
  it taken.
  """
  source = os.path.join(str(manager.directory), str(step))
  target = os.path.join(os.path.dirname(str(manager.directory)),
                        UNREADABLE_SUBDIR, str(step))
  if jax.process_index() == 0 and os.path.isdir(source):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
      target += f'.{len(os.listdir(os.path.dirname(target)))}'
    os.rename(source, target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f'set aside checkpoint {step}')
  manager.reload()


def restore_or_init(manager: ocp.CheckpointManager, state: 'TrainState',
                    config: ml_collections.ConfigDict
                    ) -> tuple['TrainState', int]:
  """Resumes from the latest readable checkpoint, else returns `state`.

  Returns the state to train from and its step. A checkpoint that cannot be
  read (corrupt, or cut short by a crash) is moved to
  `workdir/checkpoints_unreadable/` with a warning and the one before it is
  tried. Raises IncompatibleCheckpointError if the checkpoint's model differs
  from the config's.
  """
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      _check_same_model(manager, step, config)
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_abstract(state))))['state']
    except IncompatibleCheckpointError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      # Orbax and TensorStore raise many types for damaged files.
      logging.warning('the checkpoint at step %d in %s cannot be read (%s: '
                      '%s); moving it to %s and trying the one before it',
                      step, manager.directory, type(e).__name__,
                      str(e).splitlines()[0][:300] if str(e) else '',
                      UNREADABLE_SUBDIR)
      _set_aside(manager, step)
      continue
    logging.info('resumed from %s at step %d', manager.directory, step)
    return restored, step
  return state, 0


def _require_checkpoint(manager: ocp.CheckpointManager, workdir: str,
                        step: Optional[int]) -> int:
  steps = manager.all_steps()
  if not steps:
    raise FileNotFoundError(
        f'no checkpoint in {checkpoint_dir(workdir)}: train first with '
        '`python -m gzevo_jax.main --config=... --workdir=' f'{workdir}`')
  if step is None:
    return manager.latest_step()
  if step not in steps:
    raise FileNotFoundError(f'no checkpoint for step {step} in '
                            f'{checkpoint_dir(workdir)}; steps: '
                            f'{sorted(steps)}')
  return step


def load_config_and_schema(workdir: str, step: Optional[int] = None
                           ) -> tuple[ml_collections.ConfigDict, Schema, int]:
  """The config and schema stored with a checkpoint (latest by default)."""
  with make_manager(workdir, for_reading=True) as manager:
    step = _require_checkpoint(manager, workdir, step)
    items = manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore(), schema=ocp.args.JsonRestore()))
  # Fields added to the config since the checkpoint was written keep their
  # defaults, so older checkpoints stay readable.
  config = config_lib.base_config(items['config']['objective'])
  config.update(items['config'])
  schema = Schema.from_dict(items['schema'], source=f'{workdir} step {step}')
  return config, schema, step


def _restore_online(
    workdir: str,
    step: Optional[int]) -> tuple['train.Setup', 'TrainState', int]:
  """The setup (model, config, schema) and train state of a checkpoint.

  Restored onto this process's first device, whatever the mesh that wrote it.
  """
  from gzevo_jax import train  # Local: train imports this module.
  config, schema, step = load_config_and_schema(workdir, step)
  setup = train.build_setup(config, schema=schema)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(functools.partial(train.create_train_state, setup)))
  with make_manager(workdir, for_reading=True) as manager:
    state = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))['state']
  return setup, state, step


def restore_encoder(workdir: str, step: Optional[int] = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
  """The encoder module and its variables from any objective's checkpoint.

  Returns `(encoder, variables)` with `variables = {'params': ...,
  'batch_stats': ...}` (batch_stats empty for encoders without BatchNorm),
  ready for `encoder.apply(variables, images, train=False)`.
  """
  from gzevo_jax import models  # Local, as in _restore_online.
  setup, state, step = _restore_online(workdir, step)
  config = setup.config
  variables = {'params': state.params['encoder'],
               'batch_stats': state.batch_stats.get('encoder', {})}
  logging.info('restored the %s encoder of %s (%s objective) at step %d',
               config.model.encoder, workdir, config.objective, step)
  return models.build_encoder_from_config(config.model), variables


def restore_model(
    workdir: str,
    step: Optional[int] = None
) -> tuple['models.GalaxyModel', dict[str, Any], ml_collections.ConfigDict,
           Schema]:
  """The whole online `GalaxyModel` of a checkpoint, with its config and schema.

  Returns `(model, variables, config, schema)` with `variables = {'params':
  ..., 'batch_stats': ...}` of the online network (not the BYOL target),
  ready for `model.apply(variables, images, train=False)`; the model has a
  Dirichlet head only for the supervised and hybrid objectives.
  """
  setup, state, step = _restore_online(workdir, step)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  logging.info('restored the %s model of %s (%s objective) at step %d',
               setup.config.model.encoder, workdir, setup.config.objective,
               step)
  return setup.model, variables, setup.config, setup.schema

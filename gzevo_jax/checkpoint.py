"""Orbax checkpoints: save, resume, and restore the encoder or model downstream.

Each checkpoint step holds three items: `state` (the TrainState pytree),
`config` (the run's config as JSON) and `schema` (the decision tree as JSON),
so a checkpoint alone is enough to rebuild the model that wrote it. With the
Grain input (`config.data.source='grain'`) a fourth, `data`, holds each
process's input iterator state, written and read by Grain's own Orbax
handler (`grain.checkpoint`).

Damaged checkpoints: resuming pretraining sets an unreadable step aside (in
`workdir/checkpoints_unreadable/`) and resumes from the step before it, or
from scratch; an evaluation, with nothing to fall back on, raises
UnreadableCheckpointError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import threading
from typing import Any, Optional

from absl import logging
import flax.linen as nn
import jax
import ml_collections
import orbax.checkpoint as ocp

from gzevo_jax import config_lib
from gzevo_jax import errors
from gzevo_jax import models
from gzevo_jax import train_state
from gzevo_jax.config_lib import get_dotted
from gzevo_jax.schema import Schema

CHECKPOINT_SUBDIR = 'checkpoints'
DATA_ITEM = 'data'  # The input iterator's state (Grain iterators only).
UNREADABLE_SUBDIR = 'checkpoints_unreadable'
# Config fields that change the shape of the state: a checkpoint written with
# other values cannot be resumed or restored into this config's model.
_STATE_SHAPING_FIELDS = ('objective', 'model', 'optimizer.name')


class IncompatibleCheckpointError(errors.UserError):
  """The checkpoint was written by a model of another shape."""


class UnreadableCheckpointError(errors.UserError):
  """A checkpoint's files are damaged or incomplete (evaluations)."""


# Seconds a failed restore waits for its other reads to finish (see below).
_SETTLE_TIMEOUT_S = 60.0


class _SettlingEventLoop(asyncio.SelectorEventLoop):
  """An event loop that lets its pending tasks finish before it closes.

  Orbax runs each restore in a fresh event loop and closes it as soon as the
  restore returns or raises. When one TensorStore read fails (a damaged
  checkpoint), asyncio.gather raises at once while the other reads are
  still in flight; each of them, finishing later in a TensorStore thread,
  then calls back into the closed loop and prints `RuntimeError: Event loop
  is closed`, and their unretrieved errors are logged as "Future exception
  was never retrieved". Letting them finish first leaves only the error.
  """

  def close(self) -> None:
    if not self.is_closed() and not self.is_running():
      try:
        asyncio.get_running_loop()
        nested = True  # Called inside another running loop: cannot wait.
      except RuntimeError:
        nested = False
      pending = [t for t in asyncio.all_tasks(self) if not t.done()]
      if pending and not nested:
        _, late = self.run_until_complete(
            asyncio.wait(pending, timeout=_SETTLE_TIMEOUT_S))
        for task in late:
          task.cancel()
        if late:
          self.run_until_complete(asyncio.wait(late, timeout=1.0))
        for task in pending:
          if task.done() and not task.cancelled():
            task.exception()  # Retrieved: the restore's error is raised.
    super().close()


class _SettlingPolicy(asyncio.DefaultEventLoopPolicy):

  def new_event_loop(self) -> asyncio.AbstractEventLoop:
    return _SettlingEventLoop()


_settling_lock = threading.Lock()
_settling_depth = 0
_policy_before_settling: Optional[asyncio.AbstractEventLoopPolicy] = None


@contextlib.contextmanager
def _settling_event_loops():
  """Event loops created meanwhile (Orbax's) settle before they close.

  The policy is process-wide: the outermost of overlapping uses (threads)
  installs it and the last to leave puts the previous one back.
  """
  global _settling_depth, _policy_before_settling
  with _settling_lock:
    if _settling_depth == 0:
      _policy_before_settling = asyncio.get_event_loop_policy()
      asyncio.set_event_loop_policy(_SettlingPolicy())
    _settling_depth += 1
  try:
    yield
  finally:
    with _settling_lock:
      _settling_depth -= 1
      if _settling_depth == 0:
        asyncio.set_event_loop_policy(_policy_before_settling)
        _policy_before_settling = None


def _restore(manager: ocp.CheckpointManager, step: int, **items: Any) -> Any:
  """`manager.restore` of the named items of `step`, settling on failure."""
  with _settling_event_loops():
    return manager.restore(step, args=ocp.args.Composite(**items))


def _reason(e: BaseException) -> str:
  """One line saying why a checkpoint could not be read.

  The innermost error (TensorStore's: which file, which byte range) says
  more than Orbax's wrappers around it.
  """
  while e.__cause__ is not None and e.__cause__ is not e:
    e = e.__cause__
  text = str(e).strip()
  text = text.splitlines()[0] if text else ''
  text = re.sub(r' \[tensorstore_spec.*', '', text)
  text = re.sub(r'(Error opening "\w+" driver: )+', '', text)
  text = re.sub(r' in OCDBT database at local file "[^"]*"', '', text)
  if len(text) > 400:
    text = text[:397] + '...'
  return f'{type(e).__name__}: {text}' if text else type(e).__name__


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


def checkpointable(data_iterator: Any) -> bool:
  """Whether the input iterator is Grain's, with a state Grain's handler saves."""
  if not hasattr(data_iterator, 'get_state'):
    return False  # Generators (tf.data, in-memory): Grain is not imported.
  import grain
  return isinstance(data_iterator,
                    (grain.DatasetIterator, grain.DataLoaderIterator))


def save(manager: ocp.CheckpointManager, step: int,
         state: train_state.TrainState,
         config: ml_collections.ConfigDict, schema: Schema,
         data_iterator: Any = None) -> None:
  """Starts an (async) save of `state` with the config and schema.

  A Grain `data_iterator` is saved too (its state when this is called: the
  step of the next batch), by Grain's handler, synchronously.
  """
  items = dict(state=ocp.args.StandardSave(state),
               config=ocp.args.JsonSave(json.loads(config.to_json())),
               schema=ocp.args.JsonSave(schema.to_dict()))
  if checkpointable(data_iterator):
    from grain import checkpoint as grain_checkpoint  # Grain input only.
    items[DATA_ITEM] = grain_checkpoint.CheckpointSave(data_iterator)
  manager.save(step, args=ocp.args.Composite(**items), force=True)


def restore_data_iterator(manager: ocp.CheckpointManager, step: int,
                          data_iterator: Any) -> bool:
  """Sets a Grain iterator to the state saved with checkpoint `step`.

  Returns whether it did. Checkpoints without that state (other sources,
  older runs) and a process count other than the one that saved it leave
  the iterator as it was made for `step`: its state is a function of the
  step, so that is the same place.
  """
  if not checkpointable(data_iterator) or step not in manager.all_steps():
    return False
  if not (manager.directory / str(step) / DATA_ITEM).exists():
    return False
  from grain import checkpoint as grain_checkpoint  # Grain input only.
  try:
    _restore(manager, step,
             **{DATA_ITEM: grain_checkpoint.CheckpointRestore(data_iterator)})
  except ValueError as e:  # Grain: no file for this process (index, count).
    logging.info('input state of step %d not restored (%s); the input '
                 'resumes from the step', step, e)
    return False
  logging.info('restored the input iterator state of step %d: %s', step,
               data_iterator.get_state())
  return True


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
  saved_config = _restore(manager, step,
                          config=ocp.args.JsonRestore())['config']
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


def restore_or_init(manager: ocp.CheckpointManager,
                    state: train_state.TrainState,
                    config: ml_collections.ConfigDict
                    ) -> tuple[train_state.TrainState, int]:
  """Resumes from the latest readable checkpoint, else returns `state`.

  Returns the state to train from and its step. A checkpoint that cannot be
  read (corrupt, or cut short by a crash) is moved to
  `workdir/checkpoints_unreadable/` with a warning and the one before it is
  tried; if none is readable, training starts over from `state` (step 0),
  with a warning saying so. Raises IncompatibleCheckpointError if the
  checkpoint's model differs from the config's. Closes `manager` before
  raising anything.
  """
  set_aside = []
  try:
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        _check_same_model(manager, step, config)
        restored = _restore(manager, step, state=ocp.args.StandardRestore(
            _abstract(state)))['state']
      except IncompatibleCheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        # Orbax and TensorStore raise many types for damaged files.
        logging.warning('the checkpoint at step %d in %s cannot be read (%s); '
                        'moving it to %s and trying the one before it', step,
                        manager.directory, _reason(e), UNREADABLE_SUBDIR)
        _set_aside(manager, step)
        set_aside.append(step)
        continue
      logging.info('resumed from %s at step %d', manager.directory, step)
      return restored, step
  except BaseException:
    manager.close()  # The caller's cleanup has not started yet.
    raise
  if set_aside:
    logging.warning(
        'no readable checkpoint left in %s (steps %s set aside in %s): '
        'training starts over from step 0', manager.directory,
        ', '.join(map(str, sorted(set_aside))),
        os.path.join(os.path.dirname(str(manager.directory)),
                     UNREADABLE_SUBDIR))
  return state, 0


def _unreadable(workdir: str, step: int, steps: list[int],
                e: Exception) -> UnreadableCheckpointError:
  """The error an evaluation raises for a checkpoint it cannot read."""
  steps = sorted(steps)
  saved = ', '.join(map(str, steps))
  if not steps or step == steps[-1]:
    # Resuming tries the latest step first, so it sets this one aside.
    todo = (f'rerun the pretraining command with --workdir={workdir}: it '
            f'moves unreadable steps to {UNREADABLE_SUBDIR}/ and trains '
            'again from the latest readable one')
    if len(steps) > 1:
      todo += (f'; or evaluate an earlier step with --config.pretrained_step='
               f'{steps[-2]} (saved steps: {saved})')
  else:
    todo = ('evaluate another step with --config.pretrained_step=STEP (saved '
            f'steps: {saved})')
  return UnreadableCheckpointError(
      f'the checkpoint at step {step} in {checkpoint_dir(workdir)} cannot be '
      f'read ({_reason(e)}): its files are damaged or incomplete. To go on, '
      f'{todo}.')


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
  """The config and schema stored with a checkpoint (latest by default).

  Raises FileNotFoundError if there is no such checkpoint, and
  UnreadableCheckpointError if its files cannot be read.
  """
  with make_manager(workdir, for_reading=True) as manager:
    step = _require_checkpoint(manager, workdir, step)
    try:
      items = _restore(manager, step, config=ocp.args.JsonRestore(),
                       schema=ocp.args.JsonRestore())
      if not isinstance(items['config'], dict) or not isinstance(
          items['schema'], dict):
        raise ValueError('its config or schema is not a JSON object')
    except Exception as e:  # pylint: disable=broad-except
      raise _unreadable(workdir, step, manager.all_steps(), e) from e
  # Fields added to the config since the checkpoint was written keep their
  # defaults, so older checkpoints stay readable.
  config = config_lib.base_config(items['config']['objective'])
  config.update(items['config'])
  schema = Schema.from_dict(items['schema'], source=f'{workdir} step {step}')
  return config, schema, step


def _restore_online(
    workdir: str, step: Optional[int]
) -> tuple[train_state.Setup, train_state.TrainState, int]:
  """The setup (model, config, schema) and train state of a checkpoint.

  Restored onto this process's first device, whatever the mesh that wrote it.
  Raises UnreadableCheckpointError if the checkpoint cannot be read.
  """
  config, schema, step = load_config_and_schema(workdir, step)
  setup = train_state.build_setup(config, schema=schema)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(functools.partial(train_state.create_train_state,
                                       setup)))
  with make_manager(workdir, for_reading=True) as manager:
    try:
      state = _restore(manager, step,
                       state=ocp.args.StandardRestore(abstract))['state']
    except Exception as e:  # pylint: disable=broad-except
      raise _unreadable(workdir, step, manager.all_steps(), e) from e
  return setup, state, step


def restore_encoder(workdir: str, step: Optional[int] = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
  """The encoder module and its variables from any objective's checkpoint.

  Returns `(encoder, variables)` with `variables = {'params': ...,
  'batch_stats': ...}` (batch_stats empty for encoders without BatchNorm),
  ready for `encoder.apply(variables, images, train=False)`. Raises
  UnreadableCheckpointError if the checkpoint's files cannot be read.
  """
  setup, state, step = _restore_online(workdir, step)
  config = setup.config
  variables = train_state.encoder_variables(state)
  logging.info('restored the %s encoder of %s (%s objective) at step %d',
               config.model.encoder, workdir, config.objective, step)
  return models.build_encoder_from_config(config.model), variables


def restore_model(
    workdir: str,
    step: Optional[int] = None
) -> tuple[models.GalaxyModel, dict[str, Any], ml_collections.ConfigDict,
           Schema]:
  """The whole online `GalaxyModel` of a checkpoint, with its config and schema.

  Returns `(model, variables, config, schema)` with `variables = {'params':
  ..., 'batch_stats': ...}` of the online network (not the BYOL target),
  ready for `model.apply(variables, images, train=False)`; the model has a
  Dirichlet head only for the supervised and hybrid objectives. Raises
  UnreadableCheckpointError if the checkpoint's files cannot be read.
  """
  setup, state, step = _restore_online(workdir, step)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  logging.info('restored the %s model of %s (%s objective) at step %d',
               setup.config.model.encoder, workdir, setup.config.objective,
               step)
  return setup.model, variables, setup.config, setup.schema

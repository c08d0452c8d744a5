"""The one train loop for all three objectives: contrastive, supervised, hybrid.

  state, metrics = train_step(state, batch, setup=setup)   # per device
  train_and_evaluate(config, workdir)         # the loop, checkpoints, metrics

The setup and state it steps come from `train_state` (build_setup,
create_train_state).

`train_step` is written for one device with the named axis `batch` and mapped
over all devices by `parallel.data_parallel`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import time
from typing import Any, Iterator, Mapping, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gzevo_jax import checkpoint as checkpoint_lib
from gzevo_jax import config_lib
from gzevo_jax import errors
from gzevo_jax import losses
from gzevo_jax import metric_writers
from gzevo_jax import models
from gzevo_jax import optim
from gzevo_jax import parallel
from gzevo_jax import preemption
from gzevo_jax import train_state
from gzevo_jax.data import sources
from gzevo_jax.schema import Schema, get_schema

Batch = Mapping[str, Any]


def _apply(model: models.GalaxyModel, params: Any, batch_stats: Any,
           images: jax.Array, rng: jax.Array, method: Any = None):
  """A train-mode forward pass returning (outputs, new batch_stats)."""
  out, updates = model.apply({'params': params, 'batch_stats': batch_stats},
                             images, train=True, mutable=['batch_stats'],
                             rngs={'dropout': rng}, method=method)
  return out, updates.get('batch_stats', batch_stats)


def _mean_dirichlet_nll(votes: jax.Array, concentrations: jax.Array,
                        schema: Schema) -> jax.Array:
  """Per-galaxy loss (sum over questions), averaged over the batch."""
  nll = losses.dirichlet_multinomial_nll(votes, concentrations, schema)
  return jnp.mean(jnp.sum(nll, axis=-1))


def _split_views(tree: Any) -> tuple[Any, Any]:
  """Undoes the view concatenation of `_views`: (view 1, view 2) outputs."""
  first = jax.tree.map(lambda x: x[:x.shape[0] // 2], tree)
  second = jax.tree.map(lambda x: x[x.shape[0] // 2:], tree)
  return first, second


def _views(batch: Batch, two_views: bool) -> jax.Array:
  """Images for one forward pass: both views stacked along the batch axis.

  One pass over [2B] images rather than two over [B] halves the compiled
  graph and feeds the convolutions bigger batches; BatchNorm statistics then
  cover both views, as in SimCLR's reference implementation.
  """
  if not two_views:
    return batch['image']
  return jnp.concatenate([batch['image'], batch['image_2']], axis=0)


def _loss_and_updates(params: Any, state: train_state.TrainState,
                      batch: Batch, targets: Optional[jax.Array],
                      rng: jax.Array, setup: train_state.Setup):
  """The objective's loss on this device's shard; aux = (batch_stats, terms).

  `targets` are the target network's projections of both views ([2B, D],
  view 1 first) for the BYOL objectives, else None.
  """
  objective, schema, cfg = setup.objective, setup.schema, setup.config.loss
  two_views = targets is not None
  out, batch_stats = _apply(setup.model, params, state.batch_stats,
                            _views(batch, two_views), rng)
  terms = {}
  if objective == 'supervised':
    loss = terms['supervised_loss'] = _mean_dirichlet_nll(
        batch['votes'], out['concentrations'], schema)
    return loss, (batch_stats, terms)

  pred_1, pred_2 = _split_views(out['prediction'])
  byol = terms['byol_loss'] = losses.byol_loss(
      pred_1, pred_2, *_split_views(targets), form=cfg.byol_form)
  if objective == 'contrastive':
    return byol, (batch_stats, terms)

  # Hybrid: the Dirichlet head sees the online representation of both views,
  # or of the first only (the paper's code).
  if cfg.supervised_views == 'both':
    votes = jnp.concatenate([batch['votes'], batch['votes']], axis=0)
    concentrations = out['concentrations']
  else:
    votes, concentrations = batch['votes'], _split_views(
        out['concentrations'])[0]
  supervised = terms['supervised_loss'] = _mean_dirichlet_nll(
      votes, concentrations, schema)
  factor = terms['supervised_factor'] = losses.supervised_weight(
      byol, supervised, cfg.supervised_weight, cfg.rescale_supervised)
  return byol + factor * supervised, (batch_stats, terms)


def train_step(
    state: train_state.TrainState, batch: Batch, *, setup: train_state.Setup
) -> tuple[train_state.TrainState, dict[str, jax.Array]]:
  """One optimisation step on one device's shard of the global batch.

  Must run under a mapped axis named `batch` (see `parallel.data_parallel`):
  gradients, metrics and BatchNorm statistics are averaged over it.
  """
  axis = models.BATCH_AXIS
  rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step),
                           jax.lax.axis_index(axis))
  online_rng, target_rng = jax.random.split(rng)
  two_views = models.uses_byol(setup.objective)

  targets, target_batch_stats = None, state.target_batch_stats
  if two_views:
    targets, target_batch_stats = _apply(
        setup.model, state.target_params, target_batch_stats,
        _views(batch, two_views), target_rng, method=models.GalaxyModel.target)

  grad_fn = jax.value_and_grad(_loss_and_updates, has_aux=True)
  (loss, (batch_stats, terms)), grads = grad_fn(state.params, state, batch,
                                                targets, online_rng, setup)
  grads = jax.lax.pmean(grads, axis)
  updates, opt_state = setup.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)

  metrics = {'loss': loss, **terms,
             'learning_rate': setup.lr_schedule(state.step),
             'grad_norm': optax.tree.norm(grads)}
  target_params = state.target_params
  if two_views:
    tau = optim.ema_tau(state.step, setup.durations.total_steps,
                        setup.config.ema.tau_base, setup.config.ema.schedule)
    target_params = optim.ema_update(state.target_params,
                                     train_state.target_subtrees(params), tau)
    metrics['tau'] = tau

  new_state = state.replace(step=state.step + 1, params=params,
                            batch_stats=batch_stats,
                            target_params=target_params,
                            target_batch_stats=target_batch_stats,
                            opt_state=opt_state)
  return new_state, jax.lax.pmean(metrics, axis)


def make_train_step(setup: train_state.Setup, mesh: jax.sharding.Mesh):
  """`train_step` mapped over the mesh, jit-compiled, state donated."""
  return parallel.data_parallel(functools.partial(train_step, setup=setup),
                                mesh)


def check_batch(batch: Batch, setup: train_state.Setup,
                local_batch_size: int) -> None:
  """Raises ValueError if a batch does not match the loop's contract."""
  h, w, c = setup.image_shape
  needed = {'image': (local_batch_size, h, w, c)}
  if models.uses_byol(setup.objective):
    needed['image_2'] = (local_batch_size, h, w, c)
  if models.uses_votes(setup.objective):
    needed['votes'] = (local_batch_size, setup.schema.num_answers)
  for key, shape in needed.items():
    if key not in batch:
      raise ValueError(f'the {setup.objective} objective needs batch[{key!r}] '
                       f'of shape {shape}; the batch has keys '
                       f'{sorted(batch)}')
    if tuple(np.shape(batch[key])) != shape:
      raise ValueError(f'batch[{key!r}] has shape {np.shape(batch[key])}, '
                       f'expected {shape}')


def _make_knn_monitor(setup: train_state.Setup):
  """The periodic kNN evaluation, or None when config.knn_monitor is off."""
  config = setup.config
  if config.knn_monitor.every_steps <= 0:
    return None
  source = 'grain' if config.data.source == 'grain' else 'tfds'
  try:
    if source == 'tfds':
      importlib.import_module('tensorflow')
  except ImportError:
    raise errors.UserError(
        f'config.knn_monitor.every_steps={config.knn_monitor.every_steps} '
        f'with data.source={config.data.source!r} needs TensorFlow and TFDS '
        '(the monitor reads its labelled sample with tf.data); install them, '
        'use --config.data.source=grain, or set --config.knn_monitor.'
        'every_steps=0') from None
  from gzevo_jax.evaluation import monitor  # TensorFlow, lazily for tf.data.
  return monitor.KnnMonitor(config.knn_monitor,
                            models.build_encoder_from_config(config.model),
                            image_size=config.data.image_size,
                            data_dir=config.data.data_dir, source=source)


class NonFiniteLossError(errors.UserError, FloatingPointError):
  """Training produced a NaN or Inf loss or gradient."""


def _check_finite(history: list[tuple[int, dict[str, Any]]],
                  last_good_checkpoint: Optional[int]) -> None:
  for step, metrics in history:
    bad = {k: float(v) for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
      kept = (f'the last good checkpoint (step {last_good_checkpoint}) is '
              'kept' if last_good_checkpoint is not None else
              'no checkpoint had been saved yet')
      raise NonFiniteLossError(
          f'non-finite metrics at step {step}: {bad}; training stopped and '
          f'{kept}. Try a lower learning rate or check the input data.')


def _window_means(history: list[tuple[int, dict[str, Any]]]) -> dict[str, float]:
  keys = history[-1][1].keys()
  return {k: float(np.mean([m[k] for _, m in history])) for k in keys}


class _MetricsWindow:
  """The metrics of the steps since the last log line.

  Device values are fetched only when needed; the step time leaves out the
  first (compiling) step and the kNN monitor's pauses.
  """

  def __init__(self):
    self.history: list[tuple[int, dict[str, Any]]] = []
    self.start, self.steps = time.perf_counter(), 0

  def add(self, step: int, metrics: dict[str, Any]) -> None:
    self.history.append((step, metrics))
    self.steps += 1

  def restart_after_compile(self, step: int, metrics: dict[str, Any]) -> None:
    jax.block_until_ready(metrics)
    logging.info('step %d compiled and ran in %.1fs', step,
                 time.perf_counter() - self.start)
    self.start, self.steps = time.perf_counter(), 0
    self.history = [(step, jax.device_get(metrics))]

  def fetch(self) -> list[tuple[int, dict[str, Any]]]:
    self.history = jax.device_get(self.history)
    return self.history

  def scalars(self, images_per_step_per_device: float) -> dict[str, float]:
    """Means over the window, with step time and throughput."""
    elapsed = time.perf_counter() - self.start
    scalars = _window_means(self.history)
    if self.steps:
      scalars['step_time_s'] = elapsed / self.steps
      scalars['images_per_s_per_device'] = (
          self.steps * images_per_step_per_device / elapsed)
    return scalars

  def reset(self) -> None:
    self.history, self.steps = [], 0
    self.start = time.perf_counter()

  def leave_out(self, seconds: float) -> None:
    self.start += seconds


@dataclasses.dataclass
class _Loop:
  """What the training loop's body needs besides the state."""
  config: ml_collections.ConfigDict
  setup: train_state.Setup
  mesh: jax.sharding.Mesh
  manager: Any  # ocp.CheckpointManager
  writer: metric_writers.MetricWriter
  monitor: Optional[Any]
  step_fn: Any
  local_batch_size: int
  n_devices: int
  is_chief: bool


def _log_window(loop: _Loop, window: _MetricsWindow, step: int) -> None:
  """Writes the window's metrics and logs progress; starts a new window."""
  durations = loop.setup.durations
  scalars = window.scalars(loop.config.global_batch_size / loop.n_devices)
  scalars['epoch'] = step / durations.steps_per_epoch
  loop.writer.write_scalars(step, scalars)
  if 'step_time_s' in scalars and loop.is_chief:
    remaining = (durations.total_steps - step) * scalars['step_time_s']
    logging.info('step %d/%d (%.0f%%), about %.0f s to go', step,
                 durations.total_steps, 100 * step / durations.total_steps,
                 remaining)
  window.reset()


def _run_monitor(loop: _Loop, window: _MetricsWindow,
                 state: train_state.TrainState, step: int) -> None:
  """The kNN monitor on the online encoder; its time is not a step's."""
  start = time.perf_counter()
  knn = loop.monitor(train_state.encoder_variables(state))
  loop.writer.write_scalars(step, knn, prefix='monitor')
  window.leave_out(time.perf_counter() - start)


def _train_steps(loop: _Loop, state: train_state.TrainState,
                 batches: Iterator[Batch], start_step: int,
                 stop_requests: preemption.StopRequests
                 ) -> tuple[train_state.TrainState, Optional[int]]:
  """Steps from start_step + 1 to the end; (state, step stopped at or None).

  Logs every log_every_steps, runs the monitor, saves checkpoints, and
  stops early (after saving) when a signal asks every process to.
  """
  config, total = loop.config, loop.setup.durations.total_steps
  window = _MetricsWindow()
  last_saved = loop.manager.latest_step()
  for step in range(start_step + 1, total + 1):
    local_batch = next(batches)
    first = step == start_step + 1
    if first:
      check_batch(local_batch, loop.setup, loop.local_batch_size)
    state, metrics = loop.step_fn(state,
                                  parallel.global_batch(local_batch, loop.mesh))
    window.add(step, metrics)
    if first:
      window.restart_after_compile(step, metrics)
      _check_finite(window.history, last_saved)
    is_last = step == total
    log_now = step % config.log_every_steps == 0 or is_last
    save_now = step % config.checkpoint_every_steps == 0 or is_last
    if (log_now or save_now) and window.history:
      _check_finite(window.fetch(), last_saved)
    if log_now and window.history:
      _log_window(loop, window, step)
    every = config.knn_monitor.every_steps
    if loop.monitor is not None and (step % every == 0 or is_last):
      _run_monitor(loop, window, state, step)
    # Every process asks at every step, so all stop at the same one.
    stop_now = stop_requests.should_stop(step) and not is_last
    if save_now or stop_now:
      checkpoint_lib.save(loop.manager, step, state, config, loop.setup.schema,
                          data_iterator=batches)
      last_saved = step
    if stop_now:
      return state, step
  return state, None


def _devices_for_batch(config: ml_collections.ConfigDict) -> int:
  """The device count, once the global batch is known to split over it."""
  n_devices = jax.device_count()
  if config.global_batch_size % n_devices:
    raise errors.UserError(
        f'config.global_batch_size={config.global_batch_size} does not split '
        f'evenly over {n_devices} devices; use a multiple of {n_devices}')
  return n_devices


def _log_end(stopped_at: Optional[int], total_steps: int, workdir: str) -> None:
  where = checkpoint_lib.checkpoint_dir(workdir)
  if stopped_at is not None:
    logging.warning('stopped at step %d of %d by a signal; checkpoint saved in '
                    '%s. Rerun the same command to resume.', stopped_at,
                    total_steps, where)
  else:
    logging.info('finished %d steps; checkpoints in %s', total_steps, where)


def _log_start(config: ml_collections.ConfigDict,
               durations: train_state.Durations, n_devices: int,
               workdir: str) -> None:
  """One log line: what trains, on what, for how long, and where."""
  logging.info('%s: %s on %d device(s) (%s), global batch %d, %d steps '
               '(%d per epoch), workdir %s', config.run_name,
               config.objective, n_devices, jax.devices()[0].platform,
               config.global_batch_size, durations.total_steps,
               durations.steps_per_epoch, workdir)


def _initial_state(setup: train_state.Setup, mesh: jax.sharding.Mesh,
                   manager: Any) -> tuple[train_state.TrainState, int]:
  """The latest readable checkpoint's state and step, else a fresh state.

  Either way replicated over the mesh.
  """
  state = jax.jit(functools.partial(train_state.create_train_state, setup),
                  out_shardings=parallel.replicated(mesh))()
  return checkpoint_lib.restore_or_init(manager, state, setup.config)


def _make_loop(setup: train_state.Setup, mesh: jax.sharding.Mesh,
               manager: Any, workdir: str, n_devices: int) -> _Loop:
  """The metric writer, kNN monitor and compiled step around the loop."""
  config = setup.config
  is_chief = jax.process_index() == 0
  writer = metric_writers.MetricWriter(workdir, enabled=is_chief)
  return _Loop(config, setup, mesh, manager, writer, _make_knn_monitor(setup),
               make_train_step(setup, mesh),
               config.global_batch_size // jax.process_count(), n_devices,
               is_chief)


def _run_loop(loop: _Loop, state: train_state.TrainState,
              batches: Iterator[Batch], start_step: int
              ) -> tuple[train_state.TrainState, Optional[int]]:
  """`_train_steps` with stop signals caught; then closes manager and writer.

  Waits for the last (async) checkpoint to be written, whatever happened.
  """
  with preemption.StopRequests() as stop_requests:
    try:
      return _train_steps(loop, state, batches, start_step, stop_requests)
    finally:
      loop.manager.wait_until_finished()
      loop.manager.close()
      loop.writer.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       data_iterator: Optional[Iterator[Batch]] = None
                       ) -> train_state.TrainState:
  """Trains (or resumes training) in `workdir`; returns the final state.

  Args:
    config: a config from `configs/` (see config_lib.base_config).
    workdir: where checkpoints, metrics.jsonl and TensorBoard events go.
      Rerunning with the same workdir resumes from the latest checkpoint.
    data_iterator: optional iterator of this process's batches (for tests or
      custom data), starting at the resumed step; defaults to the configured
      data source.

  Raises:
    preemption.Stopped: (a SystemExit with status 0) when SIGTERM or SIGINT
      stopped the run early, after its checkpoint was saved.
  """
  config_lib.validate(config)
  train_data = None
  if data_iterator is None:
    train_data = sources.train_data(config, get_schema(config.schema),
                                    models.uses_byol(config.objective))
  setup = train_state.build_setup(config, num_train_examples=(
      train_data.num_examples if train_data else None))
  total_steps = setup.durations.total_steps
  mesh = parallel.make_mesh()
  n_devices = _devices_for_batch(config)
  _log_start(config, setup.durations, n_devices, workdir)
  manager = checkpoint_lib.make_manager(
      workdir, max_to_keep=config.keep_checkpoints,
      async_save=config.async_checkpointing)
  state, start_step = _initial_state(setup, mesh, manager)
  if start_step >= total_steps:
    logging.info('already trained to step %d of %d; nothing to do',
                 start_step, total_steps)
    manager.close()
    return state
  if data_iterator is None:
    data_iterator = train_data.batches(start_step)
  checkpoint_lib.restore_data_iterator(manager, start_step, data_iterator)
  loop = _make_loop(setup, mesh, manager, workdir, n_devices)
  state, stopped_at = _run_loop(loop, state, data_iterator, start_step)
  _log_end(stopped_at, total_steps, workdir)
  if stopped_at is not None:
    raise preemption.Stopped(stopped_at)
  return state

"""The train loop: data parallelism, EMA, checkpoints, resume, failure modes.

conftest.py gives this process 8 simulated CPU devices.
"""

import functools
import glob
import os

import jax
import numpy as np
import pytest

from gzevo_jax import checkpoint, metric_writers, models, parallel, train
from gzevo_jax import train_state
from gzevo_jax.data import in_memory, sources

OBJECTIVES = ('contrastive', 'supervised', 'hybrid')


def _batches(config):
  """The configured data source's batches from step 0."""
  return sources.train_data(config, train_state.build_setup(config).schema,
                            models.uses_byol(config.objective)).batches(0)


def _host_state(setup):
  """A fresh state on the host (numpy), safe to replicate and donate."""
  return jax.device_get(jax.jit(functools.partial(
      train_state.create_train_state, setup))())


def _first_batch(setup):
  config = setup.config
  galaxies = in_memory.make_catalogue(setup.schema,
                                      config.data.num_train_examples, 0.5, 0)
  return next(in_memory.batches(
      galaxies, global_batch_size=config.global_batch_size,
      image_size=config.data.image_size, channels=config.data.channels,
      two_views=models.uses_byol(config.objective), seed=0))


def _one_step(setup, devices, state, batch):
  mesh = parallel.make_mesh(devices)
  step = train.make_train_step(setup, mesh)
  new_state, metrics = step(parallel.replicate(state, mesh),
                            parallel.global_batch(batch, mesh))
  return jax.device_get(new_state), jax.device_get(metrics)


def _assert_trees_close(a, b, rtol, atol):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol,
                                                       atol=atol), a, b)


def test_eight_devices_match_one_device(make_config):
  """Same global batch: same loss, parameters and synchronised BN stats."""
  assert jax.device_count() == 8
  # No warmup: the first step must move the parameters for this to mean much.
  setup = train_state.build_setup(
      make_config('hybrid', warmup_duration='0 steps'))
  state, batch = _host_state(setup), _first_batch(setup)
  one_state, one_metrics = _one_step(setup, jax.devices()[:1], state, batch)
  eight_state, eight_metrics = _one_step(setup, jax.devices(), state, batch)
  for key in ('loss', 'byol_loss', 'supervised_loss', 'grad_norm'):
    np.testing.assert_allclose(eight_metrics[key], one_metrics[key],
                               rtol=1e-5)
  _assert_trees_close(eight_state.params, one_state.params, 1e-4, 1e-6)
  _assert_trees_close(eight_state.batch_stats, one_state.batch_stats, 1e-4,
                      1e-6)
  _assert_trees_close(eight_state.target_batch_stats,
                      one_state.target_batch_stats, 1e-4, 1e-6)
  # The step changed the parameters (so the comparison above means something).
  changed = jax.tree.map(lambda a, b: np.abs(a - b).max(),
                         one_state.params, state.params)
  assert max(jax.tree.leaves(changed)) > 1e-4


def test_bfloat16_compute_keeps_float32_state_and_loss(make_config):
  """Mixed precision: bf16 activations, float32 params, optimizer and loss."""
  runs = {}
  for dtype in ('float32', 'bfloat16'):
    setup = train_state.build_setup(
        make_config('hybrid', **{'model.dtype': dtype}))
    state, batch = _host_state(setup), _first_batch(setup)
    runs[dtype] = _one_step(setup, jax.devices()[:2], state, batch)
  state, metrics = runs['bfloat16']
  floats = [x for x in jax.tree.leaves((state.params, state.target_params,
                                        state.opt_state, state.batch_stats))
            if np.issubdtype(np.asarray(x).dtype, np.floating)]
  assert floats and all(np.asarray(x).dtype == np.float32 for x in floats)
  for key in ('loss', 'byol_loss', 'supervised_loss'):
    assert np.asarray(metrics[key]).dtype == np.float32
    np.testing.assert_allclose(metrics[key], runs['float32'][1][key],
                               rtol=0.05)


def test_ema_moves_target_toward_online_by_tau(make_config):
  config = make_config('contrastive', warmup_duration='0 steps')
  config.ema.tau_base = 0.9
  setup = train_state.build_setup(config)
  state, batch = _host_state(setup), _first_batch(setup)
  new_state, metrics = _one_step(setup, jax.devices()[:2], state, batch)
  assert float(metrics['tau']) == pytest.approx(0.9)
  assert float(metrics['learning_rate']) > 0
  expected = jax.tree.map(
      lambda target, online: 0.9 * target + 0.1 * online,
      state.target_params,
      {k: new_state.params[k] for k in ('encoder', 'projector')})
  _assert_trees_close(new_state.target_params, expected, 1e-6, 1e-7)
  assert set(new_state.target_params) == {'encoder', 'projector'}


def test_supervised_has_no_target_network(make_config):
  setup = train_state.build_setup(make_config('supervised'))
  state = _host_state(setup)
  assert state.target_params == {} and state.target_batch_stats == {}
  assert 'head' in state.params and 'projector' not in state.params


def _checkpoint_steps(workdir):
  return sorted(int(os.path.basename(p)) for p in
                glob.glob(os.path.join(workdir, 'checkpoints', '*'))
                if os.path.basename(p).isdigit())


_TERMS = {'contrastive': {'byol_loss', 'tau'},
          'supervised': {'supervised_loss'},
          'hybrid': {'byol_loss', 'supervised_loss', 'supervised_factor',
                     'tau'}}


@pytest.mark.parametrize('objective', OBJECTIVES)
def test_train_checkpoint_resume_and_restore_encoder(objective, tmp_path,
                                                     make_config):
  workdir = str(tmp_path / objective)
  config = make_config(objective)
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 6
  assert _checkpoint_steps(workdir) == [3, 6]
  records = metric_writers.read_metrics(workdir)
  assert [r['step'] for r in records] == [2, 4, 6]
  for term in _TERMS[objective] | {'loss', 'learning_rate', 'grad_norm',
                                   'images_per_s_per_device'}:
    assert f'train/{term}' in records[-1], term
  assert glob.glob(os.path.join(workdir, 'tensorboard', 'events.out.*'))

  # Rerunning with a longer duration resumes at step 6, not from scratch.
  config.train_duration = '9 steps'
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 9
  assert [r['step'] for r in metric_writers.read_metrics(workdir)] == [
      2, 4, 6, 8, 9]
  assert _checkpoint_steps(workdir) == [3, 6, 9]

  encoder, variables = checkpoint.restore_encoder(workdir)
  _assert_trees_close(variables['params'], jax.device_get(
      state.params['encoder']), 0, 0)
  _assert_trees_close(variables['batch_stats'], jax.device_get(
      state.batch_stats['encoder']), 0, 0)
  images = np.random.default_rng(0).random((3, 16, 16, 3), np.float32)
  features = encoder.apply(variables, images, train=False)
  assert features.shape == (3, models.encoder_feature_dim(encoder))
  assert np.all(np.isfinite(features))
  # An earlier step can be restored too.
  _, early = checkpoint.restore_encoder(workdir, step=3)
  assert not np.allclose(jax.tree.leaves(early['params'])[0],
                         jax.tree.leaves(variables['params'])[0])


class _Interrupted(Exception):
  pass


def _interrupt_after(iterator, n):
  for _ in range(n):
    yield next(iterator)
  raise _Interrupted()


def test_interrupted_run_resumes_to_the_same_parameters(tmp_path,
                                                        make_config):
  config = make_config('hybrid')
  straight = train.train_and_evaluate(config, str(tmp_path / 'straight'))

  workdir = str(tmp_path / 'interrupted')
  with pytest.raises(_Interrupted):
    train.train_and_evaluate(config, workdir,
                             _interrupt_after(_batches(config), 4))
  assert _checkpoint_steps(workdir) == [3]
  resumed = train.train_and_evaluate(config, workdir)
  _assert_trees_close(jax.device_get(resumed.params),
                      jax.device_get(straight.params), 1e-5, 1e-6)
  _assert_trees_close(jax.device_get(resumed.target_params),
                      jax.device_get(straight.target_params), 1e-5, 1e-6)


def _damage(step_dir):
  """Overwrites a checkpoint's array data, as a failing disk might."""
  data = glob.glob(os.path.join(step_dir, 'state', '**', 'd', '*'),
                   recursive=True)
  assert data
  for path in data:
    with open(path, 'wb') as f:
      f.write(b'not a checkpoint')


def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(
    tmp_path, make_config, caplog):
  longer = make_config('supervised', train_duration='9 steps')
  straight = train.train_and_evaluate(longer, str(tmp_path / 'straight'))
  workdir = str(tmp_path / 'damaged')
  train.train_and_evaluate(make_config('supervised'), workdir)  # Saves 3, 6.
  _damage(os.path.join(checkpoint.checkpoint_dir(workdir), '6'))
  # A save cut short by a crash leaves a temporary directory: never a step.
  os.makedirs(os.path.join(checkpoint.checkpoint_dir(workdir),
                           '7.orbax-checkpoint-tmp-1700000000'))

  resumed = train.train_and_evaluate(longer, workdir)
  warnings = [r.getMessage() for r in caplog.records
              if r.levelname == 'WARNING' and 'cannot be read' in
              r.getMessage()]
  assert len(warnings) == 1 and 'step 6' in warnings[0], warnings
  assert os.path.isdir(os.path.join(workdir, checkpoint.UNREADABLE_SUBDIR,
                                    '6'))
  assert _checkpoint_steps(workdir) == [3, 6, 9]  # 6 trained again from 3.
  _assert_trees_close(jax.device_get(resumed.params),
                      jax.device_get(straight.params), 1e-5, 1e-6)


def _poison_at(iterator, step):
  for i, batch in enumerate(iterator, start=1):
    if i == step:
      batch = dict(batch, image=np.full_like(batch['image'], np.nan))
    yield batch


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, make_config):
  config = make_config('supervised')
  workdir = str(tmp_path)
  with pytest.raises(train.NonFiniteLossError,
                     match=r'step 5.*last good checkpoint \(step 3\)'):
    train.train_and_evaluate(config, workdir,
                             _poison_at(_batches(config), 5))
  assert _checkpoint_steps(workdir) == [3]
  _, variables = checkpoint.restore_encoder(workdir)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(variables))


def test_resuming_with_another_model_is_a_clear_error(tmp_path, make_config):
  workdir = str(tmp_path)
  config = make_config('supervised', train_duration='3 steps')
  train.train_and_evaluate(config, workdir)
  config.model.width_multiplier = 0.125
  with pytest.raises(checkpoint.IncompatibleCheckpointError,
                     match='model.width_multiplier: 0.0625 in the checkpoint'):
    train.train_and_evaluate(config, workdir)


def test_restore_from_empty_workdir(tmp_path):
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    checkpoint.restore_encoder(str(tmp_path))


def test_bad_batches_are_clear_errors(tmp_path, make_config):
  config = make_config('hybrid')
  batch = {'image': np.zeros((16, 16, 16, 3), np.float32),
           'votes': np.zeros((16, 206), np.int32)}
  with pytest.raises(ValueError, match=r"needs batch\['image_2'\]"):
    train.train_and_evaluate(config, str(tmp_path / 'a'), iter([batch]))
  batch['image_2'] = np.zeros((16, 8, 8, 3), np.float32)
  with pytest.raises(ValueError, match=r"batch\['image_2'\] has shape"):
    train.train_and_evaluate(config, str(tmp_path / 'b'), iter([batch]))


def test_batch_must_split_over_devices(tmp_path, make_config):
  config = make_config('supervised', global_batch_size=12)
  with pytest.raises(ValueError, match='8 devices'):
    train.train_and_evaluate(config, str(tmp_path))

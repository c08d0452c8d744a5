"""Damaged checkpoints: resuming sets them aside, evaluations say what to do.

Each damage a disk or an interrupted copy can do to a checkpoint step: an
array file cut short, the OCDBT manifest of the `state` item deleted, and
every step damaged. Resuming pretraining moves an unreadable step to
`workdir/checkpoints_unreadable/` and resumes from the step before it (or
starts over, saying so); an evaluation, with nothing to fall back on, raises
one UnreadableCheckpointError naming the workdir and step. Neither prints
Orbax's `RuntimeError: Event loop is closed` noise.

conftest.py gives this process 8 simulated CPU devices.
"""

import functools
import gc
import glob
import logging
import re
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import REPO_ROOT, tiny_config
from gzevo_jax import checkpoint, parallel, train, train_state

# Steps the tiny config saves (6 steps, a checkpoint every 3).
EARLIER, LATEST = 3, 6
NOISE = ('Event loop is closed', 'never retrieved', 'Traceback')


def _truncate_array_file(step_dir):
  """Cuts the largest array data file of the state item in half."""
  data = [p for p in glob.glob(os.path.join(step_dir, 'state', '**', 'd', '*'),
                               recursive=True) if os.path.isfile(p)]
  assert data, f'no array data files under {step_dir}/state'
  path = max(data, key=os.path.getsize)
  os.truncate(path, os.path.getsize(path) // 2)


def _delete_manifest(step_dir):
  """Deletes the OCDBT manifest of the state item (its index of arrays)."""
  os.remove(os.path.join(step_dir, 'state', 'manifest.ocdbt'))


DAMAGES = {'truncated array file': _truncate_array_file,
           'deleted OCDBT manifest': _delete_manifest}


def _damage(workdir, how, steps):
  for step in steps:
    DAMAGES[how](os.path.join(checkpoint.checkpoint_dir(workdir), str(step)))


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
  """A tiny supervised run with checkpoints at steps 3 and 6 (not to damage)."""
  workdir = str(tmp_path_factory.mktemp('pristine') / 'run')
  train.train_and_evaluate(tiny_config('supervised'), workdir)
  assert _steps(workdir) == [EARLIER, LATEST]
  return workdir


@pytest.fixture
def run_copy(pristine, tmp_path):
  """A fresh copy of the pristine run, to damage."""
  workdir = str(tmp_path / 'run')
  shutil.copytree(pristine, workdir)
  return workdir


def _steps(workdir, subdir=checkpoint.CHECKPOINT_SUBDIR):
  path = os.path.join(workdir, subdir)
  if not os.path.isdir(path):
    return []
  return sorted(int(s) for s in os.listdir(path) if s.isdigit())


def _resume(workdir):
  """What resuming pretraining does first: restore_or_init."""
  config = tiny_config('supervised')
  setup = train_state.build_setup(config)
  fresh = jax.jit(functools.partial(train_state.create_train_state, setup),
                  out_shardings=parallel.replicated(parallel.make_mesh()))()
  manager = checkpoint.make_manager(workdir)
  try:
    state, step = checkpoint.restore_or_init(manager, fresh, config)
  finally:
    manager.close()
  return fresh, state, step


def _assert_same_params(a, b):
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(a),
               jax.device_get(b))


def _warnings(caplog):
  return [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']


@pytest.fixture
def assert_quiet(monkeypatch, capfd, caplog):
  """Checks that no read left behind Orbax's event-loop noise.

  The noise comes late, from TensorStore threads calling back into a closed
  event loop (sys.unraisablehook: "Event loop is closed") and from asyncio
  collecting failed futures nobody read ("... exception was never
  retrieved"): the check waits a moment and collects garbage first.
  """
  unraisable = []
  monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
  capfd.readouterr()

  def check():
    time.sleep(1.0)
    gc.collect()
    late = [f'{u.exc_type.__name__}: {u.exc_value}' for u in unraisable]
    late += [r.getMessage() for r in caplog.records if r.name == 'asyncio']
    assert not late, late[:5]
    err = capfd.readouterr().err
    for noise in NOISE:
      assert noise not in err, err[-3000:]

  return check


@pytest.mark.parametrize('how', sorted(DAMAGES))
def test_resuming_sets_the_damaged_step_aside_and_resumes_from_the_one_before(
    pristine, run_copy, how, caplog, assert_quiet):
  _damage(run_copy, how, [LATEST])
  with caplog.at_level(logging.WARNING):
    _, state, step = _resume(run_copy)
  assert_quiet()
  assert step == EARLIER
  _, variables = checkpoint.restore_encoder(pristine, EARLIER)
  _assert_same_params(state.params['encoder'], variables['params'])
  assert _steps(run_copy) == [EARLIER]
  assert _steps(run_copy, checkpoint.UNREADABLE_SUBDIR) == [LATEST]
  warnings = _warnings(caplog)
  assert len(warnings) == 1, warnings
  assert f'step {LATEST}' in warnings[0] and 'cannot be read' in warnings[0]
  assert 'tensorstore_spec' not in warnings[0]  # One readable line.


@pytest.mark.parametrize('how', sorted(DAMAGES))
def test_every_step_damaged_starts_over_with_a_warning(run_copy, how, caplog,
                                                       assert_quiet):
  _damage(run_copy, how, [EARLIER, LATEST])
  with caplog.at_level(logging.WARNING):
    fresh, state, step = _resume(run_copy)
  assert_quiet()
  assert step == 0
  _assert_same_params(state.params, fresh.params)
  assert _steps(run_copy) == []
  assert _steps(run_copy, checkpoint.UNREADABLE_SUBDIR) == [EARLIER, LATEST]
  warnings = _warnings(caplog)
  assert len(warnings) == 3, warnings
  assert 'no readable checkpoint left' in warnings[-1]
  assert 'starts over from step 0' in warnings[-1]


def test_a_run_with_every_step_damaged_trains_again_from_scratch(run_copy,
                                                                 caplog):
  _damage(run_copy, 'truncated array file', [EARLIER, LATEST])
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(tiny_config('supervised'), run_copy)
  assert any('starts over from step 0' in w for w in _warnings(caplog))
  assert _steps(run_copy) == [EARLIER, LATEST]
  assert _steps(run_copy, checkpoint.UNREADABLE_SUBDIR) == [EARLIER, LATEST]


@pytest.mark.parametrize('every_step', [False, True],
                         ids=['latest step', 'every step'])
@pytest.mark.parametrize('how', sorted(DAMAGES))
@pytest.mark.parametrize('restore', [checkpoint.restore_encoder,
                                     checkpoint.restore_model],
                         ids=['restore_encoder', 'restore_model'])
def test_evaluation_restore_names_the_workdir_and_step(
    run_copy, how, every_step, restore, assert_quiet):
  _damage(run_copy, how, [EARLIER, LATEST] if every_step else [LATEST])
  with pytest.raises(checkpoint.UnreadableCheckpointError) as raised:
    restore(run_copy)
  assert_quiet()
  message = str(raised.value)
  assert run_copy in message and f'step {LATEST}' in message, message
  assert f'--workdir={run_copy}' in message  # Resuming sets it aside.
  assert f'--config.pretrained_step={EARLIER}' in message
  assert 'tensorstore_spec' not in message and '\n' not in message
  assert _steps(run_copy) == [EARLIER, LATEST]  # An evaluation moves nothing.


def test_the_step_before_a_damaged_one_stays_readable(pristine, run_copy):
  _damage(run_copy, 'truncated array file', [LATEST])
  _, damaged = checkpoint.restore_encoder(run_copy, EARLIER)
  _, intact = checkpoint.restore_encoder(pristine, EARLIER)
  _assert_same_params(damaged, intact)


def test_a_damaged_earlier_step_is_not_blamed_on_resuming(run_copy):
  """Resuming would not touch step 3: the message does not suggest it."""
  _damage(run_copy, 'deleted OCDBT manifest', [EARLIER])
  with pytest.raises(checkpoint.UnreadableCheckpointError,
                     match=rf'step {EARLIER} in .*pretrained_step=STEP') as e:
    checkpoint.restore_encoder(run_copy, EARLIER)
  assert '--workdir' not in str(e.value)


def test_a_damaged_config_item_is_unreadable_too(run_copy):
  config_file = os.path.join(checkpoint.checkpoint_dir(run_copy), str(LATEST),
                             'config', 'metadata')
  with open(config_file, 'w') as f:
    f.write('{"objective": "superv')  # Cut short.
  with pytest.raises(checkpoint.UnreadableCheckpointError,
                     match=rf'step {LATEST} in {re.escape(run_copy)}'):
    checkpoint.load_config_and_schema(run_copy)


def test_an_evaluation_of_a_damaged_checkpoint_prints_one_error_line(
    run_copy, tmp_path):
  _damage(run_copy, 'truncated array file', [LATEST])
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # One CPU device, as a user runs it.
  result = subprocess.run(
      [sys.executable, '-m', 'gzevo_jax.main',
       '--config=configs/linear_probe.py:smoke',
       f'--config.pretrained_workdir={run_copy}',
       f'--workdir={tmp_path / "probe"}'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert 'Event loop is closed' not in result.stderr
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert len(errors) == 1, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == errors[0]
  assert f'step {LATEST} in {run_copy}' in errors[0]
  assert 'cannot be read' in errors[0] and f'--workdir={run_copy}' in errors[0]

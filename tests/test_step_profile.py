"""The step profile: trace reading and per-step arithmetic, and a real trace."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, tiny_config
from gzevo_jax import benchmark
from gzevo_jax import parallel
from gzevo_jax import step_profile
from gzevo_jax.step_profile import OpEvent


def _step(run_id, *ops):
  return [OpEvent(run_id, op, start, end) for op, start, end in ops]


def test_concurrency_splits_the_step_into_idle_one_and_parallel():
  # x runs 0-10 ms, y 5-15, nothing 15-20, x.2 20-30 (times in us).
  events = _step('a', ('x.1', 0, 10_000), ('y', 5_000, 15_000),
                 ('x.2', 20_000, 30_000))
  spans = step_profile.concurrency_ms(events)
  assert spans == pytest.approx({0: 5.0, 1: 20.0, 2: 5.0})


def test_summarize_gives_per_step_medians_by_op_kind():
  events = (_step('a', ('x.1', 0, 10_000), ('y', 5_000, 15_000),
                  ('x.2', 20_000, 30_000)) +
            _step('b', ('x.1', 0, 4_000)) +
            _step('c', ('x.1', 0, 6_000), ('x.3', 6_000, 8_000)))
  profile = step_profile.summarize(events)
  assert profile.steps == 3
  assert profile.ops_per_step == 2          # Median of 3, 1 and 2 ops.
  assert profile.wall_ms == pytest.approx(8.0)   # Median of 30, 4, 8.
  assert profile.idle_ms == pytest.approx(0.0)
  # x: 20, 4 and 8 ms; y: 10 ms in one step and absent (0) in two.
  assert profile.op_ms == pytest.approx({'x': 8.0, 'y': 0.0})
  assert list(profile.op_ms) == ['x', 'y']


def test_summarize_without_ops_is_an_error():
  with pytest.raises(ValueError, match='no op of the step'):
    step_profile.summarize([])


def test_op_kind_drops_the_instance_number():
  assert step_profile.op_kind('transpose_copy_fusion.12') == (
      'transpose_copy_fusion')
  assert step_profile.op_kind('dot') == 'dot'


def test_a_real_step_trace(tmp_path):
  config = tiny_config('supervised')
  profile = benchmark.profile_objective(config, parallel.make_mesh(), 2,
                                        str(tmp_path))
  assert profile.steps == 2
  assert profile.ops_per_step > 20
  assert profile.wall_ms > 0
  assert sum(profile.op_ms.values()) > 0
  assert profile.idle_ms + profile.one_op_ms + profile.parallel_ms == (
      pytest.approx(profile.wall_ms, rel=0.3))
  text = step_profile.format_profile(profile, top=3)
  assert f'{profile.ops_per_step} ops a step' in text
  assert len(text.splitlines()) == 4
  traces = [f for _, _, files in os.walk(tmp_path) for f in files
            if f == 'perfetto_trace.json.gz']
  assert len(traces) == 1


def test_the_benchmark_command_prints_the_profile(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  result = subprocess.run(
      [sys.executable, '-m', 'gzevo_jax.benchmark',
       '--config=configs/supervised.py:smoke', '--config.data.image_size=16',
       '--config.model.width_multiplier=0.0625', '--objectives=supervised',
       '--steps=1', '--warmup=0', '--input=false', '--profile_steps=2',
       f'--profile_dir={tmp_path}'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'supervised: trace in {tmp_path}/supervised' in result.stdout
  assert 'profile (2 traced steps' in result.stdout

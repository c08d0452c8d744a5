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


def test_op_sources_read_the_metadata_of_each_op():
  hlo = '''
  %fusion.3 = f32[2]{0} fusion(%p), kind=kLoop, calls=%f, metadata={op_name="jit(train_step)/jvp(GalaxyModel)/encoder/stem_conv/conv" stack_frame_id=4}
  ROOT %copy.1 = f32[2]{0} copy(%fusion.3)
  %ynn_fusion.12 = f32[16]{0} fusion(%c, %d), kind=kCustom, metadata={op_name="jit(train_step)/transpose(jvp(GalaxyModel))/projector/Dense_0/dot_general"}, backend_config={}
'''
  assert step_profile.op_sources(hlo) == {
      'fusion.3': 'jit(train_step)/jvp(GalaxyModel)/encoder/stem_conv/conv',
      'ynn_fusion.12': ('jit(train_step)/transpose(jvp(GalaxyModel))/'
                        'projector/Dense_0/dot_general')}


@pytest.mark.parametrize('source,part', [
    ('jit(train_step)/jvp(GalaxyModel)/encoder/stage1_block1/Conv_0/conv',
     'forward encoder'),
    ('jit(train_step)/transpose(jvp(GalaxyModel))/predictor/Dense_1/dot',
     'backward predictor'),
    ('jit(train_step)/GalaxyModel.target/encoder/stage2_block1/Conv_0/conv',
     'target network'),
    ('jit(train_step)/jvp()/digamma', 'losses'),
    ('jit(train_step)/jit(norm)/sqrt', 'optimizer and the rest'),
    (None, 'no source'),
])
def test_step_part(source, part):
  assert step_profile.step_part(source) == part


def test_parts_sum_the_op_time_per_step():
  events = (_step('a', ('x.1', 0, 10_000), ('y', 5_000, 15_000)) +
            _step('b', ('x.1', 0, 4_000), ('y', 4_000, 6_000)))
  sources = {'x.1': 'jit(train_step)/jvp(GalaxyModel)/head/Dense_0/dot'}
  profile = step_profile.summarize(events, sources)
  # forward head: 10 and 4 ms; no source (y): 10 and 2 ms.
  assert profile.part_ms == pytest.approx({'forward head': 7.0,
                                           'no source': 6.0})


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
  assert {'forward encoder', 'backward encoder', 'forward head',
          'losses'} <= set(profile.part_ms)
  assert sum(profile.part_ms.values()) == pytest.approx(
      sum(profile.op_ms.values()), rel=0.2)
  text = step_profile.format_profile(profile, top=3)
  assert f'{profile.ops_per_step} ops a step' in text
  assert len(text.splitlines()) == 5 + len(profile.part_ms)
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

"""The step benchmark: timings, FLOPs, MFU, and running without TensorFlow."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO_ROOT, tiny_config
from gzevo_jax import benchmark
from gzevo_jax import parallel

_EIGHT_DEVICES = '--xla_force_host_platform_device_count=8'
_PEAK = 0.5  # TFLOP/s per device, passed as --peak_tflops.
_TINY_FLAGS = ('--config=configs/hybrid.py:smoke',
               '--config.data.image_size=16',
               '--config.model.width_multiplier=0.0625',
               '--config.model.projector_hidden_dim=32',
               '--config.model.projection_dim=16',
               '--config.model.predictor_hidden_dim=32')


@pytest.fixture(scope='module')
def command(tmp_path_factory):
  """`python -m gzevo_jax.benchmark`, all objectives, TensorFlow unimportable.

  One run covers the command, the step benchmark of each objective on the 8
  simulated devices, and the TensorFlow-free step path (compiling is what
  takes the time, so it is done once).
  """
  json_out = tmp_path_factory.mktemp('benchmark') / 'results.jsonl'
  code = ('import runpy, sys\n'
          "sys.modules['tensorflow'] = None\n"
          "sys.modules['tensorflow_datasets'] = None\n"
          "sys.argv = ['gzevo_jax.benchmark', *sys.argv[1:]]\n"
          "runpy.run_module('gzevo_jax.benchmark', run_name='__main__')\n")
  args = [
      sys.executable, '-c', code, *_TINY_FLAGS, '--steps=2', '--warmup=1',
      f'--peak_tflops={_PEAK}', f'--json_out={json_out}'
  ]
  env = dict(os.environ, XLA_FLAGS=_EIGHT_DEVICES)
  result = subprocess.run(args,
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in json_out.read_text().splitlines()]
  return result.stdout, {row['objective']: row for row in rows}


def test_command_runs_without_tensorflow(command):
  stdout, rows = command
  assert 'input pipeline' in stdout
  assert 'skipped: TensorFlow is not installed' in stdout
  assert list(rows) == ['supervised', 'contrastive', 'hybrid']
  for objective in rows:
    assert f'== {objective} ==' in stdout
    assert rows[objective]['input_images_per_s'] is None


def test_step_benchmark_times_each_objective(command):
  _, rows = command
  for row in rows.values():
    assert row['devices'] == 8 and row['global_batch_size'] == 16
    assert row['steps'] == 2 and row['compile_s'] > 0
    for key in ('step_s', 'images_per_s', 'images_per_s_per_device'):
      assert math.isfinite(row[key]) and row[key] > 0, key
    assert row['images_per_s'] == pytest.approx(16 / row['step_s'])
    per_device = row['images_per_s'] / 8
    assert row['images_per_s_per_device'] == pytest.approx(per_device)


def test_hybrid_costs_at_least_the_supervised_flops(command):
  _, rows = command
  flops = {o: row['flops_per_step_per_device'] for o, row in rows.items()}
  assert flops['supervised'] > 0
  # Two views plus the BYOL target network's forward pass.
  assert flops['hybrid'] >= flops['supervised']
  assert flops['hybrid'] >= flops['contrastive']


def test_mfu_is_flops_over_time_over_peak(command):
  _, rows = command
  for row in rows.values():
    flops, seconds = row['flops_per_step_per_device'], row['step_s']
    assert row['peak_tflops_per_device'] == _PEAK
    achieved = flops / seconds / 1e12
    assert row['tflops_per_s_per_device'] == pytest.approx(achieved)
    assert row['mfu'] == pytest.approx(achieved / _PEAK)
  assert benchmark.model_flops_utilisation(4e12, 2.0, 4.0) == 0.5
  assert benchmark.model_flops_utilisation(4e12, 2.0, None) is None
  assert benchmark.model_flops_utilisation(None, 2.0, 4.0) is None


def test_report_without_a_peak_says_how_to_get_mfu():
  result = benchmark.StepBenchmark(objective='hybrid',
                                   devices=2,
                                   global_batch_size=8,
                                   compile_s=1.0,
                                   step_times_s=(0.5, 0.25, 1.0),
                                   flops_per_device=1e9,
                                   peak_tflops_per_device=None)
  assert result.step_s == 0.5 and result.images_per_s == 16.0
  assert result.mfu is None
  report = benchmark.format_result(result, steps=3)
  assert 'MFU' in report and benchmark.NO_PEAK in report
  assert '1 GFLOP per device' in report


def test_cost_analysis_counts_flops_per_device():
  """A data-parallel program's FLOPs are those of one device's shard."""
  width = 64

  def per_device(w, batch):
    loss = jnp.sum(batch['x'] @ w)
    return w, jax.lax.pmean(loss, 'batch')

  def flops(devices, global_rows):
    mesh = parallel.make_mesh(devices)
    x = np.ones((global_rows, width), np.float32)
    batch = parallel.global_batch({'x': x}, mesh)
    step = parallel.data_parallel(per_device, mesh, donate_state=False)
    compiled = step.lower(jnp.ones((width, width)), batch).compile()
    return benchmark.flops_from_cost_analysis(compiled.cost_analysis())

  one, eight = flops(jax.devices()[:1], 4), flops(jax.devices(), 32)
  matmul = 2 * 4 * width * width  # 4 rows per device in both.
  assert one >= matmul and eight >= matmul
  assert eight == pytest.approx(one, rel=0.05)  # Not 8x: per device.


def test_flops_from_cost_analysis_shapes():
  parse = benchmark.flops_from_cost_analysis
  assert parse({'flops': 10.0, 'bytes accessed': 3.0}) == 10.0
  assert parse([{'flops': 10.0}, {'flops': 5.0}]) == 15.0
  assert parse([{'bytes accessed': 3.0}]) is None
  assert parse({'flops': -1.0}) is None
  assert parse(None) is None
  assert parse([]) is None


def test_peak_tflops_table():
  peak = benchmark.peak_tflops
  assert peak('NVIDIA H100 80GB HBM3', 'gpu', 'bfloat16') == 989.0
  assert peak('NVIDIA H100 80GB HBM3', 'gpu', 'float32') == 494.0  # TF32.
  assert peak('NVIDIA H100 80GB HBM3', 'gpu', 'float32', 'highest') == 67.0
  assert peak('NVIDIA H200', 'gpu', 'bfloat16') == 989.0
  assert peak('NVIDIA A100-SXM4-80GB', 'gpu', 'float32', 'float32') == 19.5
  assert peak('TPU v5 lite', 'tpu', 'bfloat16') == 197.0
  assert peak('TPU v5', 'tpu', 'float32') == 459.0  # One bf16 pass.
  assert peak('TPU v4', 'tpu', 'float32', 'highest') is None
  assert peak('cpu', 'cpu', 'float32') is None
  assert peak('NVIDIA GeForce RTX 3090', 'gpu', 'bfloat16') is None


def test_bottleneck_is_the_slower_side():
  assert benchmark.bottleneck(100.0, 50.0) == 'input pipeline'
  assert benchmark.bottleneck(100.0, 500.0) == 'train step'
  assert benchmark.bottleneck(100.0, None) is None


def test_objective_config_changes_only_the_objective():
  config = tiny_config('hybrid')
  changed = benchmark.objective_config(config, 'supervised')
  assert changed.objective == 'supervised' and config.objective == 'hybrid'
  changed.objective = 'hybrid'
  assert changed.to_dict() == config.to_dict()

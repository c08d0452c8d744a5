r"""Train-step speed, FLOPs and MFU per objective, beside the input pipeline.

  python -m gzevo_jax.benchmark --config=configs/hybrid.py[:VARIANT] \
      [--config.FIELD=VALUE ...] [--objectives=supervised,contrastive,hybrid] \
      [--steps=20] [--warmup=3] [--peak_tflops=X] [--input=false] \
      [--json_out=FILE]

For each objective (the config with only `objective` replaced) this compiles
the real data-parallel train step over all devices and times it on synthetic
batches that already sit on the devices, so no input pipeline is timed. It
prints the compile time, the median step time, images/s (an image is a
galaxy; the BYOL objectives encode two views of each), the step's FLOPs from
XLA's cost analysis, the TFLOP/s achieved per device and the model FLOPs
utilisation (MFU); then the input pipeline's images/s for the same config and
which of the two is the bottleneck. One JSON line per objective follows.

FLOPs: `cost_analysis()` of the compiled jit-over-shard_map step describes
the per-device SPMD program, not the whole computation (the same per-device
batch on 1 and on 8 devices gives the same count; tests/test_benchmark.py),
so MFU = FLOPs per device / step time / peak per device. The count covers
every op of the step (forward, backward, optimizer, EMA), a multiply-add
being 2 FLOPs.

The step needs no TensorFlow; the tf.data input benchmark does and is skipped
(with a line saying so) where it is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import flags
import jax
import ml_collections
import numpy as np

from gzevo_jax import cli
from gzevo_jax import config_lib
from gzevo_jax import errors
from gzevo_jax import models
from gzevo_jax import parallel
from gzevo_jax import train
from gzevo_jax import train_state
from gzevo_jax.schema import get_schema

# Dense (no sparsity) peak TFLOP/s per JAX device, as the vendors publish
# them: NVIDIA's H100 and A100 datasheets (H200: the H100 SXM's compute) and
# the Google Cloud TPU system-architecture pages (bf16 per chip; a v4 or v5p
# chip is one JAX device). Keys: 'bf16', 'tf32' (float32 on tensor cores) and
# 'fp32' (float32 without them). Matched against `device.device_kind` in
# order, first match wins; None: unknown, pass --peak_tflops.
# yapf: disable
_GPU_PEAKS: tuple[tuple[str, Optional[dict[str, float]]], ...] = (
    ('H100 NVL', None),
    ('H200 NVL', None),
    ('H100 PCIe', {'bf16': 756.0, 'tf32': 378.0, 'fp32': 51.0}),
    ('H100', {'bf16': 989.0, 'tf32': 494.0, 'fp32': 67.0}),  # SXM.
    ('H200', {'bf16': 989.0, 'tf32': 494.0, 'fp32': 67.0}),
    ('A100', {'bf16': 312.0, 'tf32': 156.0, 'fp32': 19.5}),
)
_TPU_BF16_PEAKS = {'TPU v4': 275.0, 'TPU v5 lite': 197.0, 'TPU v5e': 197.0,
                   'TPU v5': 459.0, 'TPU v5p': 459.0, 'TPU v6 lite': 918.0,
                   'TPU v6e': 918.0}
# How float32 matmuls and convolutions run under jax_default_matmul_precision
# (JAX docs, "Matmul precision": by default TF32 on recent NVIDIA GPUs and
# one bfloat16 pass on TPU).
_GPU_FLOAT32_MATH = {None: 'tf32', 'default': 'tf32', 'tensorfloat32': 'tf32',
                     'bfloat16': 'bf16', 'fastest': 'bf16',
                     'float32': 'fp32', 'highest': 'fp32'}
_TPU_FLOAT32_AS_BF16 = (None, 'default', 'bfloat16', 'fastest')
# yapf: enable

NO_PEAK = 'n/a (pass --peak_tflops)'
DEFAULT_OBJECTIVES = ('supervised', 'contrastive', 'hybrid')


def objective_config(config: ml_collections.ConfigDict,
                     objective: str) -> ml_collections.ConfigDict:
  """A copy of `config` with only its objective replaced."""
  copy = config.copy_and_resolve_references()
  copy.objective = objective
  return copy


def synthetic_batch(batch_size: int,
                    image_shape: Sequence[int],
                    num_answers: int,
                    two_views: bool,
                    seed: int = 0) -> dict[str, np.ndarray]:
  """Random inputs of the train loop's shapes, made with numpy.

  Images are uint8 values scaled to [0, 1], as the pipeline delivers them;
  votes are counts 0-9 per answer.
  """
  rng = np.random.default_rng(seed)

  def images():
    pixels = rng.integers(0, 256, (batch_size, *image_shape), np.uint8)
    return pixels.astype(np.float32) / 255.0

  batch = {
      'image': images(),
      'votes': rng.integers(0, 10, (batch_size, num_answers), np.int32)
  }
  if two_views:
    batch['image_2'] = images()
  return batch


def flops_from_cost_analysis(cost: Any) -> Optional[float]:
  """The 'flops' of `Compiled.cost_analysis()`, None if it reports none.

  JAX versions return a dict, a list of dicts (one per program; summed) or
  None; XLA may leave 'flops' out or report -1 where it does not know.
  """
  if cost is None:
    return None
  entries = cost if isinstance(cost, (list, tuple)) else [cost]
  counts = [
      float(e['flops'])
      for e in entries
      if isinstance(e, Mapping) and 'flops' in e
  ]
  total = sum(c for c in counts if c > 0)
  return total if total > 0 else None


def achieved_tflops(flops: Optional[float], seconds: float) -> Optional[float]:
  """TFLOP/s for `flops` done in `seconds`."""
  return None if flops is None else flops / seconds / 1e12


def model_flops_utilisation(flops: Optional[float], seconds: float,
                            peak_tflops: Optional[float]) -> Optional[float]:
  """MFU: the FLOPs per device done per second over the device's peak."""
  if flops is None or not peak_tflops:
    return None
  return flops / seconds / (peak_tflops * 1e12)


def peak_tflops(device_kind: str,
                platform: str,
                dtype: str,
                matmul_precision: Optional[str] = None) -> Optional[float]:
  """Vendor dense peak TFLOP/s of one device for the model's compute dtype.

  float32 counts at the rate its matmuls really run under
  `matmul_precision` (jax_default_matmul_precision). None if unknown.
  """
  precision = None if matmul_precision is None else str(
      matmul_precision).lower()
  if platform == 'tpu':
    peak = _TPU_BF16_PEAKS.get(device_kind)
    if dtype == 'float32' and precision not in _TPU_FLOAT32_AS_BF16:
      return None  # Several bf16 passes: no single published figure.
    return peak
  if platform not in ('gpu', 'cuda'):
    return None
  peaks = next((p for name, p in _GPU_PEAKS if name in device_kind), None)
  if peaks is None:
    return None
  math = 'bf16' if dtype == 'bfloat16' else _GPU_FLOAT32_MATH.get(precision)
  return peaks.get(math) if math else None


@dataclasses.dataclass(frozen=True)
class StepBenchmark:
  """Timings and FLOPs of one objective's compiled train step."""
  objective: str
  devices: int
  global_batch_size: int
  compile_s: float
  step_times_s: tuple[float, ...]
  flops_per_device: Optional[float]  # One step, XLA's cost analysis.
  peak_tflops_per_device: Optional[float]

  @property
  def step_s(self) -> float:
    return float(np.median(self.step_times_s))

  @property
  def images_per_s(self) -> float:
    return self.global_batch_size / self.step_s

  @property
  def images_per_s_per_device(self) -> float:
    return self.images_per_s / self.devices

  @property
  def tflops_per_device(self) -> Optional[float]:
    return achieved_tflops(self.flops_per_device, self.step_s)

  @property
  def mfu(self) -> Optional[float]:
    return model_flops_utilisation(self.flops_per_device, self.step_s,
                                   self.peak_tflops_per_device)


def benchmark_step(config: ml_collections.ConfigDict,
                   steps: int = 20,
                   warmup: int = 3,
                   mesh: Optional[jax.sharding.Mesh] = None,
                   peak: Optional[float] = None) -> StepBenchmark:
  """Compiles and times `config`'s train step on device-resident batches.

  `mesh` defaults to every device; `peak` (TFLOP/s per device) to the
  vendor figure for the device and `config.model.dtype`, if known.
  """
  mesh = parallel.make_mesh() if mesh is None else mesh
  devices = mesh.devices.size
  if config.global_batch_size % devices:
    raise ValueError(f'config.global_batch_size={config.global_batch_size} '
                     f'does not split evenly over {devices} devices')
  # Durations only shape the learning-rate schedule, not the step's cost.
  setup = train_state.build_setup(config,
                            num_train_examples=max(
                                config.data.num_train_examples,
                                config.global_batch_size))
  local_batch_size = config.global_batch_size // jax.process_count()
  local = synthetic_batch(local_batch_size,
                          setup.image_shape,
                          setup.schema.num_answers,
                          models.uses_byol(config.objective),
                          seed=config.seed + jax.process_index())
  train.check_batch(local, setup, local_batch_size)
  batch = parallel.global_batch(local, mesh)
  # Initialised eagerly on the host: compiling the init would cost as much
  # as compiling the step, for every objective.
  state = parallel.replicate(
      jax.device_get(train_state.create_train_state(setup)), mesh)

  start = time.perf_counter()
  compiled = train.make_train_step(setup, mesh).lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  flops = flops_from_cost_analysis(compiled.cost_analysis())

  for _ in range(warmup):
    state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)

  if peak is None:
    device = mesh.devices.flat[0]
    peak = peak_tflops(device.device_kind, device.platform, config.model.dtype,
                       jax.config.jax_default_matmul_precision)
  return StepBenchmark(objective=config.objective,
                       devices=devices,
                       global_batch_size=config.global_batch_size,
                       compile_s=compile_s,
                       step_times_s=tuple(times),
                       flops_per_device=flops,
                       peak_tflops_per_device=peak)


def _iterator_images_per_second(batches,
                                batch_size: int,
                                count: int,
                                warmup: int = 2) -> float:
  for _ in range(warmup):
    next(batches)
  start = time.perf_counter()
  for _ in range(count):
    next(batches)
  return count * batch_size / (time.perf_counter() - start)


def input_images_per_second(config: ml_collections.ConfigDict,
                            batches: int) -> tuple[Optional[float], str]:
  """(images/s of the config's input, '') or (None, why it was skipped).

  A 'tfds' source is timed with `gzevo_jax.data.benchmark` (TensorFlow; the
  dataset is built on first use); 'in_memory_synthetic' needs numpy only.
  """
  from gzevo_jax.data import common, sources  # No TensorFlow at import.
  if config.data.source == 'in_memory_synthetic':
    data = sources.train_data(config, get_schema(config.schema),
                              models.uses_byol(config.objective))
    rate = _iterator_images_per_second(
        data.batches(0), config.global_batch_size // jax.process_count(),
        batches)
    return rate, ''
  try:
    importlib.import_module('tensorflow')
  except ImportError:
    return None, 'skipped: TensorFlow is not installed'
  from gzevo_jax.data import benchmark as data_benchmark
  try:
    return data_benchmark.pipeline_images_per_second(config, batches), ''
  except (ImportError, common.DataError) as e:
    return None, f'skipped: {e}'


def bottleneck(step_images_per_s: float,
               input_images_per_s: Optional[float]) -> Optional[str]:
  """'input pipeline' or 'train step', whichever delivers fewer images/s."""
  if input_images_per_s is None:
    return None
  return ('input pipeline'
          if input_images_per_s < step_images_per_s else 'train step')


def _input_name(data_config: ml_collections.ConfigDict) -> str:
  if data_config.source == 'tfds':
    return f'tf.data: {data_config.dataset}'
  return data_config.source


def _fmt(value: Optional[float], spec: str, none: str = 'n/a') -> str:
  return none if value is None else format(value, spec)


def describe_setup(config: ml_collections.ConfigDict, devices: int) -> str:
  """The lines that say what was measured, on what."""
  device = jax.devices()[0]
  m, d = config.model, config.data
  stem = ', small stem' if m.small_image_stem else ''
  return (f'jax {jax.__version__}, {device.platform}: {devices} x '
          f'{device.device_kind} ({jax.process_count()} process(es))\n'
          f'config {config.run_name}: {m.encoder} x{m.width_multiplier:g}'
          f'{stem}, {d.image_size} px x {d.channels}, dtype {m.dtype}, '
          f'matmul precision '
          f'{jax.config.jax_default_matmul_precision or "default"}, global '
          f'batch {config.global_batch_size} '
          f'({config.global_batch_size // devices} per device), optimizer '
          f'{config.optimizer.name}')


def format_result(result: StepBenchmark, steps: int) -> str:
  """A readable table of one objective's step benchmark."""
  times_ms = np.asarray(result.step_times_s) * 1e3
  flops = result.flops_per_device
  rows = [
      ('compile', f'{result.compile_s:.1f} s'),
      ('step time (median)', f'{result.step_s * 1e3:.1f} ms (min '
       f'{times_ms.min():.1f}, max {times_ms.max():.1f}, {steps} steps)'),
      ('images/s', f'{result.images_per_s:,.0f} total, '
       f'{result.images_per_s_per_device:,.1f} per device'),
      ('FLOPs per step',
       _fmt(None if flops is None else flops / 1e9, '.4g',
            'n/a (not in cost analysis)') +
       (' GFLOP per device (XLA cost analysis)' if flops else '')),
      ('achieved', _fmt(result.tflops_per_device, '.4g') +
       (f' TFLOP/s per device, {result.tflops_per_device * result.devices:.4g}'
        ' in total' if flops else '')),
      ('peak', _fmt(result.peak_tflops_per_device, 'g', NO_PEAK) +
       (' TFLOP/s per device' if result.peak_tflops_per_device else '')),
      ('MFU',
       _fmt(None if result.mfu is None else 100 * result.mfu, '.2f',
            NO_PEAK if flops else 'n/a') +
       ('%' if result.mfu is not None else '')),
  ]
  width = max(len(k) for k, _ in rows)
  return '\n'.join([f'== {result.objective} =='] +
                   [f'  {k:<{width}}  {v}' for k, v in rows])


def result_json(result: StepBenchmark, config: ml_collections.ConfigDict,
                warmup: int, input_rate: Optional[float]) -> dict[str, Any]:
  """One objective's results and setup, for a JSON line."""
  device = jax.devices()[0]
  m = config.model
  return dict(objective=result.objective,
              device_kind=device.device_kind,
              platform=device.platform,
              devices=result.devices,
              processes=jax.process_count(),
              jax=jax.__version__,
              encoder=m.encoder,
              width_multiplier=m.width_multiplier,
              image_size=config.data.image_size,
              dtype=m.dtype,
              global_batch_size=result.global_batch_size,
              steps=len(result.step_times_s),
              warmup=warmup,
              compile_s=result.compile_s,
              step_s=result.step_s,
              step_s_min=min(result.step_times_s),
              step_s_max=max(result.step_times_s),
              images_per_s=result.images_per_s,
              images_per_s_per_device=result.images_per_s_per_device,
              flops_per_step_per_device=result.flops_per_device,
              tflops_per_s_per_device=result.tflops_per_device,
              peak_tflops_per_device=result.peak_tflops_per_device,
              mfu=result.mfu,
              input_images_per_s=input_rate,
              bottleneck=bottleneck(result.images_per_s / jax.process_count(),
                                    input_rate))


def _step_benchmarks(base: ml_collections.ConfigDict,
                     objectives: Sequence[str], steps: int, warmup: int,
                     mesh: jax.sharding.Mesh, peak_tflops: Optional[float],
                     say: Callable[..., None]
                     ) -> tuple[dict[str, ml_collections.ConfigDict],
                                dict[str, StepBenchmark]]:
  """Each objective's config and step benchmark, each reported as it ends."""
  configs, results = {}, {}
  for objective in objectives:
    configs[objective] = objective_config(base, objective)
    try:
      results[objective] = benchmark_step(configs[objective], steps, warmup,
                                          mesh, peak_tflops)
    except ValueError as e:
      raise SystemExit(f'error: {e}') from e
    say(format_result(results[objective], steps), flush=True)
  return configs, results


def _input_benchmarks(configs: dict[str, ml_collections.ConfigDict],
                      results: dict[str, StepBenchmark], batches: int,
                      say: Callable[..., None]) -> dict[bool, Optional[float]]:
  """Input images/s per view count (one or two), and what bottlenecks each.

  Run after every step benchmark: tf.data threads would slow later steps.
  """
  objectives = list(configs)
  data = configs[objectives[0]].data
  say(f'\n== input pipeline ({_input_name(data)}, nothing else running) ==',
      flush=True)
  if jax.devices()[0].platform == 'cpu':
    say('  (on CPU, training runs both on the same cores: slower than '
        'either alone)')
  input_rates: dict[bool, Optional[float]] = {}
  for objective in objectives:
    views = models.uses_byol(objective)
    if views not in input_rates:
      rate, why = input_images_per_second(configs[objective], batches)
      input_rates[views] = rate
      say(f'  {"2 views" if views else "1 view"}: '
          f'{_fmt(rate, ",.0f")} images/s' + (f' ({why})' if why else ''),
          flush=True)
    rate, step = input_rates[views], results[objective].images_per_s
    if rate is not None:
      say(f'  {objective}: the {bottleneck(step / jax.process_count(), rate)}'
          f' is the bottleneck (step {step:,.0f}, input {rate:,.0f} '
          'images/s per process)')
  return input_rates


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run says what to do with stray arguments.
  f = flags.FLAGS
  objectives, steps, warmup = f.objectives, f.steps, f.warmup
  bad = [o for o in objectives if o not in config_lib.OBJECTIVES]
  if bad or not objectives:
    raise errors.UserError(f'--objectives: choose from '
                           f'{", ".join(DEFAULT_OBJECTIVES)}; got {bad}')
  chief = jax.process_index() == 0
  say = print if chief else (lambda *a, **k: None)
  mesh = parallel.make_mesh()
  say(describe_setup(f.config, mesh.devices.size))
  say(
      f'{steps} timed steps after {warmup} warm-up steps, on '
      'synthetic batches already on the devices\n',
      flush=True)
  configs, results = _step_benchmarks(f.config, objectives, steps, warmup,
                                      mesh, f.peak_tflops, say)
  input_rates = {}
  if f.input:
    input_rates = _input_benchmarks(configs, results, f.input_batches, say)
  else:
    say('\ninput pipeline: not timed (--input=false)')

  lines = [
      json.dumps(
          result_json(results[o], configs[o], warmup,
                      input_rates.get(models.uses_byol(o)))) for o in objectives
  ]
  say('\n' + '\n'.join(lines))
  if f.json_out and chief:
    with open(f.json_out, 'w') as out:
      out.write('\n'.join(lines) + '\n')


def define_flags() -> None:
  """The command's flags (only when run: tests import this module)."""
  cli.config_flag('configs/hybrid.py')
  flags.DEFINE_list('objectives', list(DEFAULT_OBJECTIVES),
                    'Objectives to benchmark, comma-separated.')
  flags.DEFINE_integer('steps',
                       20,
                       'Timed steps (the median is reported).',
                       lower_bound=1)
  flags.DEFINE_integer('warmup',
                       3,
                       'Untimed steps after compiling.',
                       lower_bound=0)
  flags.DEFINE_float(
      'peak_tflops', None, 'Peak TFLOP/s per device for MFU '
      '(default: the vendor figure for known devices).')
  flags.DEFINE_bool('input', True, 'Also time the input pipeline.')
  flags.DEFINE_integer('input_batches',
                       40,
                       'Input batches to time.',
                       lower_bound=1)
  flags.DEFINE_string('json_out', None, 'Also write the JSON lines to this '
                      'file.')


if __name__ == '__main__':
  define_flags()
  cli.run(main)

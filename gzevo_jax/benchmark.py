r"""Train-step speed, FLOPs and MFU per objective, beside the input pipeline.

  python -m gzevo_jax.benchmark --config=configs/hybrid.py[:VARIANT] \
      [--config.FIELD=VALUE ...] [--objectives=supervised,contrastive,hybrid] \
      [--steps=20] [--warmup=3] [--peak_tflops=X] [--input=false] \
      [--peer=torch] [--json_out=FILE] [--profile_dir=DIR]

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

--peer=torch also times the same step written in PyTorch
(benchmarks/torch_peer.py: same encoder, heads, loss, optimizer, batch and
thread count), taking turns with the JAX step one step at a time so both
see the same background load, and prints JAX's speed as a multiple of
PyTorch's (peer median step time / JAX median step time).

--profile_dir=DIR also traces a few steps of each objective with
jax.profiler and prints where the step's time goes (`step_profile.py`).

The step needs no TensorFlow; the tf.data input benchmark does and is skipped
(with a line saying so) where it is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import sys
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
from gzevo_jax import optim
from gzevo_jax import parallel
from gzevo_jax import step_profile
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


@dataclasses.dataclass
class CompiledStep:
  """A compiled train step, ready to run on its device-resident batch."""
  run: Callable[[], None]   # One step; returns when it has finished.
  compile_s: float
  flops_per_device: Optional[float]
  devices: int
  hlo_text: Callable[[], str]  # The compiled program, as text.


def compile_step(config: ml_collections.ConfigDict,
                 mesh: jax.sharding.Mesh) -> CompiledStep:
  """Compiles `config`'s data-parallel train step on a synthetic batch."""
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

  def run() -> None:
    nonlocal state
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))

  return CompiledStep(run, compile_s,
                      flops_from_cost_analysis(compiled.cost_analysis()),
                      devices, compiled.as_text)


def time_alternating(runs: Mapping[str, Callable[[], Any]], steps: int,
                     warmup: int) -> dict[str, tuple[float, ...]]:
  """Seconds of each timed step of each run, the runs taking turns per step.

  Taking turns step by step exposes every implementation to the same
  background load, so their ratio holds on a busy machine too.
  """
  for run in runs.values():
    for _ in range(warmup):
      run()
  times = {name: [] for name in runs}
  for _ in range(steps):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  return {name: tuple(t) for name, t in times.items()}


def _step_result(config: ml_collections.ConfigDict, step: CompiledStep,
                 times: tuple[float, ...], mesh: jax.sharding.Mesh,
                 peak: Optional[float]) -> StepBenchmark:
  if peak is None:
    device = mesh.devices.flat[0]
    peak = peak_tflops(device.device_kind, device.platform, config.model.dtype,
                       jax.config.jax_default_matmul_precision)
  return StepBenchmark(objective=config.objective,
                       devices=step.devices,
                       global_batch_size=config.global_batch_size,
                       compile_s=step.compile_s,
                       step_times_s=times,
                       flops_per_device=step.flops_per_device,
                       peak_tflops_per_device=peak)


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
  step = compile_step(config, mesh)
  times = time_alternating({'jax': step.run}, steps, warmup)['jax']
  return _step_result(config, step, times, mesh, peak)


def input_images_per_second(config: ml_collections.ConfigDict,
                            batches: int) -> tuple[Optional[float], str]:
  """(images/s of the config's input, '') or (None, why it was skipped).

  Timed with `gzevo_jax.data.benchmark`: a 'tfds' source needs TensorFlow
  (the dataset is built on first use); 'grain' needs the dataset's
  array_record files; 'in_memory_synthetic' needs numpy only.
  """
  from gzevo_jax.data import common  # No TensorFlow at import.
  from gzevo_jax.data import benchmark as data_benchmark
  if config.data.source == 'tfds':
    try:
      importlib.import_module('tensorflow')
    except ImportError:
      return None, 'skipped: TensorFlow is not installed'
  try:
    return data_benchmark.pipeline_images_per_second(config, batches,
                                                     warmup=2), ''
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
  if data_config.source in ('tfds', 'grain'):
    reader = 'tf.data' if data_config.source == 'tfds' else 'grain'
    return f'{reader}: {data_config.dataset}'
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
                     peer: Any, say: Callable[..., None]
                     ) -> tuple[dict[str, ml_collections.ConfigDict],
                                dict[str, StepBenchmark],
                                dict[str, PeerComparison]]:
  """Each objective's config, step benchmark and (with a peer) comparison,
  each reported as it ends."""
  configs, results, comparisons = {}, {}, {}
  for objective in objectives:
    configs[objective] = objective_config(base, objective)
    try:
      if peer is None:
        results[objective] = benchmark_step(configs[objective], steps, warmup,
                                            mesh, peak_tflops)
      else:
        comparisons[objective] = compare_with_peer(
            configs[objective], peer, steps, warmup, mesh, peak_tflops)
        results[objective] = comparisons[objective].jax
    except ValueError as e:
      raise SystemExit(f'error: {e}') from e
    say(format_result(results[objective], steps), flush=True)
    if peer is not None:
      say(format_comparison(comparisons[objective]), flush=True)
  return configs, results, comparisons


def profile_objective(config: ml_collections.ConfigDict,
                      mesh: jax.sharding.Mesh, steps: int,
                      log_dir: str) -> step_profile.StepProfile:
  """Traces `steps` warm steps of `config` into `log_dir`; their summary."""
  step = compile_step(config, mesh)
  for _ in range(2):  # Warm: the first runs allocate and plan.
    step.run()
  return step_profile.profile_step(step.run, steps, log_dir, step.hlo_text())


def _profiles(configs: Mapping[str, ml_collections.ConfigDict],
              mesh: jax.sharding.Mesh, steps: int, profile_dir: str,
              say: Callable[..., None]) -> None:
  """Each objective's step traced into profile_dir/<objective>, summarized."""
  for objective, config in configs.items():
    log_dir = os.path.join(profile_dir, objective)
    profile = profile_objective(config, mesh, steps, log_dir)
    say(f'\n{objective}: trace in {log_dir}\n'
        f'{step_profile.format_profile(profile)}', flush=True)


def _peer_json(comparison: Optional[PeerComparison]) -> dict[str, Any]:
  if comparison is None:
    return {}
  return dict(peer=comparison.peer, peer_version=comparison.peer_version,
              peer_threads=comparison.peer_threads,
              peer_step_s=comparison.peer_step_s,
              speed_ratio_vs_peer=comparison.speed_ratio)


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


# ---------------------------------------------------------------------------
# The PyTorch peer (benchmarks/torch_peer.py, loaded by path: the package
# never imports torch).

PEERS = ('torch',)
_PEER_FILE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'benchmarks', 'torch_peer.py')


def load_torch_peer(path: str = _PEER_FILE) -> Any:
  """benchmarks/torch_peer.py as a module; a UserError where it cannot run."""
  if not os.path.exists(path):
    raise errors.UserError(f'--peer=torch needs {path}, which a clone of the '
                           'repository has (it is not part of the package)')
  if importlib.util.find_spec('torch') is None:
    raise errors.UserError("--peer=torch needs PyTorch: pip install -e "
                           "'.[peer]' (see README, 'Speed against PyTorch')")
  spec = importlib.util.spec_from_file_location('torch_peer', path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # Its dataclasses look themselves up.
  spec.loader.exec_module(module)
  return module


def peer_spec_fields(config: ml_collections.ConfigDict,
                     threads: int) -> dict[str, Any]:
  """The PeerSpec of `config`'s step: same model, loss, optimizer, batch."""
  schema = get_schema(config.schema)
  m, loss, opt = config.model, config.loss, config.optimizer
  if m.dtype != 'float32':
    raise errors.UserError(f'--peer=torch compares float32 steps; the config '
                           f'has model.dtype={m.dtype!r}')
  return dict(
      objective=config.objective, batch_size=config.global_batch_size,
      image_size=config.data.image_size, channels=config.data.channels,
      answer_question_index=[int(i) for i in schema.answer_question_index],
      encoder=m.encoder, width_multiplier=m.width_multiplier,
      small_image_stem=m.small_image_stem,
      projector_hidden_dim=m.projector_hidden_dim,
      projection_dim=m.projection_dim,
      predictor_hidden_dim=m.predictor_hidden_dim, head_dropout=m.head_dropout,
      byol_form=loss.byol_form, supervised_views=loss.supervised_views,
      supervised_weight=loss.supervised_weight,
      rescale_supervised=loss.rescale_supervised, optimizer=opt.name,
      learning_rate=optim.peak_learning_rate(opt, config.global_batch_size),
      momentum=opt.momentum, weight_decay=opt.weight_decay,
      trust_coefficient=opt.trust_coefficient,
      decay_norm_and_bias=opt.decay_norm_and_bias, b1=opt.b1, b2=opt.b2,
      eps=opt.eps, tau=config.ema.tau_base, threads=threads, seed=config.seed)


@dataclasses.dataclass(frozen=True)
class PeerComparison:
  """One objective's JAX step beside the peer's, timed taking turns."""
  jax: StepBenchmark
  peer: str
  peer_version: str
  peer_threads: int
  peer_step_times_s: tuple[float, ...]

  @property
  def peer_step_s(self) -> float:
    return float(np.median(self.peer_step_times_s))

  @property
  def speed_ratio(self) -> float:
    """JAX's speed as a multiple of the peer's (>= 1: JAX is as fast)."""
    return self.peer_step_s / self.jax.step_s


def compare_with_peer(config: ml_collections.ConfigDict, peer: Any,
                      steps: int, warmup: int, mesh: jax.sharding.Mesh,
                      peak: Optional[float]) -> PeerComparison:
  """Times the JAX step and the peer's, alternating step by step."""
  threads = len(os.sched_getaffinity(0))  # What XLA's CPU thread pool uses.
  step = compile_step(config, mesh)
  peer_step = peer.make_step(peer.PeerSpec(**peer_spec_fields(config,
                                                              threads)))
  times = time_alternating({'jax': step.run, 'peer': peer_step}, steps,
                           warmup)
  return PeerComparison(_step_result(config, step, times['jax'], mesh, peak),
                        'torch', peer.torch.__version__,
                        peer.torch.get_num_threads(), times['peer'])


def format_comparison(result: PeerComparison) -> str:
  ms = lambda t: f'{np.median(t) * 1e3:.1f} ms (min {min(t) * 1e3:.1f})'  # noqa: E731
  return '\n'.join([
      f'== {result.jax.objective}: JAX beside {result.peer} ==',
      f'  jax {jax.__version__}:  {ms(result.jax.step_times_s)}',
      f'  {result.peer} {result.peer_version} ({result.peer_threads} threads):'
      f'  {ms(result.peer_step_times_s)}',
      f'  JAX speed / {result.peer} speed: {result.speed_ratio:.2f}x '
      f'(median step times, {len(result.peer_step_times_s)} steps each, '
      'taking turns)'])


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
  peer = load_torch_peer() if f.peer == 'torch' else None
  configs, results, comparisons = _step_benchmarks(
      f.config, objectives, steps, warmup, mesh, f.peak_tflops, peer, say)
  if f.profile_dir:
    _profiles(configs, mesh, f.profile_steps, f.profile_dir, say)
  input_rates = {}
  if f.input:
    input_rates = _input_benchmarks(configs, results, f.input_batches, say)
  else:
    say('\ninput pipeline: not timed (--input=false)')

  lines = [
      json.dumps({
          **result_json(results[o], configs[o], warmup,
                        input_rates.get(models.uses_byol(o))),
          **_peer_json(comparisons.get(o))}) for o in objectives
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
  flags.DEFINE_enum('peer', None, PEERS, 'Also time the same step in this '
                    'framework (benchmarks/torch_peer.py), taking turns step '
                    'by step, and print the speed ratio.')
  flags.DEFINE_string('json_out', None, 'Also write the JSON lines to this '
                      'file.')
  flags.DEFINE_string('profile_dir', None, 'Also trace each objective\'s '
                      'step with jax.profiler into DIR/<objective> and print '
                      'where its time goes (gzevo_jax/step_profile.py).')
  flags.DEFINE_integer('profile_steps', 5, 'Steps to trace with '
                       '--profile_dir.', lower_bound=1)


if __name__ == '__main__':
  define_flags()
  cli.run(main)

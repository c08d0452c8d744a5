"""Where a compiled step's time goes, read from a `jax.profiler` trace.

`python -m gzevo_jax.benchmark --profile_dir=DIR` traces a few steps of each
objective into DIR/<objective> (open it in TensorBoard's profile plugin or
ui.perfetto.dev: `perfetto_trace.json.gz`) and prints this summary of it.

Per step (the median over the traced steps): the wall time from the first
op's start to the last op's end; how long no traced op ran (thunk dispatch,
and work XLA does not trace as an op: on CPU, Eigen's convolutions), one
op, or two or more at once; and the op time by kind, the HLO op name without
its `.N` suffix (`ynn_fusion`: YNNPACK's convolutions, matmuls and reductions;
`transpose_copy_fusion`: layout changes; ...), and by part of the step
(forward and backward of each model part, target network, losses,
optimizer), read from the compiled program's op metadata. Op times add up
over threads, so they can exceed the wall time.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import os
import re
from typing import Callable, Iterable, Mapping, Sequence

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class OpEvent:
  """One execution of one HLO op, in microseconds."""
  run_id: str
  op: str
  start_us: float
  end_us: float


@dataclasses.dataclass(frozen=True)
class StepProfile:
  """Per-step figures, medians over the traced steps, in milliseconds."""
  steps: int
  ops_per_step: int
  wall_ms: float
  idle_ms: float       # No traced op running.
  one_op_ms: float     # Exactly one.
  parallel_ms: float   # Two or more at once.
  op_ms: Mapping[str, float]  # Op kind -> time, summed over threads.
  part_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)


def trace_steps(run: Callable[[], None], steps: int, log_dir: str) -> str:
  """Runs `run` `steps` times under the profiler; the Perfetto trace's path."""
  with jax.profiler.trace(log_dir, create_perfetto_trace=True):
    for _ in range(steps):
      run()
  traces = glob.glob(os.path.join(log_dir, '**', 'perfetto_trace.json.gz'),
                     recursive=True)
  return max(traces, key=os.path.getmtime)


def read_op_events(path: str, module: str) -> list[OpEvent]:
  """The HLO op executions of programs whose name contains `module`."""
  with gzip.open(path, 'rt') as f:
    trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  return [OpEvent(e['args']['run_id'], e['args']['hlo_op'], e['ts'],
                  e['ts'] + e['dur'])
          for e in events
          if e.get('ph') == 'X' and 'hlo_op' in e.get('args', {}) and
          module in e['args'].get('hlo_module', '')]


def op_kind(op: str) -> str:
  """'transpose_copy_fusion.12' -> 'transpose_copy_fusion'."""
  return re.sub(r'\.\d+$', '', op)


_OP_NAME = re.compile(
    r'^\s*(?:ROOT )?%([\w.\-]+) = .*?metadata=\{[^}]*op_name="([^"]*)"')


def op_sources(hlo_text: str) -> dict[str, str]:
  """HLO op -> the JAX op it came from (its metadata op_name), from the
  compiled module's text (`compiled.as_text()`).

  Ops XLA creates while lowering carry none (on CPU: layout transposes, and
  the kernel-gradient convolutions it rewrites to run on them).
  """
  return {m[1]: m[2] for m in map(_OP_NAME.match, hlo_text.splitlines())
          if m}


def step_part(source: str | None) -> str:
  """Which part of a train step a JAX op name belongs to.

  'forward encoder', 'backward projector', 'target network', 'losses',
  'optimizer and the rest' (updates, EMA, metrics), or 'no source' (ops
  XLA created while lowering; see `op_sources`).
  """
  if not source:
    return 'no source'
  if 'GalaxyModel.target' in source:
    return 'target network'
  for prefix, direction in (('transpose(jvp(GalaxyModel))/', 'backward'),
                            ('jvp(GalaxyModel)/', 'forward')):
    if prefix in source:
      module = source.split(prefix, 1)[1].split('/', 1)[0]
      return f'{direction} {module}'
  if 'jvp(' in source:
    return 'losses'
  return 'optimizer and the rest'


def concurrency_ms(events: Iterable[OpEvent]) -> dict[int, float]:
  """Milliseconds with 0, 1 and 2+ ops running, first start to last end."""
  edges = sorted([(e.start_us, 1) for e in events] +
                 [(e.end_us, -1) for e in events])
  spans = {0: 0.0, 1: 0.0, 2: 0.0}
  running, last = 0, edges[0][0]
  for time, change in edges:
    spans[min(running, 2)] += (time - last) / 1e3
    running, last = running + change, time
  return spans


def _median_ms_by(runs: Sequence[Sequence[OpEvent]],
                  key: Callable[[OpEvent], str]) -> dict[str, float]:
  """Per-step median of the op time under each key, largest first."""
  per_key = collections.defaultdict(lambda: [0.0] * len(runs))
  for i, run in enumerate(runs):
    for event in run:
      per_key[key(event)][i] += (event.end_us - event.start_us) / 1e3
  medians = {k: float(np.median(v)) for k, v in per_key.items()}
  return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def summarize(events: Sequence[OpEvent],
              sources: Mapping[str, str] | None = None) -> StepProfile:
  """Medians per step of one program's op executions (one run_id a step).

  With `sources` (`op_sources` of the compiled program), also the op time
  per part of the step (`step_part`).
  """
  by_run = collections.defaultdict(list)
  for event in events:
    by_run[event.run_id].append(event)
  if not by_run:
    raise ValueError('the trace holds no op of the step')
  runs = list(by_run.values())
  per_step = [concurrency_ms(run) for run in runs]
  median = lambda values: float(np.median(values))  # noqa: E731
  part_ms = {}
  if sources is not None:
    part_ms = _median_ms_by(runs, lambda e: step_part(sources.get(e.op)))
  return StepProfile(
      steps=len(runs),
      ops_per_step=int(median([len(run) for run in runs])),
      wall_ms=median([sum(s.values()) for s in per_step]),
      idle_ms=median([s[0] for s in per_step]),
      one_op_ms=median([s[1] for s in per_step]),
      parallel_ms=median([s[2] for s in per_step]),
      op_ms=_median_ms_by(runs, lambda e: op_kind(e.op)),
      part_ms=part_ms)


def format_profile(profile: StepProfile, top: int = 10) -> str:
  """A few lines: the step's timeline and its costliest op kinds."""
  total = sum(profile.op_ms.values())
  lines = [
      f'  profile ({profile.steps} traced steps, {profile.ops_per_step} ops '
      f'a step): {profile.wall_ms:.1f} ms a step, of which no traced op '
      f'{profile.idle_ms:.1f} ms, one op {profile.one_op_ms:.1f} ms, two or '
      f'more {profile.parallel_ms:.1f} ms; op time {total:.1f} ms']
  for kind, ms in list(profile.op_ms.items())[:top]:
    lines.append(f'    {ms:7.2f} ms  {100 * ms / total:4.1f}%  {kind}')
  if profile.part_ms:
    lines.append('  op time by part of the step:')
    for part, ms in profile.part_ms.items():
      lines.append(f'    {ms:7.2f} ms  {100 * ms / total:4.1f}%  {part}')
  return '\n'.join(lines)


def profile_step(run: Callable[[], None], steps: int, log_dir: str,
                 hlo_text: str | None = None,
                 module: str = 'train_step') -> StepProfile:
  """Traces `steps` runs of a warm step into `log_dir` and summarizes them
  (by part of the step too, given the compiled program's `hlo_text`)."""
  events = read_op_events(trace_steps(run, steps, log_dir), module)
  return summarize(events, None if hlo_text is None else op_sources(hlo_text))

r"""Each convolution of the configured ResNet, timed in JAX and in PyTorch.

  python benchmarks/conv_layers.py --config=configs/hybrid.py [--batch=128]

Why the train step is slower than PyTorch's on a CPU, one layer at a time:
every distinct convolution of the config's encoder (found by intercepting
`encoders.Conv` calls, so the list follows the model) is timed as the
step runs it, forward, input gradient and kernel gradient, each jitted
alone in JAX (`encoders.Conv`, whichever path it takes on this backend) and
eagerly in PyTorch (`conv2d` on NCHW, as benchmarks/torch_peer.py runs it),
the two taking turns. The stem's input gradient is not timed: no step
computes it. `--batch` defaults to the images per step of a two-view
objective (2 x global_batch_size). Needs the optional `[peer]` extra.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch

from gzevo_jax import config_lib
from gzevo_jax import models
from gzevo_jax.benchmark import time_alternating
from gzevo_jax.models import encoders

PARTS = ('forward', 'input_grad', 'kernel_grad')


@dataclasses.dataclass(frozen=True)
class ConvShape:
  """One convolution as the encoder calls it (NHWC input, explicit padding)."""
  input_shape: tuple[int, int, int, int]
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int]
  padding: tuple[tuple[int, int], ...]

  def describe(self) -> str:
    _, h, w, cin = self.input_shape
    kh, kw = self.kernel_size
    return (f'{kh}x{kw}/{self.strides[0]} {cin}->{self.features} '
            f'on {h}x{w}')


def encoder_convs(config, batch: int) -> collections.Counter:
  """Distinct convolutions of the config's encoder at `batch`, with counts."""
  encoder = models.build_encoder_from_config(config.model).clone(
      bn_axis_name=None)
  calls = collections.Counter()

  def record(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, encoders.Conv) and context.method_name == '__call__':
      x = args[0]
      calls[ConvShape(tuple(x.shape), module.features,
                      tuple(module.kernel_size), tuple(module.strides),
                      tuple(map(tuple, encoders._explicit_padding(
                          module.padding, x.shape[1:3], module.kernel_size,
                          module.strides))))] += 1
    return next_fun(*args, **kwargs)

  shape = (batch, config.data.image_size, config.data.image_size,
           config.data.channels)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda: encoder.init(jax.random.PRNGKey(0),
                                        jnp.zeros(shape), train=False))
  return calls


def jax_parts(conv: ConvShape) -> dict[str, Callable[[], None]]:
  """Forward, input gradient and kernel gradient of encoders.Conv, jitted."""
  module = encoders.Conv(conv.features, conv.kernel_size, conv.strides,
                         conv.padding)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(conv.input_shape, np.float32))
  variables = module.init(jax.random.PRNGKey(0), x)
  out = module.apply(variables, x)
  grad_out = jnp.ones_like(out)
  forward = jax.jit(module.apply)
  input_grad = jax.jit(lambda v, x, g: jax.vjp(
      lambda x: module.apply(v, x), x)[1](g)[0])
  kernel_grad = jax.jit(lambda v, x, g: jax.vjp(
      lambda v: module.apply(v, x), v)[1](g)[0])
  return {
      'forward': lambda: forward(variables, x).block_until_ready(),
      'input_grad': lambda: input_grad(variables, x,
                                       grad_out).block_until_ready(),
      'kernel_grad': lambda: jax.block_until_ready(
          kernel_grad(variables, x, grad_out)),
  }


def torch_parts(conv: ConvShape) -> dict[str, Callable[[], None]]:
  """The same three in eager PyTorch (NCHW, as the torch peer runs)."""
  b, h, w, cin = conv.input_shape
  (top, bottom), (left, right) = conv.padding
  if (top, left) != (bottom, right):
    raise ValueError(f'{conv}: PyTorch conv2d pads both sides alike')
  x = torch.randn(b, cin, h, w)
  weight = torch.randn(conv.features, cin, *conv.kernel_size)

  def run(x, weight):
    return torch.nn.functional.conv2d(x, weight, stride=conv.strides,
                                      padding=(top, left))

  def grad(wrt_input: bool) -> Callable[[], None]:
    def step():
      xi = x.requires_grad_(wrt_input)
      wi = weight.requires_grad_(not wrt_input)
      out = run(xi, wi)
      torch.autograd.grad(out, xi if wrt_input else wi,
                          torch.ones_like(out))
    return step

  def forward():
    with torch.no_grad():
      run(x, weight)

  return {'forward': forward, 'input_grad': grad(True),
          'kernel_grad': grad(False)}


def time_layer(conv: ConvShape, steps: int, warmup: int,
               is_stem: bool) -> dict[str, tuple[float, float]]:
  """Part -> (JAX ms, PyTorch ms), medians, taking turns."""
  ours, theirs = jax_parts(conv), torch_parts(conv)
  result = {}
  for part in PARTS:
    if is_stem and part == 'input_grad':
      continue
    times = time_alternating({'jax': ours[part], 'torch': theirs[part]},
                             steps, warmup)
    result[part] = tuple(1e3 * float(np.median(times[k]))
                         for k in ('jax', 'torch'))
  return result


def format_table(rows: Sequence[tuple[ConvShape, int, dict]]) -> str:
  """Markdown: per layer and part, ms for JAX / PyTorch, and totals."""
  lines = ['| convolution | count | ' + ' | '.join(
      f'{p} JAX / PyTorch (ms)' for p in PARTS) + ' |',
           '|---|---|' + '---|' * len(PARTS)]
  total = {'jax': 0.0, 'torch': 0.0}
  for conv, count, parts in rows:
    cells = []
    for part in PARTS:
      if part not in parts:
        cells.append('not needed')
        continue
      ours, theirs = parts[part]
      total['jax'] += count * ours
      total['torch'] += count * theirs
      cells.append(f'{ours:.2f} / {theirs:.2f}')
    lines.append(f'| {conv.describe()} | {count} | ' + ' | '.join(cells) +
                 ' |')
  lines.append(f'\nAll convolutions of one step, forward and backward: '
               f'JAX {total["jax"]:.1f} ms, PyTorch {total["torch"]:.1f} ms '
               f'({total["jax"] / total["torch"]:.1f}x).')
  return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1])
  parser.add_argument('--config', default='configs/hybrid.py')
  parser.add_argument('--batch', type=int, default=None)
  parser.add_argument('--steps', type=int, default=15)
  parser.add_argument('--warmup', type=int, default=3)
  args = parser.parse_args(argv)
  config = config_lib.load_config_file(args.config)
  batch = args.batch or 2 * config.global_batch_size
  # What XLA's CPU thread pool uses, as `benchmark --peer=torch` sets it.
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  convs = encoder_convs(config, batch)
  print(f'{config.model.encoder} x{config.model.width_multiplier} at '
        f'{config.data.image_size} px, batch {batch}; jax {jax.__version__}, '
        f'torch {torch.__version__} ({torch.get_num_threads()} threads), '
        f'{args.steps} timed runs each\n', flush=True)
  rows = []
  for i, (conv, count) in enumerate(convs.items()):
    rows.append((conv, count, time_layer(conv, args.steps, args.warmup,
                                         is_stem=i == 0)))
  print(format_table(rows))


if __name__ == '__main__':
  main()

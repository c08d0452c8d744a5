"""benchmarks/conv_layers.py: the encoder's convolutions, timed per part.

Skipped where the optional [peer] extra (PyTorch) is not installed.
"""

import importlib.util
import os
import sys

import pytest

from conftest import REPO_ROOT, tiny_config

pytest.importorskip('torch')


@pytest.fixture(scope='module')
def conv_layers():
  path = os.path.join(REPO_ROOT, 'benchmarks', 'conv_layers.py')
  spec = importlib.util.spec_from_file_location('conv_layers', path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # Its dataclasses look themselves up.
  spec.loader.exec_module(module)
  return module


def test_every_convolution_of_resnet18_is_found(conv_layers):
  config = tiny_config('hybrid')
  config.data.image_size = 64
  config.model.width_multiplier = 0.25
  config.model.small_image_stem = False  # The default config's stem.
  convs = conv_layers.encoder_convs(config, batch=4)
  # Stem, 16 3x3 convolutions in 8 blocks, 3 projection shortcuts.
  assert sum(convs.values()) == 20
  stem = next(iter(convs))
  assert stem.input_shape == (4, 64, 64, 3)
  assert (stem.kernel_size, stem.strides, stem.features) == ((7, 7), (2, 2),
                                                              16)
  assert stem.padding == ((3, 3), (3, 3))
  assert stem.describe() == '7x7/2 3->16 on 64x64'
  last = [c for c in convs if c.input_shape[1:3] == (2, 2)]
  assert [convs[c] for c in last] == [3]  # Stage 4 after its first conv.


def test_each_part_is_timed_in_both_frameworks(conv_layers):
  conv = conv_layers.ConvShape((2, 8, 8, 3), 4, (3, 3), (1, 1),
                               ((1, 1), (1, 1)))
  parts = conv_layers.time_layer(conv, steps=2, warmup=1, is_stem=False)
  assert set(parts) == set(conv_layers.PARTS)
  assert all(ours > 0 and theirs > 0 for ours, theirs in parts.values())
  stem = conv_layers.time_layer(conv, steps=1, warmup=0, is_stem=True)
  assert 'input_grad' not in stem
  table = conv_layers.format_table([(conv, 2, parts), (conv, 1, stem)])
  assert '| 3x3/1 3->4 on 8x8 | 2 |' in table
  assert 'not needed' in table
  jax_ms = 2 * sum(p[0] for p in parts.values()) + sum(
      p[0] for p in stem.values())
  assert f'JAX {jax_ms:.1f} ms' in table

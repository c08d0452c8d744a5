"""Image encoders: ResNet and ConvNeXt backbones that return pooled features.

Every encoder maps float images [B, H, W, C] (any C >= 1) to float32 features
[B, F] by global average pooling the last stage; there is no classifier layer.
All encoders share one constructor signature (`width_multiplier`,
`small_image_stem`, `dtype`, `bn_axis_name`) so they can be swapped by name via
`build_encoder`.

ResNet follows google/flax `examples/imagenet/models.py` (ResNet v1.5, stride
on the 3x3 conv of bottlenecks, zero-init last BN scale per block). ConvNeXt
follows Liu et al. 2022, "A ConvNet for the 2020s".
"""

import functools
from typing import Any, Callable, ClassVar, Optional, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

ModuleDef = Any

# He-normal over fan-out, as in torchvision and the flax ImageNet example.
_resnet_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# ConvNeXt initialises convs and dense layers with N(0, 0.02), biases zero.
_convnext_init = nn.initializers.truncated_normal(stddev=0.02)


def scale_width(channels: int, width_multiplier: float) -> int:
  """Channel count scaled by `width_multiplier`, rounded, at least 1."""
  return max(1, int(round(channels * width_multiplier)))


# ----------------------------------------------------------------------------
# ResNet.
# ----------------------------------------------------------------------------

# XLA's CPU convolutions are slow on tiny feature maps: a 3x3 convolution
# 128 -> 128 channels on 2x2 maps (ResNet stage 4 at 64 px) takes 9.6 ms
# forward for a batch of 128 on a 2-core CPU, against 0.8 ms as nine shifted
# slices and one matmul (fwd + bwd: 19.8 against 1.8 ms), and PyTorch's 0.5
# ms. From 8x8 maps up XLA's own convolution is as fast or faster. So on CPU,
# convolutions whose output has at most this many pixels run as a matmul.
SMALL_MAP_PIXELS = 16


def _explicit_padding(padding: Any, size: Sequence[int], kernel: Sequence[int],
                      strides: Sequence[int]) -> list[tuple[int, int]]:
  """'SAME' / 'VALID' / explicit pairs, as explicit (low, high) pairs."""
  if isinstance(padding, str):
    return list(lax.padtype_to_pads(size, kernel, strides, padding))
  return [tuple(p) for p in padding]


def _window_slices(padded: jax.Array, window: Sequence[int],
                   strides: Sequence[int]) -> list[tuple[int, int, jax.Array]]:
  """(dy, dx, slice) per window offset of an NHWC array padded beforehand.

  Slice (dy, dx) holds, for every output pixel, the input at that offset in
  its window (row-major offsets, as convolutions and pooling walk them).
  """
  (kh, kw), (sh, sw) = window, strides
  out_h = (padded.shape[1] - kh) // sh + 1
  out_w = (padded.shape[2] - kw) // sw + 1
  return [(dy, dx, padded[:, dy:dy + sh * (out_h - 1) + 1:sh,
                          dx:dx + sw * (out_w - 1) + 1:sw, :])
          for dy in range(kh) for dx in range(kw)]


def slice_matmul_conv(x: jax.Array, kernel: jax.Array,
                      strides: Sequence[int],
                      padding: Sequence[tuple[int, int]]) -> jax.Array:
  """A 2-D NHWC convolution (HWIO kernel) as shifted slices and one matmul.

  The same result as `lax.conv_general_dilated`; each output pixel gathers
  its kh x kw window by slicing the padded input, so XLA sees slices, a
  concatenation and a dot, which it runs fast on CPU at any size.
  """
  kh, kw, cin, cout = kernel.shape
  padded = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  windows = [w for _, _, w in _window_slices(padded, (kh, kw), strides)]
  patches = jnp.concatenate(windows, axis=-1)  # (dy, dx, channel) order.
  return patches @ kernel.reshape(kh * kw * cin, cout)


def _lax_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
              padding: Sequence[tuple[int, int]]) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, tuple(strides), padding,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _space_to_depth(x: jax.Array) -> jax.Array:
  """[B, H, W, C] (H, W even) -> [B, H/2, W/2, 4C], (row, column, C) order."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def space_to_depth_conv(x: jax.Array, kernel: jax.Array,
                        padding: tuple[tuple[int, int], ...]) -> jax.Array:
  """A stride-2 NHWC convolution as a stride-1 one over 2x2 pixel blocks.

  The same result as `lax.conv_general_dilated` with strides (2, 2): the
  padded input becomes [H/2, W/2, 4C] and the kernel, zero-padded to even
  size, [kh/2, kw/2, 4C, out]. XLA's CPU convolution runs a 7x7/2 stem on
  3 channels about twice as fast this way; its gradients go through the
  plain convolution (autodiff of this form makes the kernel gradient ~8x
  slower).
  """
  kh, kw, cin, cout = kernel.shape
  (top, bottom), (left, right) = padding
  out_h = (x.shape[1] + top + bottom - kh) // 2 + 1
  out_w = (x.shape[2] + left + right - kw) // 2 + 1
  # The padded input cut or zero-extended to the even size the output needs
  # (lax.pad crops on negative padding), and the kernel to even size.
  even_h = 2 * (out_h + (kh + 1) // 2 - 1)
  even_w = 2 * (out_w + (kw + 1) // 2 - 1)
  x = lax.pad(x, jnp.zeros((), x.dtype),
              ((0, 0, 0), (top, even_h - x.shape[1] - top, 0),
               (left, even_w - x.shape[2] - left, 0), (0, 0, 0)))
  kernel = jnp.pad(kernel, ((0, kh % 2), (0, kw % 2), (0, 0), (0, 0)))
  blocks = kernel.reshape((kh + 1) // 2, 2, (kw + 1) // 2, 2, cin, cout)
  blocks = blocks.transpose(0, 2, 1, 3, 4, 5).reshape(
      (kh + 1) // 2, (kw + 1) // 2, 4 * cin, cout)
  return _lax_conv(_space_to_depth(x), blocks, (1, 1), ((0, 0), (0, 0)))


def _space_to_depth_conv_fwd(x, kernel, padding):
  return space_to_depth_conv(x, kernel, padding), (x, kernel)


def _space_to_depth_conv_bwd(padding, residuals, grad_out):
  x, kernel = residuals
  _, vjp = jax.vjp(lambda x, k: _lax_conv(x, k, (2, 2), padding), x, kernel)
  return vjp(grad_out)


space_to_depth_conv.defvjp(_space_to_depth_conv_fwd, _space_to_depth_conv_bwd)


def _pad_for_max(x: jax.Array, padding: Sequence[tuple[int, int]]):
  return jnp.pad(x, ((0, 0), *padding, (0, 0)), constant_values=-jnp.inf)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_cpu(x: jax.Array, window: tuple[int, int],
                  strides: tuple[int, int],
                  padding: tuple[tuple[int, int], ...]) -> jax.Array:
  return lax.reduce_window(_pad_for_max(x, padding), -jnp.inf, lax.max,
                           (1, *window, 1), (1, *strides, 1), 'VALID')


def _max_pool_cpu_fwd(x, window, strides, padding):
  out = _max_pool_cpu(x, window, strides, padding)
  return out, (x, out)


def _max_pool_cpu_bwd(window, strides, padding, residuals, grad_out):
  """Each output's gradient to the first maximum of its window (row-major).

  What XLA's select-and-scatter computes, as one mask and one strided pad
  per window offset.
  """
  x, out = residuals
  padded = _pad_for_max(x, padding)
  (sh, sw), (out_h, out_w) = strides, out.shape[1:3]
  zero = jnp.zeros((), grad_out.dtype)
  taken = jnp.zeros(out.shape, bool)
  grad = jnp.zeros(padded.shape, grad_out.dtype)
  for dy, dx, values in _window_slices(padded, window, strides):
    first = (values == out) & ~taken
    taken = taken | first
    grad = grad + lax.pad(
        jnp.where(first, grad_out, zero), zero,
        ((0, 0, 0),
         (dy, padded.shape[1] - dy - sh * (out_h - 1) - 1, sh - 1),
         (dx, padded.shape[2] - dx - sw * (out_w - 1) - 1, sw - 1),
         (0, 0, 0)))
  (top, bottom), (left, right) = padding
  return (grad[:, top:padded.shape[1] - bottom,
               left:padded.shape[2] - right, :],)


_max_pool_cpu.defvjp(_max_pool_cpu_fwd, _max_pool_cpu_bwd)


def max_pool(x: jax.Array, window: tuple[int, int], strides: tuple[int, int],
             padding: Sequence[tuple[int, int]]) -> jax.Array:
  """`nn.max_pool` over NHWC with explicit padding: the same values and
  gradients.

  On CPU its gradient is written as masks and strided pads: XLA's CPU
  select-and-scatter (the usual max-pool gradient) builds four int32 index
  tensors of the padded input's size, 14 of the 58 ms of op time in the
  default supervised step on a 2-core CPU; without it the step is about 10%
  faster (README, "Speed against PyTorch").
  """
  if jax.default_backend() != 'cpu':
    return nn.max_pool(x, window, strides=strides, padding=padding)
  return _max_pool_cpu(x, tuple(window), tuple(strides),
                       tuple(tuple(p) for p in padding))


class Conv(nn.Module):
  """A bias-free 2-D convolution over NHWC, `nn.Conv`'s drop-in for ResNets.

  Same parameter ('kernel', [kh, kw, in, out]) and name ('Conv_<i>') as
  `nn.Conv(use_bias=False)`, so checkpoints are interchangeable. On CPU, a
  convolution with a small output (`SMALL_MAP_PIXELS`) runs as
  `slice_matmul_conv` and a stride-2 one with a kernel of 5 or more (the
  ResNet stem) as `space_to_depth_conv`; everything else, and everything on
  accelerators, as `lax.conv_general_dilated`.
  """
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: Any = 'SAME'
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable[..., Any] = _resnet_conv_init

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features),
                        self.param_dtype)
    x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
    padding = _explicit_padding(self.padding, x.shape[1:3], self.kernel_size,
                                self.strides)
    out_pixels = np.prod([(n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in
                          zip(x.shape[1:3], padding, self.kernel_size,
                              self.strides)])
    on_cpu = jax.default_backend() == 'cpu'
    if on_cpu and out_pixels <= SMALL_MAP_PIXELS:
      return slice_matmul_conv(x, kernel, self.strides, padding)
    if on_cpu and tuple(self.strides) == (2, 2) and min(self.kernel_size) >= 5:
      return space_to_depth_conv(x, kernel, tuple(map(tuple, padding)))
    return _lax_conv(x, kernel, self.strides, padding)



class ResNetBlock(nn.Module):
  """Basic residual block (two 3x3 convs), used by ResNet-18/34."""

  expansion: ClassVar[int] = 1

  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: tuple[int, int] = (1, 1)

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), self.strides,
                  padding=((1, 1), (1, 1)))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3), padding=((1, 1), (1, 1)))(y)
    # Zero-init so every block starts as the identity (Goyal et al. 2017).
    y = self.norm(scale_init=nn.initializers.zeros_init())(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters, (1, 1), self.strides,
                           name='conv_proj')(residual)
      residual = self.norm(name='norm_proj')(residual)
    return nn.relu(residual + y)


class BottleneckResNetBlock(nn.Module):
  """Bottleneck block (1x1 -> 3x3 -> 1x1, x4 expansion), used by ResNet-50+."""

  expansion: ClassVar[int] = 4

  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: tuple[int, int] = (1, 1)

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (1, 1))(x)
    y = nn.relu(self.norm()(y))
    # v1.5: the stride sits on the 3x3 conv, not the first 1x1.
    y = self.conv(self.filters, (3, 3), self.strides,
                  padding=((1, 1), (1, 1)))(y)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters * self.expansion, (1, 1))(y)
    y = self.norm(scale_init=nn.initializers.zeros_init())(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters * self.expansion, (1, 1),
                           self.strides,
                           name='conv_proj')(residual)
      residual = self.norm(name='norm_proj')(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """ResNet v1.5 trunk returning globally average-pooled features.

    Attributes:
      stage_sizes: number of blocks in each of the (usually four) stages.
      block_cls: `ResNetBlock` or `BottleneckResNetBlock`.
      width_multiplier: scales the stem and every stage width.
      small_image_stem: if True, replace the 7x7/2 conv + 3x3/2 max-pool
        ImageNet stem by a single 3x3/1 conv (for 32-64 px images).
      dtype: compute dtype; parameters are always float32.
      bn_axis_name: mapped axis over which BatchNorm statistics are averaged
        (cross-device BN under `shard_map`/`pmap`); None for per-device BN.
    """

  stage_sizes: Sequence[int]
  block_cls: ModuleDef
  width_multiplier: float = 1.0
  small_image_stem: bool = False
  dtype: Any = jnp.float32
  bn_axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x, train: bool):
    conv = functools.partial(
        Conv,
        dtype=self.dtype,
        param_dtype=jnp.float32,
        kernel_init=_resnet_conv_init,
    )
    norm = functools.partial(
        nn.BatchNorm,
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=self.dtype,
        param_dtype=jnp.float32,
        axis_name=self.bn_axis_name,
    )
    width = functools.partial(scale_width,
                              width_multiplier=self.width_multiplier)

    if self.small_image_stem:
      x = conv(width(64), (3, 3), padding=((1, 1), (1, 1)), name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
    else:
      x = conv(width(64), (7, 7), (2, 2),
               padding=((3, 3), (3, 3)),
               name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
      x = max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))

    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = (2, 2) if i > 0 and j == 0 else (1, 1)
        x = self.block_cls(
            filters=width(64 * 2**i),
            conv=conv,
            norm=norm,
            strides=strides,
            name=f'stage{i + 1}_block{j + 1}',
        )(x)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


# ----------------------------------------------------------------------------
# ConvNeXt.
# ----------------------------------------------------------------------------


class ConvNeXtBlock(nn.Module):
  """ConvNeXt block: dw7x7 -> LN -> MLP(4x, GELU) -> layer scale -> drop path."""

  dim: int
  drop_path_rate: float = 0.0
  layer_scale_init: float = 1e-6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.Conv(
        self.dim,
        (7, 7),
        padding=((3, 3), (3, 3)),
        feature_group_count=self.dim,
        dtype=self.dtype,
        param_dtype=jnp.float32,
        kernel_init=_convnext_init,
        name='dwconv',
    )(x)
    y = nn.LayerNorm(epsilon=1e-6,
                     dtype=self.dtype,
                     param_dtype=jnp.float32,
                     name='norm')(y)
    dense = functools.partial(nn.Dense,
                              dtype=self.dtype,
                              param_dtype=jnp.float32,
                              kernel_init=_convnext_init)
    y = dense(4 * self.dim, name='pwconv1')(y)
    # Exact (erf) GELU, as torch.nn.GELU in the reference implementation.
    y = nn.gelu(y, approximate=False)
    y = dense(self.dim, name='pwconv2')(y)
    if self.layer_scale_init > 0:
      gamma = self.param(
          'layer_scale',
          nn.initializers.constant(self.layer_scale_init),
          (self.dim,),
          jnp.float32,
      )
      y = y * gamma.astype(y.dtype)
    # Stochastic depth: drop the whole residual branch per sample.
    y = nn.Dropout(self.drop_path_rate,
                   broadcast_dims=(1, 2, 3),
                   deterministic=not train,
                   name='drop_path')(y)
    return x + y


class ConvNeXt(nn.Module):
  """ConvNeXt trunk returning pooled, LayerNorm-ed features.

    Attributes:
      depths: number of blocks per stage.
      dims: channel width per stage (before `width_multiplier`).
      width_multiplier: scales every entry of `dims`.
      small_image_stem: if True, use a 3x3/1 conv stem instead of the 4x4/4
        patchify stem (for 32-64 px images).
      drop_path_rate: maximum stochastic-depth rate, increased linearly from 0
        at the first block to this value at the last; uses the 'dropout' rng.
      layer_scale_init: initial value of the per-channel layer scale; <= 0
        disables layer scale.
      dtype: compute dtype; parameters are always float32.
      bn_axis_name: accepted for signature parity with ResNet and ignored
        (ConvNeXt has no BatchNorm).
    """

  depths: Sequence[int]
  dims: Sequence[int]
  width_multiplier: float = 1.0
  small_image_stem: bool = False
  drop_path_rate: float = 0.0
  layer_scale_init: float = 1e-6
  dtype: Any = jnp.float32
  bn_axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x, train: bool):
    dims = [scale_width(d, self.width_multiplier) for d in self.dims]
    conv = functools.partial(nn.Conv,
                             dtype=self.dtype,
                             param_dtype=jnp.float32,
                             kernel_init=_convnext_init)
    norm = functools.partial(nn.LayerNorm,
                             epsilon=1e-6,
                             dtype=self.dtype,
                             param_dtype=jnp.float32)

    if self.small_image_stem:
      x = conv(dims[0], (3, 3), padding=((1, 1), (1, 1)), name='stem_conv')(x)
    else:
      x = conv(dims[0], (4, 4), (4, 4), padding='VALID', name='stem_conv')(x)
    x = norm(name='stem_norm')(x)

    rates = np.linspace(0.0, self.drop_path_rate, sum(self.depths))
    block_index = 0
    for i, (depth, dim) in enumerate(zip(self.depths, dims)):
      if i > 0:
        x = norm(name=f'downsample{i}_norm')(x)
        x = conv(dim, (2, 2), (2, 2),
                 padding='VALID',
                 name=f'downsample{i}_conv')(x)
      for j in range(depth):
        x = ConvNeXtBlock(
            dim=dim,
            drop_path_rate=float(rates[block_index]),
            layer_scale_init=self.layer_scale_init,
            dtype=self.dtype,
            name=f'stage{i + 1}_block{j + 1}',
        )(x, train)
        block_index += 1

    x = jnp.mean(x, axis=(1, 2))
    x = norm(name='final_norm')(x)
    return x.astype(jnp.float32)


# ----------------------------------------------------------------------------
# Registry.
# ----------------------------------------------------------------------------


def _resnet(stage_sizes: Sequence[int],
            block_cls: ModuleDef,
            drop_path_rate: float = 0.0,
            **kwargs) -> ResNet:
  # ResNets have no stochastic depth; accept 0.0 so callers can pass one
  # config to every encoder, but refuse a rate that would be silently dropped.
  if drop_path_rate:
    raise ValueError(
        f'drop_path_rate={drop_path_rate} is not supported for ResNet encoders.'
    )
  return ResNet(stage_sizes=tuple(stage_sizes), block_cls=block_cls, **kwargs)


def resnet18(**kwargs) -> ResNet:
  """ResNet-18: basic blocks [2, 2, 2, 2], 512 * width features."""
  return _resnet((2, 2, 2, 2), ResNetBlock, **kwargs)


def resnet50(**kwargs) -> ResNet:
  """ResNet-50: bottleneck blocks [3, 4, 6, 3], 2048 * width features."""
  return _resnet((3, 4, 6, 3), BottleneckResNetBlock, **kwargs)


def convnext_nano(**kwargs) -> ConvNeXt:
  """ConvNeXt-Nano (timm): depths (2, 2, 8, 2), dims (80, 160, 320, 640)."""
  return ConvNeXt(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640), **kwargs)


def convnext_tiny(**kwargs) -> ConvNeXt:
  """ConvNeXt-T: depths (3, 3, 9, 3), dims (96, 192, 384, 768)."""
  return ConvNeXt(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), **kwargs)


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    'resnet18': resnet18,
    'resnet50': resnet50,
    'convnext_nano': convnext_nano,
    'convnext_tiny': convnext_tiny,
}


def build_encoder(name: str, **kwargs) -> nn.Module:
  """Builds the encoder registered under `name`, forwarding `kwargs`.

    Raises:
      ValueError: if `name` is unknown, or `drop_path_rate > 0` for a ResNet.
    """
  if name not in ENCODERS:
    raise ValueError(
        f'Unknown encoder {name!r}; valid names: {sorted(ENCODERS)}.')
  return ENCODERS[name](**kwargs)


def encoder_feature_dim(encoder: nn.Module) -> int:
  """Size F of the [B, F] features `encoder` returns, from its fields alone."""
  if isinstance(encoder, ResNet):
    last_width = scale_width(64 * 2**(len(encoder.stage_sizes) - 1),
                             encoder.width_multiplier)
    return last_width * encoder.block_cls.expansion
  if isinstance(encoder, ConvNeXt):
    return scale_width(encoder.dims[-1], encoder.width_multiplier)
  raise TypeError(f'Unsupported encoder type: {type(encoder).__name__}.')

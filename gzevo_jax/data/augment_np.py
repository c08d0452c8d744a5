"""Galaxy views in numpy: `augment.py`'s augmentations without TensorFlow.

For the Grain input pipeline (`grain_pipeline.py`). Every field of
`config.data.augment` means here what it means in `augment.py`, with the same
probabilities, ranges and order (rotate, crop and resize, flip, colour
jitter, grayscale, blur, noise, clip to [0, 1]); the draws come from numpy's
generator instead of TensorFlow's stateless Philox, so a seed gives another
view than TensorFlow's, from the same distribution.

Shared with `augment.py`, not rewritten: the config and its validation, the
crop box rule (`augment.crop_box`), the brightness formula, the blur reach,
the hue band check and the salts that give every augmentation its own
draws. The image operations are written again in numpy, because TensorFlow's
run as graph ops on tensors: bilinear rotation with reflected corners
(TensorFlow's REFLECT fill), antialiased bilinear resize (the weights of
jax.image.resize / tf.image.resize with antialias), Gaussian blur
(scipy.ndimage, mirrored borders as TensorFlow's SYMMETRIC padding), hue
rotation in HSV (matplotlib.colors); test_augment.py checks each against
TensorFlow's.

A view is a pure function of (image, seed, config, output size): `seed` is a
sequence of non-negative integers, and each augmentation reads its own row
of uniforms (indexed by its salt), so switching one off leaves the others'
draws unchanged.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import ml_collections
import numpy as np
import scipy.ndimage

from gzevo_jax.data import augment

NUMPY_OPS = augment.ArrayOps(
    exp=np.exp, sqrt=np.sqrt, minimum=np.minimum, round=np.round,
    floor=np.floor, clip=np.clip, to_int=np.int32, to_float=np.float32)


def _draws(seed: Sequence[int]) -> np.ndarray:
  """float32 uniforms in [0, 1), [salt, 4]: every augmentation's own row."""
  rng = np.random.default_rng([int(s) for s in seed])
  return rng.random((augment.SALT_ROWS, 4), dtype=np.float32)


def sample_crop_box(seed: Sequence[int], height: int, width: int,
                    scale_range: tuple[float, float],
                    aspect_ratio_range: tuple[float, float]
                    ) -> tuple[int, int, int, int]:
  """The crop box a view with `seed` cuts (`augment.crop_box`'s rule)."""
  box = augment.crop_box(_draws(seed)[augment.SALT_CROP], height, width,
                         scale_range, aspect_ratio_range, NUMPY_OPS)
  return tuple(int(v) for v in box)


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
  """image as float32 [H, W, C]; TypeError / ValueError otherwise."""
  image = np.asarray(image)
  if not np.issubdtype(image.dtype, np.floating):
    raise TypeError(f'{name} expects a float image in [0, 1], got '
                    f'{image.dtype.name}')
  if image.ndim != 3:
    raise ValueError(f'{name} expects [H, W, C], got shape {image.shape}')
  return image.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=4096)
def _resize_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(indices, weights), both [out, taps]: an antialiased bilinear resize.

  jax.image.resize's 'linear' kernel with antialias (TensorFlow's
  `tf.image.resize(..., antialias=True)`): a triangle widened by the shrink
  factor, normalised per output pixel. Kept as the few input pixels each
  output pixel reads, not a dense matrix: a gather, not a BLAS call (BLAS
  threads on tiny matrices stall when the cores are busy).
  """
  scale = out_size / in_size
  kernel_scale = max(1.0 / scale, 1.0)
  sample = (np.arange(out_size) + 0.5) / scale - 0.5
  x = np.abs(sample[:, None] - np.arange(in_size)[None, :]) / kernel_scale
  weights = np.maximum(0.0, 1.0 - x)
  weights /= weights.sum(axis=1, keepdims=True)
  taps = int((weights > 0).sum(axis=1).max())
  first = np.clip(np.argmax(weights > 0, axis=1), 0, in_size - taps)
  indices = first[:, None] + np.arange(taps)[None, :]
  return indices, np.take_along_axis(weights, indices, 1).astype(np.float32)


def _resize_axis(image: np.ndarray, size: int, axis: int) -> np.ndarray:
  """Resizes one spatial axis (0 or 1) of [H, W, C] to `size`."""
  indices, weights = _resize_taps(image.shape[axis], size)
  gathered = np.take(image, indices, axis=axis)  # Axis becomes [size, taps].
  shape = [1] * gathered.ndim
  shape[axis:axis + 2] = weights.shape
  return (gathered * weights.reshape(shape)).sum(axis=axis + 1)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
  """[H, W, C] -> [size, size, C], antialiased bilinear; identity if equal."""
  if image.shape[:2] == (size, size):
    return image
  return _resize_axis(_resize_axis(image, size, 0), size, 1)


def evaluation_view(image: np.ndarray, output_size: int) -> np.ndarray:
  """The unaugmented view, as `augment.evaluation_view`."""
  return resize_square(_check_image(image, 'evaluation_view'), output_size)


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
  """Indices outside [0, size) mirrored about the edges (d c b a | a b c d)."""
  period = np.mod(index, 2 * size)
  return np.where(period < size, period, 2 * size - 1 - period)


def rotate(image: np.ndarray, angle_radians: float) -> np.ndarray:
  """Counter-clockwise as displayed about the centre; bilinear, reflected.

  Output (y, x) samples the input at centre + R(angle) ((y, x) - centre), as
  augment.rotate; the four neighbours of a sample outside the image are
  mirrored in (TensorFlow's REFLECT fill, scipy.ndimage's 'reflect').
  """
  h, w = image.shape[:2]
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  cos, sin = math.cos(angle_radians), math.sin(angle_radians)
  dy, dx = np.ogrid[:h, :w]
  dy, dx = dy - cy, dx - cx
  sy, sx = cy + cos * dy + sin * dx, cx + cos * dx - sin * dy
  y0, x0 = np.floor(sy), np.floor(sx)
  wy = (sy - y0)[..., None].astype(np.float32)
  wx = (sx - x0)[..., None].astype(np.float32)
  y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
  ya, yb = _reflect(y0, h), _reflect(y0 + 1, h)
  xa, xb = _reflect(x0, w), _reflect(x0 + 1, w)
  top = image[ya, xa] * (1 - wx) + image[ya, xb] * wx
  bottom = image[yb, xa] * (1 - wx) + image[yb, xb] * wx
  return top * (1 - wy) + bottom * wy


def blur(image: np.ndarray, sigma: float, radius: int) -> np.ndarray:
  """Gaussian blur per channel on [-radius, radius], mirrored borders."""
  return scipy.ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0.0),
                                       mode='reflect',
                                       radius=(radius, radius, 0))


def grayscale(image: np.ndarray) -> np.ndarray:
  """Every channel replaced by the channel mean; works for any C."""
  return np.broadcast_to(image.mean(axis=-1, keepdims=True), image.shape)


def adjust_hue(image: np.ndarray, delta: float) -> np.ndarray:
  """Rotates hue by `delta` of the colour circle (RGB in [0, 1], clipped)."""
  import matplotlib.colors  # Only for hue jitter.
  hsv = matplotlib.colors.rgb_to_hsv(np.clip(image, 0.0, 1.0))
  hsv[..., 0] = (hsv[..., 0] + delta) % 1.0
  return matplotlib.colors.hsv_to_rgb(hsv).astype(np.float32)


def _color_jitter(image: np.ndarray, u: np.ndarray,
                  c: ml_collections.ConfigDict) -> np.ndarray:
  """Brightness, contrast, saturation and hue, each with its probability."""
  b = u[augment.SALT_BRIGHTNESS]
  if b[0] < c.brightness_probability:
    max_delta = c.brightness_max_delta
    delta = augment.lerp(b[1], (-max_delta, max_delta))
    factor = augment.lerp(b[2], c.brightness_factor_range)
    image = augment.brightness(image, delta, factor,
                               augment.multiplies_brightness(c))
  k = u[augment.SALT_CONTRAST]
  if k[0] < c.contrast_probability:
    mean = image.mean(axis=(0, 1), keepdims=True)
    factor = augment.lerp(k[1], c.contrast_factor_range)
    image = mean + factor * (image - mean)
  s = u[augment.SALT_SATURATION]
  if s[0] < c.saturation_probability:
    gray = grayscale(image)
    factor = augment.lerp(s[1], c.saturation_factor_range)
    image = gray + factor * (image - gray)
  h = u[augment.SALT_HUE]
  if h[0] < c.hue_probability:
    image = adjust_hue(image,
                       augment.lerp(h[1], (-c.hue_max_delta, c.hue_max_delta)))
  return image


def _geometry(image: np.ndarray, u: np.ndarray, c: ml_collections.ConfigDict,
              output_size: int) -> np.ndarray:
  """Rotation, the random resized crop (always), then the flips."""
  r = u[augment.SALT_ROTATION]
  if r[0] < c.rotation_probability:
    degrees = augment.lerp(r[1], c.rotation_degrees_range)
    image = rotate(image, float(degrees) * math.pi / 180.0)
  h, w = image.shape[:2]
  oy, ox, ch, cw = (int(v) for v in augment.crop_box(
      u[augment.SALT_CROP], h, w, c.crop_scale_range,
      c.crop_aspect_ratio_range, NUMPY_OPS))
  image = resize_square(image[oy:oy + ch, ox:ox + cw], output_size)
  if u[augment.SALT_HORIZONTAL_FLIP, 0] < c.horizontal_flip_probability:
    image = image[:, ::-1]
  if u[augment.SALT_VERTICAL_FLIP, 0] < c.vertical_flip_probability:
    image = image[::-1]
  return image


def augment_image(image: np.ndarray, seed: Sequence[int],
                  config: ml_collections.ConfigDict,
                  output_size: int) -> np.ndarray:
  """One random view: float32 [H, W, C] in [0, 1] -> [output_size]*2 + [C].

  The order and every probability and range as `augment.augment`; `seed` is
  a sequence of non-negative integers and the view a pure function of
  (image, seed, config).
  """
  image = _check_image(image, 'augment')
  c = config
  augment.check_hue_bands(c, image.shape[-1])
  u = _draws(seed)
  image = _geometry(image, u, c, output_size)
  if u[augment.SALT_COLOR_JITTER, 0] < c.color_jitter_probability:
    image = _color_jitter(image, u, c)
  if u[augment.SALT_GRAYSCALE, 0] < c.grayscale_probability:
    image = grayscale(image)
  b = u[augment.SALT_BLUR]
  if b[0] < c.blur_probability:
    image = blur(image, float(augment.lerp(b[1], c.blur_sigma_range)),
                 augment.blur_radius(c.blur_sigma_range, output_size))
  n = u[augment.SALT_NOISE]
  if n[0] < c.noise_probability:
    std = augment.lerp(n[1], c.noise_std_range)
    noise = np.random.default_rng([*map(int, seed), augment.SALT_NOISE])
    image = image + std * noise.standard_normal(image.shape, np.float32)
  return np.clip(image, 0.0, 1.0).astype(np.float32)

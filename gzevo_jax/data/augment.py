"""Galaxy image augmentations for the two BYOL views, in stateless TensorFlow.

Galaxies have no preferred orientation and sit at the centre of their cutout,
so a view is: a rotation by any angle, flips, a mild random resized crop,
brightness and contrast jitter, optional grayscale, Gaussian blur and Gaussian
noise, clipped to [0, 1].

Every random choice is drawn with `tf.random.stateless_*` from an explicit
seed: the same seed gives bit-identical views (also inside a parallel
`tf.data` map) and each augmentation folds its own constant into the seed, so
switching one off leaves the others' draws unchanged. Images are float32
[H, W, C] in [0, 1] with any static channel count C >= 1.

TensorFlow is imported inside the functions that need it, so config code can
import `default_augment_config` and `validate_augment_config` without it.

`augment_np.py` draws the same views in numpy for the Grain pipeline. The
rules both share live here, once: the config and its validation, the
random-resized-crop box (`crop_box`, written against `ArrayOps` so each
backend runs it with its own operations), the brightness formula, the blur
kernel's reach and the hue band check. The image operations themselves
(rotation, resize, blur, contrast, saturation, hue) are written once per
backend: here as TensorFlow graph ops on tensors, there as numpy on arrays.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING, Any, Callable, Sequence, Tuple

import ml_collections

if TYPE_CHECKING:
  import tensorflow as tf

# The random-number algorithm of every stateless op, fixed so views do not
# depend on what 'auto_select' picks on a given device.
_ALG = 'philox'

# Constants folded into the view seed, one per augmentation. Never renumber:
# that would change every view drawn from a given seed.
SALT_ROTATION = 1
SALT_HORIZONTAL_FLIP = 2
SALT_VERTICAL_FLIP = 3
SALT_CROP = 4
SALT_BRIGHTNESS = 5
SALT_CONTRAST = 6
SALT_GRAYSCALE = 7
SALT_BLUR = 8
SALT_NOISE = 9
SALT_COLOR_JITTER = 10
SALT_SATURATION = 11
SALT_HUE = 12
# One more than the largest salt: rows of per-salt draws (augment_np.py).
SALT_ROWS = 13

# Blur kernels reach out to this many sigmas (scipy.ndimage's default).
_BLUR_TRUNCATE = 4.0

_PROBABILITY_FIELDS = (
    'rotation_probability',
    'horizontal_flip_probability',
    'vertical_flip_probability',
    'color_jitter_probability',
    'brightness_probability',
    'contrast_probability',
    'saturation_probability',
    'hue_probability',
    'grayscale_probability',
    'blur_probability',
    'noise_probability',
)


def default_augment_config() -> ml_collections.ConfigDict:
  """Every probability and range of a view; this becomes config.data.augment."""
  c = ml_collections.ConfigDict()
  # Rotation about the image centre, counter-clockwise as displayed (row 0 at
  # the top), bilinear, with the corners filled by reflection. Galaxies have
  # no preferred orientation, so any angle.
  c.rotation_probability = 1.0
  c.rotation_degrees_range = (0.0, 360.0)  # Uniform in [min, max).
  c.horizontal_flip_probability = 0.5  # Mirror left-right.
  c.vertical_flip_probability = 0.5  # Mirror top-bottom.
  # Random resized crop, always applied. Galaxies are centred, so crops are
  # mild: the fraction of the image area kept is uniform in this range.
  c.crop_scale_range = (0.7, 1.0)
  # Crop width / height relative to the image's own, log-uniform in this
  # range; pulled towards 1 (keeping the area) where the box would not fit.
  c.crop_aspect_ratio_range = (0.9, 1.1)
  # Colour jitter: brightness, contrast, saturation and hue, in that order,
  # each with its own probability, all skipped together with probability
  # 1 - color_jitter_probability (torchvision's RandomApply([ColorJitter])).
  c.color_jitter_probability = 1.0
  c.brightness_probability = 0.8
  c.brightness_max_delta = 0.1  # Adds a delta uniform in [-max, max].
  # Then multiplies by a factor uniform here (torchvision's brightness).
  c.brightness_factor_range = (1.0, 1.0)
  c.contrast_probability = 0.8
  # Scales each channel's deviation from its mean by a factor uniform here.
  c.contrast_factor_range = (0.8, 1.2)
  c.saturation_probability = 0.0
  # Blends with the grayscale image (channel mean): 0 gray, 1 unchanged.
  c.saturation_factor_range = (1.0, 1.0)
  c.hue_probability = 0.0
  # Rotates hue by a fraction of the colour circle uniform in [-max, max]
  # (3-band images only).
  c.hue_max_delta = 0.0
  # Replaces every channel by the channel mean. Off: colour is morphology.
  c.grayscale_probability = 0.0
  c.blur_probability = 0.2
  c.blur_sigma_range = (0.1, 1.5)  # Gaussian sigma in output pixels.
  c.noise_probability = 0.2
  c.noise_std_range = (0.0, 0.03)  # Std of additive Gaussian noise.
  return c


def paper_augment_config() -> ml_collections.ConfigDict:
  """The hybrid paper's galaxy views (inigoval/byol, `_gz2_view`).

  RandomRotation(180), RandomResizedCrop(scale 0.3-0.85, ratio 0.8-1.2),
  both flips, RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
  RandomGrayscale(0.3), no blur, no noise. README ("The paper's recipe")
  lists what still differs from torchvision.
  """
  c = default_augment_config()
  c.rotation_probability = 1.0
  c.rotation_degrees_range = (-180.0, 180.0)
  c.horizontal_flip_probability = 0.5
  c.vertical_flip_probability = 0.5
  c.crop_scale_range = (0.3, 0.85)
  c.crop_aspect_ratio_range = (0.8, 1.2)
  c.color_jitter_probability = 0.8
  c.brightness_probability = 1.0
  c.brightness_max_delta = 0.0
  c.brightness_factor_range = (0.6, 1.4)
  c.contrast_probability = 1.0
  c.contrast_factor_range = (0.6, 1.4)
  c.saturation_probability = 1.0
  c.saturation_factor_range = (0.6, 1.4)
  c.hue_probability = 1.0
  c.hue_max_delta = 0.1
  c.grayscale_probability = 0.3
  c.blur_probability = 0.0
  c.noise_probability = 0.0
  return c


def _range_ok(value, check: Callable[[float, float], bool]) -> bool:
  """Whether value is a (min, max) pair of finite reals satisfying check."""
  if not isinstance(value, (tuple, list)) or len(value) != 2:
    return False
  if not all(
      isinstance(v, numbers.Real) and not isinstance(v, bool) and
      math.isfinite(v) for v in value):
    return False
  return check(float(value[0]), float(value[1]))


def validate_augment_config(config: ml_collections.ConfigDict,
                            prefix: str = 'config.data.augment') -> None:
  """Raises ValueError naming the first bad field of an augment config."""
  expected = set(default_augment_config().keys())
  given = set(config.keys())
  unknown, missing = sorted(given - expected), sorted(expected - given)
  if unknown:
    raise ValueError(f'{prefix}.{unknown[0]} is not an augmentation field; '
                     f'valid fields: {", ".join(sorted(expected))}')
  if missing:
    raise ValueError(f'{prefix}.{missing[0]} is missing')
  for name in _PROBABILITY_FIELDS:
    p = config[name]
    if (not isinstance(p, numbers.Real) or isinstance(p, bool) or
        not 0.0 <= p <= 1.0):
      raise ValueError(f'{prefix}.{name}={p!r} must be a probability in '
                       '[0, 1]')
  delta = config.brightness_max_delta
  if (not isinstance(delta, numbers.Real) or isinstance(delta, bool) or
      not 0.0 <= delta <= 1.0):
    raise ValueError(f'{prefix}.brightness_max_delta={delta!r} must lie in '
                     '[0, 1]')
  hue = config.hue_max_delta
  if (not isinstance(hue, numbers.Real) or isinstance(hue, bool) or
      not 0.0 <= hue <= 0.5):
    raise ValueError(f'{prefix}.hue_max_delta={hue!r} must lie in [0, 0.5]')
  ranges = (
      ('rotation_degrees_range', lambda lo, hi: lo <= hi, 'min <= max'),
      ('crop_scale_range', lambda lo, hi: 0 < lo <= hi <= 1,
       '0 < min <= max <= 1'),
      ('crop_aspect_ratio_range', lambda lo, hi: 0 < lo <= hi,
       '0 < min <= max'),
      ('contrast_factor_range', lambda lo, hi: 0 <= lo <= hi,
       '0 <= min <= max'),
      ('brightness_factor_range', lambda lo, hi: 0 <= lo <= hi,
       '0 <= min <= max'),
      ('saturation_factor_range', lambda lo, hi: 0 <= lo <= hi,
       '0 <= min <= max'),
      ('blur_sigma_range', lambda lo, hi: 0 < lo <= hi, '0 < min <= max'),
      ('noise_std_range', lambda lo, hi: 0 <= lo <= hi, '0 <= min <= max'),
  )
  for name, check, rule in ranges:
    value = config[name]
    if not _range_ok(value, check):
      shown = tuple(value) if isinstance(value, list) else value
      raise ValueError(f'{prefix}.{name}={shown!r} must be a pair of finite '
                       f'numbers (min, max) with {rule}')


# ---------------------------------------------------------------------------
# Random draws.


def _sub_seed(seed: tf.Tensor, salt: int) -> tf.Tensor:
  """The seed of one augmentation: independent of every other salt's."""
  import tensorflow as tf
  return tf.random.experimental.stateless_fold_in(seed, salt, alg=_ALG)


def _uniforms(seed: tf.Tensor, n: int) -> tf.Tensor:
  """n float32 uniforms in [0, 1)."""
  import tensorflow as tf
  return tf.random.stateless_uniform([n], seed, alg=_ALG)


def lerp(u: Any, value_range: Tuple[float, float]) -> Any:
  """Maps u in [0, 1) uniformly onto [min, max) (a tensor or an array)."""
  lo, hi = float(value_range[0]), float(value_range[1])
  return lo + (hi - lo) * u


def _maybe(probability: float, u: tf.Tensor,
           fn: Callable[[tf.Tensor], tf.Tensor], image: tf.Tensor) -> tf.Tensor:
  """fn(image) if u < probability else image; no branch when p is 0 or 1."""
  import tensorflow as tf
  if probability <= 0.0:
    return image
  if probability >= 1.0:
    return fn(image)
  return tf.cond(u < probability, lambda: fn(image), lambda: image)


@dataclasses.dataclass(frozen=True)
class ArrayOps:
  """The array operations the shared sampling rules need, per backend."""
  exp: Callable[[Any], Any]
  sqrt: Callable[[Any], Any]
  minimum: Callable[[Any, Any], Any]
  round: Callable[[Any], Any]  # Half to even, as tf.round and np.round.
  floor: Callable[[Any], Any]
  clip: Callable[[Any, Any, Any], Any]
  to_int: Callable[[Any], Any]  # To int32.
  to_float: Callable[[Any], Any]  # To float32.


def _tf_ops() -> ArrayOps:
  import tensorflow as tf
  return ArrayOps(exp=tf.exp, sqrt=tf.sqrt, minimum=tf.minimum,
                  round=tf.round, floor=tf.floor, clip=tf.clip_by_value,
                  to_int=lambda x: tf.cast(x, tf.int32),
                  to_float=lambda x: tf.cast(x, tf.float32))


def crop_box(u: Sequence[Any], height: Any, width: Any,
             scale_range: Tuple[float, float],
             aspect_ratio_range: Tuple[float, float], ops: ArrayOps
             ) -> Tuple[Any, Any, Any, Any]:
  """The random resized crop's box from 4 uniforms in [0, 1), any backend.

  The kept area fraction is uniform in scale_range (u[0]) and the
  width/height ratio, relative to the image's, log-uniform in
  aspect_ratio_range (u[1]). Where that box would not fit, the ratio is
  pulled towards 1 keeping the area, so the area fraction stays in range up
  to rounding to whole pixels. u[2] and u[3] place it.

  Returns:
    int32 (offset_y, offset_x, crop_height, crop_width) with
    0 <= offset_y <= height - crop_height and likewise for x.
  """
  scale = lerp(u[0], scale_range)
  log_lo, log_hi = (math.log(aspect_ratio_range[0]),
                    math.log(aspect_ratio_range[1]))
  ratio = ops.exp(lerp(u[1], (log_lo, log_hi)))
  h_frac = ops.minimum(1.0, ops.sqrt(scale / ratio))
  w_frac = ops.minimum(1.0, scale / h_frac)
  h_frac = scale / w_frac
  height, width = ops.to_int(height), ops.to_int(width)
  crop_h = ops.clip(ops.to_int(ops.round(h_frac * ops.to_float(height))), 1,
                    height)
  crop_w = ops.clip(ops.to_int(ops.round(w_frac * ops.to_float(width))), 1,
                    width)

  def offset(v, room):
    return ops.clip(ops.to_int(ops.floor(v * ops.to_float(room + 1))), 0,
                    room)

  return (offset(u[2], height - crop_h), offset(u[3], width - crop_w), crop_h,
          crop_w)


def sample_crop_box(
    seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor,
    scale_range: Tuple[float, float], aspect_ratio_range: Tuple[float, float]
) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
  """A random crop box inside a height x width image (see `crop_box`)."""
  return crop_box(_uniforms(seed, 4), height, width, scale_range,
                  aspect_ratio_range, _tf_ops())


def brightness(image: Any, delta: Any, factor: Any, multiply: bool) -> Any:
  """Adds `delta`, then multiplies by `factor` when the range asks for it."""
  return (image + delta) * factor if multiply else image + delta


def multiplies_brightness(c: ml_collections.ConfigDict) -> bool:
  """Whether c.brightness_factor_range is more than the identity (1, 1)."""
  return tuple(c.brightness_factor_range) != (1.0, 1.0)


def blur_radius(sigma_range: Tuple[float, float], output_size: int) -> int:
  """The blur kernel's half-width: enough for the largest sigma.

  Capped at the output size (TensorFlow's SYMMETRIC padding cannot exceed
  the image), so tiny outputs truncate the kernel.
  """
  return min(max(1, math.ceil(_BLUR_TRUNCATE * sigma_range[1])), output_size)


def check_hue_bands(c: ml_collections.ConfigDict, channels: int) -> None:
  """Hue rotation needs RGB: a ValueError naming the field otherwise."""
  if c.hue_probability > 0 and channels != 3:
    raise ValueError(f'config.data.augment.hue_probability='
                     f'{c.hue_probability} needs 3-band images, got '
                     f'{channels} bands; set it to 0')


# ---------------------------------------------------------------------------
# Deterministic image operations.


def _resize_square(image: tf.Tensor, size: int) -> tf.Tensor:
  """Antialiased bilinear resize to [size, size, C]; exact identity if equal."""
  import tensorflow as tf

  def resize():
    return tf.image.resize(image, [size, size],
                           method='bilinear',
                           antialias=True)

  h, w = image.shape[0], image.shape[1]
  if h is not None and w is not None:
    out = image if (h, w) == (size, size) else resize()
  else:
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
    out = tf.cond(same, lambda: image, resize)
  return tf.ensure_shape(out, [size, size, image.shape[-1]])


def rotate(image: tf.Tensor, angle_radians: tf.Tensor) -> tf.Tensor:
  """Rotates counter-clockwise as displayed about the centre; reflect fill."""
  import tensorflow as tf
  shape = tf.shape(image)
  cy = (tf.cast(shape[0], tf.float32) - 1.0) / 2.0
  cx = (tf.cast(shape[1], tf.float32) - 1.0) / 2.0
  cos, sin = tf.cos(angle_radians), tf.sin(angle_radians)
  # Output pixel (x, y) samples the input at centre + R(angle) (x, y) - centre,
  # with y pointing down the rows.
  transform = tf.stack([
      cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy,
      0.0, 0.0
  ])
  out = tf.raw_ops.ImageProjectiveTransformV3(images=image[tf.newaxis],
                                              transforms=transform[tf.newaxis],
                                              output_shape=shape[:2],
                                              fill_value=0.0,
                                              interpolation='BILINEAR',
                                              fill_mode='REFLECT')[0]
  return tf.ensure_shape(out, image.shape)


def gaussian_kernel(sigma: tf.Tensor, radius: int) -> tf.Tensor:
  """Normalised 1-D Gaussian of the given sigma on [-radius, radius]."""
  import tensorflow as tf
  x = tf.range(-radius, radius + 1, dtype=tf.float32)
  k = tf.exp(-0.5 * tf.square(x / sigma))
  return k / tf.reduce_sum(k)


def blur(image: tf.Tensor, sigma: tf.Tensor, radius: int) -> tf.Tensor:
  """Separable Gaussian blur per channel, borders mirrored like scipy's."""
  import tensorflow as tf
  channels = image.shape[-1]
  kernel = gaussian_kernel(sigma, radius)
  kx = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
  ky = tf.reshape(kx, [-1, 1, channels, 1])
  x = tf.pad(image[tf.newaxis],
             [[0, 0], [radius, radius], [radius, radius], [0, 0]],
             mode='SYMMETRIC')
  x = tf.nn.depthwise_conv2d(x, kx, strides=[1, 1, 1, 1], padding='VALID')
  x = tf.nn.depthwise_conv2d(x, ky, strides=[1, 1, 1, 1], padding='VALID')
  return tf.ensure_shape(x[0], image.shape)


def _adjust_contrast(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """Scales each channel's deviation from its spatial mean by factor."""
  import tensorflow as tf
  mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
  return mean + factor * (image - mean)


def _adjust_saturation(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """Blends with the grayscale image: factor 0 is gray, 1 is unchanged."""
  gray = _grayscale(image)
  return gray + factor * (image - gray)


def _grayscale(image: tf.Tensor) -> tf.Tensor:
  """Every channel replaced by the channel mean; works for any C."""
  import tensorflow as tf
  return tf.broadcast_to(tf.reduce_mean(image, axis=-1, keepdims=True),
                         tf.shape(image))


def _check_image(image, name: str) -> tf.Tensor:
  """image as a float32 rank-3 tensor with a static channel count."""
  import tensorflow as tf
  image = tf.convert_to_tensor(image)
  if not image.dtype.is_floating:
    raise TypeError(f'{name} expects a float image in [0, 1], got '
                    f'{image.dtype.name}')
  if image.shape.rank != 3 or image.shape[-1] is None:
    raise ValueError(f'{name} expects [H, W, C] with C known, got shape '
                     f'{image.shape}')
  return tf.cast(image, tf.float32)


# ---------------------------------------------------------------------------
# Public views.


def evaluation_view(image: tf.Tensor, output_size: int) -> tf.Tensor:
  """The unaugmented view: [H, W, C] -> [output_size, output_size, C].

  Antialiased bilinear resize (area-like when shrinking), skipped when the
  image already has the output size, so the view matches `augment` with every
  augmentation off.
  """
  image = _check_image(image, 'evaluation_view')
  return _resize_square(image, output_size)


def _color_jitter(image: tf.Tensor, seed: tf.Tensor,
                  c: ml_collections.ConfigDict) -> tf.Tensor:
  """Brightness, contrast, saturation and hue, each with its probability."""
  import tensorflow as tf
  s = _sub_seed(seed, SALT_BRIGHTNESS)
  u = _uniforms(s, 2)
  delta = lerp(u[1], (-c.brightness_max_delta, c.brightness_max_delta))
  scale = lerp(_uniforms(_sub_seed(s, 1), 1)[0], c.brightness_factor_range)
  multiply = multiplies_brightness(c)
  image = _maybe(c.brightness_probability, u[0],
                 lambda x: brightness(x, delta, scale, multiply), image)

  u = _uniforms(_sub_seed(seed, SALT_CONTRAST), 2)
  factor = lerp(u[1], c.contrast_factor_range)
  image = _maybe(c.contrast_probability, u[0],
                 lambda x: _adjust_contrast(x, factor), image)

  u = _uniforms(_sub_seed(seed, SALT_SATURATION), 2)
  factor = lerp(u[1], c.saturation_factor_range)
  image = _maybe(c.saturation_probability, u[0],
                 lambda x: _adjust_saturation(x, factor), image)

  check_hue_bands(c, image.shape[-1])
  u = _uniforms(_sub_seed(seed, SALT_HUE), 2)
  hue = lerp(u[1], (-c.hue_max_delta, c.hue_max_delta))
  # adjust_hue works on [0, 1] RGB; clip first so out-of-range values from
  # brightness or contrast do not wrap around the colour circle.
  return _maybe(c.hue_probability, u[0],
                lambda x: tf.image.adjust_hue(tf.clip_by_value(x, 0.0, 1.0),
                                              hue), image)


def augment(image: tf.Tensor, seed: tf.Tensor,
            config: ml_collections.ConfigDict, output_size: int) -> tf.Tensor:
  """One random view: float32 [H, W, C] in [0, 1] -> [output_size]*2 + [C].

  Order: rotate, crop and resize, flip, colour jitter (brightness, contrast,
  saturation, hue), grayscale, blur, noise, clip to [0, 1]. `seed` is an
  int32/int64 tensor of shape [2]; the view is a pure function of (image,
  seed, config). Works inside `tf.data.Dataset.map`; the output shape is
  static.
  """
  import tensorflow as tf
  image = _check_image(image, 'augment')
  channels = image.shape[-1]
  seed = tf.ensure_shape(tf.cast(seed, tf.int64), [2])
  c = config
  image = _random_rotation(image, seed, c)
  image = _random_crop(image, seed, c, output_size)
  image = _random_flips(image, seed, c)
  u = _uniforms(_sub_seed(seed, SALT_COLOR_JITTER), 1)
  image = _maybe(c.color_jitter_probability, u[0],
                 lambda x: _color_jitter(x, seed, c), image)
  u = _uniforms(_sub_seed(seed, SALT_GRAYSCALE), 1)
  image = _maybe(c.grayscale_probability, u[0], _grayscale, image)
  image = _random_blur(image, seed, c, output_size)
  image = _random_noise(image, seed, c)
  image = tf.clip_by_value(image, 0.0, 1.0)
  return tf.ensure_shape(image, [output_size, output_size, channels])


def _random_rotation(image: tf.Tensor, seed: tf.Tensor,
                     c: ml_collections.ConfigDict) -> tf.Tensor:
  """Rotation by an angle in c.rotation_degrees_range, with its probability."""
  u = _uniforms(_sub_seed(seed, SALT_ROTATION), 2)
  angle = lerp(u[1], c.rotation_degrees_range) * (math.pi / 180.0)
  return _maybe(c.rotation_probability, u[0], lambda x: rotate(x, angle),
                image)


def _random_crop(image: tf.Tensor, seed: tf.Tensor,
                 c: ml_collections.ConfigDict, output_size: int) -> tf.Tensor:
  """A random resized crop (always applied), resized to the output size."""
  import tensorflow as tf
  shape = tf.shape(image)
  oy, ox, ch, cw = sample_crop_box(_sub_seed(seed, SALT_CROP), shape[0],
                                   shape[1], c.crop_scale_range,
                                   c.crop_aspect_ratio_range)
  image = tf.slice(image, tf.stack([oy, ox, 0]),
                   tf.stack([ch, cw, image.shape[-1]]))
  return _resize_square(image, output_size)


def _random_flips(image: tf.Tensor, seed: tf.Tensor,
                  c: ml_collections.ConfigDict) -> tf.Tensor:
  """Left-right, then top-bottom mirroring, each with its probability."""
  import tensorflow as tf
  u = _uniforms(_sub_seed(seed, SALT_HORIZONTAL_FLIP), 1)
  image = _maybe(c.horizontal_flip_probability, u[0],
                 lambda x: tf.reverse(x, axis=[1]), image)
  u = _uniforms(_sub_seed(seed, SALT_VERTICAL_FLIP), 1)
  return _maybe(c.vertical_flip_probability, u[0],
                lambda x: tf.reverse(x, axis=[0]), image)


def _random_blur(image: tf.Tensor, seed: tf.Tensor,
                 c: ml_collections.ConfigDict, output_size: int) -> tf.Tensor:
  """Gaussian blur of a sigma in c.blur_sigma_range, with its probability."""
  u = _uniforms(_sub_seed(seed, SALT_BLUR), 2)
  sigma = lerp(u[1], c.blur_sigma_range)
  radius = blur_radius(c.blur_sigma_range, output_size)  # Static support.
  return _maybe(c.blur_probability, u[0], lambda x: blur(x, sigma, radius),
                image)


def _random_noise(image: tf.Tensor, seed: tf.Tensor,
                  c: ml_collections.ConfigDict) -> tf.Tensor:
  """Gaussian noise of a std in c.noise_std_range, with its probability."""
  import tensorflow as tf
  s = _sub_seed(seed, SALT_NOISE)
  u = _uniforms(s, 2)
  std = lerp(u[1], c.noise_std_range)
  noise_seed = _sub_seed(s, 1)
  return _maybe(
      c.noise_probability, u[0], lambda x: x + std * tf.random.stateless_normal(
          tf.shape(x), noise_seed, alg=_ALG), image)

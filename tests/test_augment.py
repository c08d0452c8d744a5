"""Galaxy augmentations: shapes, determinism, each op against a reference.

Most cases run against both implementations of the same config: TensorFlow
(`augment.py`, the tf.data pipeline's) and numpy (`augment_np.py`, Grain's).
"""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from gzevo_jax.data import augment as aug
from gzevo_jax.data import augment_np


class _TF:
  """augment.py behind the calls the tests make."""

  @staticmethod
  def view(image, seed, config, output_size):
    return _view(image, seed, config, output_size)

  @staticmethod
  def views(image, seeds, config, output_size):
    return _views(image, seeds, config, output_size)

  @staticmethod
  def evaluation_view(image, output_size):
    return aug.evaluation_view(tf.constant(image), output_size).numpy()

  @staticmethod
  def crop_boxes(seeds, height, width, scale_range, ratio_range):
    box = tf.function(lambda s: aug.sample_crop_box(
        s, height, width, scale_range, ratio_range))
    return [tuple(int(v) for v in box(tf.constant(s, tf.int64)))
            for s in seeds]


class _Numpy:
  """augment_np.py behind the same calls."""

  @staticmethod
  def view(image, seed, config, output_size):
    return augment_np.augment_image(image, seed, config, output_size)

  @staticmethod
  def views(image, seeds, config, output_size):
    return np.stack([augment_np.augment_image(image, [s, 7], config,
                                              output_size) for s in seeds])

  @staticmethod
  def evaluation_view(image, output_size):
    return augment_np.evaluation_view(image, output_size)

  @staticmethod
  def crop_boxes(seeds, height, width, scale_range, ratio_range):
    return [augment_np.sample_crop_box(s, height, width, scale_range,
                                       ratio_range) for s in seeds]


@pytest.fixture(params=[_TF, _Numpy], ids=['tf', 'numpy'])
def impl(request):
  return request.param


def _all_off(**overrides):
  """A config with every augmentation off and a full-image crop."""
  c = aug.default_augment_config()
  for name in aug._PROBABILITY_FIELDS:
    c[name] = 0.0
  c.color_jitter_probability = 1.0  # A gate: changes nothing by itself.
  c.crop_scale_range = (1.0, 1.0)
  c.crop_aspect_ratio_range = (1.0, 1.0)
  for key, value in overrides.items():
    c[key] = value
  aug.validate_augment_config(c)
  return c


def _image(size=48, channels=3, seed=0, lo=0.0, hi=1.0):
  rng = np.random.default_rng(seed)
  return rng.uniform(lo, hi, (size, size, channels)).astype(np.float32)


def _view(image, seed, config, output_size):
  return aug.augment(tf.constant(image), tf.constant(seed, tf.int32), config,
                     output_size).numpy()


def _views(image, seeds, config, output_size):
  """Views of one image for many seeds, traced once."""
  fn = tf.function(lambda s: aug.augment(image, s, config, output_size))
  return np.stack([fn(tf.constant([s, 7], tf.int32)).numpy() for s in seeds])


def test_default_config_validates_and_sets_galaxy_defaults():
  c = aug.default_augment_config()
  aug.validate_augment_config(c)
  assert c.rotation_probability == 1.0
  assert tuple(c.rotation_degrees_range) == (0.0, 360.0)
  assert c.grayscale_probability == 0.0


@pytest.mark.parametrize('channels', [1, 3, 5])
def test_shape_dtype_and_range(impl, channels):
  image = _image(48, channels)
  image[0, 0] = 1.0  # Brightness can push it over 1; clipping must hold it.
  config = aug.default_augment_config()
  config.noise_probability = 1.0
  config.noise_std_range = (0.2, 0.2)
  out = impl.view(image, [3, 4], config, 32)
  assert out.shape == (32, 32, channels)
  assert out.dtype == np.float32
  assert out.min() >= 0.0 and out.max() <= 1.0
  assert out.min() == 0.0  # Strong noise reaches the clip.
  ev = impl.evaluation_view(image, 32)
  assert ev.shape == (32, 32, channels) and ev.dtype == np.float32


def test_same_seed_is_identical_and_different_seeds_differ(impl):
  image = _image()
  config = aug.default_augment_config()
  a = impl.view(image, [1, 2], config, 32)
  np.testing.assert_array_equal(a, impl.view(image, [1, 2], config, 32))
  for other in ([2, 1], [1, 3], [0, 2]):
    assert not np.allclose(a, impl.view(image, other, config, 32)), other


def test_int64_seeds_give_the_int32_view():
  image = _image()
  config = aug.default_augment_config()
  np.testing.assert_array_equal(
      _view(image, [1, 2], config, 32),
      aug.augment(image, tf.constant([1, 2], tf.int64), config, 32).numpy())


def test_deterministic_inside_parallel_dataset_map():
  images = np.stack([_image(48, 3, seed=i) for i in range(6)])
  config = aug.default_augment_config()
  config.blur_probability = 0.5
  config.noise_probability = 0.5

  def make():
    ds = tf.data.Dataset.from_tensor_slices((images, tf.range(6,
                                                              dtype=tf.int64)))
    ds = ds.map(lambda im, i: aug.augment(im, tf.stack([i, 11]), config, 32),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds

  assert make().element_spec.shape == (32, 32, 3)
  first = np.stack(list(make().as_numpy_iterator()))
  second = np.stack(list(make().as_numpy_iterator()))
  np.testing.assert_array_equal(first, second)
  eager = np.stack(
      [_view(images[i], [i, 11], config, 32) for i in range(len(images))])
  np.testing.assert_allclose(first, eager, atol=1e-6)


def test_everything_off_equals_evaluation_view(impl):
  config = _all_off()
  big = _image(48)
  np.testing.assert_array_equal(impl.view(big, [5, 6], config, 32),
                                impl.evaluation_view(big, 32))
  same = _image(32)
  np.testing.assert_array_equal(impl.view(same, [5, 6], config, 32), same)
  np.testing.assert_array_equal(impl.evaluation_view(same, 32), same)


def test_evaluation_view_is_antialiased(impl):
  # A one-pixel checkerboard averages to grey when shrunk 3x with
  # antialiasing; plain bilinear would sample pixel centres and keep it.
  checker = (np.indices((96, 96)).sum(0) % 2).astype(np.float32)[..., None]
  out = impl.evaluation_view(checker, 32)
  assert np.abs(out[4:-4, 4:-4] - 0.5).max() < 0.05


def test_rotation_by_90_degrees_matches_rot90(impl):
  image = _image(32)
  config = _all_off(rotation_probability=1.0,
                    rotation_degrees_range=(90.0, 90.0))
  out = impl.view(image, [0, 0], config, 32)
  expected = np.rot90(image, k=1, axes=(0, 1))
  np.testing.assert_allclose(out[1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-5)


def test_rotation_fills_corners_and_keeps_a_round_galaxy(impl):
  yy, xx = np.mgrid[:33, :33] - 16.0
  blob = np.exp(-(xx**2 + yy**2) / (2 * 4.0**2)).astype(np.float32)
  blob = np.repeat(blob[..., None], 3, axis=-1) * 0.8 + 0.1
  config = _all_off(rotation_probability=1.0)
  for seed in range(3):
    out = impl.view(blob, [seed, 1], config, 33)
    # Reflect fill: corners stay sky (~0.1), never black.
    assert out.min() > 0.09
    np.testing.assert_allclose(out[8:-8, 8:-8], blob[8:-8, 8:-8], atol=0.02)
  # A non-trivial angle does move an asymmetric image.
  image = _image(33)
  assert not np.allclose(impl.view(image, [0, 1], config, 33), image,
                         atol=0.05)


@pytest.mark.parametrize('field,axis', [('horizontal_flip_probability', 1),
                                        ('vertical_flip_probability', 0)])
def test_flips_match_np_flip(impl, field, axis):
  image = _image(32)
  out = impl.view(image, [0, 0], _all_off(**{field: 1.0}), 32)
  np.testing.assert_array_equal(out, np.flip(image, axis=axis))


def test_flip_probability_is_respected(impl):
  image = _image(16)
  config = _all_off(horizontal_flip_probability=0.5)
  views = impl.views(image, range(200), config, 16)
  flipped = np.all(views == np.flip(image, axis=1), axis=(1, 2, 3))
  unchanged = np.all(views == image, axis=(1, 2, 3))
  assert np.all(flipped ^ unchanged)
  assert 0.35 < flipped.mean() < 0.65


def test_blur_matches_scipy_gaussian_filter(impl):
  image = _image(40)
  sigma = 1.2
  config = _all_off(blur_probability=1.0, blur_sigma_range=(sigma, sigma))
  out = impl.view(image, [9, 9], config, 40)
  expected = scipy.ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0))
  np.testing.assert_allclose(out[6:-6, 6:-6], expected[6:-6, 6:-6], atol=1e-4)
  assert np.abs(out - image).max() > 0.1  # It did blur.


def test_blur_works_for_any_channel_count(impl):
  image = _image(24, channels=5)
  config = _all_off(blur_probability=1.0, blur_sigma_range=(0.8, 0.8))
  out = impl.view(image, [0, 1], config, 24)
  expected = scipy.ndimage.gaussian_filter(image, sigma=(0.8, 0.8, 0))
  np.testing.assert_allclose(out[4:-4, 4:-4], expected[4:-4, 4:-4], atol=1e-4)


@pytest.mark.parametrize('channels', [3, 5])
def test_grayscale_makes_channels_equal(impl, channels):
  image = _image(24, channels)
  out = impl.view(image, [1, 1], _all_off(grayscale_probability=1.0), 24)
  np.testing.assert_allclose(out,
                             np.repeat(image.mean(-1, keepdims=True), channels,
                                       -1),
                             atol=1e-6)


def test_noise_has_the_requested_std(impl):
  flat = np.full((64, 64, 3), 0.5, np.float32)
  config = _all_off(noise_probability=1.0, noise_std_range=(0.03, 0.03))
  out = impl.view(flat, [4, 2], config, 64)
  assert abs(out.std() - 0.03) < 0.003
  assert abs(out.mean() - 0.5) < 0.003
  # A range draws a std inside it for each view.
  config = _all_off(noise_probability=1.0, noise_std_range=(0.01, 0.02))
  stds = impl.views(flat, range(10), config, 64).std(axis=(1, 2, 3))
  assert stds.min() > 0.009 and stds.max() < 0.021
  assert stds.max() - stds.min() > 0.002


def test_brightness_adds_one_delta_within_range(impl):
  image = _image(16, lo=0.3, hi=0.7)
  config = _all_off(brightness_probability=1.0, brightness_max_delta=0.1)
  diffs = impl.views(image, range(40), config, 16) - image
  deltas = diffs.mean(axis=(1, 2, 3))
  np.testing.assert_allclose(diffs,
                             np.broadcast_to(deltas[:, None, None, None],
                                             diffs.shape),
                             atol=1e-6)
  assert np.abs(deltas).max() <= 0.1 + 1e-6
  assert deltas.min() < -0.05 and deltas.max() > 0.05


def test_contrast_scales_deviations_within_range(impl):
  image = _image(16, lo=0.3, hi=0.7)
  config = _all_off(contrast_probability=1.0, contrast_factor_range=(0.8, 1.2))
  views = impl.views(image, range(40), config, 16)
  mean = image.mean(axis=(0, 1))
  factors = []
  for v in views:
    np.testing.assert_allclose(v.mean(axis=(0, 1)), mean, atol=1e-5)
    ratio = (v - mean) / (image - mean)
    factor = np.median(ratio)
    np.testing.assert_allclose(v - mean, factor * (image - mean), atol=1e-5)
    factors.append(factor)
  assert 0.8 - 1e-5 <= min(factors) and max(factors) <= 1.2 + 1e-5
  assert min(factors) < 0.9 and max(factors) > 1.1


def test_brightness_factor_multiplies_within_range(impl):
  image = _image(16, lo=0.3, hi=0.7)
  config = _all_off(brightness_probability=1.0, brightness_max_delta=0.0,
                    brightness_factor_range=(0.6, 1.4))
  views = impl.views(image, range(40), config, 16)
  factors = np.median(views / image, axis=(1, 2, 3))
  np.testing.assert_allclose(views, factors[:, None, None, None] * image,
                             atol=1e-5)
  assert 0.6 - 1e-5 <= factors.min() and factors.max() <= 1.4 + 1e-5
  assert factors.min() < 0.8 and factors.max() > 1.2


def test_saturation_blends_with_the_channel_mean(impl):
  image = _image(16, lo=0.2, hi=0.8)
  gray = image.mean(axis=-1, keepdims=True)
  config = _all_off(saturation_probability=1.0,
                    saturation_factor_range=(0.6, 1.4))
  factors = []
  for v in impl.views(image, range(30), config, 16):
    factor = np.median((v - gray) / (image - gray))
    np.testing.assert_allclose(v, gray + factor * (image - gray), atol=1e-5)
    factors.append(factor)
  assert 0.6 - 1e-5 <= min(factors) and max(factors) <= 1.4 + 1e-5
  assert min(factors) < 0.8 and max(factors) > 1.2


def test_hue_rotation_matches_colorsys(impl):
  import colorsys
  image = _image(8, lo=0.1, hi=0.9)
  config = _all_off(hue_probability=1.0, hue_max_delta=0.1)
  for seed, view in zip(range(5), impl.views(image, range(5), config, 8)):
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in image.reshape(-1, 3)])
    got = np.array([colorsys.rgb_to_hsv(*p) for p in view.reshape(-1, 3)])
    # One shift for every pixel, within [-0.1, 0.1] (mod 1); same s and v.
    shift = (got[:, 0] - hsv[:, 0] + 0.5) % 1.0 - 0.5
    assert np.ptp(shift) < 1e-3, seed
    assert abs(shift[0]) <= 0.1 + 1e-4
    np.testing.assert_allclose(got[:, 1:], hsv[:, 1:], atol=1e-3)
  with pytest.raises(ValueError, match='3-band'):
    impl.view(_image(8, channels=1), [1, 2], config, 8)


def test_color_jitter_gate_skips_all_jitters_together(impl):
  image = _image(16, lo=0.3, hi=0.7)
  config = _all_off(color_jitter_probability=0.5, brightness_probability=1.0,
                    contrast_probability=1.0)
  views = impl.views(image, range(60), config, 16)
  unchanged = np.all(np.abs(views - image) < 1e-7, axis=(1, 2, 3))
  assert 0.25 < unchanged.mean() < 0.75


def test_one_augmentation_does_not_shift_another_s_draws(impl):
  # Grayscale is the identity on an image whose channels are equal, so
  # switching it on must not change anything else.
  grey = np.repeat(_image(48, 1), 3, axis=-1)
  base = aug.default_augment_config()
  with_grey = aug.default_augment_config()
  with_grey.grayscale_probability = 1.0
  for seed in ([0, 1], [5, 9]):
    np.testing.assert_allclose(impl.view(grey, seed, base, 32),
                               impl.view(grey, seed, with_grey, 32),
                               atol=1e-6)


@pytest.mark.parametrize('lo,hi', [(0.5, 0.9), (0.9, 1.0)])
def test_crop_box_is_inside_the_image_with_area_in_range(impl, lo, hi):
  # (0.9, 1.0) with ratios up to 4/3 needs the ratio pulled in to keep area.
  height, width = 200, 160
  areas = []
  for oy, ox, ch, cw in impl.crop_boxes([[s, 3] for s in range(300)], height,
                                        width, (lo, hi), (0.75, 1.33)):
    assert 0 <= oy and oy + ch <= height and 1 <= ch
    assert 0 <= ox and ox + cw <= width and 1 <= cw
    areas.append(ch * cw / (height * width))
  tol = 0.5 * (height + width + 1) / (height * width)
  assert lo - tol <= min(areas) and max(areas) <= hi + tol
  assert min(areas) < lo + 0.05 and max(areas) > hi - 0.05


def test_full_crop_box_covers_non_square_image(impl):
  (box,) = impl.crop_boxes([[1, 2]], 30, 50, (1.0, 1.0), (1.0, 1.0))
  assert box == (0, 0, 30, 50)


def test_crop_magnifies_by_the_sampled_scale(impl):
  # Half the area resized back to 48 px magnifies by 1/sqrt(0.5): a ramp's
  # step per output pixel shrinks by sqrt(0.5).
  ramp = np.tile(
      np.linspace(0, 1, 48, dtype=np.float32)[None, :, None], (48, 1, 1))
  config = _all_off(crop_scale_range=(0.5, 0.5))
  out = impl.view(ramp, [0, 0], config, 48)
  step = np.diff(out[24, 4:-4, 0]).mean() * 47
  assert 0.65 < step < 0.76


@pytest.mark.parametrize('field,value', [
    ('crop_scale_range', (1.2, 0.5)),
    ('crop_scale_range', (0.0, 1.0)),
    ('crop_aspect_ratio_range', (0.0, 1.0)),
    ('rotation_probability', 1.5),
    ('blur_probability', -0.1),
    ('blur_sigma_range', (0.0, 1.0)),
    ('noise_std_range', (0.1, 0.05)),
    ('contrast_factor_range', (-1.0, 1.0)),
    ('rotation_degrees_range', (10.0,)),
    ('brightness_max_delta', -0.1),
    ('noise_std_range', (0.0, float('nan'))),
])
def test_validation_names_the_field(field, value):
  c = aug.default_augment_config()
  c[field] = value
  with pytest.raises(ValueError, match=rf'config\.data\.augment\.{field}='):
    aug.validate_augment_config(c)


def test_validation_names_unknown_fields():
  c = aug.default_augment_config()
  c.rotation_prob = 1.0
  with pytest.raises(ValueError, match=r'augment\.rotation_prob '):
    aug.validate_augment_config(c)


def test_each_augmentation_draws_from_its_own_seed(impl):
  # Two flips at p=0.5 from one shared draw would always agree.
  image = _image(16)
  config = _all_off(horizontal_flip_probability=0.5,
                    vertical_flip_probability=0.5)
  views = impl.views(image, range(60), config, 16)
  outcomes = set()
  for v in views:
    for h_flip in (0, 1):
      for v_flip in (0, 1):
        expected = np.flip(image, 1) if h_flip else image
        expected = np.flip(expected, 0) if v_flip else expected
        if np.array_equal(v, expected):
          outcomes.add((h_flip, v_flip))
  assert outcomes == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_numpy_image_operations_match_tensorflow():
  image = _image(40)
  for size in (24, 40, 56):  # Shrink, same, enlarge.
    np.testing.assert_allclose(augment_np.evaluation_view(image, size),
                               _TF.evaluation_view(image, size), atol=1e-5)
  crop = image[3:37, 5:30]  # A non-square crop.
  np.testing.assert_allclose(augment_np.resize_square(crop, 24),
                             aug.evaluation_view(crop, 24).numpy(), atol=1e-5)
  for angle in (0.3, 1.0, 2.5):
    np.testing.assert_allclose(augment_np.rotate(image, angle),
                               aug.rotate(image, tf.constant(angle)).numpy(),
                               atol=1e-4)
  np.testing.assert_allclose(augment_np.blur(image, 1.2, 5),
                             aug.blur(image, tf.constant(1.2), 5).numpy(),
                             atol=1e-5)
  np.testing.assert_allclose(augment_np.adjust_hue(image, 0.1),
                             tf.image.adjust_hue(image, 0.1).numpy(),
                             atol=1e-5)


@pytest.mark.parametrize('config_fn', [aug.default_augment_config,
                                       aug.paper_augment_config])
def test_both_implementations_draw_alike_views(config_fn):
  # Not the same views (other random numbers), the same distribution: how
  # far views stray from the unaugmented image, and how they spread.
  yy, xx = np.mgrid[:40, :40] - 19.5
  blob = np.exp(-(xx**2 + 0.5 * yy**2) / (2 * 6.0**2))[..., None]
  image = (0.1 + 0.8 * blob * np.array([1.0, 0.8, 0.6])).astype(np.float32)
  config = config_fn()
  reference = _TF.evaluation_view(image, 32)
  stats = {}
  for impl in (_TF, _Numpy):
    views = impl.views(image, range(200), config, 32)
    stats[impl] = (np.abs(views - reference).mean(),
                   views.std(axis=0).mean(), views.mean())
  np.testing.assert_allclose(stats[_Numpy], stats[_TF], rtol=0.1)

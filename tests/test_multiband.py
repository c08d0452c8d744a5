"""Five-band galaxies at a redshift: distances, colours, sizes and fluxes."""

import os

import numpy as np
import pytest
from astropy import constants
from astropy.cosmology import FlatLambdaCDM
from scipy import stats

from gzevo_jax.data import multiband
from gzevo_jax.data import render as rd
from conftest import REPO_ROOT
from test_render import morph

FIVE = rd.RenderOptions(bands=5, sky_noise=False)


def test_angular_diameter_distance_matches_astropy():
  z = np.array([0.01, 0.1, 0.4, 1.0, 3.0])
  cosmology = FlatLambdaCDM(H0=70.0, Om0=multiband.OMEGA_M)
  hubble_distance = constants.c.to('km/s').value / 70.0  # Mpc.
  expected = cosmology.angular_diameter_distance(z).value / hubble_distance
  np.testing.assert_allclose(multiband.angular_diameter_distance(z),
                             expected, rtol=1e-5)


def test_band_scale_reddens_with_redshift_and_keeps_the_band_mean():
  z = np.array([multiband.REFERENCE_REDSHIFT, 0.1, 0.2, 0.4])
  scale = multiband.band_scale(z)
  np.testing.assert_allclose(scale.mean(axis=1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(scale[0], 1.0, rtol=1e-6)
  reddest, bluest = multiband.BANDS.index('z'), multiband.BANDS.index('u')
  assert np.all(np.diff(scale[:, reddest] / scale[:, bluest]) > 0)


def _moments(image):
  """(total flux, half-light radius in pixels) of one band image."""
  c = np.arange(image.shape[0]) + 0.5 - image.shape[0] / 2
  r = np.hypot(c[:, None], c[None, :]).ravel()
  w = np.clip(image, 0, None).ravel()
  order = np.argsort(r)
  cumulative = np.cumsum(w[order])
  return w.sum(), r[order][np.searchsorted(cumulative, 0.5 * w.sum())]


def test_a_galaxy_further_away_is_smaller_fainter_and_redder():
  galaxy = morph(2, radius=0.15, snr=400.0)
  z = np.array([multiband.REFERENCE_REDSHIFT, 0.12])
  images = multiband.render_multiband(
      galaxy, z, rd.RenderOptions(bands=5, sky_noise=False, image_size=128))
  r_band = multiband.BANDS.index('r')
  (flux_near, size_near), (flux_far, size_far) = (
      _moments(images[i, ..., r_band]) for i in range(2))
  distance = multiband.angular_diameter_distance(z)
  # Size: the rendered half-light radius follows D_A (within the PSF's blur).
  assert size_far / size_near == pytest.approx(distance[0] / distance[1],
                                               rel=0.1)
  assert flux_far < flux_near
  colour = [images[i, ..., 0].sum() / images[i, ..., 3].sum()  # z / g.
            for i in range(2)]
  assert colour[1] > 1.2 * colour[0]


def test_aperture_fluxes_sum_the_pixels_inside_the_radius():
  flux = np.zeros((1, 8, 8, 5))
  flux[0, 3:5, 3:5, :] = 1.0        # The four centre pixels (r = 0.71 px).
  flux[0, 3, 1, 2] = 10.0           # r = 2.55 px from the centre.
  flux[0, 0, 0, :] = 100.0          # A corner: outside both.
  inside = multiband.aperture_fluxes(flux, radius=0.25)   # 2 px.
  np.testing.assert_allclose(inside, [[4.0] * 5])
  wider = multiband.aperture_fluxes(flux, radius=0.375)   # 3 px.
  np.testing.assert_allclose(wider, [[4.0, 4.0, 14.0, 4.0, 4.0]])


def test_photometry_of_stored_images_reddens_with_redshift():
  galaxy = morph(2, radius=0.12, snr=400.0)
  options = rd.RenderOptions(bands=5, sky_noise=False)
  z = np.array([multiband.REFERENCE_REDSHIFT, 0.3])
  stored = rd.to_uint8(multiband.render_multiband(galaxy, z, options),
                       options)
  features = multiband.photometry(stored, options)
  assert features.shape == (2, 5)
  # z - u = the sum of the four adjacent colours: lower is redder.
  z_minus_u = features[:, :4].sum(axis=1)
  assert z_minus_u[1] < z_minus_u[0] - 0.3
  assert features[1, 4] > features[0, 4]  # Further: a fainter r magnitude.
  # The same colour from the linear flux, before the stretch.
  linear = multiband.aperture_fluxes(
      multiband.render_multiband(galaxy, z, options))
  expected = -2.5 * np.log10(linear[:, 0] / linear[:, 4])
  np.testing.assert_allclose(z_minus_u, expected, atol=0.03)
  with pytest.raises(ValueError, match=r'\[n, H, W, 5\].*\(2, 64, 64, 3\)'):
    multiband.photometry(stored[..., :3], options)


def test_at_the_reference_redshift_nothing_changes():
  galaxy = morph(3)
  moved = multiband.at_redshift(galaxy, np.full(3, 0.05))
  np.testing.assert_allclose(moved.radius, galaxy.radius, rtol=1e-6)
  np.testing.assert_allclose(moved.snr, galaxy.snr, rtol=1e-6)


def test_snr_scales_with_distance_and_tolman_dimming():
  galaxy = morph(1, snr=100.0)
  moved = multiband.at_redshift(galaxy, np.array([0.3]))
  d = multiband.angular_diameter_distance(np.array([0.05, 0.3]))
  expected = 100.0 * d[0] / d[1] * (1.05 / 1.3)**4
  assert moved.snr[0] == pytest.approx(expected, rel=1e-5)


def test_redshifts_look_like_a_bright_spectroscopic_sample():
  z = multiband.sample_redshifts(50_000, np.random.default_rng(0))
  assert 0.08 < np.median(z) < 0.12
  assert z.min() >= 0.01 and z.max() <= 0.4


def test_five_bands_are_required():
  with pytest.raises(ValueError, match='five bands'):
    multiband.render_multiband(morph(1), np.array([0.1]),
                               rd.RenderOptions(bands=3))


@pytest.fixture(scope='module')
def sdss5(tmp_path_factory):
  """sdss5/synthetic_tiny in both record formats."""
  from gzevo_jax.data import build
  path = str(tmp_path_factory.mktemp('tfds'))
  build.prepare('sdss5/synthetic_tiny', data_dir=path,
                file_formats=['tfrecord', 'array_record'])
  return path


def test_both_pipelines_read_the_five_band_tensors_alike(sdss5):
  from gzevo_jax.data import array_records, build, grain_pipeline, pipeline
  builder = build.prepare('sdss5/synthetic_tiny', data_dir=sdss5)
  keys = ('id_str', 'redshift', 'label')
  a = next(pipeline.eval_batches(builder, 'test', batch_size=16,
                                 image_size=32, keys=keys))
  b = next(grain_pipeline.eval_batches(
      array_records.open_dataset('sdss5/synthetic_tiny', sdss5), 'test',
      batch_size=16, image_size=32, keys=keys))
  assert a['image'].shape == (16, 32, 32, 5)
  for key in ('image', 'id_str', 'redshift', 'label'):
    np.testing.assert_array_equal(a[key], b[key])


def test_stored_galaxies_redden_with_redshift(sdss5):
  """The z / g colour of each galaxy's core (its 20 brightest r-band
  pixels) rises with redshift in the stored images. Weakly (rank
  correlation ~0.2 on 400 galaxies): galaxy types spread colours as much as
  redshift does, and the asinh stretch compresses flux ratios."""
  from gzevo_jax.data import build, pipeline
  builder = build.prepare('sdss5/synthetic_tiny', data_dir=sdss5)
  batch = next(pipeline.eval_batches(builder, 'train', batch_size=400,
                                     image_size=32, keys=('redshift',)))
  keep = batch['mask']
  images, redshift = batch['image'][keep], batch['redshift'][keep]
  flat = images.reshape(len(images), -1, len(multiband.BANDS))
  r_band = multiband.BANDS.index('r')
  brightest = np.argsort(flat[..., r_band], axis=1)[:, -20:]
  core = np.take_along_axis(flat, brightest[..., None], axis=1).mean(axis=1)
  colour = core[:, multiband.BANDS.index('z')] / np.maximum(
      core[:, multiband.BANDS.index('g')], 1e-3)
  result = stats.spearmanr(redshift, colour)
  assert result.statistic > 0.1 and result.pvalue < 1e-3


def test_sdss_contrastive_smoke_pretrains_on_five_bands(sdss5, tmp_path):
  from gzevo_jax import config_lib, train
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'sdss_contrastive.py:smoke'))
  assert config.data.channels == 5
  assert config.data.augment.color_jitter_probability == 0.0
  config.data.data_dir = sdss5
  config.train_duration = '3 steps'
  config.knn_monitor.every_steps = 3
  train.train_and_evaluate(config, str(tmp_path))
  assert 'monitor/knn_accuracy' in (tmp_path / 'metrics.jsonl').read_text()

"""Real radio sources from a manual_dir: FITS and PNG images, fr_class
labels, the radio preprocessing, and bad rows named by file and row."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from gzevo_jax.data import build
from gzevo_jax.data import radio
from gzevo_jax.data import real
from gzevo_jax.data import real_images
from gzevo_jax.data import user_images
from gzevo_jax.data.real_row_checks import RowProblem
from gzevo_jax.data.real_tables import CatalogError

fits = pytest.importorskip('astropy.io.fits')


def _sky_in_jansky(seed, size=80, blank_corner=True):
  """A synthetic FRII in Jy/beam as a survey stores it: 4-D (Stokes,
  frequency, y, x), noise 1e-4 Jy on a small offset, a blanked corner."""
  source = radio.sample_sources(np.array([1]), radio.SURVEYS['A'],
                                np.random.default_rng(seed))
  image = 1e-4 * radio.render(source, size)[0] + 2e-5
  if blank_corner:
    image[:6, :6] = np.nan
  return image[None, None].astype(np.float32)


def _write_fits(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fits.PrimaryHDU(data).writeto(path, overwrite=True)


def test_noise_sigmas_are_median_and_mad_units():
  rng = np.random.default_rng(0)
  image = 3.0 + 0.5 * rng.standard_normal((64, 64))
  image[30:34, 30:34] += 40.0  # A source: few pixels, no effect on the MAD.
  image[0, 0] = np.nan
  sigmas = radio.noise_sigmas(image)
  finite = image[np.isfinite(image)]
  expected = (image - np.median(finite)) / stats.median_abs_deviation(
      finite, scale='normal')
  np.testing.assert_allclose(sigmas[1:], expected[1:], rtol=1e-5)
  assert sigmas[0, 0] == 0.0
  assert np.std(sigmas[:20, 20:]) == pytest.approx(1.0, abs=0.1)
  with pytest.raises(ValueError, match='no finite pixels'):
    radio.noise_sigmas(np.full((4, 4), np.nan))
  with pytest.raises(ValueError, match='no noise'):
    radio.noise_sigmas(np.zeros((8, 8)))


def test_a_fits_image_gets_the_radio_preprocessing(tmp_path):
  path = str(tmp_path / 'source.fits')
  data = _sky_in_jansky(1)
  _write_fits(path, data)
  image = real_images.decode_radio(path, 80, 1)
  expected = radio.to_uint8(radio.noise_sigmas(data[0, 0])[None])[0]
  # The same image size: only the float32 -> 8-bit round trip.
  assert image.shape == (80, 80, 1) and image.dtype == np.uint8
  assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1
  assert image[:6, :6].max() == 0  # Blanked pixels are below the clip.
  assert (image > 0).mean() < 0.5  # Most of the field is clipped noise.
  small = real_images.decode_radio(path, 32, 1)
  assert small.shape == (32, 32, 1)


def test_user_images_read_radio_fits_with_the_radio_stretch(tmp_path):
  path = str(tmp_path / 'source.fits')
  _write_fits(path, _sky_in_jansky(2))
  pixels = user_images.read_pixels(path, fits_stretch='radio')
  assert pixels.shape == (80, 80, 1)
  assert pixels.max() == 1.0 and pixels.min() == 0.0


@pytest.mark.parametrize('data, message', [
    (np.full((1, 1, 16, 16), np.nan, np.float32), 'no finite pixels'),
    (np.ones((16, 16), np.float32), 'no noise'),
    (np.zeros((2, 16, 16), np.float32), 'a radio image has one'),
])
def test_unusable_fits_images_are_row_problems_naming_the_file(
    tmp_path, data, message):
  path = str(tmp_path / 'bad.fits')
  _write_fits(path, data)
  if data.ndim == 3:  # Two bands: each has noise, so only the count fails.
    data[:] = np.random.default_rng(0).standard_normal(data.shape)
    _write_fits(path, data)
  with pytest.raises(RowProblem, match=f'{message}'):
    real_images.decode_radio(path, 16, 1)
  try:
    real_images.decode_radio(path, 16, 1)
  except RowProblem as e:
    assert 'bad.fits' in str(e)


def _manual_dir(root, rows):
  """A catalogue of (id_str, image file, fr_class) rows; FITS and PNG
  images are written for ids starting with 'fits' and 'png'."""
  os.makedirs(os.path.join(root, 'images'), exist_ok=True)
  lines = ['id_str,file_loc,fr_class']
  for i, (id_str, fr_class) in enumerate(rows):
    if id_str.startswith('fits'):
      name = f'{id_str}.fits'
      _write_fits(os.path.join(root, 'images', name), _sky_in_jansky(i))
    else:
      name = f'{id_str}.png'
      pixels = np.random.default_rng(i).integers(0, 256, (40, 50),
                                                  dtype=np.uint8)
      Image.fromarray(pixels, 'L').save(os.path.join(root, 'images', name))
    lines.append(f'{id_str},{name},{fr_class}')
  with open(os.path.join(root, 'catalogue.csv'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return os.path.join(root, 'catalogue.csv')


GOOD_ROWS = [(f'fits{i}', ('FRI', 'FRII', '0', '1')[i % 4]) for i in range(8)]
GOOD_ROWS += [(f'png{i}', ('FRII', 'FRI')[i % 2]) for i in range(8)]


def _examples(builder):
  import tensorflow_datasets as tfds
  return {ex['id_str'].decode(): ex
          for split in builder.info.splits
          for ex in tfds.as_numpy(builder.as_dataset(split=split))}


def test_the_real_fr_task_builds_from_fits_and_png(tmp_path):
  root = str(tmp_path / 'manual')
  _manual_dir(root, GOOD_ROWS)
  builder = build.prepare('gz_radio/real', data_dir=str(tmp_path / 'tfds'),
                          manual_dir=root)
  examples = _examples(builder)
  assert sorted(examples) == sorted(i for i, _ in GOOD_ROWS)
  for id_str, fr_class in GOOD_ROWS:
    assert examples[id_str]['label'] == {'FRI': 0, 'FRII': 1, '0': 0,
                                         '1': 1}[fr_class]
    assert examples[id_str]['image'].shape == (64, 64, 1)
  assert 'truth' not in builder.info.features


def test_a_pool_needs_no_labels(tmp_path):
  root = str(tmp_path / 'manual')
  _manual_dir(root, GOOD_ROWS[:6])
  builder = build.prepare('gz_radio/real_pool',
                          data_dir=str(tmp_path / 'tfds'), manual_dir=root)
  assert {int(e['label']) for e in _examples(builder).values()} == {-1}


def test_bad_rows_name_the_file_and_row_and_can_be_skipped(tmp_path):
  root = str(tmp_path / 'manual')
  catalogue = _manual_dir(root, GOOD_ROWS + [('fits_bad', 'FRIII'),
                                             ('png_gone', 'FRI'),
                                             ('png_blank', '')])
  os.remove(os.path.join(root, 'images', 'png_gone.png'))
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(CatalogError) as error:
    build.prepare('gz_radio/real', data_dir=data_dir, manual_dir=root)
  message = str(error.value)
  assert '3 bad row(s) of 19' in message
  assert f'{catalogue}: row 16' in message and "fr_class='FRIII'" in message
  assert f'{catalogue}: row 17' in message and 'png_gone' in message
  assert f'{catalogue}: row 18' in message and 'fr_class is empty' in message
  builder = build.prepare('gz_radio/real', data_dir=data_dir,
                          manual_dir=root, skip_bad_rows=True)
  assert len(_examples(builder)) == len(GOOD_ROWS)
  skipped = builder.info.metadata['skipped_rows']
  assert sorted(row['row'] for row in skipped) == [16, 17, 18]
  json.dumps(skipped)  # Listed in the dataset's metadata as plain data.


def test_a_catalogue_without_fr_class_names_the_file(tmp_path):
  root = str(tmp_path / 'manual')
  os.makedirs(root)
  with open(os.path.join(root, 'catalogue.csv'), 'w') as f:
    f.write('id_str,file_loc\na,a.png\n')
  with pytest.raises(CatalogError, match=r"catalogue.csv: no 'fr_class' "
                     r'column.*real_pool'):
    real.plan_radio(root, labelled=True)


def test_fixmatch_runs_on_real_sources(tmp_path):
  """The README's FixMatch command on a real FR task and a real pool."""
  import os as os_lib
  from conftest import REPO_ROOT
  from gzevo_jax import config_lib
  from gzevo_jax.evaluation import fixmatch
  task_dir, pool_dir = str(tmp_path / 'task'), str(tmp_path / 'pool')
  _manual_dir(task_dir, [(f'png{i}', ('FRI', 'FRII')[i % 2])
                         for i in range(60)])
  _manual_dir(pool_dir, [(f'fits{i}', '') for i in range(12)])
  data_dir = str(tmp_path / 'tfds')
  build.prepare('gz_radio/real', data_dir=data_dir, manual_dir=task_dir)
  build.prepare('gz_radio/real_pool', data_dir=data_dir, manual_dir=pool_dir)
  config = config_lib.load_config_file(
      os_lib.path.join(REPO_ROOT, 'configs', 'fixmatch.py:smoke'))
  config.data.data_dir = data_dir
  config.data.dataset = 'gz_radio/real'
  config.data.image_size = 32
  config.unlabelled.same = 'gz_radio/real_pool'
  config.arms = ('supervised', 'fixmatch')
  config.budgets, config.num_seeds, config.max_epochs = (10,), 1, 1
  out = fixmatch.run(config, str(tmp_path / 'run'))
  assert [r['method'] for r in out['runs']] == ['supervised', 'fixmatch']
  assert 'fixmatch − supervised' in (tmp_path / 'run' / 'fixmatch.md'
                                     ).read_text()

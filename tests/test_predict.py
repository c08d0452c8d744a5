"""configs/predict.py: predictions for a folder, a catalogue or a dataset split."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pyarrow.parquet as pq
import pytest
from scipy import stats

from conftest import REPO_ROOT, tiny_config
from gzevo_jax import checkpoint, config_lib, errors
from gzevo_jax.data import pictures, user_images
from gzevo_jax.evaluation import predict
from gzevo_jax.schema import Question, Schema
from test_main import run_main
import tiny

SIZE = 16  # The tiny checkpoint's image size.


@pytest.fixture(scope='module')
def hybrid_workdir(tmp_path_factory):
  return tiny.tiny_checkpoint('hybrid',
                              str(tmp_path_factory.mktemp('hybrid')))


@pytest.fixture(scope='module')
def cutouts(tmp_path_factory, hybrid_workdir):
  """20 test galaxies of the checkpoint's dataset, one PNG each."""
  out = tmp_path_factory.mktemp('cutouts')
  return pictures.write_cutouts(tiny_config('hybrid'), str(out), num=20)


def _config(workdir, input_path, **overrides):
  c = config_lib.load_config_file(os.path.join(REPO_ROOT, 'configs',
                                               'predict.py'))
  c.pretrained_workdir, c.input = workdir, str(input_path)
  c.eval_batch_size = 8
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  predict.validate(c)
  return c


def _table(workdir):
  return pq.read_table(os.path.join(workdir, predict.OUTPUT_FILE))


def _by_hand(workdir, files):
  """The model applied to the PNGs' pixels / 255, resized by TensorFlow."""
  import tensorflow as tf
  from gzevo_jax.data import augment
  model, variables, _, schema = checkpoint.restore_model(workdir)
  images = np.stack([augment.evaluation_view(
      tf.constant(np.asarray(Image.open(f), np.float32) / 255.0), SIZE).numpy()
                     for f in files])
  out = model.apply(variables, images, train=False)
  a = np.asarray(out['concentrations'], np.float64)
  fractions = np.concatenate([a[:, s] / a[:, s].sum(1, keepdims=True)
                              for s in schema.question_slices], axis=1)
  return fractions, np.asarray(out['representation']), schema


# ---- The numbers.


def test_fractions_intervals_and_summary_against_scipy():
  schema = Schema('two', (Question('shape', ('round', 'cigar', 'disk')),
                          Question('bar', ('yes', 'no'))))
  a = np.array([[2.0, 5.0, 1.5, 3.0, 40.0], [30.0, 1.2, 1.1, 7.0, 7.0]])
  columns = predict.vote_fraction_predictions(a, schema, interval_level=0.9)
  a0 = np.array([[8.5] * 3 + [43.0] * 2, [32.3] * 3 + [14.0] * 2])
  for i, col in enumerate(schema.label_cols):
    np.testing.assert_allclose(columns[f'{col}_predicted_fraction'],
                               a[:, i] / a0[:, i], rtol=1e-6)
    marginal = stats.beta(a[:, i], a0[:, i] - a[:, i])
    np.testing.assert_allclose(columns[f'{col}_predicted_fraction_lower'],
                               marginal.ppf(0.05), rtol=1e-5)
    np.testing.assert_allclose(columns[f'{col}_predicted_fraction_upper'],
                               marginal.ppf(0.95), rtol=1e-5)
  assert list(columns['predicted_summary']) == ['cigar', 'round']


def test_intervals_cover_dirichlet_samples_at_their_level():
  schema = Schema('one', (Question('q', ('a', 'b', 'c')),))
  a = np.array([[3.0, 6.0, 2.0]])
  columns = predict.vote_fraction_predictions(a, schema, interval_level=0.8)
  samples = np.random.default_rng(0).dirichlet(a[0], size=200_000)
  for i, col in enumerate(schema.label_cols):
    low = columns[f'{col}_predicted_fraction_lower'][0]
    high = columns[f'{col}_predicted_fraction_upper'][0]
    inside = np.mean((samples[:, i] >= low) & (samples[:, i] <= high))
    assert abs(inside - 0.8) < 0.005, (col, inside)


# ---- A folder of PNGs, end to end.


def test_folder_predictions_match_the_model_applied_by_hand(
    tmp_path, hybrid_workdir, cutouts):
  summary = predict.run(_config(hybrid_workdir, cutouts), str(tmp_path))
  table = _table(tmp_path)
  assert summary['rows'] == summary['new_rows'] == table.num_rows == 20
  assert summary['resized'] == {'32x32': 20}  # Stored at 32, model at 16.
  files = table.column('file_loc').to_pylist()
  assert [os.path.basename(f)[:-4] for f in files] == table.column(
      'id_str').to_pylist()
  fractions, embeddings, schema = _by_hand(hybrid_workdir, files)
  for i, col in enumerate(schema.label_cols):
    np.testing.assert_allclose(
        table.column(f'{col}_predicted_fraction').to_numpy(), fractions[:, i],
        rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.stack(table.column('embedding').to_numpy(
      zero_copy_only=False)), embeddings, rtol=1e-4, atol=1e-5)
  first = schema.questions[0]
  leading = np.argmax(fractions[:, schema.question_slices[0]], axis=1)
  assert table.column('predicted_summary').to_pylist() == [
      first.answers[j] for j in leading]
  low = table.column(f'{schema.label_cols[0]}_predicted_fraction_lower')
  assert np.all(low.to_numpy() <= fractions[:, 0])


def test_a_dataset_split_gives_the_folders_predictions(tmp_path,
                                                       hybrid_workdir,
                                                       cutouts):
  folder = _table_of(tmp_path / 'folder', hybrid_workdir, cutouts)
  dataset = _table_of(tmp_path / 'dataset', hybrid_workdir,
                      'gz_evo/synthetic_tiny:test')
  assert 'file_loc' not in dataset.column_names
  rows = {r['id_str']: r for r in dataset.to_pylist()}
  for row in folder.to_pylist():
    other = rows[row['id_str']]
    np.testing.assert_allclose(other['embedding'], row['embedding'],
                               rtol=1e-5, atol=1e-6)
    assert other['predicted_summary'] == row['predicted_summary']


def _table_of(workdir, pretrained, input_path, **overrides):
  predict.run(_config(pretrained, input_path, **overrides), str(workdir))
  return _table(workdir)


def test_a_killed_run_resumes_with_the_rows_it_had_not_written(
    tmp_path, hybrid_workdir, cutouts, monkeypatch):
  whole = _table_of(tmp_path / 'whole', hybrid_workdir, cutouts)
  workdir = tmp_path / 'killed'
  write_part = predict.PredictionStore.write_part
  calls = []

  def killed_after_two_parts(self, table):
    if len(calls) == 2:
      raise KeyboardInterrupt  # As a kill between two parts.
    calls.append(write_part(self, table))

  monkeypatch.setattr(predict.PredictionStore, 'write_part',
                      killed_after_two_parts)
  with pytest.raises(KeyboardInterrupt):
    predict.run(_config(hybrid_workdir, cutouts, rows_per_part=8),
                str(workdir))
  monkeypatch.undo()
  assert not (workdir / predict.OUTPUT_FILE).exists()
  (workdir / 'predictions_parts' / 'part-000002.parquet.tmp').write_text(
      'torn')  # A part the kill interrupted mid-write is ignored.
  summary = predict.run(_config(hybrid_workdir, cutouts, rows_per_part=8),
                        str(workdir))
  assert summary['new_rows'] == 20 - 16
  resumed = _table(workdir)
  assert sorted(resumed.column('id_str').to_pylist()) == sorted(
      whole.column('id_str').to_pylist())
  assert resumed.to_pylist() == whole.to_pylist()
  again = predict.run(_config(hybrid_workdir, cutouts), str(workdir))
  assert again['new_rows'] == 0 and again['rows'] == 20


def test_resuming_with_other_settings_is_an_error(tmp_path, hybrid_workdir,
                                                  cutouts):
  predict.run(_config(hybrid_workdir, cutouts), str(tmp_path))
  with pytest.raises(errors.UserError, match='interval_level: 0.9 then, 0.5 '
                     'now.*new --workdir'):
    predict.run(_config(hybrid_workdir, cutouts, interval_level=0.5),
                str(tmp_path))


# ---- Other inputs.


def _copy_pngs(cutouts, folder, count):
  os.makedirs(folder, exist_ok=True)
  names = sorted(os.listdir(cutouts))[:count]
  for name in names:
    Image.open(os.path.join(cutouts, name)).save(os.path.join(folder, name))
  return [os.path.join(folder, n) for n in names]


def test_mixed_sizes_are_resized_and_counted(tmp_path, hybrid_workdir,
                                             cutouts):
  folder = tmp_path / 'mixed'
  files = _copy_pngs(cutouts, folder, 4)
  Image.open(files[0]).resize((40, 40)).save(files[0])
  Image.open(files[1]).resize((24, 32)).save(files[1])
  Image.open(files[2]).resize((SIZE, SIZE)).save(files[2])  # As it is.
  summary = predict.run(_config(hybrid_workdir, folder), str(tmp_path / 'out'))
  assert summary['rows'] == 4
  assert summary['resized'] == {'40x40': 1, '32x32': 1}
  assert summary['cropped'] == {'32x24': 1}


def test_a_catalogue_and_a_fits_cube_give_the_pngs_predictions(
    tmp_path, hybrid_workdir, cutouts):
  from astropy.io import fits
  files = _copy_pngs(cutouts, tmp_path / 'pngs', 3)
  for f in files:  # The same pixels as (bands, H, W) cubes in [0, 1].
    pixels = np.asarray(Image.open(f), np.float32) / 255.0
    fits.PrimaryHDU(np.moveaxis(pixels, -1, 0)).writeto(f[:-4] + '.fits')
  catalogue = tmp_path / 'catalogue.csv'
  catalogue.write_text('id_str,file_loc\n' + ''.join(
      f'galaxy{i},pngs/{os.path.basename(f)[:-4]}.fits\n'
      for i, f in enumerate(files)))
  from_fits = _table_of(tmp_path / 'fits', hybrid_workdir, catalogue,
                        fits_stretch='none')
  assert from_fits.column('id_str').to_pylist() == ['galaxy0', 'galaxy1',
                                                    'galaxy2']
  fractions, _, schema = _by_hand(hybrid_workdir, files)
  np.testing.assert_allclose(
      from_fits.column(f'{schema.label_cols[0]}_predicted_fraction'),
      fractions[:, 0], rtol=1e-4)


def test_fits_percentile_stretch_and_one_band_images(tmp_path):
  from astropy.io import fits
  data = np.linspace(-5.0, 1000.0, 32 * 48, dtype=np.float32).reshape(32, 48)
  data[0, 0] = np.nan
  fits.PrimaryHDU(data).writeto(tmp_path / 'one.fits')
  pixels = user_images.read_pixels(str(tmp_path / 'one.fits'))
  assert pixels.shape == (32, 48, 1)
  low, high = np.nanpercentile(data, (0.5, 99.5))
  expected = np.clip((data - low) / (high - low), 0, 1)
  np.testing.assert_allclose(pixels[1:, 1:, 0], expected[1:, 1:], atol=1e-6)
  assert pixels[0, 0, 0] == 0.0
  view, done = user_images.model_view(pixels, 16)
  assert view.shape == (16, 16, 1) and done == 'cropped'


def test_model_view_resizes_as_the_evaluation_pipeline_does():
  import tensorflow as tf
  from gzevo_jax.data import augment
  pixels = np.random.default_rng(1).random((40, 40, 3)).astype(np.float32)
  view, done = user_images.model_view(pixels, 16)
  assert done == 'resized'
  np.testing.assert_allclose(
      view, augment.evaluation_view(tf.constant(pixels), 16).numpy(),
      atol=1e-5)


# ---- Bad input: one clear error, or a reported skip.


def test_unreadable_images_stop_with_their_name_or_are_skipped(
    tmp_path, hybrid_workdir, cutouts):
  folder = tmp_path / 'some_bad'
  _copy_pngs(cutouts, folder, 3)
  (folder / 'broken.png').write_bytes(b'not a png')
  with pytest.raises(user_images.InputError,
                     match=r'broken\.png: cannot read it.*skip_bad_rows=True'):
    predict.run(_config(hybrid_workdir, folder), str(tmp_path / 'stop'))
  summary = predict.run(_config(hybrid_workdir, folder,
                                **{'data.skip_bad_rows': True}),
                        str(tmp_path / 'skip'))
  assert summary['rows'] == 3 and summary['skipped'] == 1
  skipped = (tmp_path / 'skip' / 'skipped.csv').read_text().splitlines()
  assert skipped[0] == 'id_str,file_loc,reason'
  assert skipped[1].startswith('broken,') and len(skipped) == 2


def test_skipping_every_image_is_an_error(tmp_path, hybrid_workdir):
  folder = tmp_path / 'all_bad'
  folder.mkdir()
  (folder / 'a.png').write_bytes(b'')
  (folder / 'b.jpg').write_bytes(b'xx')
  with pytest.raises(user_images.InputError, match='every image was skipped'):
    predict.run(_config(hybrid_workdir, folder,
                        **{'data.skip_bad_rows': True}), str(tmp_path / 'o'))


@pytest.mark.parametrize('case', ['grey png', 'four-band fits'])
def test_the_wrong_band_count_is_an_error(tmp_path, hybrid_workdir, case):
  folder = tmp_path / 'bands'
  folder.mkdir()
  if case == 'grey png':
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(folder / 'g.png')
  else:
    from astropy.io import fits
    fits.PrimaryHDU(np.zeros((4, SIZE, SIZE), np.float32)).writeto(
        folder / 'g.fits')
  with pytest.raises(user_images.InputError,
                     match=r'g\.(png|fits): [14] band\(s\), but the '
                     r'checkpoint\'s encoder takes 3-band images'):
    predict.run(_config(hybrid_workdir, folder), str(tmp_path / 'o'))


@pytest.mark.parametrize('case,expected', [
    ('empty folder', 'holds no images'),
    ('catalogue without file_loc', 'has no file_loc column'),
    ('catalogue with an empty file_loc', r'row 1 \(0-based data row\): '
     'file_loc is empty'),
    ('the same id twice', "have the same id_str 'x'"),
    ('unknown split', "has no split 'validaton'"),
])
def test_bad_inputs_name_what_is_wrong(tmp_path, hybrid_workdir, case,
                                       expected):
  target = tmp_path / 'input'
  if case == 'empty folder':
    target.mkdir()
    (target / 'notes.txt').write_text('no images here')
  elif case == 'unknown split':
    target = 'gz_evo/synthetic_tiny:validaton'
  elif case == 'the same id twice':
    target.mkdir()
    for name in ('x.png', 'x.jpg'):
      Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(target / name)
  else:
    target = tmp_path / 'catalogue.csv'
    target.write_text('id_str,file_loc\na,a.png\nb,\n' if 'empty' in case
                      else 'id_str,path\na,a.png\n')
  with pytest.raises(errors.UserError, match=expected):
    predict.run(_config(hybrid_workdir, target), str(tmp_path / 'o'))


def test_the_command_line_predicts_without_tensorflow(tmp_path,
                                                      hybrid_workdir, cutouts):
  """As a user on an accelerator host without TensorFlow would run it."""
  code = ('import sys, runpy\n'
          '# As if not installed: import fails, find_spec finds nothing.\n'
          'sys.modules.update(tensorflow=None, tensorflow_datasets=None)\n'
          'sys.argv = ["main"] + sys.argv[1:]\n'
          'runpy.run_module("gzevo_jax.main", run_name="__main__")\n')
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  result = subprocess.run(
      [sys.executable, '-c', code, '--config=configs/predict.py',
       f'--config.pretrained_workdir={hybrid_workdir}',
       f'--config.input={cutouts}', f'--workdir={tmp_path}'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'predict [####################] 20/20 galaxies' in result.stderr
  summary = json.loads((tmp_path / 'predict.json').read_text())
  assert summary['rows'] == 20 and summary['objective'] == 'hybrid'


@pytest.mark.parametrize('case', ['no checkpoint', 'empty folder'])
def test_command_line_errors_are_one_line(tmp_path, hybrid_workdir, cutouts,
                                          case):
  (tmp_path / 'empty').mkdir()
  if case == 'no checkpoint':
    workdir, input_path = tmp_path / 'empty', cutouts
  else:
    workdir, input_path = hybrid_workdir, tmp_path / 'empty'
  result = run_main('--config=configs/predict.py',
                    f'--config.pretrained_workdir={workdir}',
                    f'--config.input={input_path}',
                    f'--workdir={tmp_path / "out"}')
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: '), last
  assert ('no checkpoint' if case == 'no checkpoint' else 'holds no images'
          ) in last, last

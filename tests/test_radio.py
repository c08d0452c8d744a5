"""The synthetic radio sources, their datasets, and the radio BYOL system."""

import dataclasses
import os

import numpy as np
import pytest
from scipy import ndimage

from conftest import REPO_ROOT
from gzevo_jax import config_lib
from gzevo_jax.data import radio

FRI, FRII = radio.RADIO_KINDS.index('FRI'), radio.RADIO_KINDS.index('FRII')


def _sources(kind, n, survey='A', seed=0):
  return radio.sample_sources(np.full(n, kind), radio.SURVEYS[survey],
                              np.random.default_rng(seed))


def _with(sources, **fields):
  """`sources` with some fields set to one value for every source."""
  return dataclasses.replace(sources, **{
      name: np.full(len(sources), value) for name, value in fields.items()})


def _ratios(sources, size=64):
  images = radio.render(sources, size)
  return np.array([radio.fr_ratio(images[i], sources.take(i), 3.0)
                   for i in range(len(sources))])


@pytest.mark.parametrize('survey', ['A', 'B'])
def test_fr_ratio_follows_the_edge_brightening(survey):
  """Fanaroff & Riley's criterion, measured on the noisy images: below the
  break at low edge brightening, above it at high, mixed at the break."""
  sources = _with(_sources(FRI, 60, survey), neighbours=0)
  edge_darkened = _ratios(_with(sources, edge=0.15))
  edge_brightened = _ratios(_with(sources, edge=0.85))
  at_the_break = _ratios(_with(sources, edge=0.5))
  assert np.mean(edge_darkened < 0.5) >= 0.85
  assert np.mean(edge_brightened > 0.5) >= 0.85
  assert 0.2 <= np.mean(at_the_break > 0.5) <= 0.9


def test_the_classes_lie_on_either_side_of_the_break():
  fri, frii = _sources(FRI, 500), _sources(FRII, 500)
  low, high = radio.EDGE_MARGIN, 1.0 - radio.EDGE_MARGIN
  assert fri.edge.min() >= low and fri.edge.max() < 0.5
  assert frii.edge.min() >= 0.5 and frii.edge.max() <= high
  # Core prominence does not depend on the class.
  for sources in (fri, frii):
    assert sources.core.min() >= radio.CORE_RANGE[0]
    assert sources.core.max() <= radio.CORE_RANGE[1]
    assert np.median(np.log(sources.core)) == pytest.approx(
        np.mean(np.log(radio.CORE_RANGE)), abs=0.25)
  # Tailed sources are the edge-darkened ones.
  assert np.abs(fri.bend).mean() > 2 * np.abs(frii.bend).mean()


def test_fr_components_peak_at_one_after_the_beam():
  source = _sources(FRII, 1).take(0)
  for part in radio.fr_components(source, 64):
    convolved = radio.beam_convolve(part, float(source.beam_fwhm))
    assert convolved.max() == pytest.approx(1.0)


def test_jets_fade_outward_and_lobes_brighten_outward():
  sources = _with(_sources(FRI, 40), core=0.05)
  resolved = np.flatnonzero(sources.extent > 8 * sources.beam_fwhm)
  assert len(resolved) >= 20
  for edge, outward_brighter in ((0.1, False), (0.9, True)):
    for i in resolved:
      source = _with(sources, edge=edge).take(i)
      sky = radio.sky_model(source, 128)
      u, _ = radio.axis_coordinates(source, 128)
      half = source.extent / 4  # Half of the shorter side or more.
      inner = sky[(np.abs(u) > source.beam_fwhm) & (np.abs(u) < half)]
      outer = sky[(np.abs(u) > half) & (np.abs(u) < 2 * half)]
      assert (outer.max() > inner.max()) == outward_brighter


def test_the_beam_matches_scipy_and_conserves_flux():
  sky = np.zeros((64, 64))
  sky[20, 30] = 1.0
  sky[40:44, 10:12] = 0.5
  beam = 0.05
  sigma = beam * 64 / (2 * np.sqrt(2 * np.log(2)))
  ours = radio.beam_convolve(sky, beam)
  reference = ndimage.gaussian_filter(sky, sigma, mode='wrap', truncate=8)
  # The transfer function is the continuous Gaussian's; scipy samples the
  # kernel: they agree to 0.1% of the peak.
  np.testing.assert_allclose(ours, reference, atol=1e-3 * reference.max())
  assert ours.sum() == pytest.approx(sky.sum())


def test_images_are_in_noise_sigmas_with_the_peak_at_the_snr():
  sources = _with(_sources(radio.RADIO_KINDS.index('compact'), 30),
                  neighbours=0)
  images = radio.render(sources, 64)
  noise = np.stack([np.random.default_rng(s).standard_normal((64, 64))
                    for s in sources.noise_seed])
  signal = images - noise
  np.testing.assert_allclose(np.abs(signal).max(axis=(1, 2)), sources.snr,
                             rtol=1e-5)
  corners = images[:, :12, :12]  # Far from every compact source.
  assert corners.std() == pytest.approx(1.0, abs=0.05)


def test_unrelated_sources_are_detectable_and_no_brighter_than_the_source():
  sources = _with(_sources(radio.RADIO_KINDS.index('compact'), 200),
                  neighbours=3)
  peaks = []
  for i in range(len(sources)):
    source = sources.take(i)
    sky = radio.neighbour_sky(source, 64, np.random.default_rng(i))
    _, count = ndimage.label(sky > 0.5)
    assert 1 <= count <= 3  # Three, unless they overlap.
    peaks.append(sky.max())
    assert sky.max() <= 3 * source.snr
  # Drawn from the 5-sigma detection limit up (overlaps only add).
  assert np.min(peaks) >= 0.99 * radio.NEIGHBOUR_MIN_SNR
  none = radio.neighbour_sky(_with(sources, neighbours=0).take(0), 64,
                             np.random.default_rng(0))
  assert not none.any()


def test_to_uint8_clips_the_noise_and_stretches_the_rest():
  images = np.array([[[-5.0, 2.9, 3.0, 10.0, 50.0, 100.0]]], np.float32)
  out = radio.to_uint8(images)[0, 0, :, 0]
  assert out.dtype == np.uint8
  assert list(out[:3]) == [0, 0, 0]
  assert out[-1] == 255
  assert np.all(np.diff(out.astype(int)) >= 0)
  # Logarithmic: the middle of the range sits well above the middle grey.
  assert out[4] > 200


def test_survey_b_is_shifted_to_larger_fainter_sources_and_a_broader_beam():
  a, b = (_sources(FRI, 2000, s) for s in 'AB')
  assert np.median(b.extent) > np.median(a.extent)
  assert np.median(b.snr) < np.median(a.snr) / 2
  assert b.beam_fwhm[0] > a.beam_fwhm[0]


def test_same_seed_same_images():
  one, two = (radio.render(_sources(FRII, 3, seed=7), 32) for _ in range(2))
  np.testing.assert_array_equal(one, two)
  other = radio.render(_sources(FRII, 3, seed=8), 32)
  assert not np.allclose(one, other)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """gz_radio's tiny FR task and tiny pool, built once."""
  from gzevo_jax.data import build
  path = str(tmp_path_factory.mktemp('tfds'))
  return {name: build.prepare(f'gz_radio/{name}', data_dir=path)
          for name in ('synthetic_tiny', 'synthetic_pool_tiny')}


def _examples(builder, split):
  import tensorflow_datasets as tfds
  return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_the_fr_task_is_labelled_and_balanced(built):
  builder = built['synthetic_tiny']
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  assert sum(sizes.values()) == 400 and min(sizes.values()) > 20
  examples = [e for s in sizes for e in _examples(builder, s)]
  labels = np.array([e['label'] for e in examples])
  kinds = np.array([e['truth']['kind'] for e in examples])
  assert np.bincount(labels).tolist() == [200, 200]
  # The label is the FR class of the true kind.
  np.testing.assert_array_equal(labels, kinds)
  assert examples[0]['image'].shape == (32, 32, 1)
  assert len({e['id_str'] for e in examples}) == 400


def test_the_pool_is_unlabelled_and_mixed(built):
  examples = _examples(built['synthetic_pool_tiny'], 'train')
  assert {int(e['label']) for e in examples} == {-1}
  shares = np.bincount([e['truth']['kind'] for e in examples],
                       minlength=4) / len(examples)
  np.testing.assert_allclose(shares, radio.SURVEYS['A'].kind_shares,
                             atol=0.07)


def test_stored_images_are_the_catalogue_rendered(built):
  from gzevo_jax.data import radio_builder
  builder = built['synthetic_tiny']
  ids, sources = radio_builder.catalogue(builder.builder_config)
  example = _examples(builder, 'test')[0]
  i = ids.index(example['id_str'].decode())
  expected = radio.to_uint8(radio.render(sources.take([i]), 32))[0]
  np.testing.assert_array_equal(example['image'], expected)
  assert example['truth']['snr'] == pytest.approx(sources.snr[i], rel=1e-6)


def test_radio_byol_smoke_pretrains_on_the_pool_with_one_channel(tmp_path,
                                                                 built):
  from gzevo_jax import train
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'radio_byol.py:smoke'))
  assert config.objective == 'contrastive' and config.data.channels == 1
  assert config.data.augment.color_jitter_probability == 0.0
  config.data.data_dir = str(built['synthetic_tiny'].data_dir_root)
  config.train_duration = '4 steps'
  config.knn_monitor.every_steps = 4
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4
  metrics = (tmp_path / 'metrics.jsonl').read_text()
  assert 'monitor/knn_accuracy' in metrics  # kNN on the FR task.


def test_the_fr_label_efficiency_smoke(tmp_path, built):
  from gzevo_jax.evaluation import label_efficiency
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'label_efficiency.py:radio+smoke'))
  assert config.data.dataset == 'gz_radio/synthetic_tiny'
  config.data.data_dir = str(built['synthetic_tiny'].data_dir_root)
  config.pretrain_train_duration = '2 steps'
  config.budgets = (20,)
  config.num_seeds = 1
  config.finetune.max_epochs = 1
  out = label_efficiency.run(config, str(tmp_path))
  assert list(out['summaries']) == ['direct', 'radio_byol']
  assert '| labels | direct | radio_byol |' in out['table']


@pytest.mark.parametrize('objective', ['supervised', 'hybrid'])
def test_pretraining_on_votes_needs_a_dataset_with_votes(objective):
  from gzevo_jax.data import common, sources
  from gzevo_jax.schema import get_schema
  config = config_lib.base_config(objective)
  config.data.dataset, config.data.channels = 'gz_radio/synthetic_pool', 1
  with pytest.raises(common.DataError,
                     match=f'no `votes` feature, which the {objective} '
                     'objective learns from.*objective=contrastive'):
    sources._check_compatible({'image': (64, 64, 1)}, config,
                              get_schema(config.schema))
  config.objective = 'contrastive'  # BYOL needs images only.
  sources._check_compatible({'image': (64, 64, 1)}, config,
                            get_schema(config.schema))
  config.data.channels = 3
  with pytest.raises(common.DataError, match='1-channel images but '
                     'config.data.channels=3'):
    sources._check_compatible({'image': (64, 64, 1)}, config,
                              get_schema(config.schema))

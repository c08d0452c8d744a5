"""TFDS builder `gz_radio`: synthetic radio galaxies (`radio.py`).

  gz_radio/synthetic         the labelled FR task: 2,400 FRI and FRII
                             sources (half each) seen by survey A, 64 px
  gz_radio/synthetic_pool    20,000 unlabelled survey-A sources of every
                             kind (FRI, FRII, compact, artefact), for
                             pretraining and semi-supervised learning
  gz_radio/synthetic_pool_shift  the same from survey B (broader beam,
                             larger, fainter sources, more compacts and
                             artefacts): the shifted unlabelled pool
  gz_radio/real, real_pool    real sources from `manual_dir`: the FR task
                             (an `fr_class` column) and an unlabelled pool
                             (`real.RADIO_INSTRUCTIONS`)
  gz_radio/synthetic_tiny, synthetic_pool_tiny, synthetic_pool_shift_tiny
                                               smoke tests, 32 px

Pretraining reads a pool's `train` split and the FR task is evaluated like
GZ Rings, so the two roles are two datasets, as GZ-Evo and GZ Rings are.
Features: `id_str`; `image` (uint8 [S, S, 1], `radio.to_uint8`); `label`
(int32: 0 FRI, 1 FRII; -1 in the pools, which are unlabelled); `truth`
(the source's kind, survey, extent, SNR, beam, angle, edge brightening,
core prominence, unrelated sources in the field). Splits come from a
hash of the id (`common.split_of`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from gzevo_jax.data import builder_base
from gzevo_jax.data import common
from gzevo_jax.data import radio
from gzevo_jax.data import real

FR_CLASSES = ('FRI', 'FRII')


@dataclasses.dataclass
class RadioConfig(tfds.core.BuilderConfig):
  """What a gz_radio config writes.

  Attributes:
    source: 'synthetic' (rendered here) or 'real' (read from manual_dir).
    survey: 'A' or 'B' (`radio.SURVEYS`), synthetic only.
    labelled: True for the FR task (FRI and FRII only, half each, labelled);
      False for an unlabelled pool of the survey's source mix.
    num_sources: sources, all splits together.
    image_size: stored images are image_size x image_size x 1.
    seed: the catalogue and its images derive from it.
    sources_per_unit: examples per work unit (one Beam task).
  """
  source: str = 'synthetic'
  survey: str = 'A'
  labelled: bool = True
  num_sources: int = 2_400
  image_size: int = 64
  seed: int = 0
  sources_per_unit: int = 256


@dataclasses.dataclass(frozen=True)
class RadioUnit:
  """Some sources of one split, rendered and written together."""
  split: str
  ids: tuple[str, ...]
  sources: radio.RadioSources


def catalogue(config: RadioConfig) -> tuple[list[str], radio.RadioSources]:
  """The config's source ids and sources, a pure function of its fields."""
  rng = np.random.default_rng([config.seed, ord(config.survey),
                               int(config.labelled)])
  survey = radio.SURVEYS[config.survey]
  if config.labelled:
    kinds = rng.permutation(np.arange(config.num_sources) % 2)  # FRI, FRII.
  else:
    kinds = rng.choice(len(radio.RADIO_KINDS), config.num_sources,
                       p=survey.kind_shares)
  role = 'fr' if config.labelled else 'pool'
  ids = [f'synradio-{config.survey}-{role}-{config.seed}-{i:06d}'
         for i in range(config.num_sources)]
  return ids, radio.sample_sources(kinds, survey, rng)


def work_units(config: RadioConfig) -> dict[str, list[RadioUnit]]:
  """The catalogue by split (`common.split_of`), cut into units."""
  ids, sources = catalogue(config)
  split = np.array([common.split_of(i) for i in ids])
  units = {}
  for name in common.SPLITS:
    index = np.flatnonzero(split == name)
    units[name] = [
        RadioUnit(name, tuple(ids[i] for i in chunk), sources.take(chunk))
        for chunk in np.split(index, range(config.sources_per_unit,
                                           len(index),
                                           config.sources_per_unit))
        if len(chunk)]
  return units


def _truth(sources: radio.RadioSources, i: int,
           survey: str) -> dict[str, Any]:
  return {'kind': int(sources.kind[i]), 'survey': survey,
          'extent': np.float32(sources.extent[i]),
          'snr': np.float32(sources.snr[i]),
          'beam_fwhm': np.float32(sources.beam_fwhm[i]),
          'angle': np.float32(sources.angle[i]),
          'edge': np.float32(sources.edge[i]),
          'core': np.float32(sources.core[i]),
          'neighbours': np.int32(sources.neighbours[i])}


def examples(unit: RadioUnit, config: RadioConfig
             ) -> Iterator[tuple[str, dict[str, Any]]]:
  """The unit's rendered examples, keyed by id."""
  images = radio.to_uint8(radio.render(unit.sources, config.image_size))
  for i, id_str in enumerate(unit.ids):
    kind = radio.RADIO_KINDS[unit.sources.kind[i]]
    label = FR_CLASSES.index(kind) if config.labelled else -1
    yield id_str, {'id_str': id_str, 'image': images[i],
                   'label': np.int32(label),
                   'truth': _truth(unit.sources, i, config.survey)}


class GzRadio(builder_base.GeneratorBuilder):
  """Synthetic radio continuum sources: the FR task and unlabelled pools."""

  VERSION = tfds.core.Version(common.VERSIONS['gz_radio'])
  MANUAL_DOWNLOAD_INSTRUCTIONS = real.RADIO_INSTRUCTIONS
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '2.0.0': ('FR sources span the FR break (edge brightening between the '
                'pure forms), core prominence independent of the class, '
                'stronger bends and side asymmetries, unrelated sources in '
                'the field; truth gains edge, core and neighbours.'),
  }
  BUILDER_CONFIGS = [
      RadioConfig(name='synthetic', description=(
          'FR task: 2,400 survey-A FRI and FRII sources, 64 px.')),
      RadioConfig(name='synthetic_pool', labelled=False, num_sources=20_000,
                  description='20,000 unlabelled survey-A sources, 64 px.'),
      RadioConfig(name='synthetic_pool_shift', survey='B', labelled=False,
                  num_sources=20_000, description=(
                      '20,000 unlabelled survey-B sources (the shifted '
                      'pool), 64 px.')),
      RadioConfig(name='synthetic_tiny', num_sources=400, image_size=32,
                  sources_per_unit=100,
                  description='Smoke tests: the FR task, 400 at 32 px.'),
      RadioConfig(name='synthetic_pool_tiny', labelled=False,
                  num_sources=600, image_size=32, sources_per_unit=100,
                  description='Smoke tests: a survey-A pool, 600 at 32 px.'),
      RadioConfig(name='real', source='real', sources_per_unit=2000,
                  description=('Real FR task from manual_dir (fr_class per '
                               'source), 64 px.')),
      RadioConfig(name='real_pool', source='real', labelled=False,
                  sources_per_unit=2000, description=(
                      'Real unlabelled radio sources from manual_dir, '
                      '64 px.')),
      RadioConfig(name='synthetic_pool_shift_tiny', survey='B',
                  labelled=False, num_sources=600, image_size=32,
                  sources_per_unit=100,
                  description='Smoke tests: a survey-B pool, 600 at 32 px.'),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    truth = tfds.features.FeaturesDict({
        'kind': tfds.features.ClassLabel(names=radio.RADIO_KINDS),
        'survey': tfds.features.Text(),
        **{name: tfds.features.Scalar(dtype=np.float32)
           for name in ('extent', 'snr', 'beam_fwhm', 'angle', 'edge',
                        'core')},
        'neighbours': tfds.features.Scalar(dtype=np.int32)})
    features = {'id_str': tfds.features.Text(),
                'image': tfds.features.Image(
                    shape=(config.image_size, config.image_size, 1),
                    encoding_format='png'),
                'label': tfds.features.Scalar(dtype=np.int32)}
    if config.source == 'synthetic':
      features['truth'] = truth
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features), citation=_CITATION,
        metadata=tfds.core.MetadataDict())  # Skipped rows of real data.

  def _split_generators(self, dl_manager):
    config = self.builder_config
    if config.source == 'real':
      return self._real_generators(
          dl_manager, functools.partial(real.plan_radio,
                                        labelled=config.labelled),
          functools.partial(real.radio_examples, labelled=config.labelled),
          rows_per_unit=config.sources_per_unit,
          image_size=config.image_size, channels=1)
    return self._generators(work_units(config),
                            functools.partial(examples, config=config))


_CITATION = """\
@article{slijepcevic2024radio,
  title={Radio Galaxy Zoo: building a multipurpose foundation model for
         radio astronomy with self-supervised learning},
  author={Slijepcevic, Inigo V. and Scaife, Anna M. M. and Walmsley, Mike
          and Bowles, Micah and Wong, O. Ivy and Shabala, Stanislav S. and
          White, Sarah V.},
  journal={RAS Techniques and Instruments},
  year={2024}
}"""

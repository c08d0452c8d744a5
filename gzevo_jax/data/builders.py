"""TFDS builders `gz_evo` and `gz_rings`, each with synthetic and real configs.

  gz_evo/synthetic        the embedded default: 20k rendered galaxies, 64 px
  gz_evo/synthetic_tiny   smoke runs and tests: 600 galaxies, 32 px
  gz_evo/synthetic_large  for experiments: 60k galaxies, 128 px
  gz_evo/real, real_128   GZ-Evo from `manual_dir` (224 px, 128 px), read
                          with the v0.1 schema (the paper's six campaigns)
  gz_evo/real_v1, real_v1_128  the same with gz_evo_v1 (the release's seven
                          campaigns, UKIDSS included)
  gz_rings/synthetic      the downstream rings task: 21k disks, 64 px (and
                          _tiny, 400 at 32 px; _large, the same at 128 px)
  gz_rings/real           GZ Rings from `manual_dir`
  gz_radio/...            synthetic radio sources: see radio_builder.py
  sdss5/...               synthetic five-band galaxies with redshifts:
                          see multiband_builder.py

Build from Python (`tfds.builder('gz_evo/synthetic').download_and_prepare()`
after importing this module), with `python -m gzevo_jax.data.build`, or with
the TFDS CLI: `tfds build gz_evo --imports=gzevo_jax.data.builders
--config=real --manual_dir=DIR`. Passing Beam options (CLI:
`--beam_pipeline_options=runner=DirectRunner,...`; Python:
`DownloadConfig(beam_runner=...)`) generates the examples with Apache Beam,
which is how the full 1.9M-image GZ-Evo is built on a Beam cluster; without
them, examples are generated in this process.

Splits (train / validation / test) are assigned from a hash of `id_str`
(`common.split_of`), so they are the same however the data is generated;
real tables published in a split (Hugging Face's test-*-of-*.parquet
shards) keep it (`real.row_split`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import numpy as np
import tensorflow_datasets as tfds

from gzevo_jax.data import builder_base
from gzevo_jax.data import common
from gzevo_jax.data import real
from gzevo_jax.data import multiband_builder
from gzevo_jax.data import radio_builder
from gzevo_jax.data import render
from gzevo_jax.data import synthetic
from gzevo_jax.schema import get_schema


@dataclasses.dataclass
class GalaxyConfig(tfds.core.BuilderConfig):
  """What a config of either builder writes.

  Attributes:
    source: 'synthetic' (rendered here) or 'real' (read from manual_dir).
    image_size: stored images are image_size x image_size.
    channels: bands per image (synthetic) / 3 for RGB or 1 for grey (real).
    image_format: 'png' (lossless) or 'jpeg' (4-7x smaller, for real data).
    num_galaxies: synthetic only: catalogue size, all splits together.
    labelled_fraction: synthetic gz_evo only: share with any votes.
    seed: synthetic only: the catalogue and its images derive from it.
    schema: the decision tree (gz_evo): built-in name or JSON path.
    galaxies_per_unit: examples per work unit (one Beam task).
  """
  source: str = 'synthetic'
  image_size: int = 64
  channels: int = 3
  image_format: str = 'png'
  num_galaxies: int = 20_000
  labelled_fraction: float = 0.3
  seed: int = 0
  schema: str = 'gz_evo_v0_1'
  galaxies_per_unit: int = 256


def _image_feature(config: GalaxyConfig) -> tfds.features.Image:
  return tfds.features.Image(
      shape=(config.image_size, config.image_size, config.channels),
      encoding_format=config.image_format)


def _render_options(config: GalaxyConfig) -> render.RenderOptions:
  return render.RenderOptions(image_size=config.image_size,
                              bands=config.channels)


class GalaxyBuilderBase(builder_base.GeneratorBuilder):
  """What gz_evo and gz_rings share: info with truth, real data, bad rows."""

  def _galaxy_info(self, label_features: dict[str, Any],
                   **kwargs: Any) -> tfds.core.DatasetInfo:
    """Info with `id_str`, `image`, the labels and (synthetic) `truth`."""
    config = self.builder_config
    features = {'id_str': tfds.features.Text(),
                'image': _image_feature(config), **label_features}
    if config.source == 'synthetic':
      features['truth'] = builder_base.truth_feature_dict()
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features), citation=_CITATION,
        **kwargs)


  def _real_options(self) -> dict[str, int]:
    config = self.builder_config
    return {'rows_per_unit': config.galaxies_per_unit,
            'image_size': config.image_size, 'channels': config.channels}


class GzEvo(GalaxyBuilderBase):
  """GZ-Evo: galaxy images with Galaxy Zoo vote counts from six campaigns.

  Features: `id_str`; `image` (uint8); `votes` (int32 [206], zero where a
  question was not asked); `campaign` (campaigns that voted, '+'-joined, ''
  for unlabelled); `labelled`; synthetic configs also `truth`, the true
  morphology behind the votes.
  """

  VERSION = tfds.core.Version(common.VERSIONS['gz_evo'])
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '1.1.0': ('Synthetic: volunteers see a ring only as clearly as the '
                'image shows it.'),
      '1.2.0': ('Synthetic: rings as in real disks: a minority (20% of '
                'face-visible disks), 3x likelier in barred ones; inner rings '
                'at the end of the bar (its length now a true parameter, '
                '`truth/bar_length`, 0.8-1.3 half-light radii), outer rings '
                'at ~2x; partial pseudo-rings (`truth/ring_completeness`, '
                '`truth/ring_type`); fainter. Volunteers see a ring by its '
                'contrast against the disk, bulge and sky noise beneath it '
                '(GZ2 "something odd").'),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = real.GZ_EVO_INSTRUCTIONS
  BUILDER_CONFIGS = [
      GalaxyConfig(name='synthetic', description=(
          'Embedded default: 20k rendered galaxies at 64 px, 30% labelled by '
          'simulated volunteers; builds in under a minute on 2 cores.')),
      GalaxyConfig(name='synthetic_tiny', image_size=32, num_galaxies=600,
                   galaxies_per_unit=100, description=(
                       'Smoke tests: 600 galaxies at 32 px, built in seconds.')),
      GalaxyConfig(name='synthetic_large', image_size=128,
                   num_galaxies=60_000, description=(
                       'A larger synthetic GZ-Evo for experiments.')),
      GalaxyConfig(name='real', source='real', image_size=224,
                   image_format='jpeg', description=(
                       'GZ-Evo v0.1 from manual_dir, 224 px.')),
      GalaxyConfig(name='real_128', source='real', image_size=128,
                   image_format='jpeg', description=(
                       'GZ-Evo v0.1 from manual_dir, 128 px.')),
      GalaxyConfig(name='real_v1', source='real', image_size=224,
                   image_format='jpeg', schema='gz_evo_v1', description=(
                       'The GZ-Evo release from manual_dir with its seven '
                       'campaigns (UKIDSS included), 224 px.')),
      GalaxyConfig(name='real_v1_128', source='real', image_size=128,
                   image_format='jpeg', schema='gz_evo_v1', description=(
                       'The GZ-Evo release from manual_dir with its seven '
                       'campaigns (UKIDSS included), 128 px.')),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    schema = get_schema(self.builder_config.schema)
    return self._galaxy_info(
        {
            'votes': tfds.features.Tensor(shape=(schema.num_answers,),
                                          dtype=np.int32),
            'campaign': tfds.features.Text(),
            'labelled': tfds.features.Scalar(dtype=np.bool_),
        },
        homepage='https://github.com/mwalmsley/galaxy-datasets',
        metadata=tfds.core.MetadataDict(
            schema=schema.to_dict(), answer_columns=list(schema.label_cols)))

  def _split_generators(self, dl_manager):
    config = self.builder_config
    schema = get_schema(config.schema)
    if config.source == 'synthetic':
      catalogue = synthetic.gz_evo_catalogue(schema, config.num_galaxies,
                                             config.labelled_fraction,
                                             config.seed)
      units = synthetic.work_units(catalogue, config.galaxies_per_unit)
      make = functools.partial(synthetic.gz_evo_examples,
                               options=_render_options(config),
                               schema_dict=schema.to_dict())
      return self._generators(units, make)
    return self._real_generators(
        dl_manager, functools.partial(real.plan_gz_evo, schema=schema),
        functools.partial(real.gz_evo_examples,
                          schema_dict=schema.to_dict()),
        **self._real_options())


class GzRings(GalaxyBuilderBase):
  """Is there a ring? The downstream task (absent from GZ-Evo's answers).

  Features: `id_str`, `image`, `ring_votes` (int32 [yes, no]; zeros when a
  catalogue gives only the fraction), `ring_fraction`, `label` (1 when
  ring_fraction > 0.5); synthetic configs also `truth`.
  """

  VERSION = tfds.core.Version(common.VERSIONS['gz_rings'])
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '1.1.0': ('Synthetic: volunteers see a ring only as clearly as the '
                'image shows it.'),
      '2.0.0': ('Synthetic: 21,000 bright face-visible disks (test split '
                '2,065); rings come with bars (81% of barred disks ringed, '
                '41% of unbarred ones), inner rings at the bar end, outer '
                'rings at ~2x, partial pseudo-rings, fainter rings; a ring is '
                'seen by its contrast against the disk, bulge and sky noise '
                'beneath it: about 23% labelled ringed (was 39%), and the '
                'label now correlates with bar strength and bulge fraction. '
                'New truth fields bar_length, ring_type, ring_completeness.'),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = real.RINGS_INSTRUCTIONS
  BUILDER_CONFIGS = [
      GalaxyConfig(name='synthetic', num_galaxies=synthetic.RINGS_NUM_GALAXIES,
                   seed=synthetic.RINGS_SEED, description=(
                       'Rendered bright disk galaxies, about 23% visibly '
                       'ringed, 64 px.')),
      GalaxyConfig(name='synthetic_tiny', image_size=32,
                   num_galaxies=synthetic.RINGS_TINY_NUM_GALAXIES,
                   seed=synthetic.RINGS_SEED, galaxies_per_unit=100,
                   description=('Smoke tests: 400 galaxies at 32 px.')),
      GalaxyConfig(name='synthetic_large', image_size=128,
                   num_galaxies=synthetic.RINGS_NUM_GALAXIES,
                   seed=synthetic.RINGS_SEED, description=(
                       'The same galaxies as synthetic, at 128 px (for '
                       'experiments at the resolution of '
                       'gz_evo/synthetic_large).')),
      GalaxyConfig(name='real', source='real', image_size=224,
                   image_format='jpeg', description=(
                       'GZ Rings from manual_dir, 224 px.')),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self._galaxy_info(
        {
            'ring_votes': tfds.features.Tensor(shape=(2,), dtype=np.int32),
            'ring_fraction': tfds.features.Scalar(dtype=np.float32),
            'label': tfds.features.ClassLabel(names=['no_ring', 'ring']),
        },
        supervised_keys=('image', 'label'),
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    config = self.builder_config
    if config.source == 'synthetic':
      catalogue = synthetic.rings_catalogue(config.num_galaxies, config.seed)
      units = synthetic.work_units(catalogue, config.galaxies_per_unit)
      make = functools.partial(synthetic.rings_examples,
                               options=_render_options(config))
      return self._generators(units, make)
    return self._real_generators(dl_manager, real.plan_rings,
                                 real.rings_examples, **self._real_options())


_CITATION = """\
@article{walmsley2022towards,
  title={Towards Galaxy Foundation Models with Hybrid Contrastive Learning},
  author={Walmsley, Mike and Slijepcevic, Inigo Val and Bowles, Micah and
          Scaife, Anna M. M.},
  journal={arXiv preprint arXiv:2206.11927},
  year={2022}
}"""


def builder(name: str, data_dir: Optional[str] = None,
            skip_bad_rows: bool = False) -> tfds.core.DatasetBuilder:
  """'gz_evo/synthetic' -> its builder (other TFDS names work too)."""
  dataset, _, config = name.partition('/')
  classes = {'gz_evo': GzEvo, 'gz_rings': GzRings,
             'gz_radio': radio_builder.GzRadio, 'sdss5': multiband_builder.Sdss5}
  if dataset in classes:
    configs = {c.name: c for c in classes[dataset].BUILDER_CONFIGS}
    if config not in configs:
      raise common.DataError(
          f'unknown config {config!r} of {dataset}; choose one of '
                       f'{", ".join(configs)} (e.g. {dataset}/{next(iter(configs))})')
    return classes[dataset](config=config, data_dir=data_dir,
                            skip_bad_rows=skip_bad_rows)
  return tfds.builder(name, data_dir=data_dir)

"""TFDS builder `sdss5`: synthetic five-band galaxies with redshifts.

  sdss5/synthetic       20,000 galaxies, 64 px, bands z i r g u
  sdss5/synthetic_tiny  600 galaxies, 32 px, for smoke runs and tests

The synthetic GZ-Evo population, each galaxy moved to a redshift drawn like
a bright spectroscopic sample (`multiband.py`). Features: `id_str`;
`image` (uint8 [S, S, 5], stored as a zlib-compressed tensor: no PNG holds
five bands; both input pipelines decode it); `redshift` (the spectroscopic
redshift, float32); `label` (smooth, featured or artifact, the true kind);
`truth` (as gz_evo's). Splits come from a hash of the id.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from gzevo_jax.data import builder_base
from gzevo_jax.data import common
from gzevo_jax.data import morphology as morph
from gzevo_jax.data import multiband
from gzevo_jax.data import render
from gzevo_jax.data import synthetic

KINDS = ('smooth', 'featured', 'artifact')  # morphology.SMOOTH, DISK, ...


@dataclasses.dataclass
class Sdss5Config(tfds.core.BuilderConfig):
  """num_galaxies (all splits), image_size, seed, galaxies_per_unit."""
  num_galaxies: int = 20_000
  image_size: int = 64
  seed: int = 5
  galaxies_per_unit: int = 256


def catalogue(num_galaxies: int, seed: int) -> synthetic.Catalogue:
  """Galaxies and their redshifts, a pure function of the seed."""
  rng = np.random.default_rng([seed, 5])
  galaxies = morph.sample_morphology(num_galaxies, rng)
  redshift = multiband.sample_redshifts(num_galaxies, rng)
  return synthetic.Catalogue(ids=synthetic.make_ids('sdss5syn', num_galaxies),
                             morphology=galaxies,
                             labels={'redshift': redshift})


def examples(unit: synthetic.WorkUnit, image_size: int
             ) -> Iterator[tuple[str, dict[str, Any]]]:
  """The unit's galaxies rendered in five bands at their redshifts."""
  cat = unit.catalogue
  options = render.RenderOptions(image_size=image_size,
                                 bands=len(multiband.BANDS))
  images = render.to_uint8(multiband.render_multiband(
      cat.morphology, cat.labels['redshift'], options), options)
  for i, id_str in enumerate(cat.ids):
    yield str(id_str), {
        'id_str': str(id_str),
        'image': images[i],
        'redshift': np.float32(cat.labels['redshift'][i]),
        'label': int(cat.morphology.kind[i]),
        'truth': synthetic.truth_features(cat.morphology, i),
    }


class Sdss5(builder_base.GeneratorBuilder):
  """Synthetic five-band galaxies with spectroscopic redshifts."""

  VERSION = tfds.core.Version(common.VERSIONS['sdss5'])
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [
      Sdss5Config(name='synthetic', description=(
          '20,000 five-band galaxies with redshifts, 64 px.')),
      Sdss5Config(name='synthetic_tiny', num_galaxies=600, image_size=32,
                  galaxies_per_unit=100,
                  description='Smoke tests: 600 galaxies at 32 px.'),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'id_str': tfds.features.Text(),
            'image': tfds.features.Tensor(
                shape=(size, size, len(multiband.BANDS)), dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB),
            'redshift': tfds.features.Scalar(dtype=np.float32),
            'label': tfds.features.ClassLabel(names=KINDS),
            'truth': builder_base.truth_feature_dict(),
        }),
        citation=_CITATION)

  def _split_generators(self, dl_manager):
    config = self.builder_config
    units = synthetic.work_units(catalogue(config.num_galaxies, config.seed),
                                 config.galaxies_per_unit)
    return self._generators(units, functools.partial(
        examples, image_size=config.image_size))


_CITATION = """\
@article{hayat2021self,
  title={Self-supervised Representation Learning for Astronomical Images},
  author={Hayat, Md Abul and Stein, George and Harrington, Peter and
          Luki{\\'c}, Zarija and Mustafa, Mustafa},
  journal={The Astrophysical Journal Letters},
  volume={911},
  number={2},
  pages={L33},
  year={2021}
}"""

"""Synthetic GZ-Evo and GZ Rings catalogues, and the examples the builders write.

Numpy only. A catalogue is a pure function of (size, seed): true morphology
for every galaxy, simulated volunteer votes, and an id. The builders split it
with `common.split_of`, cut each split into `WorkUnit`s, and render each
unit's galaxies with `render.render_uint8` (on one machine, or on Apache Beam
workers: every function here is a picklable top-level function).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from gzevo_jax.data import common
from gzevo_jax.data import morphology as morph
from gzevo_jax.data import render
from gzevo_jax.data import volunteers
from gzevo_jax.schema import Schema

# Integer fields of Morphology; the rest are floats (and star/trail bools).
INT_FIELDS = ('kind', 'bulge_shape', 'arm_count', 'ring_type', 'clump_count',
              'merger')
BOOL_FIELDS = ('star', 'trail')
# Stored alongside each synthetic example for analysis (not `seed`).
TRUTH_FIELDS = tuple(f.name for f in dataclasses.fields(morph.Morphology)
                     if f.name != 'seed')


@dataclasses.dataclass(frozen=True)
class Catalogue:
  """Galaxies with ids, true morphology and labels (votes or ring votes)."""
  ids: np.ndarray                 # str [n].
  morphology: morph.Morphology
  labels: dict[str, np.ndarray]   # Per-galaxy label arrays, first axis n.

  def take(self, index: np.ndarray) -> 'Catalogue':
    return Catalogue(ids=self.ids[index], morphology=self.morphology.take(index),
                     labels={k: v[index] for k, v in self.labels.items()})


@dataclasses.dataclass(frozen=True)
class WorkUnit:
  """One worker's share of a split: a slice of the catalogue to render."""
  split: str
  catalogue: Catalogue


def make_ids(prefix: str, n: int) -> np.ndarray:
  return np.array([f'{prefix}-{i:07d}' for i in range(n)])


def gz_evo_catalogue(schema: Schema, num_galaxies: int,
                     labelled_fraction: float, seed: int) -> Catalogue:
  """A synthetic GZ-Evo: votes from simulated volunteers of each campaign."""
  rng = np.random.default_rng([seed, 0])
  m = morph.sample_morphology(num_galaxies, rng)
  votes, member = volunteers.gz_evo_votes(schema, m, labelled_fraction, rng)
  return Catalogue(ids=make_ids(f'synth{seed}', num_galaxies), morphology=m,
                   labels={'votes': votes, 'campaigns': member})


# The rings task (builders' gz_rings/synthetic and _tiny use these).
RINGS_NUM_GALAXIES = 21_000  # The 10% hash test split holds 2,065 (>= 2,000).
RINGS_TINY_NUM_GALAXIES = 400
RINGS_SEED = 1
# Share of the task's disks with a ring. Rings are a minority of disks in
# general (morphology.sample_morphology's default), but like GZ Rings the
# task is enriched in them: with most rings faint, about 23% of the task's
# galaxies end up labelled ringed (a minority, as in GZ Rings), while
# barred disks stay about twice as likely to be ringed as unbarred ones.
RING_PROBABILITY = 0.55
# GZ Rings' galaxies come from GZ DECaLS (bright, nearby, r < 17.77), not the
# faint end of GZ-Evo (Hubble, CANDELS): the task keeps disks of snr >= this.
RINGS_MIN_SNR = 40.0


def rings_catalogue(num_galaxies: int, seed: int) -> Catalogue:
  """A synthetic GZ Rings: bright, face-visible disk galaxies.

  Like GZ Rings (featured, not edge-on, bright DECaLS galaxies), so the task
  is rings among disks, not disks among everything. Rings come with bars
  (`morph.sample_morphology`), and volunteers see a ring only as clearly as
  the image shows it (`volunteers.visible_ring_strength`), so faint, partial,
  inclined or noise-hidden rings count as none: about 23% of galaxies are
  labelled ringed, though RING_PROBABILITY of them have a ring.
  """
  rng = np.random.default_rng([seed, 1])
  parts, have = [], 0
  while have < num_galaxies:
    m = morph.sample_morphology(2 * num_galaxies, rng, RING_PROBABILITY)
    m = m.take((m.kind == morph.DISK) & ~m.edge_on & (m.snr >= RINGS_MIN_SNR))
    parts.append(m)
    have += m.num_galaxies
  m = morph.concatenate(parts).take(np.arange(num_galaxies))
  return Catalogue(ids=make_ids(f'rings{seed}', num_galaxies), morphology=m,
                   labels={'ring_votes': volunteers.ring_votes(m, rng)})


def work_units(catalogue: Catalogue, galaxies_per_unit: int,
               validation_fraction: float = common.VALIDATION_FRACTION,
               test_fraction: float = common.TEST_FRACTION
               ) -> dict[str, list[WorkUnit]]:
  """Splits by id (common.split_of) and cuts each split into units."""
  split = np.array([common.split_of(i, validation_fraction, test_fraction)
                    for i in catalogue.ids])
  units = {}
  for name in common.SPLITS:
    index = np.flatnonzero(split == name)
    units[name] = [
        WorkUnit(name, catalogue.take(index[start:start + galaxies_per_unit]))
        for start in range(0, len(index), galaxies_per_unit)
    ]
  return units


def truth_features(m: morph.Morphology, i: int) -> dict[str, object]:
  """Galaxy i's true parameters as plain scalars (for the TFDS example)."""
  out = {}
  for name in TRUTH_FIELDS:
    value = getattr(m, name)[i]
    if name in INT_FIELDS:
      out[name] = np.int32(value)
    elif name in BOOL_FIELDS:
      out[name] = bool(value)
    else:
      out[name] = np.float32(value)
  return out


def rendered(unit: WorkUnit, options: render.RenderOptions) -> np.ndarray:
  return render.render_uint8(unit.catalogue.morphology, options)


def gz_evo_examples(unit: WorkUnit, options: render.RenderOptions,
                    schema_dict: dict) -> Iterator[tuple[str, dict]]:
  """(key, example) for each galaxy of the unit, in the builder's features."""
  schema = Schema.from_dict(schema_dict)
  images = rendered(unit, options)
  cat = unit.catalogue
  for i, id_str in enumerate(cat.ids):
    votes = cat.labels['votes'][i]
    yield str(id_str), {
        'id_str': str(id_str),
        'image': images[i],
        'votes': votes.astype(np.int32),
        'campaign': common.campaign_label(schema, votes),
        'labelled': bool(votes.sum() > 0),
        'truth': truth_features(cat.morphology, i),
    }


def rings_examples(unit: WorkUnit, options: render.RenderOptions
                   ) -> Iterator[tuple[str, dict]]:
  images = rendered(unit, options)
  cat = unit.catalogue
  for i, id_str in enumerate(cat.ids):
    ring_votes = cat.labels['ring_votes'][i]
    fraction = np.float32(ring_votes[0] / max(ring_votes.sum(), 1))
    yield str(id_str), {
        'id_str': str(id_str),
        'image': images[i],
        'ring_votes': ring_votes.astype(np.int32),
        'ring_fraction': fraction,
        'label': int(common.rings_label(fraction)),
        'truth': truth_features(cat.morphology, i),
    }

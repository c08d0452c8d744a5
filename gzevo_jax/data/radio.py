"""Synthetic radio continuum images: FRI and FRII radio galaxies, compact
sources and imaging artefacts, through a Gaussian beam, with noise.

The shapes follow Fanaroff & Riley (1974): an FRI's brightest emission lies
near its core, its jets flaring, bending and fading outward
(edge-darkened); an FRII's lies at its far ends, hot spots at the tips of
its lobes, with a faint core and jet (edge-brightened). Their FR ratio —
the distance between the brightest points on either side of the core over
the source's whole extent — falls below 0.5 for FRI and above for FRII;
`fr_ratio` measures it on an image. Compact sources are the beam around a
barely resolved core; artefacts are the ripples a bright source outside the
field leaves (sidelobes), positive and negative.

Images are in units of the noise: the beam-convolved sky scaled to its
source's peak signal-to-noise ratio, plus unit Gaussian noise. `to_uint8`
applies the usual radio preprocessing (clip below `clip_sigma` noise
sigmas, then a logarithmic stretch of the rest; MiraBest and Radio Galaxy
Zoo clip at 3 sigma).

Two surveys differ in beam, source size and SNR (`SURVEYS`): 'A' is
FIRST-like (sharp beam, bright sources), 'B' has a broader beam and larger,
fainter sources, which gives the dataset shift of the semi-supervised
experiment. Lengths are in image widths, so any image size shows the same
sky. Everything is numpy and a pure function of the seed.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

RADIO_KINDS = ('FRI', 'FRII', 'compact', 'artefact')
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclasses.dataclass(frozen=True)
class Survey:
  """How a survey sees the sky: beam, source sizes, SNRs, source mix."""
  name: str
  beam_fwhm: float             # Image widths.
  extent_median: float         # Tip-to-tip source extent, image widths.
  extent_sigma: float          # Lognormal sigma of the extent.
  snr_median: float            # Peak signal-to-noise after the beam.
  snr_sigma: float             # Lognormal sigma of the SNR.
  kind_shares: tuple[float, ...]  # Unlabelled mix, in RADIO_KINDS order.


SURVEYS: Mapping[str, Survey] = {
    'A': Survey('A', beam_fwhm=0.04, extent_median=0.45, extent_sigma=0.25,
                snr_median=40.0, snr_sigma=0.6,
                kind_shares=(0.3, 0.3, 0.3, 0.1)),
    'B': Survey('B', beam_fwhm=0.07, extent_median=0.6, extent_sigma=0.3,
                snr_median=15.0, snr_sigma=0.6,
                kind_shares=(0.2, 0.2, 0.4, 0.2)),
}


@dataclasses.dataclass(frozen=True)
class RadioSources:
  """A catalogue of sources, one array element per source."""
  kind: np.ndarray        # int, index into RADIO_KINDS.
  angle: np.ndarray       # Jet position angle, radians.
  extent: np.ndarray      # Tip to tip, image widths.
  asymmetry: np.ndarray   # Shorter side / longer side, in (0, 1].
  bend: np.ndarray        # Plume bend: sideways drift at the tips / side.
  brightness: np.ndarray  # FR: one side's brightness over the other's, ~1.
  edge: np.ndarray        # Edge brightening: 0 jets only, 1 hot spots only.
  core: np.ndarray        # Core peak / extended emission's peak.
  neighbours: np.ndarray  # Unrelated compact sources in the field.
  snr: np.ndarray         # Peak SNR after the beam.
  beam_fwhm: np.ndarray   # Image widths.
  offset: np.ndarray      # [n, 2] core position from the centre (x, y).
  noise_seed: np.ndarray  # uint32: each image's noise and neighbours.

  def __len__(self) -> int:
    return len(self.kind)

  def take(self, index) -> 'RadioSources':
    return RadioSources(**{f.name: getattr(self, f.name)[index]
                           for f in dataclasses.fields(self)})


# FR sources' edge brightening lies on either side of the FR break (0.5),
# uniformly up to EDGE_MARGIN from the pure forms (0 and 1).
EDGE_MARGIN = 0.05
# Core prominence, log-uniform: the core's peak over the extended
# emission's, for FRIs and FRIIs alike (it follows the viewing angle, not
# the FR class).
CORE_RANGE = (0.05, 2.0)
# Mean number of unrelated compact sources in a field (FIRST: about 90
# sources per square degree, a MiraBest cut-out covers 0.0056).
NEIGHBOURS_PER_FIELD = 0.5


def sample_sources(kinds: np.ndarray, survey: Survey,
                   rng: np.random.Generator) -> RadioSources:
  """Sources of the given kinds (indices into RADIO_KINDS) as `survey` sees
  them: sizes, SNRs, orientations and morphologies drawn at random."""
  kinds = np.asarray(kinds, np.int64)
  n = len(kinds)
  extent = survey.extent_median * np.exp(survey.extent_sigma *
                                         rng.standard_normal(n))
  compact = kinds == RADIO_KINDS.index('compact')
  extent = np.where(compact, 2.0 * survey.beam_fwhm, np.clip(extent, 0.15,
                                                             0.8))
  frii = kinds == RADIO_KINDS.index('FRII')
  edge = np.where(frii, rng.uniform(0.5, 1.0 - EDGE_MARGIN, n),
                  rng.uniform(EDGE_MARGIN, 0.5, n))
  low, high = np.log(CORE_RANGE[0]), np.log(CORE_RANGE[1])
  return RadioSources(
      kind=kinds,
      angle=rng.uniform(0.0, np.pi, n),
      extent=extent,
      asymmetry=rng.uniform(0.5, 1.0, n),
      # Tailed (bent) sources are edge-darkened: the bend fades with edge.
      bend=rng.uniform(-0.5, 0.5, n) * (1.0 - edge),
      brightness=rng.uniform(0.7, 1.3, n),
      edge=edge,
      core=np.exp(rng.uniform(low, high, n)),
      neighbours=rng.poisson(NEIGHBOURS_PER_FIELD, n),
      snr=survey.snr_median * np.exp(survey.snr_sigma *
                                     rng.standard_normal(n)),
      beam_fwhm=np.full(n, survey.beam_fwhm),
      offset=rng.normal(0.0, 0.02, (n, 2)),
      noise_seed=rng.integers(0, 2**32, n, dtype=np.uint32))


def _gauss(u: np.ndarray, v: np.ndarray, centre: float, sigma_u: float,
           sigma_v: float) -> np.ndarray:
  return np.exp(-0.5 * (((u - centre) / sigma_u)**2 + (v / sigma_v)**2))


def _sides(source: RadioSources) -> tuple[tuple[float, float], ...]:
  """(direction, length) of the two sides: the longer one along +u."""
  longer = source.extent / (1.0 + source.asymmetry)
  return (1.0, longer), (-1.0, source.extent - longer)


def _core(u, v, beam: float) -> np.ndarray:
  return _gauss(u, v, 0.0, 0.3 * beam, 0.3 * beam)


def _jets(along, across, t, beam: float) -> np.ndarray:
  """One side's jet (FRI): flaring and fading outward to its end; peak 1
  near the core."""
  width = 0.3 * beam + 0.15 * along.clip(0.0)
  fade = np.exp(-1.5 * t)
  ends = 1.0 / (1.0 + np.exp((t - 1.0) / 0.05))
  return fade * ends * np.exp(-0.5 * (across / width)**2)


def _lobe(along, across, t, length: float, beam: float) -> np.ndarray:
  """One side's lobe (FRII): a faint jet, then a lobe brightening outward
  to a hot spot of peak 1 at the tip."""
  tt = np.clip(t, 0.0, 1.2)
  sky = 0.04 * _gauss(tt, across, 0.5, 0.35, 0.3 * beam)
  sky += 0.5 * tt**2 * _gauss(along, across, 0.75 * length, 0.3 * length,
                              0.12 * length + beam)
  return sky + _gauss(along, across, length, 0.4 * beam, 0.4 * beam)


def fr_components(source: RadioSources, image_size: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """An FR source's core, jets (FRI) and lobes with hot spots (FRII), each
  before the beam and scaled so that its peak after the beam is 1."""
  u, v = axis_coordinates(source, image_size)
  beam = float(source.beam_fwhm)
  jets, lobes = np.zeros_like(u), np.zeros_like(u)
  # The -u side is `brightness` times as bright (beaming, environment).
  for (direction, length), scale in zip(_sides(source),
                                        (1.0, float(source.brightness))):
    along = direction * u
    t = np.clip(along / length, 0.0, None)
    across = v - direction * source.bend * length * t**2
    jets += scale * np.where(along > 0, _jets(along, across, t, beam), 0.0)
    lobes += scale * np.where(along > 0, _lobe(along, across, t, length,
                                                beam), 0.0)
  parts = (_core(u, v, beam), jets, lobes)
  return tuple(p / beam_convolve(p, beam).max() for p in parts)


def _fr_sky(source: RadioSources, image_size: int) -> np.ndarray:
  """An FR source anywhere between the pure forms: the core at `core` times
  the extended emission's peak, and on each side jets (weight 1 - edge)
  and a lobe with its hot spot (weight edge), both following the bend.
  Its brightest extended emission moves from near the core to the tips as
  `edge` crosses the FR break (0.5), as Fanaroff & Riley's classes do."""
  core, jets, lobes = fr_components(source, image_size)
  edge = float(source.edge)
  return float(source.core) * core + (1.0 - edge) * jets + edge * lobes


def _compact(u, v, source: RadioSources, beam: float) -> np.ndarray:
  """A barely resolved core."""
  return _gauss(u, v, 0.0, 0.4 * beam, 0.3 * beam)


def _artefact(u, v, source: RadioSources, beam: float) -> np.ndarray:
  """A bright unresolved source with the ripples of its sidelobes
  (positive and negative) running across the field."""
  period = 3.0 * beam * source.brightness
  envelope = _gauss(u, v, 0.0, 0.5 * source.extent, 0.3 * source.extent)
  ripples = 0.3 * envelope * np.cos(2.0 * np.pi * u / period)
  return _gauss(u, v, 0.0, 0.3 * beam, 0.3 * beam) + ripples


_MODELS = {'compact': _compact, 'artefact': _artefact}


def axis_coordinates(source: RadioSources,
                     image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(u, v) [H, W] of each pixel centre: along the jet axis from the core,
  and across it, in image widths."""
  grid = (np.arange(image_size) + 0.5) / image_size - 0.5
  x = grid[None, :] - source.offset[0]
  y = grid[:, None] - source.offset[1]
  cos, sin = np.cos(source.angle), np.sin(source.angle)
  return x * cos + y * sin, -x * sin + y * cos


def sky_model(source: RadioSources, image_size: int) -> np.ndarray:
  """One source's sky before the beam, float64 [H, W], peak near 1."""
  kind = RADIO_KINDS[source.kind]
  if kind in ('FRI', 'FRII'):
    return _fr_sky(source, image_size)
  u, v = axis_coordinates(source, image_size)
  return _MODELS[kind](u, v, source, float(source.beam_fwhm))


def beam_convolve(sky: np.ndarray, beam_fwhm: float) -> np.ndarray:
  """Periodic convolution of [..., H, W] with a circular Gaussian beam
  (FWHM in image widths) of unit integral."""
  size = sky.shape[-1]
  sigma = beam_fwhm * size * _FWHM_TO_SIGMA
  freq = np.fft.fftfreq(size)
  transfer = np.exp(-2.0 * (np.pi * sigma)**2 *
                    (freq[:, None]**2 + np.fft.rfftfreq(size)[None, :]**2))
  return np.fft.irfft2(np.fft.rfft2(sky) * transfer, s=sky.shape[-2:])


# Unrelated sources' peak SNRs: Euclidean counts, N(> S) ~ S^-1.5, from
# the 5-sigma detection limit up, so most are faint.
NEIGHBOUR_MIN_SNR = 5.0
NEIGHBOUR_COUNT_SLOPE = 1.5


def neighbour_sky(source: RadioSources, image_size: int,
                  rng: np.random.Generator) -> np.ndarray:
  """`source.neighbours` unresolved sources at random places in the field,
  in noise sigmas after the beam, none brighter than the source itself."""
  n = int(source.neighbours)
  sky = np.zeros((image_size, image_size))
  if not n:
    return sky
  positions = rng.uniform(-0.5, 0.5, (n, 2))
  snrs = np.minimum(NEIGHBOUR_MIN_SNR * rng.uniform(0.0, 1.0, n)**(
      -1.0 / NEIGHBOUR_COUNT_SLOPE), float(source.snr))
  grid = (np.arange(image_size) + 0.5) / image_size - 0.5
  sigma = float(source.beam_fwhm) * _FWHM_TO_SIGMA
  for (x, y), snr in zip(positions, snrs):
    sky += snr * np.exp(-0.5 * ((grid[None, :] - x)**2 +
                                (grid[:, None] - y)**2) / sigma**2)
  return sky


def render(sources: RadioSources, image_size: int) -> np.ndarray:
  """float32 [n, H, W] in noise sigmas: the source's beam-convolved sky with
  its peak (largest absolute value) at its SNR, unit Gaussian noise, and
  the unrelated sources in the field (`neighbour_sky`)."""
  images = np.empty((len(sources), image_size, image_size), np.float32)
  for i in range(len(sources)):
    source = sources.take(i)
    sky = beam_convolve(sky_model(source, image_size),
                        float(source.beam_fwhm))
    sky *= source.snr / np.abs(sky).max()
    rng = np.random.default_rng(source.noise_seed)
    noise = rng.standard_normal(sky.shape)
    images[i] = sky + noise + neighbour_sky(source, image_size, rng)
  return images


def to_uint8(images: np.ndarray, clip_sigma: float = 3.0,
             dynamic_range: float = 100.0) -> np.ndarray:
  """Radio preprocessing to uint8 [n, H, W, 1]: pixels below `clip_sigma`
  noise sigmas are 0; the rest are stretched as log(1 + k x) / log(1 + k),
  x from 0 at the clip to 1 at the image's maximum, k = `dynamic_range`."""
  images = np.asarray(images, np.float32)
  top = images.max(axis=(-2, -1), keepdims=True)
  scaled = np.clip((images - clip_sigma) / np.maximum(top - clip_sigma, 1e-6),
                   0.0, 1.0)
  stretched = np.log1p(dynamic_range * scaled) / np.log1p(dynamic_range)
  return (255.0 * stretched + 0.5).astype(np.uint8)[..., None]


# The median absolute deviation of Gaussian noise, in sigmas.
_MAD_TO_SIGMA = 1.4826


def noise_sigmas(image: np.ndarray) -> np.ndarray:
  """A radio image (any flux unit, NaN where blanked) in units of its noise:
  minus the median, over 1.4826 times the median absolute deviation of the
  finite pixels (robust to the source, which fills few pixels). NaNs become
  0. Raises ValueError for an image with no finite pixels or no noise."""
  image = np.asarray(image, np.float64)
  finite = image[np.isfinite(image)]
  if not finite.size:
    raise ValueError('no finite pixels (all blanked)')
  median = np.median(finite)
  sigma = _MAD_TO_SIGMA * np.median(np.abs(finite - median))
  if not sigma > 0:
    raise ValueError('no noise: over half of the pixels have one value, so '
                     'the noise level cannot be measured')
  return np.nan_to_num((image - median) / sigma, nan=0.0).astype(np.float32)


def fr_ratio(image: np.ndarray, source: RadioSources,
             threshold: float) -> float:
  """The FR ratio along a source's jet axis: the distance between the
  brightest points on either side of the core (beyond one beam from it)
  over the extent above `threshold` (in the image's units).

  `image` is [H, W]; the profile is the maximum over a band one beam wide
  around the axis, so bent plumes are followed.
  """
  u, v = axis_coordinates(source, image.shape[-1])
  beam = float(source.beam_fwhm)
  band = np.abs(v) < max(beam, 0.3 * float(source.extent) *
                         abs(float(source.bend)) + beam)
  bright, far = [], []
  for side in (u > beam, u < -beam):
    pixels = band & side
    values, distance = image[pixels], np.abs(u[pixels])
    bright.append(distance[np.argmax(values)])
    above = distance[values > threshold]
    far.append(above.max() if len(above) else 0.0)
  extent = sum(far)
  return float(sum(bright) / extent) if extent > 0 else 0.0

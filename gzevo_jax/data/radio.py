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
  bend: np.ndarray        # FRI plume bend: sideways drift at the tips / side.
  brightness: np.ndarray  # Hot spot or jet brightness jitter, ~1.
  snr: np.ndarray         # Peak SNR after the beam.
  beam_fwhm: np.ndarray   # Image widths.
  offset: np.ndarray      # [n, 2] core position from the centre (x, y).
  noise_seed: np.ndarray  # uint32: each image's noise.

  def __len__(self) -> int:
    return len(self.kind)

  def take(self, index) -> 'RadioSources':
    return RadioSources(**{f.name: getattr(self, f.name)[index]
                           for f in dataclasses.fields(self)})


def sample_sources(kinds: np.ndarray, survey: Survey,
                   rng: np.random.Generator) -> RadioSources:
  """Sources of the given kinds (indices into RADIO_KINDS) as `survey` sees
  them: sizes, SNRs and orientations drawn at random."""
  kinds = np.asarray(kinds, np.int64)
  n = len(kinds)
  extent = survey.extent_median * np.exp(survey.extent_sigma *
                                         rng.standard_normal(n))
  compact = kinds == RADIO_KINDS.index('compact')
  extent = np.where(compact, 2.0 * survey.beam_fwhm, np.clip(extent, 0.15,
                                                             0.8))
  return RadioSources(
      kind=kinds,
      angle=rng.uniform(0.0, np.pi, n),
      extent=extent,
      asymmetry=rng.uniform(0.7, 1.0, n),
      bend=rng.uniform(-0.25, 0.25, n),
      brightness=rng.uniform(0.7, 1.3, n),
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


def _fri(u, v, source: RadioSources, beam: float) -> np.ndarray:
  """Bright core; jets that flare, bend and fade outward to their ends."""
  sky = _gauss(u, v, 0.0, 0.3 * beam, 0.3 * beam)
  for direction, length in _sides(source):
    along = direction * u
    t = np.clip(along / length, 0.0, None)
    width = 0.3 * beam + 0.15 * along.clip(0.0)
    drift = v - direction * source.bend * length * t**2
    fade = 0.7 * source.brightness * np.exp(-1.5 * t)
    ends = 1.0 / (1.0 + np.exp((t - 1.0) / 0.05))
    sky += np.where(along > 0, fade * ends *
                    np.exp(-0.5 * (drift / width)**2), 0.0)
  return sky


def _frii(u, v, source: RadioSources, beam: float) -> np.ndarray:
  """Faint core and jet; lobes brightening outward to hot spots at the tips."""
  sky = 0.15 * _gauss(u, v, 0.0, 0.3 * beam, 0.3 * beam)
  for direction, length in _sides(source):
    along = direction * u
    t = np.clip(along / length, 0.0, 1.2)
    sky += np.where(along > 0, 0.04 * _gauss(t, v, 0.5, 0.35, 0.3 * beam),
                    0.0)
    lobe = _gauss(along, v, 0.75 * length, 0.3 * length, 0.12 * length + beam)
    sky += 0.5 * t**2 * lobe
    sky += source.brightness * _gauss(along, v, length, 0.4 * beam,
                                      0.4 * beam)
  return sky


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


_MODELS = {'FRI': _fri, 'FRII': _frii, 'compact': _compact,
           'artefact': _artefact}


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
  u, v = axis_coordinates(source, image_size)
  model = _MODELS[RADIO_KINDS[source.kind]]
  return model(u, v, source, float(source.beam_fwhm))


def beam_convolve(sky: np.ndarray, beam_fwhm: float) -> np.ndarray:
  """Periodic convolution of [..., H, W] with a circular Gaussian beam
  (FWHM in image widths) of unit integral."""
  size = sky.shape[-1]
  sigma = beam_fwhm * size * _FWHM_TO_SIGMA
  freq = np.fft.fftfreq(size)
  transfer = np.exp(-2.0 * (np.pi * sigma)**2 *
                    (freq[:, None]**2 + np.fft.rfftfreq(size)[None, :]**2))
  return np.fft.irfft2(np.fft.rfft2(sky) * transfer, s=sky.shape[-2:])


def render(sources: RadioSources, image_size: int) -> np.ndarray:
  """float32 [n, H, W] in noise sigmas: beam-convolved sky with its peak
  (largest absolute value) at the source's SNR, plus unit Gaussian noise."""
  images = np.empty((len(sources), image_size, image_size), np.float32)
  for i in range(len(sources)):
    source = sources.take(i)
    sky = beam_convolve(sky_model(source, image_size),
                        float(source.beam_fwhm))
    sky *= source.snr / np.abs(sky).max()
    noise = np.random.default_rng(source.noise_seed).standard_normal(
        sky.shape)
    images[i] = sky + noise
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

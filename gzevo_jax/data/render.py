"""Fast, reproducible numpy renderer of synthetic galaxies.

What is drawn (see `Morphology` for the parameters; sizes are fractions of
the image width, so a galaxy looks the same at any `image_size`):
  * Smooth ellipticals: a Sersic profile (index `sersic_n`, half-light
    semi-major axis `radius`, axis ratio `axis_ratio`).
  * Disks: an exponential disk (half-light radius `radius`, projected b/a
    `axis_ratio`) plus a Sersic bulge of `0.45 * radius` carrying
    `bulge_fraction` of the light (none for NO_BULGE). The bulge is an oblate
    spheroid of intrinsic flattening 0.7, so it stays rounder than the disk
    when inclined; a boxy bulge is a generalised ellipse |u|^c + |v/q|^c with
    c rising from 2 face-on to 4.5 edge-on. In the disk plane (so foreshortened
    by inclination): a Ferrers bar (half-length `bar_length * radius`, random
    angle), a sharpened logarithmic spiral modulating the disk light
    (`arm_count` arms, pitch `arm_pitch`, contrast `arm_strength`), a
    Gaussian ring at `ring_radius * radius` (inner rings lie on the bright
    disk, outer ones on its faint outskirts), and `clump_count` compact
    star-forming clumps. A ring with `ring_completeness` c < 1 is a
    pseudo-ring: an arc covering a share c of the azimuth (random
    orientation, smooth raised-cosine ends) that winds slightly outwards in
    the arms' sense, like the arms' ends that make real pseudo-rings. The
    ring's light is RING_LIGHT * ring * c of the non-bulge light, so a
    partial ring is as bright along its arc as a full ring of equal `ring`.
  * Disturbances (`merger`): 1 adds a lopsided offset envelope; 2 adds tidal
    tails (or shells around smooth galaxies); 3 adds tails and an overlapping
    companion galaxy. Tidal light, companions, stars and trails come on top
    of the galaxy's own flux.
  * Artifacts: `star` is a PSF-shaped point source with diffraction spikes,
    `trail` a thin line across the image in one band (bands are exposed at
    different times). For `kind == ARTIFACT` the galaxy is drawn at 5% of its
    nominal flux and the artifact is bright and near the centre.

Units and noise: pixel values are linear flux in units where the sky noise
of every band is `sky_sigma` per pixel. Each galaxy's band-averaged flux
(its own components, inside the image, before noise) is

    F = snr * sky_sigma * sqrt(N_e),  N_e = max(pi * axis_ratio * (radius *
    image_size)**2, 1),

i.e. `snr` is the signal-to-noise of the whole galaxy measured against the
noise in the pixels of its nominal half-light ellipse: lower `snr` means
fainter features relative to the noise. The image is convolved with a
circular Moffat PSF (beta `psf_beta`, FWHM `psf_fwhm` of the image width) by
FFT, which is periodic and conserves flux, then Gaussian sky noise is added.

Colours: with 3 bands the band axis is ordered (z, r, g), which is directly
(R, G, B) for display as in Legacy Survey colour images; other band counts
interpolate those anchors. Every stellar population has band-mean flux 1:
old light (ellipticals, bulges, bars) is red (z:r:g = 1.5:1:0.5), disks
near-neutral (1.1:1:0.9), arms, rings and clumps blue (0.6:1:1.4 or bluer).
`to_uint8` applies an asinh stretch like Legacy Survey images.
`ring_contrast` says, without rendering, how far a ring stands out from the
light (and noise) beneath it; simulated volunteers see rings by it.

Reproducibility: all sub-randomness (bar angle, clump positions, tidal
shapes, star and trail placement, noise) comes from
`np.random.default_rng(seed)` of each galaxy, in a fixed layout
(`_DRAW_LAYOUT`; append new draws at its end to keep old renders), so a
galaxy renders identically alone, in any batch, and in any chunk.

Benchmark (pins itself to one thread): python -m gzevo_jax.data.render
--benchmark
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np

from gzevo_jax.data import morphology as morph_lib
from gzevo_jax.data.morphology import Morphology

_F32 = np.float32
_THREAD_ENV_VARS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                    'MKL_NUM_THREADS')

# Band-mean-normalised colours at the anchor bands (z, r, g).
_OLD = (1.5, 1.0, 0.5)
_DISK = (1.1, 1.0, 0.9)
_YOUNG = (0.6, 1.0, 1.4)
_CLUMP = (0.45, 1.0, 1.55)

# Light fractions and shapes; sizes in units of `radius` unless noted.
_HALF_LIGHT_PER_SCALE_LENGTH = 1.6783  # Exponential disk: r_e / h.
_BULGE_SIZE = 0.45
_BULGE_FLATTENING = 0.7  # Intrinsic c/a of the bulge spheroid.
_BOXY_EXPONENT_EDGE_ON = 4.5
_BAR_LIGHT = 0.35  # Of the non-bulge light, at bar strength 1.
# A bar with bar_length <= 0 (hand-made Morphology) gets this half-length.
_DEFAULT_BAR_LENGTH = 1.05
RING_LIGHT = 0.5  # Of the non-bulge light, at ring strength and coverage 1.
# Ring Gaussian sigma, fraction of the ring radius: lo + span * uniform.
RING_WIDTH = (0.06, 0.04)
_RING_END = 0.5  # Width (radians) of a partial ring's smooth ends.
_PSEUDO_RING_WINDING = 0.08  # Radius change end to end, partial rings.
_RING_PATCH = 3.0  # ring_contrast's noise patch: FWHMs along the ring.
_CLUMP_LIGHT = 0.03  # Of the non-bulge light, per clump (mean).
_MAX_CLUMPS = 8
_ARM_SHARPNESS = 4  # Pattern ((1 + cos)/2)**4 ...
_ARM_PATTERN_MEAN = 35.0 / 128.0  # ... whose azimuthal mean is this.
_ARTIFACT_GALAXY_LIGHT = 0.05
_SOFTENING_PX = 0.25  # Keeps cuspy Sersic centres finite (pixels).
_STAR_SPIKE_LIGHT = 0.05  # Per spike direction, of the star's flux.
_LINE_WIDTH = 0.006  # Trail / spike sigma before PSF, image widths.

_DRAW_LAYOUT = (
    ('bar_angle', 1),
    ('ring_phase', 1),  # The bar length's slot before 2.0 (now a parameter).
    ('bar_width', 1),
    ('arm_phase', 1),
    ('arm_hand', 1),
    ('ring_width', 1),
    ('clump_radius', _MAX_CLUMPS),
    ('clump_angle', _MAX_CLUMPS),
    ('clump_size', _MAX_CLUMPS),
    ('clump_flux', _MAX_CLUMPS),
    ('lopsided_angle', 1),
    ('lopsided_offset', 1),
    ('lopsided_flux', 1),
    ('tail_angle', 1),
    ('tail_tilt', 1),
    ('tail_phase', 1),
    ('tail_pitch', 1),
    ('tail_arms', 1),
    ('tail_hand', 1),
    ('tail_scale', 1),
    ('tail_flux', 1),
    ('shells', 1),
    ('shell_angle', 1),
    ('shell_count', 1),
    ('shell_flux', 1),
    ('companion_angle', 1),
    ('companion_separation', 1),
    ('companion_radius', 1),
    ('companion_n', 1),
    ('companion_q', 1),
    ('companion_pa', 1),
    ('companion_flux', 1),
    ('companion_colour', 1),
    ('star_angle', 1),
    ('star_distance', 1),
    ('star_flux', 1),
    ('star_colour', 1),
    ('trail_angle', 1),
    ('trail_offset', 1),
    ('trail_brightness', 1),
    ('trail_band', 1),
)


def _layout_slices() -> tuple[dict[str, slice], int]:
  slices, start = {}, 0
  for name, count in _DRAW_LAYOUT:
    slices[name] = slice(start, start + count)
    start += count
  return slices, start


_DRAW_SLICES, _NUM_DRAWS = _layout_slices()


@dataclasses.dataclass(frozen=True)
class RenderOptions:
  """How to render; sizes are fractions of the image width."""
  image_size: int = 64
  bands: int = 3  # 3: (z, r, g), i.e. display (R, G, B).
  psf_fwhm: float = 0.025  # Moffat PSF FWHM, fraction of image width.
  psf_beta: float = 3.5  # Moffat beta (large beta tends to Gaussian).
  sky_noise: bool = True  # False renders noiseless (for tests).
  sky_sigma: float = 1.0  # Sky noise per pixel, every band.
  stretch_softening: float = 2.0  # asinh knee, in units of sky_sigma.
  stretch_maximum: float = 300.0  # Flux shown white, in units of sky_sigma.
  chunk_size: int = 0  # Galaxies vectorised together; 0: ~2^18 px.

  def __post_init__(self):
    if self.image_size < 8 or self.bands < 1 or self.chunk_size < 0:
      raise ValueError(f'Bad RenderOptions: {self}')
    if self.psf_fwhm <= 0 or self.psf_beta <= 1 or self.sky_sigma <= 0:
      raise ValueError(f'Bad RenderOptions: {self}')


def sersic_b(n: np.ndarray) -> np.ndarray:
  """b_n such that a Sersic profile's half-light radius encloses half.

  Ciotti & Bertin (1999) asymptotic series (relative error < 6e-4 for
  n >= 0.36, < 3e-5 for n >= 1); MacArthur et al. (2003) fit below 0.36
  (< 5%).
  """
  n = np.asarray(n, np.float64)
  nn = np.maximum(n, 0.05)
  asymptotic = (2.0 * nn - 1.0 / 3.0 + 4.0 / (405.0 * nn) + 46.0 /
                (25515.0 * nn**2) + 131.0 / (1148175.0 * nn**3) - 2194697.0 /
                (30690717750.0 * nn**4))
  small = 0.01945 - 0.8902 * nn + 10.95 * nn**2 - 19.67 * nn**3 + 13.43 * nn**4
  return np.where(nn >= 0.36, asymptotic, small)


def galaxy_flux(morphology: Morphology, options: RenderOptions) -> np.ndarray:
  """Band-mean flux F = snr * sky_sigma * sqrt(N_e) of each galaxy, [n]."""
  radius_px = morphology.radius * options.image_size
  n_e = np.maximum(np.pi * morphology.axis_ratio * radius_px**2, 1.0)
  return morphology.snr * options.sky_sigma * np.sqrt(n_e)


@functools.lru_cache(maxsize=16)
def _psf_wrapped(image_size: int, fwhm: float, beta: float) -> np.ndarray:
  """Moffat kernel with its peak at pixel (0, 0), periodic, sum 1."""
  alpha = fwhm * image_size / (2.0 * np.sqrt(2.0**(1.0 / beta) - 1.0))
  d = np.arange(image_size)
  d = np.minimum(d, image_size - d).astype(np.float64)
  r2 = d[:, None]**2 + d[None, :]**2
  kernel = (1.0 + r2 / alpha**2)**(-beta)
  return kernel / kernel.sum()


@functools.lru_cache(maxsize=16)
def _psf_otf(image_size: int, fwhm: float, beta: float) -> np.ndarray:
  otf = np.fft.rfft2(_psf_wrapped(image_size, fwhm, beta))
  otf = otf.astype(np.complex64)
  otf.flags.writeable = False
  return otf


def psf_kernel(options: RenderOptions) -> np.ndarray:
  """The PSF as float64 [H, W], peak at (H // 2, W // 2), summing to 1."""
  kernel = _psf_wrapped(options.image_size, options.psf_fwhm, options.psf_beta)
  return np.fft.fftshift(kernel)


def _convolve(images: np.ndarray, options: RenderOptions) -> np.ndarray:
  """Periodic PSF convolution of float32 [..., H, W] over the last two axes."""
  size = options.image_size
  otf = _psf_otf(size, options.psf_fwhm, options.psf_beta)
  spectrum = np.fft.rfft2(images) * otf
  return np.fft.irfft2(spectrum, s=(size, size)).astype(_F32, copy=False)


def apply_psf(images: np.ndarray, options: RenderOptions) -> np.ndarray:
  """Convolves float [n, H, W, bands] images with the PSF (periodic edges)."""
  planes = np.moveaxis(np.asarray(images, _F32), -1, 1)
  return np.moveaxis(_convolve(planes, options), 1, -1)


@functools.lru_cache(maxsize=8)
def _colours(bands: int) -> dict[str, np.ndarray]:
  """Population colours over `bands` bands, each with band mean 1."""
  positions = np.linspace(0.0, 2.0, bands) if bands > 1 else np.ones(1)
  out = {}
  for name, anchor in (('old', _OLD), ('disk', _DISK), ('young', _YOUNG),
                       ('clump', _CLUMP)):
    c = np.interp(positions, [0.0, 1.0, 2.0], anchor)
    out[name] = (c / c.mean()).astype(_F32)
  return out


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Per-galaxy colours (1 - t) a + t b, [k, bands]."""
  t = np.asarray(t, _F32)[:, None]
  return (1.0 - t) * a + t * b


def _col(values: np.ndarray) -> np.ndarray:
  """[k] (or a scalar) -> float32 [k, 1, 1] to broadcast against images."""
  return np.asarray(values, _F32).reshape(-1, 1, 1)


def _add(image: np.ndarray, idx: np.ndarray, profile: np.ndarray,
         scale: np.ndarray, colour: np.ndarray) -> None:
  """image[idx] += colour x (scale * profile); profile [k, H, W]."""
  profile = profile * _col(scale)
  image[idx] += colour[:, :, None, None] * profile[:, None]


def _add_normalised(image: np.ndarray, idx: np.ndarray, profile: np.ndarray,
                    flux: np.ndarray, colour: np.ndarray) -> None:
  """Adds `profile` scaled to total `flux` (band mean) inside the image."""
  total = profile.sum(axis=(1, 2), dtype=np.float64)
  _add(image, idx, profile, flux / np.maximum(total, 1e-30), colour)


def _sersic(u: np.ndarray, v: np.ndarray, radius: np.ndarray, n: np.ndarray,
            q: np.ndarray, exponent: Optional[np.ndarray],
            soft: float) -> np.ndarray:
  """Unnormalised Sersic on ellipses (exponent None) or generalised ellipses.

  u, v: [k, H, W] coordinates along the major and minor axes; the other
  arguments [k]. The generalised radius is (|u|^c + |v/q|^c)^(1/c).
  """
  w = v / _col(q)
  if exponent is None:
    log_r = 0.5 * np.log(u * u + w * w + soft**2)
  else:
    half_c = _col(0.5 * exponent)
    t = (np.exp(half_c * np.log(u * u + soft**2)) +
         np.exp(half_c * np.log(w * w + soft**2)))
    log_r = np.log(t) / _col(exponent)
  b = _col(sersic_b(n))
  return np.exp(-b * np.exp((log_r - _col(np.log(radius))) / _col(n)))


def _rotate(x: np.ndarray,
            y: np.ndarray,
            angle: np.ndarray,
            centre_x=0.0,
            centre_y=0.0) -> tuple[np.ndarray, np.ndarray]:
  """Coordinates along and across direction `angle` ([k]) from a centre."""
  c, s = _col(np.cos(angle)), _col(np.sin(angle))
  dx, dy = x - _col(centre_x), y - _col(centre_y)
  return dx * c + dy * s, dy * c - dx * s


def _spiral_pattern(phi: np.ndarray, log_r: np.ndarray, arms: np.ndarray,
                    pitch_deg: np.ndarray, phase: np.ndarray, hand: np.ndarray,
                    sharpness: int) -> np.ndarray:
  """((1 + cos)/2)**sharpness of an m-armed logarithmic spiral, in [0, 1].

  phi, log_r: [k, H, W] azimuth and log radius (over the radius where the
  arms pass through `phase`); other arguments [k]. Sharpening narrows the arms.
  """
  cot = 1.0 / np.tan(np.deg2rad(np.clip(pitch_deg, 3.0, 80.0)))
  arg = _col(arms) * (_col(hand) * (phi - _col(phase)) - _col(cot) * log_r)
  p = 0.5 + 0.5 * np.cos(arg)
  out = p
  for _ in range(sharpness - 1):
    out = out * p
  return out


@dataclasses.dataclass(frozen=True)
class _Chunk:
  """Shared state while drawing one chunk of galaxies."""
  m: Morphology
  draws: dict[str, np.ndarray]  # name -> [b] or [b, count] uniforms.
  flux: np.ndarray  # [b] band-mean nominal flux.
  coords: np.ndarray  # [S] pixel centres, image widths.
  options: RenderOptions
  colours: dict[str, np.ndarray]

  @property
  def x(self) -> np.ndarray:
    return self.coords[None, None, :]

  @property
  def y(self) -> np.ndarray:
    return self.coords[None, :, None]


def _subset(ch: _Chunk, idx: np.ndarray):
  """Morphology, draws and flux of the chunk's galaxies at `idx`."""
  return (ch.m.take(idx), {k: a[idx] for k, a in ch.draws.items()}, ch.flux[idx])


def _draw_spheroids(image: np.ndarray, ch: _Chunk, u: np.ndarray,
                    v: np.ndarray) -> None:
  """Ellipticals, bulges and the faint galaxy behind an artifact."""
  m = ch.m
  disk = m.kind == morph_lib.DISK
  has_bulge = disk & (m.bulge_shape != morph_lib.NO_BULGE)
  boxy = disk & (m.bulge_shape == morph_lib.BOXY_BULGE)
  sin_i2 = np.sin(m.inclination)**2
  bulge_q = np.sqrt(1.0 - sin_i2 * (1.0 - _BULGE_FLATTENING**2))
  radius = np.where(disk, _BULGE_SIZE * m.radius, m.radius)
  q = np.where(disk, bulge_q, m.axis_ratio)
  exponent = 2.0 + (_BOXY_EXPONENT_EDGE_ON - 2.0) * sin_i2
  light = np.where(disk, np.where(has_bulge, m.bulge_fraction, 0.0), 1.0)
  light = np.where(m.kind == morph_lib.ARTIFACT, _ARTIFACT_GALAXY_LIGHT, light)
  soft = _SOFTENING_PX / ch.options.image_size
  colour = ch.colours['old'][None]
  for sel, gen in ((~boxy & (light > 0), False), (boxy & (light > 0), True)):
    idx = np.flatnonzero(sel)
    if idx.size:
      profile = _sersic(u[idx], v[idx], radius[idx], m.sersic_n[idx], q[idx],
                        exponent[idx] if gen else None, soft)
      _add_normalised(image, idx, profile, light[idx] * ch.flux[idx],
                      np.repeat(colour, idx.size, 0))


def _disk_light_budget(m: Morphology, d: dict[str, np.ndarray]):
  """Light fractions of bar, ring, clumps [b, MAX] and smooth disk."""
  bulge = np.where(m.bulge_shape != morph_lib.NO_BULGE, m.bulge_fraction, 0.0)
  rest = 1.0 - bulge
  bar = _BAR_LIGHT * np.clip(m.bar, 0.0, 1.0) * rest
  ring = np.where(m.has_ring, RING_LIGHT * np.clip(m.ring, 0.0, 1.0) *
                  np.clip(m.ring_completeness, 0.0, 1.0), 0.0) * rest
  present = np.arange(_MAX_CLUMPS)[None] < np.clip(m.clump_count, 0,
                                                   _MAX_CLUMPS)[:, None]
  clumps = (_CLUMP_LIGHT * (0.5 + d['clump_flux']) * rest[:, None] * present)
  disk = rest - bar - ring - clumps.sum(1)
  return bar, ring, clumps, disk


@dataclasses.dataclass(frozen=True)
class _Disks:
  """The chunk's disk galaxies, in their own plane (arrays [k] or [k, H, W])."""
  idx: np.ndarray  # Their indices in the chunk.
  m: Morphology
  d: dict[str, np.ndarray]
  flux: np.ndarray
  x: np.ndarray  # Along the major axis.
  y: np.ndarray  # Across it, deprojected by the axis ratio.
  r2: np.ndarray
  r: np.ndarray
  bar_angle: np.ndarray
  bar_length: np.ndarray  # Image widths; a default where the bar has none.


def _disk_plane(ch: _Chunk, u: np.ndarray, v: np.ndarray) -> Optional[_Disks]:
  """The chunk's disks with their disk-plane coordinates; None if none."""
  idx = np.flatnonzero(ch.m.kind == morph_lib.DISK)
  if not idx.size:
    return None
  m, d, flux = _subset(ch, idx)
  big_x = u[idx]
  big_y = v[idx] / _col(m.axis_ratio)
  r2 = big_x * big_x + big_y * big_y
  bar_length = m.radius * np.where(m.bar_length > 0, m.bar_length,
                                   _DEFAULT_BAR_LENGTH)
  return _Disks(idx=idx, m=m, d=d, flux=flux, x=big_x, y=big_y, r2=r2,
                r=np.sqrt(r2), bar_angle=np.pi * d['bar_angle'],
                bar_length=bar_length)


def _draw_disks(image: np.ndarray, ch: _Chunk, u: np.ndarray,
                v: np.ndarray) -> None:
  """Exponential disks with their arms, bars and rings (in the disk plane)."""
  disks = _disk_plane(ch, u, v)
  if disks is None:
    return
  bar_w, ring_w, _, disk_w = _disk_light_budget(disks.m, disks.d)
  _draw_disk_light(image, ch.colours, disks, disk_w)
  _draw_bars(image, ch.colours, disks, bar_w)
  _draw_rings(image, ch.colours, disks, ring_w)


def _draw_disk_light(image: np.ndarray, cols: dict[str, np.ndarray],
                     disks: _Disks, disk_w: np.ndarray) -> None:
  """The exponential disk's light: smooth, or shared with spiral arms."""
  m, d, flux, idx = disks.m, disks.d, disks.flux, disks.idx
  h = m.radius / _HALF_LIGHT_PER_SCALE_LENGTH
  disk = np.exp(-disks.r / _col(h))
  barred = m.bar > 0
  arms = (m.arm_count > 0) & (m.arm_strength > 0)
  a_idx = np.flatnonzero(arms)
  n_idx = np.flatnonzero(~arms)
  if n_idx.size:
    _add_normalised(image, idx[n_idx], disk[n_idx], disk_w[n_idx] * flux[n_idx],
                    np.repeat(cols['disk'][None], n_idx.size, 0))
  if not a_idx.size:
    return
  # The arms pass through `phase` at r0: the bar's ends in barred disks, the
  # half-light radius (at a random phase) in the others.
  r0 = np.where(barred, disks.bar_length, m.radius)[a_idx]
  phase = np.where(barred, disks.bar_angle,
                   2.0 * np.pi * d['arm_phase'])[a_idx]
  hand = np.where(d['arm_hand'] < 0.5, 1.0, -1.0)[a_idx]
  phi = np.arctan2(disks.y[a_idx], disks.x[a_idx])
  log_r = 0.5 * np.log(disks.r2[a_idx] / _col(r0**2) + 1e-12)
  pattern = _spiral_pattern(phi, log_r, m.arm_count[a_idx],
                            m.arm_pitch[a_idx], phase, hand, _ARM_SHARPNESS)
  taper = 1.0 - np.exp(-disks.r2[a_idx] / _col((0.6 * r0)**2))
  strength = _col(np.clip(m.arm_strength[a_idx], 0.0, 1.0)) * taper
  smooth = disk[a_idx] * (1.0 - strength)
  arm = disk[a_idx] * strength * (pattern * (1.0 / _ARM_PATTERN_MEAN))
  total = (smooth.sum(axis=(1, 2), dtype=np.float64) +
           arm.sum(axis=(1, 2), dtype=np.float64))
  scale = disk_w[a_idx] * flux[a_idx] / np.maximum(total, 1e-30)
  _add(image, idx[a_idx], smooth, scale,
       np.repeat(cols['disk'][None], a_idx.size, 0))
  _add(image, idx[a_idx], arm, scale,
       np.repeat(cols['young'][None], a_idx.size, 0))


def _draw_bars(image: np.ndarray, cols: dict[str, np.ndarray], disks: _Disks,
               bar_w: np.ndarray) -> None:
  """Ferrers bars of the barred disks, at a random angle in the disk plane."""
  b_idx = np.flatnonzero(disks.m.bar > 0)
  if not b_idx.size:
    return
  bx, by = _rotate(disks.x[b_idx], disks.y[b_idx], disks.bar_angle[b_idx])
  length = _col(disks.bar_length[b_idx])
  width = length * _col(0.22 + 0.12 * disks.d['bar_width'][b_idx])
  m2 = (bx / length)**2 + (by / width)**2
  ferrers = np.maximum(1.0 - m2, 0.0)**2
  _add_normalised(image, disks.idx[b_idx], ferrers,
                  bar_w[b_idx] * disks.flux[b_idx],
                  _mix(cols['old'], cols['disk'], np.full(b_idx.size, 0.4)))


def _draw_rings(image: np.ndarray, cols: dict[str, np.ndarray], disks: _Disks,
                ring_w: np.ndarray) -> None:
  """Gaussian rings, full or partial (pseudo-rings winding outwards)."""
  r_idx = np.flatnonzero(ring_w > 0)
  if not r_idx.size:
    return
  d = disks.d
  mr = disks.m.take(r_idx)
  ring_r = mr.ring_radius * mr.radius
  sigma = ring_r * (RING_WIDTH[0] + RING_WIDTH[1] * d['ring_width'][r_idx])
  coverage = np.clip(mr.ring_completeness, 0.0, 1.0)
  window, along = _ring_window(disks.x[r_idx], disks.y[r_idx], coverage,
                               2.0 * np.pi * d['ring_phase'][r_idx],
                               np.where(d['arm_hand'][r_idx] < 0.5, 1.0, -1.0))
  radius_along = _col(ring_r) * (1.0 + _col(_PSEUDO_RING_WINDING *
                                            (coverage < 1.0)) * along)
  ring = np.exp(-(disks.r[r_idx] - radius_along)**2 / _col(2.0 * sigma**2))
  _add_normalised(image, disks.idx[r_idx], ring * window,
                  ring_w[r_idx] * disks.flux[r_idx],
                  _mix(cols['disk'], cols['young'], np.full(r_idx.size, 0.7)))


def _ring_window(x: np.ndarray, y: np.ndarray, coverage: np.ndarray,
                 phase: np.ndarray,
                 hand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Azimuthal window of a ring covering `coverage` of the azimuth.

  x, y: [k, H, W] disk-plane coordinates; the rest [k]. Returns (window in
  [0, 1], whose azimuthal mean is `coverage`: 1 everywhere for a full ring,
  else a raised-cosine-edged arc centred on `phase`; position along the arc
  in [-1, 1], signed by `hand`).
  """
  dphi = np.mod(np.arctan2(y, x) - _col(phase) + np.pi, 2.0 * np.pi) - np.pi
  half = _col(np.pi * coverage)
  t = np.clip((half - np.abs(dphi)) / _RING_END + 0.5, 0.0, 1.0)
  window = 0.5 - 0.5 * np.cos(np.pi * t)
  window = np.where(_col(coverage) >= 1.0, 1.0, window).astype(_F32)
  along = _col(hand) * np.clip(dphi / np.maximum(half, 1e-6), -1.0, 1.0)
  return window, along


def _psf_line_sigma(options: RenderOptions) -> float:
  """Sigma of the Gaussian whose line-spread peak equals the Moffat PSF's."""
  beta = options.psf_beta
  alpha = options.psf_fwhm / (2.0 * np.sqrt(2.0**(1.0 / beta) - 1.0))
  # The Moffat's line-spread function peaks at
  # Gamma(b - 1/2) / (sqrt(pi) a Gamma(b - 1)).
  peak = math.exp(math.lgamma(beta - 0.5) - math.lgamma(beta - 1.0)) / (
      math.sqrt(math.pi) * alpha)
  return 1.0 / (math.sqrt(2.0 * math.pi) * peak)


def ring_contrast(morphology: Morphology,
                  options: RenderOptions = RenderOptions(),
                  sky_sigmas: float = 0.0) -> np.ndarray:
  """Ring peak over the surface brightness beneath it, [n]; 0 without a ring.

  Face-on and azimuthally averaged, as this module draws them. The ring's
  peak is its line density (its full-ring light over its circumference; a
  partial ring is as bright along its arc) spread over a Gaussian of the
  ring's mean width convolved with the PSF (taken as the Gaussian whose line
  profile peaks as high as the Moffat's). Beneath it lie the exponential
  disk's and the Sersic bulge's surface brightness at the ring's radius (an
  inner ring sits on bright disk and bulge light, so the same ring has less
  contrast there than outside) and, with `sky_sigmas` > 0 and sky noise on,
  that many sigmas of the sky noise averaged over a patch of the ring
  (_RING_PATCH of its FWHMs long, one wide): a ring far out on a faint disk
  stands out from the disk but can still be lost in the noise. Analytic, no
  rendering; within ~20% of the peak measured on noiseless renders (tests).
  """
  m = morphology
  r_e = m.radius
  ring_r = np.maximum(m.ring_radius, 0.0) * r_e
  bulge = np.where(m.bulge_shape != morph_lib.NO_BULGE, m.bulge_fraction, 0.0)
  rest = 1.0 - bulge
  ring_full = RING_LIGHT * np.clip(m.ring, 0.0, 1.0) * rest
  ring_light = ring_full * np.clip(m.ring_completeness, 0.0, 1.0)
  disk_light = (rest * (1.0 - _BAR_LIGHT * np.clip(m.bar, 0.0, 1.0) -
                        _CLUMP_LIGHT * np.clip(m.clump_count, 0, _MAX_CLUMPS))
                - ring_light)
  width = np.hypot(ring_r * (RING_WIDTH[0] + 0.5 * RING_WIDTH[1]),
                   _psf_line_sigma(options))
  safe_r = np.maximum(ring_r, 1e-6)
  # Surface brightnesses in units of the galaxy's flux per image width^2.
  ring_peak = ring_full / (2.0 * np.pi * safe_r * np.sqrt(2.0 * np.pi) * width)
  h = r_e / _HALF_LIGHT_PER_SCALE_LENGTH
  disk_sb = (np.maximum(disk_light, 0.0) / (2.0 * np.pi * h**2) *
             np.exp(-safe_r / h))
  n = np.where(m.kind == morph_lib.DISK, m.sersic_n, 1.0)
  b = sersic_b(n)
  r_b = _BULGE_SIZE * r_e
  log_norm = (2.0 * n * np.log(b) - np.log(2.0 * np.pi * n * r_b**2) -
              np.vectorize(math.lgamma, otypes=[float])(2.0 * n))
  bulge_sb = bulge * np.exp(log_norm - b * (safe_r / r_b)**(1.0 / n))
  beneath = disk_sb + bulge_sb
  if sky_sigmas > 0 and options.sky_noise:
    fwhm = 2.0 * np.sqrt(2.0 * np.log(2.0)) * width
    patch = _RING_PATCH * fwhm**2  # Image widths^2.
    sky = (options.sky_sigma * options.image_size /
           (np.sqrt(patch) * galaxy_flux(m, options)))
    beneath = beneath + sky_sigmas * sky
  contrast = ring_peak / np.maximum(beneath, 1e-30)
  return np.where(m.has_ring, contrast, 0.0)


def _tidal_tails(x, y, m: Morphology, d: dict[str, np.ndarray]) -> np.ndarray:
  """One or two loosely wound, sharp streams in a randomly tilted plane."""
  tu, tv = _rotate(x, y, np.pi * d['tail_angle'])
  tv = tv / _col(0.35 + 0.65 * d['tail_tilt'])
  r2 = tu * tu + tv * tv
  scale = m.radius * (0.8 + 0.5 * d['tail_scale'])
  arms = np.where(d['tail_arms'] < 0.5, 1, 2)
  hand = np.where(d['tail_hand'] < 0.5, 1.0, -1.0)
  log_r = 0.5 * np.log(r2 / _col(scale**2) + 1e-12)
  pattern = _spiral_pattern(np.arctan2(tv, tu), log_r, arms,
                            25.0 + 20.0 * d['tail_pitch'],
                            2.0 * np.pi * d['tail_phase'], hand, 6)
  rs = r2 / _col(scale**2)
  envelope = rs * np.exp(-np.sqrt(rs))  # Peaks at twice the scale.
  return pattern * envelope


def _shells(x, y, m: Morphology, d: dict[str, np.ndarray]) -> np.ndarray:
  """2-4 arcs with sharp outer edges, alternating sides, growing radii."""
  r = np.sqrt(x * x + y * y) + 1e-6
  count = 2 + np.floor(3.0 * d['shell_count'])
  angle = np.pi * 2.0 * d['shell_angle']
  out = np.zeros_like(r)
  for k in range(4):
    shell_r = _col(m.radius * (1.5 + 0.8 * k))
    side = angle + (np.pi + 0.4) * k
    cos_dphi = (x * _col(np.cos(side)) + y * _col(np.sin(side))) / r
    window = (0.5 + 0.5 * cos_dphi)**6
    inside = np.exp(np.minimum(r - shell_r, 0.0) / (0.25 * shell_r))
    outside = np.exp(-np.maximum(r - shell_r, 0.0)**2 / (2.0 *
                                                         (0.04 * shell_r)**2))
    out = out + _col(k < count) * inside * outside * window
  return out


def _draw_mergers(image: np.ndarray, ch: _Chunk) -> None:
  """Lopsided envelopes, tidal tails or shells, companions."""
  idx = np.flatnonzero(ch.m.merger >= morph_lib.MINOR_DISTURBANCE)
  if not idx.size:
    return
  m, d, flux = _subset(ch, idx)
  cols = ch.colours
  x, y = ch.x, ch.y
  smooth = m.kind != morph_lib.DISK
  own_colour = np.where(smooth[:, None], cols['old'][None], cols['disk'][None])

  # Lopsided envelope: a faint exponential offset from the centre.
  angle = 2.0 * np.pi * d['lopsided_angle']
  offset = m.radius * (0.4 + 0.4 * d['lopsided_offset'])
  eu, ev = _rotate(x, y, m.position_angle, offset * np.cos(angle),
                   offset * np.sin(angle))
  er = np.sqrt(eu * eu + (ev / _col(np.maximum(m.axis_ratio, 0.3)))**2)
  envelope = np.exp(-er / _col(0.9 * m.radius))
  _add_normalised(image, idx, envelope,
                  (0.12 + 0.13 * d['lopsided_flux']) * flux, own_colour)

  major = m.merger >= morph_lib.MAJOR_DISTURBANCE
  shells = major & smooth & (m.merger == morph_lib.MAJOR_DISTURBANCE) & (
      d['shells'] < 0.6)
  tails = major & ~shells
  t_idx = np.flatnonzero(tails)
  if t_idx.size:
    mt, dt = m.take(t_idx), {k: a[t_idx] for k, a in d.items()}
    tail_light = np.where(mt.merger == morph_lib.MERGER, 0.1, 0.2)
    tail_light = tail_light + 0.15 * dt['tail_flux']
    tail_colour = _mix(cols['disk'], cols['young'], 0.5 * (~smooth[t_idx]))
    _add_normalised(image, idx[t_idx], _tidal_tails(x, y, mt, dt),
                    tail_light * flux[t_idx], tail_colour)
  s_idx = np.flatnonzero(shells)
  if s_idx.size:
    ms, ds = m.take(s_idx), {k: a[s_idx] for k, a in d.items()}
    _add_normalised(image, idx[s_idx], _shells(x, y, ms, ds),
                    (0.15 + 0.1 * ds['shell_flux']) * flux[s_idx],
                    np.repeat(cols['old'][None], s_idx.size, 0))

  c_idx = np.flatnonzero(m.merger == morph_lib.MERGER)
  if c_idx.size:
    mc, dc = m.take(c_idx), {k: a[c_idx] for k, a in d.items()}
    angle = 2.0 * np.pi * dc['companion_angle']
    sep = np.minimum(mc.radius * (1.2 + 1.6 * dc['companion_separation']), 0.3)
    cu, cv = _rotate(x, y, np.pi * dc['companion_pa'], sep * np.cos(angle),
                     sep * np.sin(angle))
    radius = mc.radius * (0.45 + 0.45 * dc['companion_radius'])
    profile = _sersic(cu, cv, radius, 1.0 + 3.0 * dc['companion_n'],
                      0.4 + 0.6 * dc['companion_q'], None,
                      _SOFTENING_PX / ch.options.image_size)
    _add_normalised(image, idx[c_idx], profile,
                    (0.25 + 0.65 * dc['companion_flux']) * flux[c_idx],
                    _mix(cols['old'], cols['disk'], dc['companion_colour']))


def _gaussian_1d(coords: np.ndarray, centre: np.ndarray,
                 sigma: np.ndarray) -> np.ndarray:
  """Unit-sum Gaussians [..., S] along `coords`, one per centre."""
  g = np.exp(-(coords - centre[..., None])**2 / (2.0 * sigma[..., None]**2))
  return g / np.maximum(g.sum(-1, keepdims=True), 1e-30)


def _bilinear_1d(size: int, coords: np.ndarray, centre: np.ndarray):
  """Unit-sum 2-pixel linear interpolation weights [k, S] at `centre`."""
  pos = np.clip((centre - coords[0]) * size, 0.0, size - 1.001)
  lo = np.floor(pos).astype(np.int64)
  frac = (pos - lo).astype(_F32)
  out = np.zeros((centre.shape[0], size), _F32)
  rows = np.arange(centre.shape[0])
  out[rows, lo] = 1.0 - frac
  out[rows, lo + 1] = frac
  return out


def _draw_separable(image: np.ndarray, ch: _Chunk) -> None:
  """Clumps and stars (with spikes): sums of outer products, via matmul.

  Each galaxy gets _MAX_CLUMPS + 3 terms (clumps, star, two spikes), each a
  column profile gy times a row profile gx with a weight per band.
  """
  m = ch.m
  has_clumps = (m.kind == morph_lib.DISK) & (m.clump_count > 0)
  idx = np.flatnonzero(has_clumps | m.star)
  if not idx.size:
    return
  m, d, flux = _subset(ch, idx)
  k, size = idx.size, ch.options.image_size
  n_terms = _MAX_CLUMPS + 3
  gx = np.zeros((k, n_terms, size), _F32)
  gy = np.zeros((k, n_terms, size), _F32)
  weight = np.zeros((k, n_terms, ch.options.bands), _F32)
  _clump_terms(ch, m, d, flux, gx, gy, weight)
  _star_terms(ch, m, d, gx, gy, weight)
  _add_outer_products(image, idx, gx, gy, weight)


def _clump_terms(ch: _Chunk, m: Morphology, d: dict[str, np.ndarray],
                 flux: np.ndarray, gx: np.ndarray, gy: np.ndarray,
                 weight: np.ndarray) -> None:
  """Terms 0.._MAX_CLUMPS-1: clumps, placed in the disk plane and projected."""
  coords = ch.coords
  _, _, clump_light, _ = _disk_light_budget(m, d)
  clump_light = clump_light * (m.kind == morph_lib.DISK)[:, None]
  rad = m.radius[:, None] * (0.3 + 1.5 * d['clump_radius'])
  ang = 2.0 * np.pi * d['clump_angle']
  cu = rad * np.cos(ang)
  cv = rad * np.sin(ang) * m.axis_ratio[:, None]
  pa = m.position_angle[:, None]
  cx = cu * np.cos(pa) - cv * np.sin(pa)
  cy = cu * np.sin(pa) + cv * np.cos(pa)
  sigma = 0.006 + 0.006 * d['clump_size']
  gx[:, :_MAX_CLUMPS] = _gaussian_1d(coords, cx, sigma)
  gy[:, :_MAX_CLUMPS] = _gaussian_1d(coords, cy, sigma)
  weight[:, :_MAX_CLUMPS] = ((clump_light * flux[:, None])[..., None] *
                             ch.colours['clump'])


def _star_terms(ch: _Chunk, m: Morphology, d: dict[str, np.ndarray],
                gx: np.ndarray, gy: np.ndarray, weight: np.ndarray) -> None:
  """The last 3 terms: a star and its two diffraction spikes.

  The star is a point (bilinear weights) that the PSF turns into the PSF;
  its weights are zero in galaxies without a star.
  """
  cols, size, coords = ch.colours, ch.options.image_size, ch.coords
  artifact = m.kind == morph_lib.ARTIFACT
  dist = np.where(artifact, 0.12 * np.sqrt(d['star_distance']),
                  0.2 + 0.22 * d['star_distance'])
  ang = 2.0 * np.pi * d['star_angle']
  sx, sy = dist * np.cos(ang), dist * np.sin(ang)
  log_flux = np.where(artifact, 3.0 + 1.0 * d['star_flux'],
                      2.0 + 1.3 * d['star_flux'])
  star_flux = (m.star * ch.options.sky_sigma * (size / 64.0) * 10.0**log_flux)
  star_colour = _mix(cols['old'], cols['young'], d['star_colour'])
  s = _MAX_CLUMPS
  gx[:, s] = _bilinear_1d(size, coords, sx)
  gy[:, s] = _bilinear_1d(size, coords, sy)
  weight[:, s] = star_flux[:, None] * star_colour
  spike_len = 0.08 * np.sqrt(star_flux /
                             (ch.options.sky_sigma * size / 64.0 * 1e3) + 1e-12)
  spike_len = np.clip(spike_len, 0.01, 0.5)
  line = np.full(m.num_galaxies, _LINE_WIDTH)
  for j, (along, across) in enumerate(((sx, sy), (sy, sx))):
    tail = np.exp(-np.abs(coords - along[:, None]) / spike_len[:, None])
    tail /= tail.sum(-1, keepdims=True)
    narrow = _gaussian_1d(coords, across, line)
    if j == 0:
      gx[:, s + 1], gy[:, s + 1] = tail, narrow
    else:
      gx[:, s + 2], gy[:, s + 2] = narrow, tail
    weight[:,
           s + 1 + j] = (_STAR_SPIKE_LIGHT * star_flux)[:, None] * (star_colour)


def _add_outer_products(image: np.ndarray, idx: np.ndarray, gx: np.ndarray,
                        gy: np.ndarray, weight: np.ndarray) -> None:
  """image[idx] += sum_t w[t, band] gy[t, :, None] gx[t, None, :].

  As one batched matmul: gx, gy [k, T, S], weight [k, T, bands].
  """
  k, n_terms, size = gx.shape
  bands = weight.shape[-1]
  right = (weight[..., None] * gx[:, :, None, :]).reshape(k, n_terms, -1)
  out = np.matmul(gy.transpose(0, 2, 1), right)  # [k, S, bands * S]
  image[idx] += out.reshape(k, size, bands, size).transpose(0, 2, 1, 3)


def _draw_trails(image: np.ndarray, ch: _Chunk) -> None:
  """A thin line across the whole image, in one band."""
  idx = np.flatnonzero(ch.m.trail)
  if not idx.size:
    return
  d = {k: a[idx] for k, a in ch.draws.items()}
  artifact = ch.m.kind[idx] == morph_lib.ARTIFACT
  angle = np.pi * d['trail_angle']
  offset = (d['trail_offset'] - 0.5) * np.where(artifact, 0.2, 0.7)
  dist = (ch.x * _col(np.sin(angle)) - ch.y * _col(np.cos(angle)) -
          _col(offset))
  peak = np.where(artifact, 30.0 + 60.0 * d['trail_brightness'],
                  6.0 + 14.0 * d['trail_brightness']) * ch.options.sky_sigma
  line = np.exp(-dist * dist / (2.0 * _LINE_WIDTH**2))
  bands = ch.options.bands
  band = np.minimum(np.floor(d['trail_band'] * bands).astype(int), bands - 1)
  colour = np.zeros((idx.size, bands), _F32)
  colour[np.arange(idx.size), band] = bands  # Band mean 1.
  _add(image, idx, line, peak / bands, colour)


def _streams(seeds: np.ndarray, options: RenderOptions,
             noise_out: Optional[np.ndarray]) -> dict[str, np.ndarray]:
  """Per-galaxy uniforms (fixed layout), then noise, from each seed."""
  draws = np.empty((seeds.shape[0], _NUM_DRAWS))
  for i, seed in enumerate(seeds):
    rng = np.random.default_rng(int(seed))
    draws[i] = rng.random(_NUM_DRAWS)
    if noise_out is not None:
      rng.standard_normal(out=noise_out[i], dtype=_F32)
  return {
      name: (draws[:, sl] if sl.stop - sl.start > 1 else draws[:, sl.start])
      for name, sl in _DRAW_SLICES.items()
  }


def _draw_noiseless(m: Morphology, draws: dict[str, np.ndarray],
                    options: RenderOptions) -> np.ndarray:
  """Flux images float32 [b, bands, H, W] before PSF and noise."""
  size = options.image_size
  coords = ((np.arange(size) + 0.5) / size - 0.5).astype(_F32)
  ch = _Chunk(m=m,
              draws=draws,
              flux=galaxy_flux(m, options),
              coords=coords,
              options=options,
              colours=_colours(options.bands))
  image = np.zeros((m.num_galaxies, options.bands, size, size), _F32)
  u, v = _rotate(ch.x, ch.y, m.position_angle)
  _draw_spheroids(image, ch, u, v)
  _draw_disks(image, ch, u, v)
  del u, v
  _draw_mergers(image, ch)
  _draw_separable(image, ch)
  _draw_trails(image, ch)
  return image


def render(
    morphology: Morphology,
    options: RenderOptions = RenderOptions(),
    band_scale: Optional[np.ndarray] = None) -> np.ndarray:
  """float32 [n, H, W, bands], linear flux with sky noise, before stretch.

  Units, the SNR definition and colours are in the module docstring. Each
  galaxy depends only on its own morphology and seed. `band_scale` ([n,
  bands], band mean 1 to keep the SNR definition) multiplies each galaxy's
  light per band before the PSF: a whole-galaxy colour change, such as
  redshift's (`multiband.py`).
  """
  n, size, bands = morphology.num_galaxies, options.image_size, options.bands
  # Chunks of ~2^18 pixels keep the working set in cache (fastest measured).
  chunk = options.chunk_size or int(np.clip(2**18 // size**2, 4, 256))
  out = np.empty((n, size, size, bands), _F32)
  for start in range(0, n, chunk):
    stop = min(start + chunk, n)
    part = morphology.take(slice(start, stop))
    noise = out[start:stop] if options.sky_noise else None
    draws = _streams(part.seed, options, noise)
    flux = _draw_noiseless(part, draws, options)
    if band_scale is not None:
      flux *= np.asarray(band_scale[start:stop], _F32)[:, :, None, None]
    clean = _convolve(flux, options)
    clean = clean.transpose(0, 2, 3, 1)
    if options.sky_noise:
      out[start:stop] *= _F32(options.sky_sigma)
      out[start:stop] += clean
    else:
      out[start:stop] = clean
  return out


def to_uint8(
    images: np.ndarray, options: RenderOptions = RenderOptions()) -> np.ndarray:
  """Display stretch to uint8 [n, H, W, bands].

  asinh(flux / a) / asinh(max / a), with a = `stretch_softening` and max =
  `stretch_maximum` sky sigmas: linear near the noise, logarithmic in bright
  cores, like Legacy Survey colour images; negative flux is black.
  """
  a, top = _stretch(options)
  scaled = np.arcsinh(np.asarray(images, _F32) / _F32(a)) * _F32(255.0 / top)
  return (np.clip(scaled, 0.0, 255.0) + 0.5).astype(np.uint8)


def from_uint8(
    images: np.ndarray, options: RenderOptions = RenderOptions()) -> np.ndarray:
  """float32 linear flux (sky sigmas x sky_sigma) of `to_uint8` images.

  The stretch's inverse, to within its quantisation (half a level: 1% of
  the flux in bright cores); negative flux came out black and stays 0, and
  flux above `stretch_maximum` saturated. For photometry of stored images.
  """
  a, top = _stretch(options)
  levels = np.asarray(images, _F32) * _F32(top / 255.0)
  return (_F32(a) * np.sinh(levels)).astype(_F32)


def _stretch(options: RenderOptions) -> tuple[float, float]:
  """The asinh stretch's knee (flux units) and its top (asinh units)."""
  return (options.stretch_softening * options.sky_sigma,
          float(np.arcsinh(options.stretch_maximum /
                           options.stretch_softening)))


def render_uint8(
    morphology: Morphology,
    options: RenderOptions = RenderOptions()) -> np.ndarray:
  """to_uint8(render(...)): display-ready uint8 [n, H, W, bands]."""
  return to_uint8(render(morphology, options), options)


def _benchmark(sizes: Sequence[int], seconds: float) -> None:
  """Prints galaxies/s at each size over a GZ DECaLS-like population."""
  morphology = morph_lib.sample_morphology(2048, np.random.default_rng(0))
  threads = {v: os.environ.get(v) for v in _THREAD_ENV_VARS}
  print(f'threads: {threads}')
  for size in sizes:
    options = RenderOptions(image_size=size)
    render(morphology.take(slice(0, 64)), options)  # Warm caches.
    done, start, elapsed = 0, time.perf_counter(), 0.0
    while elapsed < seconds:
      batch = morphology.take(slice(done % 2048, done % 2048 + 256))
      render(batch, options)
      done += batch.num_galaxies
      elapsed = time.perf_counter() - start
    print(f'{size:4d} px: {done / elapsed:8.0f} galaxies/s per core '
          f'({done} galaxies in {elapsed:.1f} s)')


def _montage(path: str, count: int, size: int, seed: int) -> None:
  """Writes a grid of rendered galaxies to a PNG (needs Pillow)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  morphology = morph_lib.sample_morphology(count, np.random.default_rng(seed))
  images = render_uint8(morphology, RenderOptions(image_size=size))
  cols = int(np.ceil(np.sqrt(count)))
  rows = int(np.ceil(count / cols))
  grid = np.zeros((rows * size, cols * size, 3), np.uint8)
  for i, img in enumerate(images):
    r, c = divmod(i, cols)
    grid[r * size:(r + 1) * size, c * size:(c + 1) * size] = img[..., :3]
  Image.fromarray(grid).save(path)
  print(f'wrote {path}')


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--benchmark',
                      action='store_true',
                      help='print galaxies/s on one thread at 64 and 128 px')
  parser.add_argument('--seconds', type=float, default=3.0)
  parser.add_argument('--montage',
                      default='',
                      help='write a PNG grid of sample galaxies here')
  parser.add_argument('--count', type=int, default=64)
  parser.add_argument('--image_size', type=int, default=64)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  argv = sys.argv[1:] if argv is None else list(argv)
  if args.benchmark:
    if any(os.environ.get(v) != '1' for v in _THREAD_ENV_VARS):
      # Thread pools are sized when numpy loads: restart pinned to one.
      env = dict(os.environ, **{v: '1' for v in _THREAD_ENV_VARS})
      os.execve(sys.executable,
                [sys.executable, '-m', 'gzevo_jax.data.render', *argv], env)
    _benchmark((64, 128), args.seconds)
  if args.montage:
    _montage(args.montage, args.count, args.image_size, args.seed)


if __name__ == '__main__':
  main()

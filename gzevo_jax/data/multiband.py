"""Five-band (ugriz) synthetic galaxies at a redshift, for photo-z work.

The synthetic GZ-Evo population (`morphology.py`) describes galaxies as seen
at `REFERENCE_REDSHIFT`. Moving one to redshift z changes, consistently:

  size        its angular radius scales as D_A(z_ref) / D_A(z)
  brightness  surface brightness dims as (1 + z)^-4 (Tolman); with the
              smaller area, the renderer's whole-galaxy SNR (flux over the
              noise in its half-light area) scales as
              D_A(z_ref) (1 + z_ref)^4 / (D_A(z) (1 + z)^4)
  colour      the bands sample bluer rest-frame light as z grows, where
              galaxies are fainter: each band's flux is multiplied by
              (lambda_band / lambda_r)^(REDDENING * (z - z_ref)), renormalised
              to band mean 1, so galaxies redden with z (a k-correction-like
              tilt on top of the renderer's bulge, disk and young colours)

D_A is the angular diameter distance of a flat Lambda-CDM universe
(`OMEGA_M`), in units of the Hubble distance c / H0. Bands are stored in
the renderer's order, reddest first: z, i, r, g, u (for 3 bands the
renderer's (z, r, g) is display RGB).

`photometry` measures the stored images the way a photo-z catalogue does,
for the photometric baseline of `evaluation/photoz.py`: the display
stretch undone (`render.from_uint8`), each band's flux in a circular
aperture at the centre, then the four adjacent colours and the r magnitude
(AB-like: -2.5 log10 of the flux in sky-noise units).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gzevo_jax.data import render
from gzevo_jax.data.morphology import Morphology

BANDS = ('z', 'i', 'r', 'g', 'u')
WAVELENGTH_NM = {'u': 355.0, 'g': 469.0, 'r': 617.0, 'i': 748.0, 'z': 893.0}
REFERENCE_REDSHIFT = 0.05
REDDENING = 6.0     # Band tilt exponent per unit redshift.
OMEGA_M = 0.3
_GRID = 4096        # Integration points per distance.
# Photometry: the aperture's radius (image widths; galaxies' half-light
# radii are 0.07-0.18 at the reference redshift, smaller further away),
# and the flux floor (sky sigmas) that keeps magnitudes of faint or
# negative apertures finite.
APERTURE_RADIUS = 0.125
_FLUX_FLOOR = 1.0


def comoving_distance(z: np.ndarray) -> np.ndarray:
  """Line-of-sight comoving distance in c / H0 (flat Lambda-CDM)."""
  z = np.asarray(z, np.float64)
  t = np.linspace(0.0, 1.0, _GRID)
  zz = z[..., None] * t  # Integrate 1 / E(z') from 0 to z.
  inverse_e = 1.0 / np.sqrt(OMEGA_M * (1.0 + zz)**3 + 1.0 - OMEGA_M)
  return z * np.trapezoid(inverse_e, t, axis=-1)


def angular_diameter_distance(z: np.ndarray) -> np.ndarray:
  """D_A = D_C / (1 + z), in c / H0."""
  z = np.asarray(z, np.float64)
  return comoving_distance(z) / (1.0 + z)


def band_scale(z: np.ndarray) -> np.ndarray:
  """float32 [n, 5] per-band multipliers (BANDS order), band mean 1."""
  z = np.asarray(z, np.float64)
  ratio = np.array([WAVELENGTH_NM[b] / WAVELENGTH_NM['r'] for b in BANDS])
  tilt = ratio[None, :]**(REDDENING * (z[:, None] - REFERENCE_REDSHIFT))
  return (tilt / tilt.mean(axis=1, keepdims=True)).astype(np.float32)


def at_redshift(morphology: Morphology, z: np.ndarray) -> Morphology:
  """The galaxies moved from REFERENCE_REDSHIFT to `z`: radius and SNR."""
  z = np.asarray(z, np.float64)
  reference = angular_diameter_distance(np.float64(REFERENCE_REDSHIFT))
  distance = angular_diameter_distance(z)
  dimming = ((1.0 + REFERENCE_REDSHIFT) / (1.0 + z))**4
  return dataclasses.replace(
      morphology,
      radius=(morphology.radius * reference / distance).astype(
          morphology.radius.dtype),
      snr=(morphology.snr * reference / distance * dimming).astype(
          morphology.snr.dtype))


def sample_redshifts(n: int, rng: np.random.Generator) -> np.ndarray:
  """Redshifts like a bright spectroscopic sample: gamma-distributed,
  median about 0.1, within [0.01, 0.4]."""
  return np.clip(rng.gamma(4.0, 0.027, n), 0.01, 0.4)


def render_multiband(morphology: Morphology, z: np.ndarray,
                     options: render.RenderOptions) -> np.ndarray:
  """float32 [n, H, W, 5]: the galaxies at redshift `z`, bands z i r g u."""
  if options.bands != len(BANDS):
    raise ValueError(f'render five bands ({", ".join(BANDS)}), got '
                     f'options.bands={options.bands}')
  return render.render(at_redshift(morphology, z), options, band_scale(z))


def aperture_fluxes(flux: np.ndarray,
                    radius: float = APERTURE_RADIUS) -> np.ndarray:
  """float64 [n, bands]: the sum of linear flux [n, H, W, bands] within
  `radius` image widths of the image centre."""
  size = flux.shape[1]
  centre = np.arange(size) + 0.5 - size / 2
  inside = np.hypot(centre[:, None], centre[None, :]) < radius * size
  return np.asarray(flux, np.float64)[:, inside, :].sum(axis=1)


def photometry(images: np.ndarray,
               options: render.RenderOptions = render.RenderOptions()
               ) -> np.ndarray:
  """float64 [n, 5]: colours z-i, i-r, r-g, g-u and the r magnitude of
  stored uint8 five-band images (`options`: the stretch they were stored
  with), from aperture fluxes."""
  if images.ndim != 4 or images.shape[-1] != len(BANDS):
    raise ValueError(f'need uint8 [n, H, W, {len(BANDS)}] images (bands '
                     f'{", ".join(BANDS)}), got shape {images.shape}')
  flux = aperture_fluxes(render.from_uint8(images, options))
  magnitude = -2.5 * np.log10(np.maximum(flux, _FLUX_FLOOR))
  colours = magnitude[:, :-1] - magnitude[:, 1:]
  return np.concatenate(
      [colours, magnitude[:, BANDS.index('r'), None]], axis=1)

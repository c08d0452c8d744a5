"""True morphology of synthetic galaxies: what the renderer draws and what
simulated volunteers are asked about.

Numpy only. Every field of `Morphology` is an array of shape [n], so a
catalogue of galaxies is one `Morphology`. Sizes are fractions of the image
width, so a galaxy looks the same at 64 px and at 128 px. `sample_morphology`
draws a population whose mix loosely follows GZ DECaLS: about 40% smooth,
55% featured, a few percent artifacts.

Rings follow what is known of real ringed disks (Buta & Combes 1996, Fund.
Cosmic Phys. 17, 95; Comeron et al. 2014, A&A 562, A121, "ARRAKIS"):
  * they are a minority of disk galaxies, and much more frequent in barred
    ones: a barred face-visible disk is RING_BAR_RATIO times as likely to
    have a ring as an unbarred one (the factor 2 is our conservative choice;
    the published ratios depend on ring type and sample);
  * inner rings are the most common type (OUTER_RING_SHARE are outer); an
    inner ring sits at the end of the bar (the bar's half-length, a true
    parameter here, `bar_length`), and an outer ring at about twice that
    (1.6-2.4x the inner ring's scale: inner rings lie near the bar's inner
    4:1 resonance, outer ones near its outer Lindblad resonance, and the
    observed outer-to-inner ratio is ~2.2);
  * many are pseudo-rings made of the arms' ends: `ring_completeness` < 1 is
    the azimuthal share the ring covers (outer rings more often partial);
  * most are faint next to the disk: a full ring carries 12-45% of the
    non-bulge light (`ring` 0.25-0.9 times the renderer's 50%; a partial
    ring that times its coverage), and against the disk and bulge light
    beneath it most have a peak contrast below ~1 (`render.ring_contrast`),
    so most are subtle or invisible in a 64 px image.
Nuclear rings (well inside the bulge) are too small for 64 px images and are
not drawn; a galaxy has at most one ring.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Kinds of object.
SMOOTH, DISK, ARTIFACT = 0, 1, 2
# Bulge shapes (edge-on view).
NO_BULGE, ROUNDED_BULGE, BOXY_BULGE = 0, 1, 2
# Merger states, in GZ DECaLS DR5 order.
UNDISTURBED, MINOR_DISTURBANCE, MAJOR_DISTURBANCE, MERGER = 0, 1, 2, 3
# A disk is edge-on above this inclination (radians; 0 is face-on).
EDGE_ON_INCLINATION = np.deg2rad(75.0)
# Bar strengths at or above this are strong; above zero and below it, weak.
STRONG_BAR = 0.5
# Spiral pitch angles (degrees) below TIGHT are tight, above LOOSE are loose.
TIGHT_PITCH, LOOSE_PITCH = 15.0, 25.0
# Thickness of a disk: the projected axis ratio never drops below this.
DISK_THICKNESS = 0.12
# Share of face-visible disks with a bar, and the bar's half-length in units
# of the half-light radius (an inner ring sits at its end).
BAR_FRACTION = 0.35
BAR_LENGTH_RANGE = (0.8, 1.3)
# Ring types.
NO_RING, INNER_RING, OUTER_RING = 0, 1, 2
# P(ring | barred) / P(ring | unbarred), among face-visible disks.
RING_BAR_RATIO = 2.0
# Share of rings that are outer rings (the rest are inner rings).
OUTER_RING_SHARE = 0.3
# Radii, in half-light radii: an unbarred inner ring; an inner ring just
# outside the bar's end (times bar_length); an outer ring (times the inner
# ring's scale: bar_length when barred, else an unbarred inner radius).
INNER_RING_RANGE = (0.8, 1.3)
BAR_END_RANGE = (1.0, 1.15)
OUTER_TO_INNER_RANGE = (1.6, 2.4)
# Rings stay inside the image: ring_radius * radius <= this (image widths).
MAX_RING_EXTENT = 0.42
# Share of partial (pseudo-) rings by type, and their azimuthal coverage.
PARTIAL_RING_SHARE = {INNER_RING: 0.4, OUTER_RING: 0.6}
PARTIAL_COVERAGE_RANGE = (0.4, 0.9)
# Ring strength (share of the renderer's ring light) of a ringed galaxy.
RING_STRENGTH_RANGE = (0.25, 0.9)


@dataclasses.dataclass(frozen=True)
class Morphology:
  """True parameters of n galaxies; every field is an array of shape [n]."""
  kind: np.ndarray            # int: SMOOTH, DISK or ARTIFACT.
  radius: np.ndarray          # Half-light radius, fraction of image width.
  position_angle: np.ndarray  # Radians, of the major axis.
  snr: np.ndarray             # Signal-to-noise of the whole galaxy.
  sersic_n: np.ndarray        # Sersic index of the elliptical or the bulge.
  axis_ratio: np.ndarray      # Projected b/a: of the elliptical, or the disk.
  inclination: np.ndarray     # Disk inclination, radians (0 face-on).
  bulge_fraction: np.ndarray  # Bulge-to-total light (1 for ellipticals).
  bulge_shape: np.ndarray     # int: NO_BULGE, ROUNDED_BULGE or BOXY_BULGE.
  bar: np.ndarray             # Bar strength in [0, 1]; 0 means no bar.
  bar_length: np.ndarray      # Bar half-length in units of `radius`; 0: none.
  arm_count: np.ndarray       # int: 0 (no arms) to 6.
  arm_pitch: np.ndarray       # Pitch angle in degrees: small is tight.
  arm_strength: np.ndarray    # Arm contrast in [0, 1].
  ring: np.ndarray            # Ring strength in [0, 1]; 0 means no ring.
  ring_radius: np.ndarray     # Ring radius in units of `radius`.
  ring_type: np.ndarray       # int: NO_RING, INNER_RING or OUTER_RING.
  ring_completeness: np.ndarray  # Azimuthal coverage: 1 full, <1 partial.
  clump_count: np.ndarray     # int: star-forming clumps in the disk, 0-8.
  merger: np.ndarray          # int: UNDISTURBED ... MERGER.
  star: np.ndarray            # bool: a bright foreground star in the image.
  trail: np.ndarray           # bool: a satellite trail across the image.
  seed: np.ndarray            # uint32: the renderer's per-galaxy stream.

  @property
  def num_galaxies(self) -> int:
    return int(self.kind.shape[0])

  @property
  def edge_on(self) -> np.ndarray:
    return (self.kind == DISK) & (self.inclination >= EDGE_ON_INCLINATION)

  @property
  def has_ring(self) -> np.ndarray:
    """bool [n]: a ring is drawn (strength, radius and coverage above 0)."""
    return (self.ring > 0) & (self.ring_radius > 0) & (
        self.ring_completeness > 0)

  def take(self, index: np.ndarray) -> 'Morphology':
    """The galaxies at `index` (an index array or boolean mask)."""
    return Morphology(**{f.name: getattr(self, f.name)[index]
                         for f in dataclasses.fields(self)})

  def to_dict(self) -> dict[str, np.ndarray]:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def concatenate(parts: list[Morphology]) -> Morphology:
  """One Morphology holding the galaxies of all `parts`, in order."""
  return Morphology(**{
      f.name: np.concatenate([getattr(p, f.name) for p in parts])
      for f in dataclasses.fields(Morphology)})


def ring_chances(ring_probability: float) -> tuple[float, float]:
  """(P(ring | unbarred), P(ring | barred)) among face-visible disks.

  Their mean over the bar fraction is `ring_probability`. Barred disks are
  RING_BAR_RATIO times as likely to be ringed, unless that would need
  P(ring | barred) > 1: then every barred disk is ringed and unbarred ones
  make up the rest (the ratio falls, the mean stays).
  """
  p = float(np.clip(ring_probability, 0.0, 1.0))
  unbarred = p / (1.0 + (RING_BAR_RATIO - 1.0) * BAR_FRACTION)
  barred = RING_BAR_RATIO * unbarred
  if barred > 1.0:
    barred, unbarred = 1.0, (p - BAR_FRACTION) / (1.0 - BAR_FRACTION)
  return unbarred, barred


def _sample_rings(face_visible: np.ndarray, barred: np.ndarray,
                  bar_length: np.ndarray, radius: np.ndarray,
                  ring_probability: float,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Rings coupled to bars (see the module docstring): the ring fields."""
  n = face_visible.shape[0]
  p_unbarred, p_barred = ring_chances(ring_probability)
  ringed = face_visible & (rng.random(n) < np.where(barred, p_barred,
                                                    p_unbarred))
  outer = ringed & (rng.random(n) < OUTER_RING_SHARE)
  ring_type = np.where(ringed, np.where(outer, OUTER_RING, INNER_RING),
                       NO_RING)
  inner_scale = np.where(barred, bar_length,
                         rng.uniform(*INNER_RING_RANGE, n))
  inner_radius = np.where(barred, bar_length * rng.uniform(*BAR_END_RANGE, n),
                          inner_scale)
  outer_radius = inner_scale * rng.uniform(*OUTER_TO_INNER_RANGE, n)
  ring_radius = np.minimum(np.where(outer, outer_radius, inner_radius),
                           MAX_RING_EXTENT / radius)
  partial_share = np.where(outer, PARTIAL_RING_SHARE[OUTER_RING],
                           PARTIAL_RING_SHARE[INNER_RING])
  partial = ringed & (rng.random(n) < partial_share)
  ring_completeness = np.where(
      ringed, np.where(partial, rng.uniform(*PARTIAL_COVERAGE_RANGE, n), 1.0),
      0.0)
  return dict(ring=np.where(ringed, rng.uniform(*RING_STRENGTH_RANGE, n), 0.0),
              ring_radius=np.where(ringed, ring_radius, 0.0),
              ring_type=ring_type.astype(np.int32),
              ring_completeness=ring_completeness)


def _sample_shapes(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Kind, size, inclination and projected axis ratio of n galaxies."""
  kind = rng.choice([SMOOTH, DISK, ARTIFACT], size=n, p=[0.40, 0.57, 0.03])
  disk = kind == DISK
  smooth = kind == SMOOTH
  radius = rng.uniform(0.07, 0.18, n)
  inclination = np.where(disk, np.arccos(rng.uniform(0.0, 1.0, n)), 0.0)
  elliptical_q = rng.uniform(0.3, 1.0, n)
  disk_q = np.maximum(np.cos(inclination), DISK_THICKNESS)
  axis_ratio = np.where(disk, disk_q, np.where(smooth, elliptical_q, 1.0))
  return dict(kind=kind.astype(np.int32), radius=radius,
              inclination=inclination, axis_ratio=axis_ratio)


def _sample_bulges(disk: np.ndarray,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Bulge light and shape: disks vary, everything else is all bulge."""
  n = disk.shape[0]
  bulge_fraction = np.where(disk, rng.beta(1.6, 2.4, n), 1.0)
  shape_draw = rng.random(n)
  bulge_shape = np.where(
      bulge_fraction < 0.08, NO_BULGE,
      np.where(shape_draw < 0.25, BOXY_BULGE, ROUNDED_BULGE))
  bulge_shape = np.where(disk, bulge_shape, ROUNDED_BULGE)
  return dict(bulge_fraction=bulge_fraction,
              bulge_shape=bulge_shape.astype(np.int32))


def _sample_bars(face_visible: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Bar strength and half-length; only face-visible disks have bars."""
  n = face_visible.shape[0]
  barred = face_visible & (rng.random(n) < BAR_FRACTION)
  bar = np.where(barred, rng.uniform(0.2, 1.0, n), 0.0)
  bar_length = np.where(barred, rng.uniform(*BAR_LENGTH_RANGE, n), 0.0)
  return dict(bar=bar, bar_length=bar_length)


def _sample_arms(face_visible: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Spiral arm count, pitch and contrast of face-visible spirals."""
  n = face_visible.shape[0]
  spiral = face_visible & (rng.random(n) < 0.7)
  arm_count = np.where(spiral,
                       rng.choice([1, 2, 3, 4, 5, 6], size=n,
                                  p=[0.08, 0.5, 0.2, 0.1, 0.07, 0.05]), 0)
  arm_pitch = np.where(spiral, rng.uniform(8.0, 40.0, n), 0.0)
  arm_strength = np.where(spiral, rng.uniform(0.3, 1.0, n), 0.0)
  return dict(arm_count=arm_count.astype(np.int32), arm_pitch=arm_pitch,
              arm_strength=arm_strength)


def _sample_clumps(face_visible: np.ndarray,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Star-forming clumps of a few face-visible disks."""
  n = face_visible.shape[0]
  clumpy = face_visible & (rng.random(n) < 0.15)
  clump_count = np.where(clumpy, rng.integers(1, 9, n), 0)
  return dict(clump_count=clump_count.astype(np.int32))


def _sample_disturbances(kind: np.ndarray,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Merger state, and the star or trail in the image.

  An artifact is undisturbed and has exactly one of a star or a trail.
  """
  n = kind.shape[0]
  merger = rng.choice([UNDISTURBED, MINOR_DISTURBANCE, MAJOR_DISTURBANCE,
                       MERGER], size=n, p=[0.82, 0.09, 0.05, 0.04])
  merger = np.where(kind == ARTIFACT, UNDISTURBED, merger)
  artifact = kind == ARTIFACT
  artifact_is_star = rng.random(n) < 0.6
  star = np.where(artifact, artifact_is_star, rng.random(n) < 0.05)
  trail = np.where(artifact, ~artifact_is_star, rng.random(n) < 0.02)
  return dict(merger=merger.astype(np.int32), star=star.astype(bool),
              trail=trail.astype(bool))


def _sample_view(disk: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Orientation, brightness, Sersic index and the renderer's seed."""
  n = disk.shape[0]
  return dict(
      position_angle=rng.uniform(0.0, np.pi, n),
      snr=np.exp(rng.uniform(np.log(15.0), np.log(400.0), n)),
      sersic_n=np.where(disk, rng.uniform(1.0, 4.0, n),
                        rng.uniform(2.5, 5.0, n)),
      seed=rng.integers(0, 2**32, n, dtype=np.uint32))


def sample_morphology(n: int, rng: np.random.Generator,
                      ring_probability: float = 0.2) -> Morphology:
  """Draws n galaxies from a GZ DECaLS-like population.

  Args:
    n: number of galaxies.
    rng: random stream; the same stream gives the same galaxies.
    ring_probability: the share of face-visible (not edge-on) disks with a
      ring, on average over barred and unbarred ones (`ring_chances`). The
      default 0.2 is a minority, as in disk galaxies of the nearby universe
      (deep near-infrared surveys find more, shallow optical ones fewer); the
      downstream rings task raises it to make the classes less unbalanced.
  """
  # The draws happen in this order; changing it changes every catalogue.
  shapes = _sample_shapes(n, rng)
  disk = shapes['kind'] == DISK
  face_visible = disk & (shapes['inclination'] < EDGE_ON_INCLINATION)
  bulges = _sample_bulges(disk, rng)
  bars = _sample_bars(face_visible, rng)
  arms = _sample_arms(face_visible, rng)
  rings = _sample_rings(face_visible, bars['bar'] > 0, bars['bar_length'],
                        shapes['radius'], ring_probability, rng)
  clumps = _sample_clumps(face_visible, rng)
  disturbances = _sample_disturbances(shapes['kind'], rng)
  view = _sample_view(disk, rng)
  return Morphology(**shapes, **bulges, **bars, **arms, **rings, **clumps,
                    **disturbances, **view)

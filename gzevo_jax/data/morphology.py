"""True morphology of synthetic galaxies: what the renderer draws and what
simulated volunteers are asked about.

Numpy only. Every field of `Morphology` is an array of shape [n], so a
catalogue of galaxies is one `Morphology`. Sizes are fractions of the image
width, so a galaxy looks the same at 64 px and at 128 px. `sample_morphology`
draws a population whose mix loosely follows GZ DECaLS: about 40% smooth,
55% featured, a few percent artifacts.
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
  arm_count: np.ndarray       # int: 0 (no arms) to 6.
  arm_pitch: np.ndarray       # Pitch angle in degrees: small is tight.
  arm_strength: np.ndarray    # Arm contrast in [0, 1].
  ring: np.ndarray            # Ring strength in [0, 1]; 0 means no ring.
  ring_radius: np.ndarray     # Ring radius in units of `radius`.
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


def sample_morphology(n: int, rng: np.random.Generator,
                      ring_probability: float = 0.12) -> Morphology:
  """Draws n galaxies from a GZ DECaLS-like population.

  Args:
    n: number of galaxies.
    rng: random stream; the same stream gives the same galaxies.
    ring_probability: chance a non-edge-on disk has a ring (the downstream
      rings task raises it to make the classes less unbalanced).
  """
  kind = rng.choice([SMOOTH, DISK, ARTIFACT], size=n, p=[0.40, 0.57, 0.03])
  disk = kind == DISK
  smooth = kind == SMOOTH
  inclination = np.where(disk, np.arccos(rng.uniform(0.0, 1.0, n)), 0.0)
  face_visible = disk & (inclination < EDGE_ON_INCLINATION)
  elliptical_q = rng.uniform(0.3, 1.0, n)
  disk_q = np.maximum(np.cos(inclination), DISK_THICKNESS)
  axis_ratio = np.where(disk, disk_q, np.where(smooth, elliptical_q, 1.0))

  bulge_fraction = np.where(disk, rng.beta(1.6, 2.4, n), 1.0)
  shape_draw = rng.random(n)
  bulge_shape = np.where(
      bulge_fraction < 0.08, NO_BULGE,
      np.where(shape_draw < 0.25, BOXY_BULGE, ROUNDED_BULGE))
  bulge_shape = np.where(disk, bulge_shape, ROUNDED_BULGE)

  barred = face_visible & (rng.random(n) < 0.35)
  bar = np.where(barred, rng.uniform(0.2, 1.0, n), 0.0)
  spiral = face_visible & (rng.random(n) < 0.7)
  arm_count = np.where(spiral,
                       rng.choice([1, 2, 3, 4, 5, 6], size=n,
                                  p=[0.08, 0.5, 0.2, 0.1, 0.07, 0.05]), 0)
  arm_pitch = np.where(spiral, rng.uniform(8.0, 40.0, n), 0.0)
  arm_strength = np.where(spiral, rng.uniform(0.3, 1.0, n), 0.0)
  ringed = face_visible & (rng.random(n) < ring_probability)
  ring = np.where(ringed, rng.uniform(0.3, 1.0, n), 0.0)
  ring_radius = np.where(ringed, rng.uniform(1.0, 2.2, n), 0.0)
  clumpy = face_visible & (rng.random(n) < 0.15)
  clump_count = np.where(clumpy, rng.integers(1, 9, n), 0)

  merger = rng.choice([UNDISTURBED, MINOR_DISTURBANCE, MAJOR_DISTURBANCE,
                       MERGER], size=n, p=[0.82, 0.09, 0.05, 0.04])
  merger = np.where(kind == ARTIFACT, UNDISTURBED, merger)
  artifact = kind == ARTIFACT
  artifact_is_star = rng.random(n) < 0.6
  star = np.where(artifact, artifact_is_star, rng.random(n) < 0.05)
  trail = np.where(artifact, ~artifact_is_star, rng.random(n) < 0.02)
  return Morphology(
      kind=kind.astype(np.int32),
      radius=rng.uniform(0.07, 0.18, n),
      position_angle=rng.uniform(0.0, np.pi, n),
      snr=np.exp(rng.uniform(np.log(15.0), np.log(400.0), n)),
      sersic_n=np.where(disk, rng.uniform(1.0, 4.0, n),
                        rng.uniform(2.5, 5.0, n)),
      axis_ratio=axis_ratio,
      inclination=inclination,
      bulge_fraction=bulge_fraction,
      bulge_shape=bulge_shape.astype(np.int32),
      bar=bar,
      arm_count=arm_count.astype(np.int32),
      arm_pitch=arm_pitch,
      arm_strength=arm_strength,
      ring=ring,
      ring_radius=ring_radius,
      clump_count=clump_count.astype(np.int32),
      merger=merger.astype(np.int32),
      star=star.astype(bool),
      trail=trail.astype(bool),
      seed=rng.integers(0, 2**32, n, dtype=np.uint32),
  )

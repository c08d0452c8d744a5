"""Tests for the synthetic galaxy renderer."""

import numpy as np
import pytest
from scipy import ndimage
from scipy import special

from gzevo_jax.data import morphology as ml
from gzevo_jax.data import render as rd

NOISELESS = rd.RenderOptions(sky_noise=False)
Z, R, G = 0, 1, 2  # Band order for 3 bands.


def morph(n=1, **overrides):
  """A bright, face-on, undisturbed disk, with fields overridden."""
  fields = dict(kind=ml.DISK,
                radius=0.12,
                position_angle=0.5,
                snr=300.0,
                sersic_n=2.5,
                axis_ratio=1.0,
                inclination=0.0,
                bulge_fraction=0.3,
                bulge_shape=ml.ROUNDED_BULGE,
                bar=0.0,
                bar_length=1.25,
                arm_count=0,
                arm_pitch=0.0,
                arm_strength=0.0,
                ring=0.0,
                ring_radius=0.0,
                ring_type=ml.NO_RING,
                ring_completeness=1.0,
                clump_count=0,
                merger=ml.UNDISTURBED,
                star=False,
                trail=False,
                seed=7)
  fields.update(overrides)
  return ml.Morphology(**{
      k: np.broadcast_to(np.asarray(v), (n,)).copy() for k, v in fields.items()
  })


def one(options=NOISELESS, **overrides):
  """Renders one galaxy: [H, W, bands]."""
  return rd.render(morph(**overrides), options)[0]


def radius_grid(size):
  """Distance of each pixel centre from the galaxy centre, in pixels."""
  c = np.arange(size) + 0.5 - size / 2
  return np.hypot(c[:, None], c[None, :])


def axis_ratio(image):
  """sqrt(minor / major) eigenvalue of the flux-weighted second moments."""
  c = np.arange(image.shape[0]) + 0.5 - image.shape[0] / 2
  yy, xx = np.meshgrid(c, c, indexing='ij')
  w = np.clip(image, 0, None)
  w = w / w.sum()
  cov = [[np.sum(w * xx * xx), np.sum(w * xx * yy)],
         [np.sum(w * xx * yy), np.sum(w * yy * yy)]]
  lo, hi = np.linalg.eigvalsh(cov)
  return np.sqrt(lo / hi)


def azimuthal_profile(band_image, radius_px, bins=36):
  """Mean flux in `bins` azimuth sectors of a thin annulus at radius_px."""
  size = band_image.shape[0]
  c = np.arange(size) + 0.5 - size / 2
  yy, xx = np.meshgrid(c, c, indexing='ij')
  ring = np.abs(np.hypot(xx, yy) - radius_px) < 1.0
  sector = ((np.arctan2(yy, xx)[ring] + np.pi) / (2 * np.pi) * bins).astype(int)
  sums = np.bincount(sector % bins, band_image[ring], bins)
  return sums / np.bincount(sector % bins, minlength=bins)


@pytest.mark.parametrize('size,bands', [(64, 3), (128, 3), (32, 1), (48, 5)])
def test_shapes_dtypes_and_uint8(size, bands):
  m = ml.sample_morphology(12, np.random.default_rng(1))
  options = rd.RenderOptions(image_size=size, bands=bands)
  images = rd.render(m, options)
  assert images.shape == (12, size, size, bands)
  assert images.dtype == np.float32
  assert np.all(np.isfinite(images))
  display = rd.render_uint8(m, options)
  assert display.shape == images.shape and display.dtype == np.uint8
  np.testing.assert_array_equal(display, rd.to_uint8(images, options))
  assert rd.render(m.take(np.arange(0)),
                   options).shape == (0, size, size, bands)


def test_to_uint8_is_a_monotonic_asinh_stretch():
  options = rd.RenderOptions()
  flux = np.linspace(-5, 2 * options.stretch_maximum, 2000, dtype=np.float32)
  out = rd.to_uint8(flux.reshape(1, -1, 1, 1), options).ravel()
  assert np.all(np.diff(out.astype(int)) >= 0)
  assert out[0] == 0 and out[-1] == 255
  # asinh: 1 sigma already visible, but far from white.
  one_sigma = rd.to_uint8(np.ones((1, 1, 1, 1), np.float32), options)
  assert 10 < one_sigma.item() < 60


def test_from_uint8_undoes_the_stretch_to_within_half_a_level():
  options = rd.RenderOptions()
  flux = np.geomspace(0.5, options.stretch_maximum, 400).astype(np.float32)
  back = rd.from_uint8(rd.to_uint8(flux.reshape(1, -1, 1, 1), options),
                       options).ravel()
  # On the stretch's own scale the two differ by at most half a level.
  a = options.stretch_softening * options.sky_sigma
  per_level = np.arcsinh(options.stretch_maximum /
                         options.stretch_softening) / 255.0
  levels = lambda f: np.arcsinh(f / a) / per_level
  assert np.max(np.abs(levels(back) - levels(flux))) <= 0.5 + 1e-3
  assert np.median(np.abs(back / flux - 1)) < 0.02
  black = rd.from_uint8(np.zeros((1, 1, 1, 1), np.uint8), options)
  assert black.item() == 0.0


def test_same_seed_same_image_different_seed_different():
  m = ml.sample_morphology(8, np.random.default_rng(2))
  a, b = rd.render(m), rd.render(m)
  np.testing.assert_array_equal(a, b)
  other = ml.Morphology(**{**m.to_dict(), 'seed': m.seed + 1})
  c = rd.render(other)
  assert all(np.abs(a[i] - c[i]).mean() > 0.5 for i in range(8))


def test_galaxy_alone_equals_galaxy_in_any_batch():
  m = ml.sample_morphology(300, np.random.default_rng(3))
  featured = [
      np.flatnonzero(m.star)[0],
      np.flatnonzero(m.trail)[0],
      np.flatnonzero(m.merger == ml.MERGER)[0],
      np.flatnonzero(m.merger == ml.MAJOR_DISTURBANCE)[0],
      np.flatnonzero(m.clump_count > 0)[0],
      np.flatnonzero(m.bar > 0)[0],
      np.flatnonzero(m.ring > 0)[0],
      np.flatnonzero(m.arm_count > 0)[0],
      np.flatnonzero(m.bulge_shape == ml.BOXY_BULGE)[0],
      np.flatnonzero(m.kind == ml.ARTIFACT)[0]
  ]
  batch = m.take(np.arange(max(featured) + 1))
  whole = rd.render(batch, rd.RenderOptions(chunk_size=37))
  shuffled = np.random.default_rng(0).permutation(batch.num_galaxies)
  in_shuffle = rd.render(batch.take(shuffled))
  for i in featured:
    alone = rd.render(batch.take(np.array([i])))[0]
    np.testing.assert_array_equal(alone, whole[i])
    np.testing.assert_array_equal(alone,
                                  in_shuffle[np.flatnonzero(shuffled == i)[0]])


def test_sersic_b_matches_scipy():
  n = np.linspace(0.5, 10.0, 60)
  exact = special.gammaincinv(2 * n, 0.5)
  np.testing.assert_allclose(rd.sersic_b(n), exact, rtol=4e-4)
  np.testing.assert_allclose(rd.sersic_b(n[n >= 1]), exact[n >= 1], rtol=3e-5)
  np.testing.assert_allclose(rd.sersic_b(0.3),
                             special.gammaincinv(0.6, 0.5),
                             rtol=0.05)


def test_psf_convolution_matches_scipy_and_conserves_flux():
  options = rd.RenderOptions(image_size=32, psf_fwhm=0.1)
  images = np.random.default_rng(0).gamma(0.5, size=(2, 32, 32, 3))
  out = rd.apply_psf(images, options)
  kernel = rd.psf_kernel(options)
  assert kernel.shape == (32, 32) and np.isclose(kernel.sum(), 1.0)
  assert np.unravel_index(kernel.argmax(), kernel.shape) == (16, 16)
  for i in range(2):
    for b in range(3):
      reference = ndimage.convolve(images[i, ..., b], kernel, mode='wrap')
      np.testing.assert_allclose(out[i, ..., b],
                                 reference,
                                 rtol=1e-4,
                                 atol=1e-5)
  np.testing.assert_allclose(out.sum(axis=(1, 2)),
                             images.sum(axis=(1, 2)),
                             rtol=1e-5)


def test_psf_has_the_requested_fwhm():
  options = rd.RenderOptions(image_size=256, psf_fwhm=0.05)
  kernel = rd.psf_kernel(options)
  row = kernel[128, 128:] / kernel[128, 128]
  half_width = np.interp(0.5, row[::-1], np.arange(128)[::-1])
  assert half_width == pytest.approx(0.05 * 256 / 2, rel=0.02)


@pytest.mark.parametrize('sky_sigma', [1.0, 2.5])
def test_noise_and_flux_follow_the_snr_definition(sky_sigma):
  n = 6
  m = morph(n,
            kind=np.array([ml.SMOOTH, ml.DISK] * 3),
            snr=np.array([15.0, 30, 60, 120, 240, 400]),
            radius=np.linspace(0.05, 0.16, n),
            axis_ratio=np.linspace(0.3, 1.0, n),
            seed=np.arange(n))
  noisy = rd.render(m, rd.RenderOptions(sky_sigma=sky_sigma))
  clean = rd.render(m, rd.RenderOptions(sky_sigma=sky_sigma, sky_noise=False))
  noise = noisy - clean
  np.testing.assert_allclose(noise.std(axis=(1, 2)), sky_sigma, rtol=0.04)
  assert np.abs(noise.mean()) < 0.02 * sky_sigma
  n_e = np.pi * m.axis_ratio * (m.radius * 64)**2
  expected = m.snr * sky_sigma * np.sqrt(n_e)
  np.testing.assert_allclose(clean.sum(axis=(1, 2)).mean(-1),
                             expected,
                             rtol=1e-4)


def test_edge_on_disks_are_elongated():
  face_on = one(inclination=0.0, axis_ratio=1.0)
  edge_on = one(inclination=np.deg2rad(85), axis_ratio=ml.DISK_THICKNESS)
  assert axis_ratio(face_on[..., R]) > 0.9
  assert axis_ratio(edge_on[..., R]) < 0.45


def test_bulge_is_redder_and_rounder_than_the_disk():
  face_on = one(bulge_fraction=0.3)
  r = radius_grid(64)
  colour = face_on[..., Z] / face_on[..., G]
  inner, outer = colour[r < 2].mean(), colour[(r > 12) & (r < 18)].mean()
  assert inner > 1.3 * outer
  inclined = dict(inclination=np.deg2rad(70),
                  axis_ratio=np.cos(np.deg2rad(70)),
                  bulge_fraction=0.4,
                  position_angle=0.0)
  image = one(**inclined)
  disk_only = one(bulge_shape=ml.NO_BULGE, **inclined)
  bulge_only = image - one(bulge_shape=ml.NO_BULGE,
                           **{
                               **inclined, 'bulge_fraction': 0.0
                           }) * 0.6
  assert axis_ratio(bulge_only[..., R]) > axis_ratio(disk_only[..., R]) + 0.2


def test_boxy_bulges_are_boxier_than_rounded_ones():
  options = rd.RenderOptions(image_size=128, sky_noise=False, psf_fwhm=0.005)

  def diagonal_excess(shape):
    # Flux on the bulge's diagonal relative to straight above the centre.
    image = one(options,
                bulge_shape=shape,
                inclination=np.deg2rad(88),
                axis_ratio=ml.DISK_THICKNESS,
                bulge_fraction=0.6,
                position_angle=0.0,
                radius=0.15)[..., R]
    return image[64 + 5, 64 + 7] / image[64 + 5, 64]

  assert diagonal_excess(
      ml.BOXY_BULGE) > 1.2 * diagonal_excess(ml.ROUNDED_BULGE)


def test_strong_ring_gives_a_bump_at_the_ring_radius():
  ringed = one(ring=1.0, ring_radius=1.8)
  plain = one(ring=0.0, ring_radius=1.8)
  r = radius_grid(64)
  bins = np.arange(0, 30)
  which = np.digitize(r, bins)

  def profile(image):
    return np.array(
        [image[..., R][which == k].mean() for k in range(1, len(bins))])

  ratio = profile(ringed) / profile(plain)
  ring_px = 1.8 * 0.12 * 64
  assert abs(bins[np.argmax(ratio)] + 0.5 - ring_px) < 2.0
  assert ratio.max() > 2.5
  # The ring is a local maximum of the ringed galaxy's own profile.
  own = profile(ringed)
  k = int(ring_px)
  assert own[k] > own[k - 4]


def test_a_partial_ring_lights_only_its_share_of_the_azimuth():
  kw = dict(bulge_fraction=0.2, ring=0.5, ring_radius=1.8)
  ring_px = 1.8 * 0.12 * 64
  full = azimuthal_profile(one(ring_completeness=1.0, **kw)[..., R], ring_px)
  partial = azimuthal_profile(one(ring_completeness=0.5, **kw)[..., R],
                              ring_px)
  assert full.min() > 0.85 * full.max()  # A closed ring is even all round.
  # The arc's side is several times brighter than the gap's side ...
  assert partial.max() > 2.5 * partial.min()
  # ... and the arc covers about half the azimuth (smooth ends included).
  lit = partial > 0.5 * (partial.max() + partial.min())
  assert 0.35 < lit.mean() < 0.65
  # Within the arc the ring is as bright as the full ring of equal strength.
  assert partial.max() == pytest.approx(full.max(), rel=0.1)


def test_ring_light_comes_out_of_the_disk_budget():
  kw = dict(bulge_fraction=0.3, ring=0.6, ring_radius=1.4)
  total = [one(ring_completeness=c, **kw).sum() for c in (1.0, 0.5)]
  total.append(one(**{**kw, 'ring': 0.0}).sum())
  np.testing.assert_allclose(total, total[-1], rtol=1e-3)
  # And the ring's own light scales with its coverage.
  m = morph(n=2, ring=0.6, ring_radius=1.4, ring_completeness=[1.0, 0.5])
  _, ring_light, _, _ = rd._disk_light_budget(m, {'clump_flux': np.zeros(
      (2, 8))})
  assert ring_light[1] == pytest.approx(0.5 * ring_light[0])


@pytest.mark.parametrize('bar_length', [0.9, 1.3])
def test_an_inner_ring_sits_at_the_rendered_bar_end(bar_length):
  """The renderer draws the bar Morphology.bar_length long, where the
  population puts inner rings (morphology.BAR_END_RANGE)."""
  kw = dict(bulge_fraction=0.1, bar=0.8, bar_length=bar_length, radius=0.14,
            position_angle=0.0)
  barred = one(**kw)[..., R]
  angle = np.pi * rd._streams(np.array([7], np.uint32), NOISELESS,
                              None)['bar_angle'][0]
  t = np.arange(0.0, 20.0, 0.25)  # Pixels from the centre.
  centre = 31.5
  along = ndimage.map_coordinates(
      barred, [centre + t * np.sin(angle), centre + t * np.cos(angle)],
      order=1)
  across = ndimage.map_coordinates(
      barred, [centre + t * np.cos(angle), centre - t * np.sin(angle)],
      order=1)
  bar_light = along - across  # The disk is round: what is left is the bar.
  bar_end = t[np.flatnonzero(bar_light > 0.02 * bar_light.max()).max()]
  expected = bar_length * 0.14 * 64
  assert abs(bar_end - expected) < 1.0
  # An inner ring at the bar's end peaks there.
  ring_radius = bar_length * 1.05
  ringed = one(ring=0.5, ring_radius=ring_radius, **kw)[..., R]
  r = radius_grid(64)
  bins = np.arange(0, 30)
  which = np.digitize(r, bins)
  ratio = [ringed[which == k].mean() / barred[which == k].mean()
           for k in range(1, len(bins))]
  ring_peak = bins[int(np.argmax(ratio))] + 0.5
  assert abs(ring_peak - bar_end) < 2.0


@pytest.mark.parametrize('ring_radius,bulge,strength', [(0.9, 0.2, 0.5),
                                                        (1.2, 0.4, 0.5),
                                                        (2.0, 0.2, 0.3),
                                                        (2.4, 0.3, 0.4)])
def test_ring_contrast_matches_the_render(ring_radius, bulge, strength):
  kw = dict(bulge_fraction=bulge, ring=strength, ring_radius=ring_radius,
            sersic_n=2.0)
  m = morph(**kw)
  ringed = one(**kw).mean(-1)
  plain = one(**{**kw, 'ring': 0.0}).mean(-1)
  annulus = np.abs(radius_grid(64) - ring_radius * 0.12 * 64) < 0.5
  # The ring's light comes out of the disk: what lies beneath it is the
  # plain galaxy less that share of its disk there.
  h = 0.12 / 1.6783
  flux = rd.galaxy_flux(m, NOISELESS)[0]
  disk_here = (flux / 64**2 * (1 - bulge) / (2 * np.pi * h**2) *
               np.exp(-ring_radius * 0.12 / h))
  beneath = plain[annulus].mean() - disk_here * 0.5 * strength
  measured = (ringed[annulus].mean() - beneath) / beneath
  assert rd.ring_contrast(m)[0] == pytest.approx(measured, rel=0.3)
  assert rd.ring_contrast(morph(**{**kw, 'ring': 0.0}))[0] == 0.0


def test_ring_contrast_counts_the_sky_noise_beneath():
  m = morph(n=3, ring=0.4, ring_radius=1.8, snr=[30.0, 100.0, 1000.0])
  clean = rd.ring_contrast(m)
  noisy = rd.ring_contrast(m, sky_sigmas=2.0)
  np.testing.assert_allclose(clean, clean[0])  # Contrast: no snr in it.
  assert noisy[0] < noisy[1] < noisy[2] < clean[0]
  assert noisy[2] > 0.9 * clean[2]
  np.testing.assert_allclose(
      rd.ring_contrast(m, NOISELESS, sky_sigmas=2.0), clean)


@pytest.mark.parametrize('arms', [1, 2, 3, 4])
def test_arm_count_is_the_dominant_azimuthal_mode(arms):
  image = one(arm_count=arms,
              arm_pitch=20.0,
              arm_strength=0.8,
              options=rd.RenderOptions(image_size=128, sky_noise=False))
  ring = azimuthal_profile(image[..., R], 1.2 * 0.12 * 128, bins=48)
  power = np.abs(np.fft.rfft(ring))[1:8]
  assert np.argmax(power) + 1 == arms


def test_stronger_arms_vary_more_with_azimuth():
  variation = []
  for strength in (0.0, 0.3, 1.0):
    image = one(arm_count=2, arm_pitch=15.0, arm_strength=strength)
    ring = azimuthal_profile(image[..., R], 1.2 * 0.12 * 64)
    variation.append(ring.std() / ring.mean())
  assert variation[0] < 0.05  # Pixelisation of a thin annulus.
  assert variation[0] < variation[1] < variation[2]
  assert variation[2] > 0.3


def test_arms_are_bluer_than_the_inter_arm_disk():
  image = one(arm_count=2, arm_pitch=15.0, arm_strength=1.0)
  ring_g = azimuthal_profile(image[..., G], 1.2 * 0.12 * 64)
  ring_z = azimuthal_profile(image[..., Z], 1.2 * 0.12 * 64)
  arm, inter = np.argmax(ring_g), np.argmin(ring_g)
  assert ring_g[arm] / ring_z[arm] > ring_g[inter] / ring_z[inter]


def test_bar_elongates_the_centre():
  kw = dict(bulge_fraction=0.1, radius=0.12)
  r = radius_grid(64)
  centre = r < 1.3 * 0.12 * 64
  plain, barred = one(**kw), one(bar=1.0, **kw)
  assert axis_ratio(np.where(centre, plain[..., R], 0)) > 0.95
  assert axis_ratio(np.where(centre, barred[..., R], 0)) < 0.9
  weak = one(bar=0.3, **kw)
  assert (axis_ratio(np.where(centre, barred[..., R], 0))
          < axis_ratio(np.where(centre, weak[..., R], 0)))


def test_star_adds_a_compact_bright_peak():
  without, with_star = one(), one(star=True)
  diff = (with_star - without).sum(-1)
  assert diff.min() > -1e-3
  peak = np.unravel_index(np.argmax(diff), diff.shape)
  box = diff[peak[0] - 2:peak[0] + 3, peak[1] - 2:peak[1] + 3]
  assert diff.max() > 20.0
  assert box.sum() > 0.8 * diff.sum()
  # Away from the galaxy's centre.
  assert np.hypot(peak[0] - 31.5, peak[1] - 31.5) > 0.15 * 64


def test_artifacts_dominate_a_faint_galaxy():
  smooth = dict(kind=ml.SMOOTH, sersic_n=3.0, bulge_fraction=1.0)
  galaxy = one(**smooth).sum()
  faint = one(**{**smooth, 'kind': ml.ARTIFACT})
  assert faint.sum() == pytest.approx(0.05 * galaxy, rel=1e-3)
  for artifact in (dict(star=True), dict(trail=True)):
    image = one(**{**smooth, 'kind': ml.ARTIFACT, **artifact})
    assert (image - faint).sum() > 1.5 * faint.sum()
    assert image.max() > 3 * faint.max()


def test_trail_adds_a_line_across_the_image():
  diff = (one(trail=True) - one()).max(-1)
  ys, xs = np.nonzero(diff > 0.5 * diff.max())
  cov = np.cov(np.stack([xs, ys]))
  lo, hi = np.linalg.eigvalsh(cov)
  assert np.sqrt(lo / hi) < 0.05
  assert max(np.ptp(xs), np.ptp(ys)) > 0.9 * 64
  # A single band carries it.
  per_band = (one(trail=True) - one()).sum(axis=(0, 1))
  assert np.sort(per_band)[-2] < 1e-3 * per_band.max()


def test_clumps_add_blue_light():
  diff = one(clump_count=8) - one()
  added = np.clip(diff, 0, None).sum(axis=(0, 1))
  assert added[G] > 1.3 * added[Z]
  assert added.mean() > 0.1 * one().sum(-1).mean() * 64 * 64 * 0.2


@pytest.mark.parametrize('kind', [ml.SMOOTH, ml.DISK])
def test_disturbances_add_asymmetry(kind):

  def asymmetry(image):
    image = image.sum(-1)
    return np.abs(image - image[::-1, ::-1]).sum() / image.sum()

  kw = dict(kind=kind, sersic_n=3.0, axis_ratio=0.8, bulge_fraction=0.3)
  values = [asymmetry(one(merger=state, **kw)) for state in range(4)]
  assert values[0] < 0.01
  assert min(values[1:]) > 0.05
  assert values[3] > values[1]


def test_lower_snr_hides_features():

  def visibility(snr):
    options = rd.RenderOptions()
    noisy = one(options, ring=1.0, ring_radius=1.8, snr=snr)
    clean = one(ring=1.0, ring_radius=1.8, snr=snr)
    return clean.max() / (noisy - clean).std()

  assert visibility(20.0) < visibility(80.0) / 3.5


def test_same_galaxy_at_two_resolutions_looks_the_same():
  m = morph(arm_count=2,
            arm_pitch=20.0,
            arm_strength=0.8,
            bar=0.6,
            position_angle=1.0)
  small = rd.render(m, rd.RenderOptions(image_size=64, sky_noise=False))[0]
  big = rd.render(m, rd.RenderOptions(image_size=128, sky_noise=False))[0]
  pooled = big.reshape(64, 2, 64, 2, 3).sum(axis=(1, 3))
  corr = np.corrcoef(small.ravel(), pooled.ravel())[0, 1]
  assert corr > 0.99

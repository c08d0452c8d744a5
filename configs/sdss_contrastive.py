r"""Contrastive (BYOL) pretraining on five-band galaxies, after Hayat et al.
(2021), for morphology and photometric redshifts from the representation.

  python -m gzevo_jax.main --config=configs/sdss_contrastive.py
  python -m gzevo_jax.main --config=configs/sdss_contrastive.py:smoke   # seconds

Pretrains on `sdss5/synthetic` (bands z, i, r, g, u). Augmentations keep
colour: any rotation, flips, a mild crop, blur and noise, but no colour
jitter, which would change the band ratios a redshift is read from.
"""

from gzevo_jax import config_lib


def smoke(config):
  """Seconds: the tiny five-band dataset at 32 px."""
  config_lib.smoke(config)
  config.data.dataset = 'sdss5/synthetic_tiny'
  config.knn_monitor.dataset = 'sdss5/synthetic_tiny'


def get_config(arg=None):
  config = config_lib.base_config('contrastive')
  config.run_name = 'sdss_contrastive'
  config.data.dataset = 'sdss5/synthetic'
  config.data.channels = 5
  config.data.augment.color_jitter_probability = 0.0
  # kNN on the morphology labels (smooth, featured, artifact).
  config.knn_monitor.dataset = 'sdss5/synthetic'
  return config_lib.apply_variant(config, arg, {'smoke': smoke})

r"""Photometric redshifts from a pretrained encoder, at label budgets.

  python -m gzevo_jax.main --config=configs/photoz.py \
      --config.pretrained_workdir=runs/sdss_contrastive
  python -m gzevo_jax.main --config=configs/photoz.py:finetune \
      --config.pretrained_workdir=runs/sdss_contrastive
  python -m gzevo_jax.main --config=configs/photoz.py:direct \
      --config.pretrained_workdir=runs/sdss_contrastive
  python -m gzevo_jax.main --config=configs/photoz.py:photometry
  python -m gzevo_jax.main --config=configs/photoz.py:smoke \
      --config.pretrained_workdir=runs/sdss_contrastive_smoke

A ridge probe per label budget and seed on `sdss5/synthetic`'s redshifts
(:finetune trains the encoder with a regression head instead, :direct the
same network from scratch; :photometry needs no encoder: a k-nearest-
neighbour regressor on aperture colours, the photometric baseline); writes
photoz.md (normalised bias, sigma_MAD, outlier rate; mean ± std over
seeds), results.json and results.csv.
"""

import ml_collections

from gzevo_jax import config_lib


def smoke(config):
  """Seconds: the tiny five-band dataset, two budgets, two seeds."""
  config.data.dataset = 'sdss5/synthetic_tiny'
  config.budgets = (50, 'all')
  config.num_seeds = 2
  config.max_epochs = 2
  config.min_steps_per_epoch = 2


def finetune(config):
  """The encoder plus a one-output head, trained by squared error."""
  config.method = 'finetune'


def direct(config):
  """The direct baseline: the pretrained run's architecture from scratch."""
  from gzevo_jax.evaluation import finetune as finetune_lib  # pylint: disable=g-import-not-at-top
  config.method = 'finetune'
  finetune_lib.as_direct_baseline(config)


def photometry(config):
  """The photometric baseline: k-NN on aperture colours, no encoder."""
  config.method = 'photometry'
  config.run_name = 'photoz_photometry'


def get_config(arg=None):
  c = config_lib.finetune_fields(config_lib.downstream_config('photoz'))
  c.method = 'ridge'           # 'ridge' probe of frozen features, 'finetune'.
  c.data.dataset = 'sdss5/synthetic'
  del c.data.label_key
  c.data.target_key = 'redshift'       # A float feature to regress.
  c.budgets = (100, 300, 1000, 3000, 'all')
  c.ridge = ml_collections.ConfigDict()
  c.ridge.alphas = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)  # L2 strengths.
  c.knn = ml_collections.ConfigDict()
  c.knn.ks = (5, 10, 20, 40, 80)  # Neighbour counts (picked on validation).
  return config_lib.apply_variant(c, arg, {'smoke': smoke,
                                           'finetune': finetune,
                                           'direct': direct,
                                           'photometry': photometry})

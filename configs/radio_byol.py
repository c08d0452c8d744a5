r"""BYOL on unlabelled radio continuum images (1 channel), after the Radio
Galaxy Zoo foundation model (Slijepcevic et al. 2024).

  python -m gzevo_jax.main --config=configs/radio_byol.py
  python -m gzevo_jax.main --config=configs/radio_byol.py:smoke    # seconds
  python -m gzevo_jax.main --config=configs/radio_byol.py:shift    # pool B

Pretrains on the unlabelled survey-A pool (`gz_radio/synthetic_pool`; `:shift`
uses survey B's, `gz_radio/synthetic_pool_shift`) and watches kNN accuracy
on the FR task (`gz_radio/synthetic`). Radio augmentations: any rotation,
flips and a mild crop; no colour jitter, grayscale, blur or added noise (the
images are one band, already noisy, and their brightness scale is fixed by
the preprocessing).
"""

from gzevo_jax import config_lib


def radio_augment(config):
  """Rotation, flips and a mild crop only."""
  augment = config.data.augment
  augment.color_jitter_probability = 0.0
  augment.blur_probability = 0.0
  augment.noise_probability = 0.0


def smoke(config):
  """Seconds: the tiny pool and FR task at 32 px."""
  config_lib.smoke(config)
  config.data.dataset = 'gz_radio/synthetic_pool_tiny'
  config.knn_monitor.dataset = 'gz_radio/synthetic_tiny'


def shift(config):
  """Pretrain on survey B's pool: the FR task (survey A) is shifted."""
  config.data.dataset = 'gz_radio/synthetic_pool_shift'


def get_config(arg=None):
  config = config_lib.base_config('contrastive')
  config.run_name = 'radio_byol'
  config.data.dataset = 'gz_radio/synthetic_pool'
  config.data.channels = 1
  radio_augment(config)
  config.knn_monitor.dataset = 'gz_radio/synthetic'
  return config_lib.apply_variant(config, arg, {'smoke': smoke,
                                                'shift': shift})

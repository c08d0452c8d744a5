r"""Hybrid pretraining: BYOL + Dirichlet-Multinomial loss on the votes.

  python -m gzevo_jax.main --config=configs/hybrid.py          # CPU-sized run
  python -m gzevo_jax.main --config=configs/hybrid.py:smoke    # seconds
  python -m gzevo_jax.main --config=configs/hybrid.py:rescaled # paper's weighting
  python -m gzevo_jax.main --config=configs/hybrid.py:gz_evo   # real data, pod
  python -m gzevo_jax.main --config=configs/hybrid.py:paper    # the paper's recipe
  (variants combine with +, e.g. :paper+smoke)
"""

from gzevo_jax import config_lib


def rescaled(config):
  """The paper's code: supervised term rescaled to the BYOL term's size."""
  config.loss.rescale_supervised = True


def get_config(arg=None):
  config = config_lib.base_config('hybrid')
  config.loss.supervised_weight = 1.0
  config.loss.rescale_supervised = False
  return config_lib.apply_variant(
      config, arg, {**config_lib.COMMON_VARIANTS, 'rescaled': rescaled})

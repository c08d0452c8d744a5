r"""Contrastive pretraining: BYOL only, votes unused.

  python -m gzevo_jax.main --config=configs/contrastive.py
  python -m gzevo_jax.main --config=configs/contrastive.py:smoke    # seconds
  python -m gzevo_jax.main --config=configs/contrastive.py:gz_evo   # real data, pod
  python -m gzevo_jax.main --config=configs/contrastive.py:paper    # the paper's recipe
  (variants combine with +, e.g. :paper+smoke)
"""

from gzevo_jax import config_lib


def get_config(arg=None):
  config = config_lib.base_config('contrastive')
  return config_lib.apply_variant(config, arg, config_lib.COMMON_VARIANTS)

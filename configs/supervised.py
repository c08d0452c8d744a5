r"""Supervised GZ-Evo pretraining: Dirichlet-Multinomial loss, one view, no target.

  python -m gzevo_jax.main --config=configs/supervised.py
  python -m gzevo_jax.main --config=configs/supervised.py:smoke    # seconds
  python -m gzevo_jax.main --config=configs/supervised.py:gz_evo   # real data, pod
  python -m gzevo_jax.main --config=configs/supervised.py:paper    # the paper's recipe
  (variants combine with +, e.g. :paper+smoke)
"""

from gzevo_jax import config_lib


def get_config(arg=None):
  config = config_lib.base_config('supervised')
  # Zoobot trains the Dirichlet loss with Adam; LARS suits the large-batch BYOL.
  config.optimizer.name = 'adamw'
  config.optimizer.base_learning_rate = 1e-3
  config.optimizer.lr_reference_batch_size = 0
  config.optimizer.weight_decay = 0.05
  return config_lib.apply_variant(config, arg, config_lib.COMMON_VARIANTS)

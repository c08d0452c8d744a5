r"""Linear probe and kNN on frozen features, at several label budgets.

  python -m gzevo_jax.main --config=configs/linear_probe.py \
      --config.pretrained_workdir=runs/hybrid
  python -m gzevo_jax.main --config=configs/linear_probe.py:smoke \
      --config.pretrained_workdir=runs/hybrid_smoke

Writes results.json, results.csv and label_efficiency.png to the workdir
(default runs/<run_name>_<name of the pretrained workdir>).
"""

import ml_collections

from gzevo_jax import config_lib


def smoke(config):
  """Seconds: the tiny rings dataset, two budgets, two seeds."""
  config.data.dataset = 'gz_rings/synthetic_tiny'
  config.budgets = (20, 'all')
  config.num_seeds = 2
  config.probe.c_grid = (0.01, 1.0)


def get_config(arg=None):
  c = config_lib.downstream_config('linear_probe')
  c.probe = ml_collections.ConfigDict()
  c.probe.c_grid = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # Inverse L2.
  c.probe.max_iter = 1000

  c.knn = ml_collections.ConfigDict()
  c.knn.k = 20
  c.knn.temperature = 0.07
  return config_lib.apply_variant(c, arg, {'smoke': smoke})

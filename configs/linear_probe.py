r"""Linear probe and kNN on frozen features, at several label budgets.

  python -m gzevo_jax.main --config=configs/linear_probe.py \
      --config.pretrained_workdir=runs/hybrid
  python -m gzevo_jax.main --config=configs/linear_probe.py:smoke \
      --config.pretrained_workdir=runs/hybrid_smoke

Writes results.json, results.csv and label_efficiency.png to the workdir
(default runs/<run_name>_<name of the pretrained workdir>).
"""

import ml_collections
from ml_collections.config_dict import placeholder

from gzevo_jax import config_lib


def smoke(config):
  """Seconds: the tiny rings dataset, two budgets, two seeds."""
  config.data.dataset = 'gz_rings/synthetic_tiny'
  config.budgets = (20, 'all')
  config.num_seeds = 2
  config.probe.c_grid = (0.01, 1.0)


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.task = 'linear_probe'
  c.run_name = 'linear_probe'
  c.pretrained_workdir = placeholder(str)  # Required: a pretraining workdir.
  c.pretrained_step = placeholder(int)     # None: its latest checkpoint.

  c.data = ml_collections.ConfigDict()
  c.data.dataset = 'gz_rings/synthetic'    # gz_rings/real for GZ Rings.
  c.data.data_dir = placeholder(str)
  c.data.manual_dir = placeholder(str)
  c.data.skip_bad_rows = False
  c.data.label_key = 'label'               # Integer class label feature.
  c.data.image_size = placeholder(int)     # None: the pretraining image size.
  c.data.threads = 0
  c.eval_batch_size = 256                  # Rounded up to a multiple of devices.

  # Labelled training galaxies per fit; 'all' is the whole train split.
  c.budgets = (100, 300, 750, 3000, 'all')
  c.num_seeds = 3                          # Budget subsets resampled per seed.

  c.probe = ml_collections.ConfigDict()
  c.probe.c_grid = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # Inverse L2.
  c.probe.max_iter = 1000

  c.knn = ml_collections.ConfigDict()
  c.knn.k = 20
  c.knn.temperature = 0.07
  return config_lib.apply_variant(c, arg, {'smoke': smoke})

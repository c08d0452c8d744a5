r"""FixMatch beside supervised training on the FR task, with and without
dataset shift (after Slijepcevic et al. 2022).

  python -m gzevo_jax.main --config=configs/fixmatch.py
  python -m gzevo_jax.main --config=configs/fixmatch.py:smoke    # seconds

Every arm trains the same ResNet from scratch on the same labelled subsets;
the FixMatch arms add the unlabelled survey-A pool (`fixmatch`) or the
survey-B pool (`fixmatch_shift`). Writes fixmatch.md (accuracy and ECE per
budget; each FixMatch arm - supervised, and fixmatch - fixmatch_shift, with
95% intervals), reliability.png, results.json and results.csv to the
workdir (default runs/fixmatch).
"""

import ml_collections

from gzevo_jax import config_lib


def smoke(config):
  """Seconds: the tiny FR task and pools at 32 px, two budgets, two seeds."""
  config.data.dataset = 'gz_radio/synthetic_tiny'
  config.unlabelled.same = 'gz_radio/synthetic_pool_tiny'
  config.unlabelled.shift = 'gz_radio/synthetic_pool_shift_tiny'
  config.model.small_image_stem = True
  config.model.width_multiplier = 0.125
  config.budgets = (20, 'all')
  config.num_seeds = 2
  config.max_epochs = 2
  config.min_steps_per_epoch = 2
  config.batch_size = 8
  config.fixmatch.ratio = 2


def get_config(arg=None):
  c = config_lib.encoder_evaluation_config('fixmatch')
  del c.pretrained_workdir, c.pretrained_step   # Every arm starts from scratch.
  c.data.dataset = 'gz_radio/synthetic'        # The labelled FR task.
  c.data.label_key = 'label'
  c.model = config_lib.base_config('supervised').model
  c.arms = ('supervised', 'fixmatch', 'fixmatch_shift')
  c.unlabelled = ml_collections.ConfigDict()
  c.unlabelled.same = 'gz_radio/synthetic_pool'          # The task's survey.
  c.unlabelled.shift = 'gz_radio/synthetic_pool_shift'   # The other survey.
  c.unlabelled.max_examples = 20_000   # Held in memory as uint8.
  c.fixmatch = ml_collections.ConfigDict()
  c.fixmatch.threshold = 0.95   # Sohn et al. 2020's defaults.
  c.fixmatch.ratio = 7          # mu: unlabelled images per labelled one.
  c.fixmatch.weight = 1.0       # lambda_u.
  c.budgets = (10, 30, 100, 145, 'all')
  c.num_seeds = 3
  # The classifier's training, as finetune.py's :direct does it.
  config_lib.finetune_fields(c)
  c.init = 'scratch'
  c.layer_decay = 1.0           # Random weights: one rate for all layers.
  c.batch_size = 32             # Labelled images per step.
  # Longer than finetuning's 5 / 30: with those, FixMatch's validation loss
  # was lowest at epoch 2-5 for the small budgets, and at 100 labels with
  # 15 / 40 its best validation epochs were 25, 35 and 36 (validation only,
  # README). Both arms get the same schedule.
  c.patience = 15
  c.max_epochs = 40
  c.calibration_bins = 15
  return config_lib.apply_variant(c, arg, {'smoke': smoke})

r"""Ablation: which factors explain the label-efficiency gap?

  python -m gzevo_jax.main --config=configs/ablation.py          # hours, 2-core CPU
  python -m gzevo_jax.main --config=configs/ablation.py:smoke    # minutes

One factor at a time from the current recipe (configs/<arm>.py), every
pretraining arm on matched compute, each stage scored by the linear probe at
100 / 750 / all labels over 3 seeds; writes ablation.md (a table per factor)
to the workdir (default runs/ablation). Finished stages are reused when the
command is rerun, so an interrupted run resumes and factors can be added.
"""

import copy
import os

import ml_collections

from gzevo_jax import config_lib


def _sibling(name):
  return config_lib.load_config_file(os.path.join(os.path.dirname(__file__),
                                                  name))


def smoke(config):
  """Minutes: tiny data and models, one learning rate, every factor."""
  config.pretrain_variant = 'smoke'
  config.data.dataset = 'gz_rings/synthetic_tiny'
  config.budgets = (20, 'all')
  config.num_seeds = 2
  config.probe.c_grid = (0.01, 1.0)
  config.finetune.max_epochs = 2
  config.finetune.min_steps_per_epoch = 2
  config.pretrain_train_duration = '4 steps'
  config.lr_multipliers = (1.0,)
  config.supervised_weights = (1.0,)
  config.widths = (0.125, 0.25)
  config.image_size_train_duration = '4 steps'
  config.image_sizes = (
      ml_collections.ConfigDict(dict(
          image_size=16, pretrain_dataset='gz_evo/synthetic_tiny',
          downstream_dataset='gz_rings/synthetic_tiny')),
      ml_collections.ConfigDict(dict(
          image_size=32, pretrain_dataset='gz_evo/synthetic_tiny',
          downstream_dataset='gz_rings/synthetic_tiny')))
  config.bootstrap_resamples = 200


def get_config(arg=None):
  c = config_lib.downstream_config('ablation')
  del c.pretrained_workdir, c.pretrained_step  # The ablation makes them.
  c.budgets = (100, 750, 'all')
  c.pretrain_variant = ''          # e.g. 'smoke': the scale of every stage.
  c.pretrain_train_duration = ml_collections.config_dict.placeholder(str)
  c.config_dir = ml_collections.config_dict.placeholder(str)  # None: configs/.
  c.evaluation = 'linear_probe'    # Stages are scored by the linear probe.
  # Factors, run in this order (the table is rewritten after each).
  c.factors = ('recipe', 'weighting', 'head_views', 'augment', 'length',
               'optimizer', 'width', 'image_size')
  c.direct = True                  # Train the direct baseline (finetune).
  c.supervised_weights = (0.1, 1.0, 10.0)  # weighting: plain and rescaled.
  c.length_multiplier = 4.0        # length: 1x vs this x the train_duration.
  c.widths = (0.25, 0.5)           # width: model.width_multiplier levels.
  # optimizer: each arm with each optimizer, its base learning rate times
  # each multiplier; the multiplier is picked on validation per arm.
  c.lr_multipliers = (0.5, 1.0, 2.0)
  c.optimizers = ml_collections.ConfigDict({
      'lars': dict(base_learning_rate=0.2, lr_reference_batch_size=256,
                   weight_decay=1.5e-6),
      'adamw': dict(base_learning_rate=1e-3, lr_reference_batch_size=0,
                    weight_decay=0.05)})
  # image_size: pretraining data and size, and the downstream task at the
  # same resolution; every level trains for the same number of steps.
  c.image_size_train_duration = '1250 steps'  # The default 5 epochs.
  c.image_sizes = (
      ml_collections.ConfigDict(dict(
          image_size=64, pretrain_dataset='gz_evo/synthetic_large',
          downstream_dataset='gz_rings/synthetic')),
      ml_collections.ConfigDict(dict(
          image_size=128, pretrain_dataset='gz_evo/synthetic_large',
          downstream_dataset='gz_rings/synthetic_large')))
  c.bootstrap_resamples = 2000
  c.bootstrap_seed = 0

  probe = _sibling('linear_probe.py')
  c.probe = copy.deepcopy(probe.probe)
  c.knn = copy.deepcopy(probe.knn)
  finetune = _sibling('finetune.py')
  c.finetune = ml_collections.ConfigDict({
      k: finetune[k] for k in ('learning_rate', 'layer_decay', 'weight_decay',
                               'batch_size', 'max_epochs', 'patience',
                               'max_examples', 'min_steps_per_epoch')})
  return config_lib.apply_variant(c, arg, {'smoke': smoke})

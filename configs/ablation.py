r"""Ablation: which factors explain the label-efficiency gap?

  python -m gzevo_jax.main --config=configs/ablation.py          # hours, 2-core CPU
  python -m gzevo_jax.main --config=configs/ablation.py:smoke    # minutes

One factor at a time from the current recipe (configs/<arm>.py), every
pretraining arm on matched compute, each stage scored by the linear probe
(the `evaluation` factor, the headline, also by finetuning the paper's
recipe) at 100 / 750 / all labels over 3 seeds; writes ablation.md (a table
per factor)
to the workdir (default runs/ablation). Finished stages are reused when the
command is rerun, so an interrupted run resumes and factors can be added;
each is also recorded in results/ablation/ (config.stage_archive), which is
committed, so a later sitting on another machine goes on where this one
stopped.
The fields it shares with the label-efficiency experiment (data, budgets,
seeds, probe, finetune for the direct baseline) come from
configs/label_efficiency.py.
"""

import os

import ml_collections

from gzevo_jax import config_lib

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SHARED_SMOKE_FIELDS = ('pretrain_variant', 'data', 'budgets', 'num_seeds',
                        'probe', 'finetune')


def _label_efficiency(variant=''):
  path = os.path.join(os.path.dirname(__file__), 'label_efficiency.py')
  return config_lib.load_config_file(path + (f':{variant}' if variant else ''))


def _image_size(size, pretrain_dataset, downstream_dataset):
  """An image_size level: pretraining data and size, downstream task."""
  return ml_collections.ConfigDict(dict(
      image_size=size, pretrain_dataset=pretrain_dataset,
      downstream_dataset=downstream_dataset))


def smoke(config):
  """Minutes: label_efficiency.py:smoke's scale, tiny levels, one lr."""
  shared = _label_efficiency('smoke')
  for field in _SHARED_SMOKE_FIELDS:
    config[field] = shared[field]
  config.pretrain_train_duration = '4 steps'
  config.lr_multipliers = (1.0,)
  config.supervised_weights = (1.0,)
  config.widths = (0.125, 0.25)
  config.image_size_train_duration = '4 steps'
  config.image_sizes = (
      _image_size(16, 'gz_evo/synthetic_tiny', 'gz_rings/synthetic_tiny'),
      _image_size(32, 'gz_evo/synthetic_tiny', 'gz_rings/synthetic_tiny'))
  config.bootstrap_resamples = 200
  config.stage_archive = ''  # Smoke stages are not worth recording.


def get_config(arg=None):
  c = _label_efficiency()
  c.task = c.run_name = 'ablation'
  c.budgets = (100, 750, 'all')
  c.evaluation = 'linear_probe'    # Stages are scored by the linear probe.
  # Factors, run in this order (the table is rewritten after each).
  c.factors = ('recipe', 'evaluation', 'weighting', 'head_views', 'augment',
               'length', 'optimizer', 'width', 'image_size')
  c.direct = True                  # Train the direct baseline (finetune).
  # Finished stages are recorded here and reused from here ('' for neither).
  c.stage_archive = os.path.join(_REPOSITORY, 'results', 'ablation')
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
      _image_size(64, 'gz_evo/synthetic_large', 'gz_rings/synthetic'),
      _image_size(128, 'gz_evo/synthetic_large', 'gz_rings/synthetic_large'))
  # Tables, each with its bootstrap intervals: balanced accuracy (what the
  # probe's C is chosen by; rings are a minority) and the paper's accuracy.
  c.metrics = ('balanced_accuracy', 'accuracy')
  c.bootstrap_resamples = 2000
  c.bootstrap_seed = 0
  return config_lib.apply_variant(c, arg, {'smoke': smoke})

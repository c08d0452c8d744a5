r"""The label-efficiency experiment: direct vs supervised, contrastive and hybrid
pretraining, at every label budget.

  python -m gzevo_jax.main --config=configs/label_efficiency.py
  python -m gzevo_jax.main --config=configs/label_efficiency.py:smoke
  python -m gzevo_jax.main --config=configs/label_efficiency.py:gz_evo
  python -m gzevo_jax.main --config=configs/label_efficiency.py:radio   # FR task

Pretrains the three arms with their `configs/<arm>.py[:pretrain_variant]`
(matched compute), evaluates them and the direct-training baseline on the
downstream task, and writes label_efficiency.md and label_efficiency.png to
the workdir (default runs/label_efficiency). Rerunning resumes: finished
stages are reused.
"""

import copy
import os

import ml_collections

from gzevo_jax import config_lib


def _sibling(name):
  """The defaults of another config file in this directory."""
  return config_lib.load_config_file(os.path.join(os.path.dirname(__file__),
                                                  name))


def smoke(config):
  """Minutes: smoke pretraining, the task's tiny version, two budgets."""
  config.pretrain_variant = 'smoke'
  config.data.dataset += '_tiny'  # gz_rings/synthetic, gz_radio/synthetic.
  config.budgets = (20, 'all')
  config.num_seeds = 2
  config.probe.c_grid = (0.01, 1.0)
  config.finetune.max_epochs = 2
  config.finetune.min_steps_per_epoch = 2


def radio(config):
  """The Radio Galaxy Zoo system: BYOL on the unlabelled radio pool
  (configs/radio_byol.py), then the FR task, down to a few labels."""
  config.arms = ('radio_byol',)
  config.data.dataset = 'gz_radio/synthetic'
  config.budgets = (10, 30, 100, 145, 'all')


def gz_evo(config):
  """Paper scale: pretraining on the real GZ-Evo, evaluation on GZ Rings."""
  config.pretrain_variant = 'gz_evo'
  config.data.dataset = 'gz_rings/real'
  config.budgets = (100, 300, 750, 3000, 10_000, 'all')
  config.num_seeds = 5


def get_config(arg=None):
  c = config_lib.downstream_config('label_efficiency')
  del c.pretrained_workdir, c.pretrained_step  # The experiment makes them.
  # Pretraining arms: configs in config_dir, each pretrained and evaluated.
  c.arms = ('supervised', 'contrastive', 'hybrid')
  c.pretrain_variant = ''          # e.g. 'smoke'; '' for the configs as they are.
  # None: each arm's own train_duration (the same in all three configs).
  c.pretrain_train_duration = ml_collections.config_dict.placeholder(str)
  c.config_dir = ml_collections.config_dict.placeholder(str)  # None: configs/.
  c.evaluation = 'linear_probe'    # How pretrained arms are scored: or 'finetune'.

  probe = _sibling('linear_probe.py')
  c.probe = copy.deepcopy(probe.probe)
  c.knn = copy.deepcopy(probe.knn)
  finetune = _sibling('finetune.py')
  c.finetune = ml_collections.ConfigDict({
      k: finetune[k] for k in ('learning_rate', 'layer_decay', 'weight_decay',
                               'batch_size', 'max_epochs', 'patience',
                               'max_examples', 'min_steps_per_epoch')})
  return config_lib.apply_variant(c, arg, {'smoke': smoke, 'gz_evo': gz_evo,
                                           'radio': radio})

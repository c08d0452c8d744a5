r"""Finetuning (or, with :direct, training from scratch) at label budgets.

  python -m gzevo_jax.main --config=configs/finetune.py \
      --config.pretrained_workdir=runs/hybrid
  python -m gzevo_jax.main --config=configs/finetune.py:direct \
      --config.pretrained_workdir=runs/hybrid   # same encoder, random init

Writes results.json, results.csv and label_efficiency.png to the workdir
(default runs/<run_name>_<name of the pretrained workdir>).
"""

from gzevo_jax import config_lib


def direct(config):
  """The direct-training baseline: the pretrained run's architecture only."""
  from gzevo_jax.evaluation import finetune  # pylint: disable=g-import-not-at-top
  finetune.as_direct_baseline(config)


def smoke(config):
  """Seconds: the tiny rings dataset, two budgets, two seeds, two epochs."""
  config.data.dataset = 'gz_rings/synthetic_tiny'
  config.budgets = (20, 'all')
  config.num_seeds = 2
  config.max_epochs = 2
  config.min_steps_per_epoch = 2


def get_config(arg=None):
  c = config_lib.finetune_fields(config_lib.downstream_config('finetune'))
  return config_lib.apply_variant(c, arg, {'smoke': smoke, 'direct': direct})

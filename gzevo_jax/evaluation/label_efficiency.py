"""The label-efficiency experiment: direct training and the pretraining arms,
every budget, one table.

  python -m gzevo_jax.main --config=configs/label_efficiency.py

Arms:
  direct       the encoder architecture trained from scratch on the
               downstream labels only (finetune task, init='scratch')
  supervised   pretrained on GZ-Evo votes (Dirichlet), then evaluated
  contrastive  pretrained with BYOL, then evaluated
  hybrid       pretrained with BYOL + Dirichlet, then evaluated

`config.arms` names the pretraining arms, config files in `configs/` (the
three above by default; e.g. ('radio_byol',) for the FR task). They use their
configs with the same
`pretrain_variant`, so they share the architecture, data, batch size and
number of steps (matched compute). Each pretrained encoder is evaluated with
`config.evaluation` ('linear_probe' or 'finetune') at every budget and seed.
Every stage writes into its own subdirectory of the workdir and is skipped
when its results are already there, so an interrupted experiment resumes.
Writes label_efficiency.md (the table) and label_efficiency.png.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from absl import logging
import ml_collections

from gzevo_jax import config_lib
from gzevo_jax import train
from gzevo_jax.evaluation import finetune
from gzevo_jax.evaluation import linear_probe

PRETRAINED_ARMS = ('supervised', 'contrastive', 'hybrid')
EVALUATIONS = ('linear_probe', 'finetune')
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'configs')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  from gzevo_jax.evaluation import budgets  # Keep imports light.
  budgets.parse_budgets(config.budgets)
  config_lib.check_positive_int(config, 'num_seeds')
  arms = tuple(config.arms)
  if not arms:
    raise ValueError('config.arms must name one or more pretraining configs, '
                     f"e.g. \"('contrastive', 'hybrid')\"; got {config.arms!r}")
  for arm in arms:
    if not os.path.exists(_arm_file(config, arm)):
      raise ValueError(f'config.arms: no pretraining config {arm!r} '
                       f'({_arm_file(config, arm)})')
  if config.evaluation not in EVALUATIONS:
    raise ValueError(f'config.evaluation={config.evaluation!r} is not valid; '
                     f'choose one of {", ".join(EVALUATIONS)}')


def _arm_file(config: ml_collections.ConfigDict, arm: str) -> str:
  return os.path.join(config.config_dir or CONFIG_DIR, f'{arm}.py')


def pretrain_config(config: ml_collections.ConfigDict, arm: str,
                    variant: str | None = None) -> ml_collections.ConfigDict:
  """The arm's pretraining config, with this experiment's variant.

  `variant` (e.g. 'paper') is applied before `config.pretrain_variant` (the
  scale, e.g. 'smoke').
  """
  spec = _arm_file(config, arm)
  variants = [v for v in (variant, config.pretrain_variant) if v]
  if variants:
    spec += ':' + '+'.join(variants)
  pretrain = config_lib.load_config_file(spec)
  pretrain.data.data_dir = config.data.data_dir
  pretrain.knn_monitor.every_steps = 0  # The experiment evaluates properly.
  if config.pretrain_train_duration:  # The same for every arm.
    pretrain.train_duration = config.pretrain_train_duration
  return pretrain


def evaluation_config(config: ml_collections.ConfigDict, task: str,
                      pretrained_workdir: str) -> ml_collections.ConfigDict:
  """A linear_probe or finetune config sharing this experiment's fields.

  Starts from `configs/<task>.py`, so every field the task needs has its
  default (e.g. finetune's `init`).
  """
  out = config_lib.load_config_file(os.path.join(CONFIG_DIR, f'{task}.py'))
  for key in ('data', 'budgets', 'num_seeds', 'eval_batch_size'):
    out[key] = copy.deepcopy(config[key])
  out.pretrained_workdir = pretrained_workdir
  if task == 'linear_probe':
    out.probe = copy.deepcopy(config.probe)
    out.knn = copy.deepcopy(config.knn)
  else:
    out.update(config.finetune.to_dict())
  return out


def _cached(results_dir: str, compute) -> dict[str, Any]:
  """results.json of a finished stage, or the stage run now."""
  path = os.path.join(results_dir, 'results.json')
  if os.path.exists(path):
    logging.info('reusing %s', path)
    with open(path) as f:
      return json.load(f)
  return compute()


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Pretrains the arms, evaluates them and direct training, writes the
  table."""
  validate(config)
  summaries = {}
  for arm in config.arms:
    pretrain_dir = os.path.join(workdir, f'pretrain_{arm}')
    train.train_and_evaluate(pretrain_config(config, arm), pretrain_dir)
    eval_config = evaluation_config(config, config.evaluation, pretrain_dir)
    module = linear_probe if config.evaluation == 'linear_probe' else finetune
    out_dir = os.path.join(workdir, f'{config.evaluation}_{arm}')
    results = _cached(out_dir, lambda: module.run(eval_config, out_dir))
    summaries[arm] = _method_rows(results, 'linear_probe'
                                  if config.evaluation == 'linear_probe' else
                                  'finetune_pretrained')
  # Direct training takes only the architecture from a pretrained arm.
  direct_config = evaluation_config(
      config, 'finetune', os.path.join(workdir, f'pretrain_{config.arms[-1]}'))
  finetune.as_direct_baseline(direct_config)
  direct_dir = os.path.join(workdir, 'direct')
  results = _cached(direct_dir, lambda: finetune.run(direct_config,
                                                     direct_dir))
  summaries = {'direct': _method_rows(results, 'finetune_scratch'),
               **summaries}
  table = markdown_table(summaries, config.evaluation)
  with open(os.path.join(workdir, 'label_efficiency.md'), 'w') as f:
    f.write(table)
  linear_probe.plot_label_efficiency(
      [dict(r, method=arm) for arm, rows in summaries.items() for r in rows],
      os.path.join(workdir, 'label_efficiency.png'),
      title=f'{config.data.dataset}: direct vs pretrained '
      f'({config.evaluation})')
  logging.info('label efficiency (test accuracy, mean ± std over seeds):\n%s',
               table)
  return {'summaries': summaries, 'table': table}


def _method_rows(results: dict[str, Any], method: str) -> list[dict]:
  return [r for r in results['summary'] if r['method'] == method]


def markdown_table(summaries: dict[str, list[dict]], evaluation: str,
                   metric: str = 'accuracy') -> str:
  """Budgets down, arms across: metric mean ± std over seeds."""
  budgets = sorted({r['budget'] for rows in summaries.values() for r in rows})
  arms = list(summaries)
  lines = [f'Test {metric.replace("_", " ")} (mean ± std over seeds); '
           f'direct = trained from scratch, others = {evaluation} of the '
           'pretrained encoder.', '',
           '| labels | ' + ' | '.join(arms) + ' |',
           '|---' * (len(arms) + 1) + '|']
  for budget in budgets:
    cells = []
    for arm in arms:
      row = next((r for r in summaries[arm] if r['budget'] == budget), None)
      cells.append('' if row is None else
                   f'{row[metric]["mean"]:.3f} ± {row[metric]["std"]:.3f}')
    lines.append(f'| {budget} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


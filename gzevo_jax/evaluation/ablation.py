"""Why does the hybrid not win? One factor at a time, every pretraining arm.

  python -m gzevo_jax.main --config=configs/ablation.py
  python -m gzevo_jax.main --config=configs/ablation.py:smoke

Each factor of `config.factors` is a list of levels; a level changes the
pretraining config of some arms (the others keep the current recipe). Every
distinct (arm, variant, overrides) is one stage: pretrained once (same
steps, batch and data for every arm within a level: matched compute),
scored by the linear probe at every budget and seed, and reused by every
factor that needs it, also when the command is rerun. The direct baseline
(the same encoder trained from scratch on the downstream labels) is trained
once. Writes ablation.md: a table per factor with mean ± std over seeds for
each arm, and for the differences that matter (hybrid - supervised, hybrid -
contrastive, best pretrained - direct) the mean and a 95% interval from a
paired bootstrap over seeds and test galaxies; once for each metric of
`config.metrics` (balanced accuracy, which the probe's C is chosen by and
which a task with a minority of rings needs, and accuracy, the paper's).

The `evaluation` factor is the headline comparison: the paper's recipe
scored by the linear probe and by finetuning (config.finetune, the same
schedule as the direct baseline), where the paper expects pretrained >=
direct with all labels.

Learning rates of the optimizer factor are picked per arm and optimizer on
the validation split (the probe's validation balanced accuracy with all
labels), never on test; so is the "best pretrained" arm.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Callable, Optional

from absl import logging
import ml_collections
import numpy as np

from gzevo_jax import config_lib
from gzevo_jax import train
from gzevo_jax.data import augment
from gzevo_jax.evaluation import finetune
from gzevo_jax.evaluation import label_efficiency
from gzevo_jax.evaluation import linear_probe

ARMS = label_efficiency.PRETRAINED_ARMS
FACTORS = ('recipe', 'evaluation', 'weighting', 'head_views', 'augment',
           'length', 'optimizer', 'width', 'image_size')
# How a stage scores its pretrained encoder -> the method of its results.
SCORED_METHOD = {'linear_probe': 'linear_probe',
                 'finetune': 'finetune_pretrained'}
DIFFERENCES = (('hybrid', 'supervised'), ('hybrid', 'contrastive'),
               ('best pretrained', 'direct'))


@dataclasses.dataclass(frozen=True)
class Stage:
  """One pretraining run and its probe: an arm, a variant and overrides."""
  arm: str
  variant: str = ''
  overrides: tuple[tuple[str, Any], ...] = ()
  downstream: Optional[str] = None  # None: config.data.dataset.
  evaluation: str = 'linear_probe'  # Or 'finetune' (config.finetune).


@dataclasses.dataclass(frozen=True)
class Level:
  """A factor's level: the stage of each arm (a list: the lr grid)."""
  name: str
  stages: dict[str, list[Stage]]
  varied: tuple[str, ...] = ARMS  # Arms this level changes.
  lr_grid: bool = False  # Stages are config.lr_multipliers, picked on val.


def _overrides(**fields) -> tuple[tuple[str, Any], ...]:
  """Dotted-field overrides as a sorted, hashable tuple ('a__b' -> 'a.b')."""
  return tuple(sorted((k.replace('__', '.'), v) for k, v in fields.items()))


def _same_for_all(name: str, variant: str = '', **fields) -> Level:
  return Level(name, {arm: [Stage(arm, variant, _overrides(**fields))]
                      for arm in ARMS})


def _hybrid_only(name: str, **fields) -> Level:
  stages = {arm: [Stage(arm)] for arm in ARMS}
  stages['hybrid'] = [Stage('hybrid', '', _overrides(**fields))]
  return Level(name, stages, varied=('hybrid',))


def scaled_duration(text: str, factor: float) -> str:
  """'5 epochs' x 4 -> '20 epochs' (steps stay whole numbers)."""
  number, unit = str(text).split()
  value = float(number) * factor
  if unit.startswith('step'):
    return f'{int(round(value))} steps'
  return f'{value:g} epochs'


def _optimizer_level(config: ml_collections.ConfigDict, name: str) -> Level:
  """Each arm with optimizer `name`, one stage per learning rate of the grid."""
  settings = config.optimizers[name]
  stages = {}
  for arm in ARMS:
    stages[arm] = [
        Stage(arm, '', _overrides(
            optimizer__name=name,
            optimizer__base_learning_rate=settings.base_learning_rate * m,
            optimizer__lr_reference_batch_size=settings.lr_reference_batch_size,
            optimizer__weight_decay=settings.weight_decay))
        for m in config.lr_multipliers]
  return Level(name, stages, lr_grid=True)


def factor_levels(config: ml_collections.ConfigDict, factor: str,
                  base_duration: str) -> list[Level]:
  """The levels of one factor; the first is the current recipe."""
  current = _same_for_all('current')
  if factor == 'recipe':
    return [current, _same_for_all('paper', variant='paper')]
  if factor == 'evaluation':  # The headline: the paper's recipe, finetuned.
    return [Level(f'paper, {evaluation.replace("_", " ")}',
                  {arm: [Stage(arm, 'paper', evaluation=evaluation)]
                   for arm in ARMS})
            for evaluation in SCORED_METHOD]
  if factor == 'weighting':
    return [_hybrid_only(f'{"rescaled" if rescale else "plain"} w={w:g}',
                         loss__rescale_supervised=rescale,
                         loss__supervised_weight=float(w))
            for rescale in (False, True) for w in config.supervised_weights]
  if factor == 'head_views':
    return [_hybrid_only(f'head on {views}', loss__supervised_views=views)
            for views in ('both', 'first')]
  if factor == 'augment':
    paper = augment.paper_augment_config()
    return [current, _same_for_all(
        'paper', **{f'data__augment__{k}': v for k, v in paper.items()})]
  if factor == 'length':
    return [current, _same_for_all(
        f'{config.length_multiplier:g}x',
        train_duration=scaled_duration(base_duration,
                                       config.length_multiplier))]
  if factor == 'optimizer':
    return [_optimizer_level(config, name) for name in config.optimizers]
  if factor == 'width':
    return [_same_for_all(f'x{w:g}', model__width_multiplier=float(w))
            for w in config.widths]
  if factor == 'image_size':
    return [_image_size_level(config, level) for level in config.image_sizes]
  raise ValueError(f'unknown ablation factor {factor!r}; choose from '
                   f'{", ".join(FACTORS)}')


def _image_size_level(config: ml_collections.ConfigDict,
                      level: ml_collections.ConfigDict) -> Level:
  fields = _overrides(data__dataset=level.pretrain_dataset,
                      data__image_size=level.image_size,
                      train_duration=config.image_size_train_duration)
  return Level(f'{level.image_size} px', {
      arm: [Stage(arm, '', fields, level.downstream_dataset)] for arm in ARMS})


def stage_pretrain_config(config: ml_collections.ConfigDict,
                          stage: Stage) -> ml_collections.ConfigDict:
  """The arm's config with the stage's variant and overrides applied."""
  pretrain = label_efficiency.pretrain_config(config, stage.arm,
                                              stage.variant or None)
  for field, value in stage.overrides:
    config_lib.set_dotted(pretrain, field, copy.deepcopy(value))
  pretrain.keep_checkpoints = 1  # Dozens of stages: keep disk use small.
  return pretrain


# The ablation's fields every stage's results depend on (besides the
# stage's arm, variant and overrides).
SHARED_FIELDS = ('pretrain_variant', 'pretrain_train_duration', 'data',
                 'budgets', 'num_seeds', 'eval_batch_size', 'probe', 'knn')
RECORD_VERSION = 1


def stage_spec(config: ml_collections.ConfigDict, stage: Stage) -> dict:
  """What a stage's results depend on, as plain data.

  The overrides that leave the arm's config as it is are left out, so
  levels equal to the current recipe (e.g. plain w=1) share its stage.
  """
  base = stage_pretrain_config(config, Stage(stage.arm, stage.variant))
  plain = config_lib.plain_data
  changed = [[field, plain(value)] for field, value in stage.overrides
             if plain(config_lib.get_dotted(base, field)) != plain(value)]
  shared = config_lib.flat_fields({k: plain(config[k]) for k in SHARED_FIELDS})
  spec = {'arm': stage.arm, 'variant': stage.variant, 'overrides': changed,
          'downstream': stage.downstream or config.data.dataset,
          'shared': shared}
  if stage.evaluation != 'linear_probe':  # Probe names stay as they were.
    spec['evaluation'] = stage.evaluation
    spec['finetune'] = config_lib.flat_fields(plain(config.finetune))
  return spec


def _hashed(prefix: str, spec: Any) -> str:
  text = json.dumps(spec, sort_keys=True, default=str)
  return f'{prefix}-{hashlib.sha1(text.encode()).hexdigest()[:10]}'


def stage_name(config: ml_collections.ConfigDict, stage: Stage) -> str:
  """'<arm>-<hash of the stage's spec>': the stage's directory and record."""
  return _hashed(stage.arm, stage_spec(config, stage))


# ---------------------------------------------------------------------------
# The record of finished stages (config.stage_archive).
#
# Pretraining dozens of stages takes more hours than one sitting, so every
# finished stage is also written as one JSON file, <stage name>.json, to
# config.stage_archive (the repository's results/ablation by default, where
# it can be committed). A later run on any machine reuses a record when its
# stage name matches and the resolved config it recorded agrees, field by
# field, with the one this code resolves now (fields only one side has were
# added or removed since, and are listed in the log); otherwise the stage
# runs again and its record is replaced.


def _record_path(config: ml_collections.ConfigDict, name: str) -> str:
  return os.path.join(config.stage_archive, f'{name}.json')


def progress_record_path(config: ml_collections.ConfigDict,
                         name: str) -> Optional[str]:
  """Where a finetuned stage records its finished (budget, seed) runs.

  A finetuned stage takes longer than one sitting: its runs so far are
  recorded beside the stage records, so a later sitting (on any machine)
  pretrains the same recipe and seed again and goes on from the first
  unfinished run. The file goes once the stage's own record is written.
  """
  if not config.stage_archive:
    return None
  return os.path.join(config.stage_archive, f'{name}.progress.json')


def changed_fields(recorded: dict[str, Any],
                   current: dict[str, Any]) -> tuple[list[str], list[str]]:
  """(fields whose values differ, fields only one side has), machine fields
  left out."""
  old = config_lib.flat_fields(recorded)
  new = config_lib.flat_fields(config_lib.plain_data(current))
  differ = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
  return differ, sorted(old.keys() ^ new.keys())


def archived_results(config: ml_collections.ConfigDict, name: str,
                     resolved: dict[str, Any]) -> Optional[dict[str, Any]]:
  """The recorded results of stage `name`, if its record is still valid."""
  if not config.stage_archive:
    return None
  path = _record_path(config, name)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    record = json.load(f)
  differ, one_sided = changed_fields(record['config'], resolved)
  if differ or record.get('record_version') != RECORD_VERSION:
    logging.warning('%s is out of date (fields %s changed since it was '
                    'recorded); running the stage again', path,
                    ', '.join(differ) or 'record_version')
    return None
  if one_sided:
    logging.info('%s: fields added or removed since it was recorded: %s',
                 path, ', '.join(one_sided))
  logging.info('reusing the recorded stage %s', path)
  return _per_galaxy(record['results'], _from_digits)


# Per-galaxy class lists, written as one digit per galaxy (~10x smaller).
_PER_GALAXY = ('test_predicted', 'test_labels')


def _digits(values: list[int]) -> Any:
  """[0, 1, 1] -> '011' when every value is a digit; else unchanged."""
  if all(isinstance(v, int) and 0 <= v <= 9 for v in values):
    return ''.join(map(str, values))
  return values


def _per_galaxy(tree: Any, convert) -> Any:
  """`tree` with `convert` applied to every per-galaxy list in it."""
  if isinstance(tree, dict):
    return {k: convert(v) if k in _PER_GALAXY else _per_galaxy(v, convert)
            for k, v in tree.items()}
  if isinstance(tree, list):
    return [_per_galaxy(v, convert) for v in tree]
  return tree


def _from_digits(value: Any) -> Any:
  return [int(c) for c in value] if isinstance(value, str) else value


def _portable(results: dict[str, Any]) -> dict[str, Any]:
  """Results without this machine's paths (the record may be committed)."""
  return _per_galaxy({k: v for k, v in results.items()
                      if k not in ('config', 'pretrained_workdir')}, _digits)


def record_results(config: ml_collections.ConfigDict, name: str,
                   spec: Any, resolved: dict[str, Any],
                   results: dict[str, Any]) -> None:
  """Writes stage `name`'s record to config.stage_archive (if set)."""
  if not config.stage_archive:
    return
  os.makedirs(config.stage_archive, exist_ok=True)
  record = {'record_version': RECORD_VERSION, 'name': name, 'spec': spec,
            'config': config_lib.flat_fields(config_lib.plain_data(resolved)),
            'recorded': time.strftime('%Y-%m-%d'),
            'results': _portable(results)}
  path = _record_path(config, name)
  with open(path + '.tmp', 'w') as f:
    json.dump(record, f, indent=0, sort_keys=True, default=float)
    f.write('\n')
  os.replace(path + '.tmp', path)


def _cached_stage(config, name: str, spec: Any, resolved: dict[str, Any],
                  results_path: str, compute) -> dict[str, Any]:
  """Results from the workdir, else from the record, else computed now.

  Every result carries 'wall_time_s': the time the run that made it took.
  """
  if os.path.exists(results_path):
    with open(results_path) as f:
      results = json.load(f)
    if not (config.stage_archive and os.path.exists(_record_path(config,
                                                                 name))):
      record_results(config, name, spec, resolved, results)
    return results
  results = archived_results(config, name, resolved)
  if results is not None:
    return results
  start = time.perf_counter()
  results = compute()
  results['wall_time_s'] = time.perf_counter() - start
  os.makedirs(os.path.dirname(results_path), exist_ok=True)
  with open(results_path, 'w') as f:
    json.dump(results, f, indent=1, default=float)
  record_results(config, name, spec, resolved, results)
  progress = progress_record_path(config, name)
  if progress and os.path.exists(progress):  # The record supersedes it.
    os.remove(progress)
  return results


def run_stage(config: ml_collections.ConfigDict, stage: Stage,
              workdir: str, times: Optional[dict[str, float]] = None
              ) -> dict[str, Any]:
  """Pretrains (or resumes) and scores one stage; results are cached.

  A stage scored by finetuning shares the pretraining run of its
  linear-probe twin. `times` (if given) gets the stage's name -> wall time
  of its run.
  """
  name = stage_name(config, stage)
  stage_dir = os.path.join(workdir, 'stages', name)
  twin = dataclasses.replace(stage, evaluation='linear_probe')
  pretrain_dir = os.path.join(workdir, 'stages', stage_name(config, twin),
                              'pretrain')
  out_dir = os.path.join(stage_dir, 'probe' if stage.evaluation ==
                         'linear_probe' else stage.evaluation)
  pretrain = stage_pretrain_config(config, stage)

  def compute():
    os.makedirs(stage_dir, exist_ok=True)
    with open(os.path.join(stage_dir, 'stage.json'), 'w') as f:
      json.dump(dataclasses.asdict(stage), f, indent=1, default=str)
    logging.info('ablation stage %s: %s %s %s, %s', name, stage.arm,
                 stage.variant, stage.overrides, stage.evaluation)
    train.train_and_evaluate(pretrain, pretrain_dir)
    evaluation = label_efficiency.evaluation_config(config, stage.evaluation,
                                                    pretrain_dir)
    if stage.downstream:
      evaluation.data.dataset = stage.downstream
    if stage.evaluation == 'linear_probe':
      return linear_probe.run(evaluation, out_dir)
    return finetune.run(evaluation, out_dir,
                        progress_record_path(config, name))

  resolved = {'pretrain': pretrain.to_dict(),
              'shared': {k: config_lib.plain_data(config[k])
                         for k in SHARED_FIELDS},
              'downstream': stage.downstream or config.data.dataset}
  if stage.evaluation != 'linear_probe':
    resolved['finetune'] = config_lib.plain_data(config.finetune)
  results = _cached_stage(config, name, stage_spec(config, stage), resolved,
                          os.path.join(out_dir, 'results.json'), compute)
  if times is not None:
    times[name] = results.get('wall_time_s', 0.0)
  return results


def run_direct(config: ml_collections.ConfigDict, workdir: str,
               times: Optional[dict[str, float]] = None) -> dict[str, Any]:
  """The direct baseline on the current recipe's encoder (cached)."""
  encoder_stage = Stage('hybrid')
  encoder_name = stage_name(config, encoder_stage)
  direct = label_efficiency.evaluation_config(
      config, 'finetune', os.path.join(workdir, 'stages', encoder_name,
                                       'pretrain'))
  finetune.as_direct_baseline(direct)
  model = stage_pretrain_config(config, encoder_stage).model
  spec = {'encoder': config_lib.plain_data(model),
          'finetune': config_lib.flat_fields(config_lib.plain_data(direct))}
  out_dir = os.path.join(workdir, 'direct')
  name = _hashed('direct', spec)

  def compute():
    # The architecture is read from the encoder stage's checkpoint; when
    # that stage came from its record, it is pretrained here (or resumed:
    # a finished run returns at once).
    train.train_and_evaluate(stage_pretrain_config(config, encoder_stage),
                             direct.pretrained_workdir)
    return finetune.run(direct, out_dir, progress_record_path(config, name))

  results = _cached_stage(config, name, spec, spec,
                          os.path.join(out_dir, 'results.json'), compute)
  if times is not None:
    times[name] = results.get('wall_time_s', 0.0)
  return results


# ---------------------------------------------------------------------------
# Statistics.


def method_runs(results: dict[str, Any], method: str) -> dict[int, list]:
  """{budget: runs sorted by seed} of one method in a results.json."""
  out = {}
  for row in results['runs']:
    if row['method'] == method:
      out.setdefault(row['budget'], []).append(row)
  return {b: sorted(rows, key=lambda r: r['seed']) for b, rows in out.items()}


def scored_runs(results: dict[str, Any]) -> dict[int, list]:
  """{budget: runs} of how a stage scored its encoder (finetune or probe)."""
  methods = {row['method'] for row in results['runs']}
  for method in reversed(SCORED_METHOD.values()):  # Finetuning first.
    if method in methods:
      return method_runs(results, method)
  raise ValueError(f'no scored runs among methods {sorted(methods)}')


def correct_matrix(runs: list[dict], labels: np.ndarray) -> np.ndarray:
  """bool [seeds, test galaxies]: whether each seed's fit got each right."""
  return np.stack([np.asarray(r['test_predicted']) == labels for r in runs])


METRICS = ('balanced_accuracy', 'accuracy')


def score(correct: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
  """Accuracy or balanced accuracy over the last axis of `correct`.

  correct: bool/float [..., N]; labels: int [..., N] (broadcast against it).
  Balanced accuracy is the mean over the classes present of the share
  right within the class.
  """
  correct = np.asarray(correct, np.float64)
  if metric == 'accuracy':
    return correct.mean(axis=-1)
  if metric != 'balanced_accuracy':
    raise ValueError(f'unknown metric {metric!r}; choose one of '
                     f'{", ".join(METRICS)}')
  labels = np.broadcast_to(labels, correct.shape)
  recalls = []
  for c in np.unique(labels):
    in_class = labels == c
    recalls.append((correct * in_class).sum(-1) /
                   np.maximum(in_class.sum(-1), 1))
  return np.mean(recalls, axis=0)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray,
                      rng: np.random.Generator, num_resamples: int = 2000,
                      level: float = 0.95, labels: Optional[np.ndarray] = None,
                      metric: str = 'accuracy') -> dict[str, float]:
  """The metric's difference a - b (mean over seeds) and a bootstrap interval.

  Both arms were scored on the same test galaxies with the same labelled
  subsets (one per seed), so the difference is paired (see
  `paired_bootstrap`). The interval covers the noise of the test sample and
  of the labelled subsets; pretraining itself is one run per arm. `labels`
  are needed for balanced accuracy.
  """
  if correct_a.shape != correct_b.shape:
    raise ValueError(f'paired results differ in shape: {correct_a.shape} vs '
                     f'{correct_b.shape}')
  labels = (np.zeros(correct_a.shape[1], int) if labels is None
            else np.asarray(labels))
  drawn = lambda c, draw: score(c[:, draw], labels[draw], metric)
  return paired_bootstrap(
      lambda draw: drawn(correct_a, draw) - drawn(correct_b, draw),
      correct_a.shape, rng, num_resamples, level)


def paired_bootstrap(difference: Callable[[np.ndarray], np.ndarray],
                     shape: tuple[int, int], rng: np.random.Generator,
                     num_resamples: int = 2000, level: float = 0.95
                     ) -> dict[str, float]:
  """Mean over seeds of a per-seed paired difference, and its interval.

  `difference(draw)` maps test-galaxy indices [R, N] to the per-seed
  difference a - b on each drawn sample, [seeds, R]; `shape` is (seeds, N).
  Each resample draws seeds and test galaxies with replacement and takes
  the mean over the drawn seeds; the point is the mean on all galaxies.
  """
  seeds, n = shape
  point = difference(np.arange(n)[None])[:, 0]
  galaxy_draw = rng.integers(0, n, (num_resamples, n))
  seed_draw = rng.integers(0, seeds, (num_resamples, seeds))
  per_seed = difference(galaxy_draw)  # [seeds, resamples]
  samples = np.take_along_axis(per_seed.T, seed_draw, axis=1).mean(axis=1)
  tail = (1.0 - level) / 2.0 * 100.0
  low, high = np.percentile(samples, [tail, 100.0 - tail])
  return {'mean': float(point.mean()), 'low': float(low), 'high': float(high)}


def pick_by_validation(candidates: list[dict[str, Any]]) -> int:
  """Index of the probe results with the best validation balanced accuracy.

  Uses the largest budget's mean over seeds; ties go to the first.
  """
  scores = []
  for results in candidates:
    by_budget = scored_runs(results)
    rows = by_budget[max(by_budget)]
    scores.append(np.mean([r['validation_balanced_accuracy'] for r in rows]))
  return int(np.argmax(scores))


def level_rows(level: Level, results: dict[str, list[dict]],
               direct: Optional[dict[str, Any]], config,
               metric: str) -> list[dict]:
  """One table row per budget: each arm's `metric` and the differences."""
  rng = np.random.default_rng(config.bootstrap_seed)
  chosen = {arm: results[arm][pick_by_validation(results[arm])]
            for arm in ARMS}
  labels = np.asarray(chosen['hybrid']['test_labels'])
  arm_runs = {arm: scored_runs(r) for arm, r in chosen.items()}
  direct_runs = None
  if direct is not None and direct['test_labels'] == list(labels):
    direct_runs = method_runs(direct, 'finetune_scratch')
  rows = []
  for budget in sorted(arm_runs['hybrid']):
    runs = {arm: arm_runs[arm][budget] for arm in ARMS}
    if direct_runs is not None and budget in direct_runs:
      runs['direct'] = direct_runs[budget]
    correct = {k: correct_matrix(v, labels) for k, v in runs.items()}
    best = max(ARMS, key=lambda a: np.mean(
        [r['validation_balanced_accuracy'] for r in runs[a]]))
    correct['best pretrained'] = correct[best]
    row = {'budget': budget, 'best': best,
           'score': {k: (float(np.mean([r[metric] for r in v])),
                         float(np.std([r[metric] for r in v])))
                     for k, v in runs.items()},
           'differences': {}}
    for a, b in DIFFERENCES:
      if a in correct and b in correct:
        row['differences'][f'{a} - {b}'] = paired_difference(
            correct[a], correct[b], rng, config.bootstrap_resamples,
            labels=labels, metric=metric)
    rows.append(row)
  return rows


# ---------------------------------------------------------------------------
# The table.


def _cell(mean_std: Optional[tuple[float, float]], mark: str = '') -> str:
  if mean_std is None:
    return ''
  return f'{mean_std[0]:.3f} ± {mean_std[1]:.3f}{mark}'


def _difference_cell(d: Optional[dict[str, float]]) -> str:
  if d is None:
    return 'n/a'
  return f'{d["mean"]:+.3f} [{d["low"]:+.3f}, {d["high"]:+.3f}]'


def factor_table(factor: str, levels: list[Level],
                 rows: dict[str, list[dict]], chosen_lr: dict) -> str:
  """Markdown: levels and budgets down; arms and differences across."""
  head = ['level', 'labels', 'direct', *ARMS,
          *(f'{a} − {b}' for a, b in DIFFERENCES)]
  lines = [f'### {factor}', '', '| ' + ' | '.join(head) + ' |',
           '|---' * len(head) + '|']
  for level in levels:
    for row in rows[level.name]:
      acc = row['score']
      cells = [level.name + chosen_lr.get(level.name, ''),
               str(row['budget']), _cell(acc.get('direct'))]
      cells += [_cell(acc[arm], '' if arm in level.varied else ' †')
                for arm in ARMS]
      cells += [_difference_cell(row['differences'].get(f'{a} - {b}'))
                for a, b in DIFFERENCES]
      lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _lr_note(level: Level, results: dict[str, list[dict]],
             config: ml_collections.ConfigDict) -> str:
  """' (lr ×0.5/×1/×2)': the learning-rate multiplier picked per arm."""
  if not level.lr_grid:
    return ''
  picks = [f'×{config.lr_multipliers[pick_by_validation(results[arm])]:g}'
           for arm in ARMS]
  return f' (lr {"/".join(picks)})'


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  label_efficiency.validate(config)
  for factor in config.factors:
    if factor not in FACTORS:
      raise ValueError(f'config.factors has {factor!r}; choose from '
                       f'{", ".join(FACTORS)}')
  for name in config.optimizers:
    if name not in ('lars', 'adamw', 'sgd'):
      raise ValueError(f'config.optimizers has {name!r}; choose from lars, '
                       'adamw, sgd')
  for metric in config.metrics:
    if metric not in METRICS:
      raise ValueError(f'config.metrics has {metric!r}; choose from '
                       f'{", ".join(METRICS)}')
  if not config.lr_multipliers:
    raise ValueError('config.lr_multipliers must not be empty')


def _factor_results(config: ml_collections.ConfigDict, factor: str,
                    base_duration: str, workdir: str,
                    times: dict[str, float]):
  """(levels, {level: {arm: [stage results]}}, {level: lr note})."""
  levels = factor_levels(config, factor, base_duration)
  results, notes = {}, {}
  for level in levels:
    results[level.name] = {
        arm: [run_stage(config, s, workdir, times) for s in stages]
        for arm, stages in level.stages.items()}
    notes[level.name] = _lr_note(level, results[level.name], config)
  return levels, results, notes


def _tables(config: ml_collections.ConfigDict, done: dict[str, tuple],
            direct: Optional[dict[str, Any]]) -> tuple[list[str], dict]:
  """Markdown sections and rows of every finished factor, per metric."""
  sections, summary = [], {}
  for factor, (levels, results, notes) in done.items():
    summary[factor] = {}
    for metric in config.metrics:
      rows = {level.name: level_rows(level, results[level.name], direct,
                                     config, metric) for level in levels}
      sections.append(factor_table(f'{factor}: {metric.replace("_", " ")}',
                                   levels, rows, notes))
      summary[factor][metric] = rows
  return sections, summary


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs every factor's stages (reusing finished ones), writes ablation.md.

  The direct baseline (the slowest single stage) is trained after the first
  factor, so that factor's table is written first without it; every table
  is rewritten once it is there.
  """
  validate(config)
  start = time.perf_counter()
  base_duration = label_efficiency.pretrain_config(
      config, 'hybrid').train_duration
  done, direct, times = {}, None, {}
  for factor in config.factors:
    done[factor] = _factor_results(config, factor, base_duration, workdir,
                                   times)
    if direct is None:
      _write(workdir, _tables(config, done, None)[0], config,
             time.perf_counter() - start, times)
      direct = run_direct(config, workdir, times) if config.direct else None
    sections, summary = _tables(config, done, direct)
    _write(workdir, sections, config, time.perf_counter() - start, times)
  return {'factors': summary, 'table': '\n'.join(sections)}


def _write(workdir: str, sections: list[str],
           config: ml_collections.ConfigDict, wall_s: float,
           times: dict[str, float]) -> None:
  """ablation.md with the tables so far (rewritten after every factor)."""
  stage_times = list(times.values())
  header = (
      f'Test {" and ".join(m.replace("_", " ") for m in config.metrics)} '
      'of each pretrained encoder, scored by the linear probe (by '
      'finetuning in the finetune level of the evaluation factor), on '
      f'{config.data.dataset} (mean ± '
      f'std over {config.num_seeds} seeds of the labelled subset); '
      'differences: mean [95% interval, paired bootstrap over seeds and '
      'test galaxies]. † = this arm is not changed by the level (current '
      'recipe). direct = the current encoder trained from scratch on the '
      'labels (finetune); best pretrained = the arm with the best '
      'validation balanced accuracy. This command: '
      f'{wall_s / 60:.1f} min; the {len(stage_times)} stages in these '
      f'tables (direct included) took {sum(stage_times) / 60:.1f} min in '
      'the runs that made them (some may come from config.stage_archive).\n')
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'ablation.md'), 'w') as f:
    f.write(header + '\n' + '\n'.join(sections))
  logging.info('wrote %s', os.path.join(workdir, 'ablation.md'))

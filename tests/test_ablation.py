"""The ablation command: its factors, its statistics, and a smoke run."""

import json
import os

import numpy as np
import pytest
import scipy.stats

from conftest import REPO_ROOT
from gzevo_jax import config_lib
from gzevo_jax.evaluation import ablation


def _config(variant='smoke'):
  return config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', f'ablation.py:{variant}'))


def test_paired_difference_matches_scipy_bootstrap_for_one_seed():
  rng = np.random.default_rng(0)
  n = 600
  a = rng.random((1, n)) < 0.80
  b = rng.random((1, n)) < 0.74
  ours = ablation.paired_difference(a, b, np.random.default_rng(1), 4000)
  diff = a[0].astype(float) - b[0].astype(float)
  ref = scipy.stats.bootstrap((diff,), np.mean, n_resamples=4000,
                              method='percentile',
                              random_state=np.random.default_rng(2))
  assert ours['mean'] == pytest.approx(diff.mean())
  assert ours['low'] == pytest.approx(ref.confidence_interval.low, abs=0.006)
  assert ours['high'] == pytest.approx(ref.confidence_interval.high, abs=0.006)


def test_balanced_accuracy_matches_scikit_learn():
  from sklearn import metrics
  rng = np.random.default_rng(7)
  labels = (rng.random(300) < 0.25).astype(int)
  predicted = np.where(rng.random(300) < 0.7, labels, 1 - labels)
  correct = predicted == labels
  assert ablation.score(correct, labels, 'balanced_accuracy') == (
      pytest.approx(metrics.balanced_accuracy_score(labels, predicted)))
  assert ablation.score(correct, labels, 'accuracy') == pytest.approx(
      metrics.accuracy_score(labels, predicted))
  # Always "no" on a 25% minority: accuracy 0.75, balanced accuracy 0.5.
  always_no = labels == 0
  assert ablation.score(always_no, labels, 'balanced_accuracy') == 0.5
  d = ablation.paired_difference(correct[None], always_no[None], rng, 500,
                                 labels=labels, metric='balanced_accuracy')
  assert d['mean'] == pytest.approx(
      metrics.balanced_accuracy_score(labels, predicted) - 0.5)
  assert d['low'] < d['mean'] < d['high']
  with pytest.raises(ValueError, match='balanced_accuracy, accuracy'):
    ablation.score(correct, labels, 'f1')


def test_paired_difference_widens_with_disagreeing_seeds():
  rng = np.random.default_rng(3)
  n = 800
  base = rng.random((3, n)) < 0.75
  same = ablation.paired_difference(base, base, rng, 500)
  assert same == {'mean': 0.0, 'low': 0.0, 'high': 0.0}
  # Seeds that disagree about the difference give a wider interval than
  # seeds that agree, with the same mean.
  agree = np.stack([rng.random(n) < 0.8 for _ in range(3)])
  other = np.stack([rng.random(n) < 0.7 for _ in range(3)])
  flipped = other.copy()
  flipped[0] = agree[0]  # Seed 0: no difference; seeds 1-2: a large one.
  narrow = ablation.paired_difference(agree, other, rng, 2000)
  wide = ablation.paired_difference(agree, flipped, rng, 2000)
  assert wide['high'] - wide['low'] > narrow['high'] - narrow['low']
  with pytest.raises(ValueError, match='shape'):
    ablation.paired_difference(agree, other[:2], rng)


def test_pick_by_validation_uses_validation_never_test():
  def results(val, test):
    return {'runs': [{'method': 'linear_probe', 'budget': 50, 'seed': s,
                      'validation_balanced_accuracy': val, 'accuracy': test}
                     for s in range(2)]}
  candidates = [results(0.6, 0.9), results(0.8, 0.5), results(0.7, 0.99)]
  assert ablation.pick_by_validation(candidates) == 1


def test_scaled_duration():
  assert ablation.scaled_duration('5 epochs', 4) == '20 epochs'
  assert ablation.scaled_duration('30 steps', 4) == '120 steps'
  assert ablation.scaled_duration('2.5 epochs', 4) == '10 epochs'


def test_factor_levels_change_only_what_they_name():
  config = _config('')
  levels = {f: ablation.factor_levels(config, f, '5 epochs')
            for f in ablation.FACTORS}
  current = ablation.Stage('hybrid')
  # Every factor but the optimizer and the hybrid-only ones starts from the
  # current recipe, so their first level reuses the same stages.
  for factor in ('recipe', 'augment', 'length'):
    assert levels[factor][0].stages['hybrid'] == [current]
  weighting = levels['weighting']
  assert [l.name for l in weighting] == [
      'plain w=0.1', 'plain w=1', 'plain w=10', 'rescaled w=0.1',
      'rescaled w=1', 'rescaled w=10']
  # plain w=1 is the current hybrid config: the same stage, run once.
  hybrid = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'hybrid.py'))
  assert not hybrid.loss.rescale_supervised
  assert hybrid.loss.supervised_weight == 1.0
  for level in weighting + levels['head_views']:
    assert level.varied == ('hybrid',)
    assert level.stages['supervised'] == [ablation.Stage('supervised')]
  # The headline: the paper's recipe, probed and finetuned; both levels
  # share the pretraining (the twin's name), not the scores.
  probed, finetuned = levels['evaluation']
  assert probed.stages['hybrid'] == [ablation.Stage('hybrid', 'paper')]
  assert finetuned.stages['hybrid'][0].evaluation == 'finetune'
  name = lambda stage: ablation.stage_name(config, stage)
  assert name(probed.stages['hybrid'][0]) == name(
      levels['recipe'][1].stages['hybrid'][0])
  assert name(finetuned.stages['hybrid'][0]) != name(
      probed.stages['hybrid'][0])
  optimizer = levels['optimizer']
  assert sorted(l.name for l in optimizer) == ['adamw', 'lars']
  assert all(len(stages) == 3 for l in optimizer
             for stages in l.stages.values())
  lengths = dict(levels['length'][1].stages['contrastive'][0].overrides)
  assert lengths == {'train_duration': '20 epochs'}
  # Stage names follow the resolved config: levels equal to the current
  # recipe share its stage, every other level gets its own.
  name = lambda stage: ablation.stage_name(config, stage)
  assert name(weighting[1].stages['hybrid'][0]) == name(current)
  assert name(weighting[4].stages['hybrid'][0]) != name(current)
  lars, adamw = sorted(optimizer, key=lambda l: l.name != 'lars')
  assert name(lars.stages['hybrid'][1]) == name(current)  # x1 = current.
  assert name(adamw.stages['supervised'][1]) == name(
      ablation.Stage('supervised'))
  assert len({name(s) for s in lars.stages['hybrid']}) == 3


def test_stage_config_applies_variant_and_overrides():
  config = _config()
  stage = ablation.factor_levels(config, 'augment', '30 steps')[1].stages[
      'hybrid'][0]
  pretrain = ablation.stage_pretrain_config(config, stage)
  assert pretrain.data.augment.saturation_probability == 1.0
  assert pretrain.train_duration == '4 steps'  # The ablation's smoke scale.
  paper = ablation.stage_pretrain_config(
      config, ablation.Stage('hybrid', 'paper'))
  assert paper.optimizer.name == 'sgd' and paper.data.image_size == 32
  with pytest.raises(ValueError, match="unknown config field 'loss.wieght'"):
    ablation.stage_pretrain_config(
        config, ablation.Stage('hybrid', '', (('loss.wieght', 1.0),)))


def test_lr_note_names_the_multiplier_picked_per_arm():
  config = _config()
  config.lr_multipliers = (0.5, 1.0, 2.0)
  level = [l for l in ablation.factor_levels(config, 'optimizer', '4 steps')
           if l.name == 'lars'][0]

  def results(val):
    return {'runs': [{'method': 'linear_probe', 'budget': 50, 'seed': 0,
                      'validation_balanced_accuracy': val}]}
  picks = {'supervised': [0.9, 0.5, 0.5], 'contrastive': [0.5, 0.9, 0.5],
           'hybrid': [0.5, 0.5, 0.9]}
  note = ablation._lr_note(
      level, {arm: [results(v) for v in vals] for arm, vals in picks.items()},
      config)
  assert note == ' (lr ×0.5/×1/×2)'
  assert ablation._lr_note(ablation.factor_levels(config, 'recipe', '')[0],
                           {}, config) == ''


def test_stage_names_ignore_machine_paths_and_follow_the_shared_fields():
  config = _config()
  name = ablation.stage_name(config, ablation.Stage('hybrid'))
  config.data.data_dir = '/somewhere/else'
  assert ablation.stage_name(config, ablation.Stage('hybrid')) == name
  config.num_seeds += 1  # Changes what the stage's probe computes.
  assert ablation.stage_name(config, ablation.Stage('hybrid')) != name


def test_the_default_stages_keep_the_names_of_their_records():
  """A config field added anywhere the stages read would rename every
  stage and silently orphan results/ablation: the current recipe of each
  arm must still name its record."""
  config = _config('')
  records = os.listdir(os.path.join(REPO_ROOT, 'results', 'ablation'))
  for arm in ('supervised', 'contrastive', 'hybrid'):
    name = ablation.stage_name(config, ablation.Stage(arm))
    assert f'{name}.json' in records, name
  config.data.source = 'grain'  # How a machine reads: not what it computes.
  assert ablation.stage_name(config, ablation.Stage('hybrid')) == name


def test_a_record_is_reused_only_while_its_config_still_holds(tmp_path):
  config = _config()
  config.stage_archive = str(tmp_path)
  resolved = {'pretrain': {'loss': {'supervised_weight': 1.0},
                           'data': {'data_dir': '/machine/a'}}}
  results = {'runs': [{'test_predicted': [0, 1, 1]}], 'test_labels': [1, 1, 0],
             'config': {'pretrained_workdir': '/machine/a/x'},
             'pretrained_workdir': '/machine/a/x', 'wall_time_s': 3.0}
  ablation.record_results(config, 'hybrid-abc', {}, resolved, results)
  text = (tmp_path / 'hybrid-abc.json').read_text()
  assert '/machine/a' not in text
  assert '"011"' in text  # Per-galaxy classes as digits.
  # Another machine's data_dir and a field added since: reused.
  moved = {'pretrain': {'loss': {'supervised_weight': 1.0, 'new_field': 0},
                        'data': {'data_dir': '/machine/b'}}}
  assert ablation.archived_results(config, 'hybrid-abc', moved) == {
      'runs': [{'test_predicted': [0, 1, 1]}], 'test_labels': [1, 1, 0],
      'wall_time_s': 3.0}
  # A recorded field whose value changed: the stage runs again.
  changed = {'pretrain': {'loss': {'supervised_weight': 2.0}}}
  assert ablation.archived_results(config, 'hybrid-abc', changed) is None
  assert ablation.changed_fields(resolved, changed) == (
      ['pretrain.loss.supervised_weight'], [])
  assert ablation.archived_results(config, 'hybrid-xyz', resolved) is None
  config.stage_archive = ''
  assert ablation.archived_results(config, 'hybrid-abc', resolved) is None


def test_bad_factor_is_named():
  config = _config()
  config.factors = ('recipe', 'colour')
  with pytest.raises(ValueError, match="'colour'; choose from recipe"):
    ablation.validate(config)


def test_smoke_ablation_end_to_end(tmp_path):
  """The smoke ablation, then a rerun reusing every stage.

  Three factors cover the paths of run() (a variant, finetuned stages,
  hybrid-only levels, the direct baseline, reuse of shared stages); the
  other factors' stage configs and the learning-rate pick are checked
  above, and README gives the run of all factors (too slow for CI).
  """
  config = _config()
  config.factors = ('recipe', 'evaluation', 'weighting')
  config.finetune.max_epochs = 1
  config.stage_archive = str(tmp_path / 'archive')
  out = ablation.run(config, str(tmp_path))
  table = (tmp_path / 'ablation.md').read_text()
  for factor in config.factors:
    for metric in ('balanced accuracy', 'accuracy'):
      assert f'### {factor}: {metric}\n' in table
  for text in ('rescaled w=1', 'plain w=1', '| paper |',
               'hybrid − supervised', ' † |'):
    assert text in table, text
  recipe = out['factors']['recipe']['accuracy']
  assert [r['budget'] for r in recipe['current']] == [20, 320]  # 320: all.
  for metrics in out['factors'].values():
    for levels in metrics.values():
      for rows in levels.values():
        for row in rows:
          for d in row['differences'].values():
            assert -1.0 <= d['low'] <= d['mean'] <= d['high'] <= 1.0
          for mean, std in row['score'].values():
            assert 0.0 <= mean <= 1.0 and std >= 0.0
          # The direct baseline is compared: the downstream task is the same.
          assert 'best pretrained - direct' in row['differences']
  # plain w=1 is the current hybrid: its stage ran once, for both tables.
  weighting = out['factors']['weighting']['accuracy']
  assert (weighting['plain w=1'][0]['score']['hybrid'] ==
          recipe['current'][0]['score']['hybrid'])
  evaluation = out['factors']['evaluation']['accuracy']
  assert (evaluation['paper, linear probe'][0]['score']['hybrid'] ==
          recipe['paper'][0]['score']['hybrid'])
  assert 'finetune' in table  # The finetuned level's rows.
  stages = sorted(os.listdir(tmp_path / 'stages'))
  # 3 current, 3 paper (pretrained once, probed), 3 paper finetuned, 1
  # rescaled hybrid.
  assert len(stages) == 10
  finetuned = [s for s in stages if (tmp_path / 'stages' / s / 'finetune' /
                                     'results.json').exists()]
  assert len(finetuned) == 3
  for stage in finetuned:
    assert not (tmp_path / 'stages' / stage / 'pretrain').exists()
  stage_json = json.loads((tmp_path / 'stages' / stages[0] /
                           'stage.json').read_text())
  assert stage_json['arm'] in ablation.ARMS
  # Rerun: every stage is reused (no new stage, same table body).
  again = ablation.run(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / 'stages')) == stages
  assert again['table'] == out['table']
  # Another workdir (a later sitting elsewhere): every stage and the direct
  # baseline come from their records, which name no path of this machine.
  records = sorted(os.listdir(tmp_path / 'archive'))
  direct = [r for r in records if r.startswith('direct-')]
  assert len(direct) == 1
  assert sorted(set(records) - set(direct)) == [f'{s}.json' for s in stages]
  for record in records:
    assert str(tmp_path) not in (tmp_path / 'archive' / record).read_text()
  elsewhere = ablation.run(config, str(tmp_path / 'elsewhere'))
  assert not (tmp_path / 'elsewhere' / 'stages').exists()
  assert elsewhere['table'] == out['table']

"""The linear probe from checkpoints of every objective, and its bad inputs."""

import csv
import json
import os

import jax
import numpy as np
import pytest

from conftest import REPO_ROOT, tiny_config
from tiny import tiny_checkpoint
from gzevo_jax import checkpoint, config_lib, train
from gzevo_jax.data import common
from gzevo_jax.evaluation import linear_probe

OBJECTIVES = ('contrastive', 'supervised', 'hybrid')


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
  """A 2-step checkpoint of each objective."""
  return {objective: tiny_checkpoint(objective,
                                     str(tmp_path_factory.mktemp(objective)))
          for objective in OBJECTIVES}


def _probe_config(workdir, **overrides):
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'linear_probe.py:smoke'))
  config.pretrained_workdir = workdir
  config.eval_batch_size = 64
  for key, value in overrides.items():
    config[key] = value
  return config


@pytest.mark.parametrize('objective', OBJECTIVES)
def test_probe_runs_from_every_objective(objective, pretrained, tmp_path):
  config = _probe_config(pretrained[objective])
  results = linear_probe.run(config, str(tmp_path))
  assert results['pretrained_objective'] == objective
  assert results['pretrained_step'] == 2
  runs = results['runs']
  assert {r['method'] for r in runs} == {'linear_probe', 'knn'}
  assert {r['seed'] for r in runs} == {0, 1}
  assert {r['budget'] for r in runs} >= {20}
  for r in runs:
    assert 0.0 <= r['accuracy'] <= 1.0
  with open(tmp_path / 'results.json') as f:
    assert json.load(f)['summary'] == json.loads(json.dumps(
        results['summary'], default=float))
  with open(tmp_path / 'results.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 4  # 2 methods x 2 budgets.
  assert (tmp_path / 'label_efficiency.png').stat().st_size > 10_000


def test_features_match_the_restored_encoder(pretrained):
  config = _probe_config(pretrained['hybrid'])
  splits, facts = linear_probe.extract_splits(config)
  encoder, variables = checkpoint.restore_encoder(pretrained['hybrid'])
  from gzevo_jax.data import pipeline, sources
  builder = sources.prepare_dataset(config.data)
  batch = next(pipeline.eval_batches(builder, 'test', batch_size=8,
                                     image_size=facts['image_size']))
  direct = np.asarray(encoder.apply(variables, batch['image'], train=False))
  np.testing.assert_allclose(splits['test'].features[:8], direct, rtol=1e-4,
                             atol=1e-5)
  n = builder.info.splits['test'].num_examples
  assert splits['test'].num_examples == n
  assert len(set(splits['test'].ids)) == n


def test_workdir_without_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match='no checkpoint.*train first'):
    linear_probe.run(_probe_config(str(tmp_path)), str(tmp_path / 'out'))


def test_missing_pretrained_workdir_is_a_config_error():
  config = _probe_config(None)
  with pytest.raises(ValueError, match='pretrained_workdir'):
    linear_probe.validate(config)


def test_budget_larger_than_the_labelled_set(pretrained, tmp_path):
  config = _probe_config(pretrained['supervised'], budgets=(10, 100_000))
  with pytest.raises(common.DataError, match='100000') as error:
    linear_probe.run(config, str(tmp_path))
  assert 'all' in str(error.value)


def test_checkpoint_for_other_bands_is_a_clear_error(tmp_path):
  workdir = str(tmp_path / 'grey')
  train.train_and_evaluate(
      tiny_config('supervised', train_duration='1 steps',
                  checkpoint_every_steps=1, **{'data.channels': 1,
                                               'data.source':
                                               'in_memory_synthetic'}),
      workdir)
  with pytest.raises(checkpoint.IncompatibleCheckpointError,
                     match='1-channel.*3-channel'):
    linear_probe.run(_probe_config(workdir), str(tmp_path / 'out'))


def test_knn_monitor_reports_during_pretraining(tmp_path):
  from gzevo_jax import metric_writers
  config = tiny_config('hybrid', train_duration='4 steps')
  config.knn_monitor.every_steps = 2
  config.knn_monitor.max_examples = 64
  train.train_and_evaluate(config, str(tmp_path))
  records = [r for r in metric_writers.read_metrics(str(tmp_path))
             if 'monitor/knn_accuracy' in r]
  assert [r['step'] for r in records] == [2, 4]
  for r in records:
    assert 0.0 <= r['monitor/knn_accuracy'] <= 1.0
    assert 0.0 <= r['monitor/knn_balanced_accuracy'] <= 1.0


def _finetune_config(workdir, variant='smoke'):
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', f'finetune.py:{variant}'))
  config.pretrained_workdir = workdir
  config.budgets = (20,)
  config.num_seeds = 1
  return config


def test_finetune_starts_from_the_pretrained_encoder(pretrained, tmp_path):
  from gzevo_jax.evaluation import finetune
  config = _finetune_config(pretrained['hybrid'])
  results = finetune.run(config, str(tmp_path))
  (row,) = results['runs']
  assert row['method'] == 'finetune_pretrained' and row['budget'] == 20
  assert 1 <= row['best_epoch'] <= row['epochs'] <= config.max_epochs
  assert 0.0 <= row['accuracy'] <= 1.0
  assert 0.0 <= row['validation_balanced_accuracy'] <= 1.0
  assert (tmp_path / 'results.csv').exists()
  # The classifier's encoder starts as the checkpoint's.
  model = finetune.Classifier(
      finetune.models.build_encoder_from_config(
          checkpoint.load_config_and_schema(pretrained['hybrid'])[0].model), 2)
  variables = finetune.initial_variables(config, model, (16, 16, 3), 0)
  _, encoder_vars = checkpoint.restore_encoder(pretrained['hybrid'])
  for a, b in zip(jax.tree.leaves(variables['params']['encoder']),
                  jax.tree.leaves(encoder_vars['params'])):
    np.testing.assert_array_equal(a, b)


def test_direct_baseline_starts_from_scratch(pretrained, tmp_path):
  from gzevo_jax.evaluation import finetune
  config = _finetune_config(pretrained['hybrid'], 'direct')
  assert config.init == 'scratch'
  results = finetune.run(config, str(tmp_path))
  assert results['runs'][0]['method'] == 'finetune_scratch'
  model = finetune.Classifier(
      finetune.models.build_encoder_from_config(
          checkpoint.load_config_and_schema(pretrained['hybrid'])[0].model), 2)
  variables = finetune.initial_variables(config, model, (16, 16, 3), 0)
  _, encoder_vars = checkpoint.restore_encoder(pretrained['hybrid'])
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(variables['params']['encoder']),
      jax.tree.leaves(encoder_vars['params'])))


def test_finetune_resumes_at_the_first_unfinished_seed(pretrained, tmp_path,
                                                       monkeypatch):
  """A killed finetune keeps its finished (budget, seed) runs."""
  from gzevo_jax.evaluation import finetune
  config = _finetune_config(pretrained['hybrid'], 'direct')
  config.num_seeds = 2
  first = finetune.run(config, str(tmp_path))
  progress = json.loads((tmp_path / 'progress.json').read_text())
  assert sorted(progress['rows']) == ['20/0', '20/1']
  # Rerun as if seed 1 had not finished: only seed 1 trains again.
  del progress['rows']['20/1']
  (tmp_path / 'progress.json').write_text(json.dumps(progress))
  trained_seeds = []
  train_classifier = finetune.train_classifier

  def counting(model, variables, train_split, val, config, seed, pool=None):
    trained_seeds.append(seed)
    return train_classifier(model, variables, train_split, val, config, seed,
                            pool)
  monkeypatch.setattr(finetune, 'train_classifier', counting)
  again = finetune.run(config, str(tmp_path))
  assert trained_seeds == [1]
  for a, b in zip(first['runs'], again['runs']):
    assert a['test_predicted'] == b['test_predicted']
    assert a['accuracy'] == pytest.approx(b['accuracy'])
  # Another config ignores the file: every seed trains.
  config.max_epochs = 1
  trained_seeds.clear()
  finetune.run(config, str(tmp_path))
  assert trained_seeds == [0, 1]


def test_finetune_progress_record_goes_on_from_another_machine(tmp_path):
  """The record copy of the progress names no path of the machine that
  wrote it, and is read where a workdir has no progress of its own."""
  import ml_collections
  from gzevo_jax.evaluation import finetune
  here = ml_collections.ConfigDict({
      'pretrained_workdir': '/machine/a/pretrain', 'learning_rate': 0.1,
      'data': {'data_dir': '/machine/a/tfds', 'dataset': 'gz_rings'}})
  record = str(tmp_path / 'stage.progress.json')
  progress = finetune.SeedProgress(str(tmp_path / 'a'), here, record)
  progress.add(100, 0, {'budget': 100, 'seed': 0, 'accuracy': 0.5})
  assert '/machine/a' not in (tmp_path / 'stage.progress.json').read_text()
  elsewhere = ml_collections.ConfigDict(here.to_dict())
  elsewhere.pretrained_workdir = '/machine/b/pretrain'
  elsewhere.data.data_dir = '/machine/b/tfds'
  resumed = finetune.SeedProgress(str(tmp_path / 'b'), elsewhere, record)
  assert resumed.row(100, 0) == {'budget': 100, 'seed': 0, 'accuracy': 0.5}
  assert resumed.row(100, 1) is None
  # A workdir's own progress still needs its own pretrained workdir.
  assert finetune.SeedProgress(str(tmp_path / 'a'), elsewhere).row(
      100, 0) is None
  # Another recipe ignores the record.
  elsewhere.learning_rate = 0.2
  assert finetune.SeedProgress(str(tmp_path / 'c'), elsewhere,
                               record).row(100, 0) is None


def test_progress_ignores_only_the_named_fields(tmp_path):
  """FixMatch's `arms` does not change an arm's rows: a one-arm run's
  progress is reused by a run of every arm, but no other change is."""
  import ml_collections
  from gzevo_jax.evaluation import finetune
  one_arm = ml_collections.ConfigDict({'arms': ('fixmatch',), 'patience': 5})
  finetune.SeedProgress(str(tmp_path), one_arm, ignore=('arms',)).add(
      10, 0, {'budget': 10, 'seed': 0})
  every_arm = ml_collections.ConfigDict({'arms': ('supervised', 'fixmatch'),
                                         'patience': 5})
  assert finetune.SeedProgress(str(tmp_path), every_arm,
                               ignore=('arms',)).row(10, 0) == {
                                   'budget': 10, 'seed': 0}
  assert finetune.SeedProgress(str(tmp_path), every_arm).row(10, 0) is None
  every_arm.patience = 15
  assert finetune.SeedProgress(str(tmp_path), every_arm,
                               ignore=('arms',)).row(10, 0) is None


def test_resumable_runs_trains_only_what_progress_lacks(tmp_path):
  """Rows come budget-major; a finished (budget, seed) is read back, not
  trained, and each trained one is saved before the next starts."""
  import ml_collections
  from gzevo_jax.evaluation import finetune
  config = ml_collections.ConfigDict({'learning_rate': 0.1})
  progress = finetune.SeedProgress(str(tmp_path), config)
  progress.add(10, 1, {'budget': 10, 'seed': 1, 'from': 'before'})
  trained = []

  def train_one(budget, seed):
    trained.append((budget, seed))
    # The previous run is on disk before this one starts.
    saved = json.loads((tmp_path / 'progress.json').read_text())['rows']
    assert len(saved) == len(trained)
    return {'budget': budget or 50, 'seed': seed, 'from': 'trained'}

  rows = finetune.resumable_runs(progress, [10, None], 2, train_one, 'arm')
  assert trained == [(10, 0), (None, 0), (None, 1)]
  assert [(r['budget'], r['seed'], r['from']) for r in rows] == [
      (10, 0, 'trained'), (10, 1, 'before'), (50, 0, 'trained'),
      (50, 1, 'trained')]
  again = finetune.resumable_runs(finetune.SeedProgress(str(tmp_path), config),
                                  [10, None], 2, train_one)
  assert again == rows and len(trained) == 3


def test_layer_wise_learning_rates():
  from gzevo_jax.evaluation import finetune
  assert finetune.layer_depth('stem_conv') == 0
  assert finetune.layer_depth('stage1_block2') == 1
  assert finetune.layer_depth('downsample1_conv') == 2
  assert finetune.layer_depth('stage4_block1') == 4
  assert finetune.layer_depth('final_norm') == 5
  assert finetune.layer_depth('head') == 5
  params = {'encoder': {'stem_conv': {'kernel': np.ones((3, 3, 1, 1))},
                        'stage4_block1': {'kernel': np.ones((3, 3, 1, 1))}},
            'head': {'kernel': np.ones((1, 1))}}
  grads = jax.tree.map(np.ones_like, params)
  tx = finetune.make_optimizer(params, learning_rate=1.0, layer_decay=0.5,
                               weight_decay=0.0, warmup_steps=0,
                               total_steps=100)
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step moves every parameter by about its learning rate.
  head = abs(float(np.asarray(updates['head']['kernel']).ravel()[0]))
  stage4 = abs(float(np.asarray(
      updates['encoder']['stage4_block1']['kernel']).ravel()[0]))
  stem = abs(float(np.asarray(
      updates['encoder']['stem_conv']['kernel']).ravel()[0]))
  np.testing.assert_allclose([stage4 / head, stem / head], [0.5, 0.5**5],
                             rtol=1e-3)


def test_label_efficiency_experiment_smoke(tmp_path):
  from gzevo_jax.evaluation import label_efficiency
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'label_efficiency.py:smoke'))
  config.pretrain_train_duration = '2 steps'
  config.budgets = (20,)
  config.num_seeds = 1
  config.finetune.max_epochs = 1
  out = label_efficiency.run(config, str(tmp_path))
  assert list(out['summaries']) == ['direct', 'supervised', 'contrastive',
                                    'hybrid']
  table = (tmp_path / 'label_efficiency.md').read_text()
  assert '| labels | direct | supervised | contrastive | hybrid |' in table
  assert table.splitlines()[-1].count('±') == 4  # One row: budget 20.
  assert (tmp_path / 'label_efficiency.png').stat().st_size > 10_000
  for arm in ('supervised', 'contrastive', 'hybrid'):
    assert (tmp_path / f'pretrain_{arm}' / 'checkpoints' / '2').is_dir()
  # A rerun reuses every finished stage.
  again = label_efficiency.run(config, str(tmp_path))
  assert again['table'] == out['table']
  # Scoring the same pretrained arms by finetuning reuses them and direct.
  config.evaluation = 'finetune'
  tuned = label_efficiency.run(config, str(tmp_path))
  assert 'finetune of the pretrained encoder' in tuned['table']
  assert tuned['summaries']['direct'] == out['summaries']['direct']
  for arm in ('supervised', 'contrastive', 'hybrid'):
    assert (tmp_path / f'finetune_{arm}' / 'results.json').is_file()


def test_checkpoints_from_before_a_config_field_existed_stay_readable(
    pretrained):
  """A field added to the config later takes its default on restore."""
  import shutil
  workdir = pretrained['supervised'] + '_old'
  shutil.copytree(pretrained['supervised'], workdir)
  path = os.path.join(workdir, 'checkpoints', '2', 'config', 'metadata')
  with open(path) as f:
    stored = json.load(f)
  del stored['knn_monitor']
  with open(path, 'w') as f:
    json.dump(stored, f)
  config, _, step = checkpoint.load_config_and_schema(workdir)
  assert step == 2 and config.objective == 'supervised'
  assert config.knn_monitor.every_steps == config_lib.base_config(
      'supervised').knn_monitor.every_steps
  encoder, variables = checkpoint.restore_encoder(workdir)
  assert jax.tree.leaves(variables['params'])


@pytest.mark.parametrize('arms,message', [
    ((), 'one or more pretraining configs'),
    (('hybrid', 'hybird'), "no pretraining config 'hybird'"),
])
def test_label_efficiency_names_a_bad_arm(arms, message):
  from gzevo_jax.evaluation import label_efficiency
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'label_efficiency.py'))
  config.arms = arms
  with pytest.raises(ValueError, match=message):
    label_efficiency.validate(config)

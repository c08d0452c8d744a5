"""The Grain input: array_record builds, its iterator state, errors, and the
train loop and evaluation without TensorFlow.

The cases it shares with tf.data (contract, determinism, resume, sharding,
evaluation) run for both sources in test_pipeline.py.
"""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from conftest import REPO_ROOT, tiny_config
from gzevo_jax import checkpoint
from gzevo_jax import config_lib
from gzevo_jax.data import array_records
from gzevo_jax.data import build
from gzevo_jax.data import common
from gzevo_jax.data import grain_pipeline
from gzevo_jax.schema import get_schema

NAME = 'gz_evo/synthetic_tiny'
RINGS = 'gz_rings/synthetic_tiny'
WORKER = os.path.join(REPO_ROOT, 'tests', 'grain_train_worker.py')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """gz_evo/synthetic_tiny and gz_rings/synthetic_tiny, array_record only."""
  path = str(tmp_path_factory.mktemp('tfds'))
  for name in (NAME, RINGS):
    build.prepare(name, data_dir=path, file_formats=['array_record'])
  return path


@pytest.fixture
def data_config(data_dir):
  config = config_lib.base_config('hybrid').data
  config.source, config.dataset, config.data_dir = 'grain', NAME, data_dir
  config.image_size = 16
  return config


def _iterator(data_config, start_step=0):
  return grain_pipeline.train_batches(
      grain_pipeline.open_dataset(data_config), data_config,
      local_batch_size=8, two_views=True, seed=0, start_step=start_step,
      label_keys=('votes', 'id_str'))


def _assert_same_batch(a, b):
  for key in ('image', 'image_2', 'votes', 'id_str'):
    np.testing.assert_array_equal(a[key], b[key])


def test_array_record_only_build_reads_the_same_examples(data_dir):
  dataset = array_records.open_dataset(NAME, data_dir)
  assert dataset.num_examples('train') == 470
  assert dataset.features['votes'] == array_records.Feature('tensor', 'int32',
                                                            (206,))
  example = dataset.parse(dataset.source('train')[0],
                          ('image', 'votes', 'id_str', 'labelled'))
  assert example['image'].dtype == np.uint8
  assert example['image'].shape == (32, 32, 3)
  assert example['votes'].dtype == np.int32
  assert example['id_str'].item().startswith(b'synth')
  assert example['labelled'].dtype == bool


def test_the_iterator_state_is_the_next_step(data_config):
  it = _iterator(data_config, start_step=5)
  assert it.get_state() == {'next_index': 5}
  batches = [next(it) for _ in range(3)]
  assert it.get_state() == {'next_index': 8}
  fresh = _iterator(data_config)
  fresh.set_state({'next_index': 6})
  _assert_same_batch(next(fresh), batches[1])


def test_the_orbax_checkpoint_saves_and_restores_the_iterator(
    tmp_path, data_config):
  it = _iterator(data_config)
  for _ in range(4):
    next(it)
  config = tiny_config('hybrid')
  with checkpoint.make_manager(str(tmp_path)) as manager:
    checkpoint.save(manager, 2, {'w': np.zeros(2)}, config,
                    get_schema(config.schema))  # Another source: no state.
    checkpoint.save(manager, 4, {'w': np.zeros(2)}, config,
                    get_schema(config.schema), data_iterator=it)
    manager.wait_until_finished()
  expected = next(it)  # Batch 4: the next after the saved state.
  saved = tmp_path / 'checkpoints' / '4' / checkpoint.DATA_ITEM
  assert json.loads((saved / 'process_0-of-1.json').read_text()) == {
      'next_index': 4}
  with checkpoint.make_manager(str(tmp_path), for_reading=True) as manager:
    restored = _iterator(data_config)
    assert checkpoint.restore_data_iterator(manager, 4, restored)
    assert restored.get_state() == {'next_index': 4}
    _assert_same_batch(next(restored), expected)
    untouched = _iterator(data_config, start_step=2)
    assert not checkpoint.restore_data_iterator(manager, 2, untouched)
    assert not checkpoint.restore_data_iterator(manager, 4, iter([{}]))


def test_the_input_benchmark_times_grain(data_dir):
  from gzevo_jax.data import benchmark
  config = tiny_config('hybrid', **{'data.source': 'grain',
                                    'data.data_dir': data_dir})
  assert benchmark.pipeline_images_per_second(config, 2, warmup=1) > 0


def test_grain_is_a_valid_data_source():
  config = tiny_config('hybrid', **{'data.source': 'grain'})
  config_lib.validate(config)
  assert 'grain' in config_lib.DATA_SOURCES


def _fake_build(root, file_format):
  """A dataset directory whose dataset_info.json lists one file format."""
  path = os.path.join(root, 'gz_evo', 'synthetic_tiny',
                      common.VERSIONS['gz_evo'])
  os.makedirs(path)
  with open(os.path.join(path, 'dataset_info.json'), 'w') as f:
    json.dump({'name': 'gz_evo', 'fileFormat': file_format, 'splits': []}, f)


def test_a_dataset_without_array_record_is_a_one_line_error(tmp_path):
  _fake_build(str(tmp_path), 'tfrecord')
  with pytest.raises(common.DatasetNotBuiltError) as e:
    array_records.open_dataset(NAME, str(tmp_path))
  message = str(e.value)
  assert "config.data.source='grain'" in message and '\n' not in message
  assert 'holds only tfrecord' in message
  assert f'--dataset={NAME} --data_dir={tmp_path}' in message
  assert '--file_formats=tfrecord,array_record' in message


def test_a_dataset_not_built_is_a_one_line_error(tmp_path):
  with pytest.raises(common.DatasetNotBuiltError,
                     match=r"source='grain' .* not built in .* build it with "
                     r'`python -m gzevo_jax.data.build --dataset=gz_evo/'
                     r'synthetic_tiny .*--file_formats=tfrecord,array_record`'):
    array_records.open_dataset(NAME, str(tmp_path))


def test_tf_data_explains_an_array_record_only_dataset(data_dir):
  from gzevo_jax.data import sources
  with pytest.raises(common.DataError,
                     match=r"source='tfds' reads tfrecord files.*"
                     r'--config.data.source=grain'):
    sources.check_tfrecord(build.prepare(NAME, data_dir=data_dir,
                                         file_formats=['array_record']))


def test_adding_array_record_to_a_tfrecord_build(tmp_path):
  builder = build.prepare(NAME, data_dir=str(tmp_path))
  assert build.available_file_formats(builder) == {'tfrecord'}
  builder = build.prepare(NAME, data_dir=str(tmp_path),
                          file_formats=build.FILE_FORMATS)
  assert build.available_file_formats(builder) == set(build.FILE_FORMATS)
  dataset = array_records.open_dataset(NAME, str(tmp_path))
  assert dataset.num_examples('validation') == builder.info.splits[
      'validation'].num_examples
  with pytest.raises(ValueError, match='--file_formats=parquet'):
    build.prepare(NAME, data_dir=str(tmp_path), file_formats=['parquet'])


def test_evaluation_sees_the_same_dataset_through_both_sources(tmp_path):
  from gzevo_jax.data import sources
  from gzevo_jax.evaluation import similarity
  build.prepare(RINGS, data_dir=str(tmp_path), file_formats=build.FILE_FORMATS)
  datasets = {}
  for source in ('tfds', 'grain'):
    data = ml_collections.ConfigDict(dict(
        dataset=RINGS, data_dir=str(tmp_path), manual_dir=None,
        skip_bad_rows=False, source=source))
    datasets[source] = sources.eval_dataset(data)
  tfds_data, grain_data = datasets['tfds'], datasets['grain']
  assert (tfds_data.source, grain_data.source) == ('tfds', 'grain')
  assert tfds_data.split_sizes == grain_data.split_sizes
  assert tfds_data.bands == grain_data.bands == 3
  assert (similarity.scalar_label_keys(tfds_data) ==
          similarity.scalar_label_keys(grain_data))
  assert 'label' in similarity.scalar_label_keys(grain_data)
  a, b = (next(d.batches('test', batch_size=32, image_size=16,
                         keys=('id_str', 'label'))) for d in datasets.values())
  np.testing.assert_array_equal(a['id_str'], b['id_str'])
  np.testing.assert_array_equal(a['label'], b['label'])
  np.testing.assert_allclose(a['image'], b['image'], atol=2e-2)


def test_an_unknown_evaluation_source_is_a_config_error():
  from gzevo_jax.evaluation import features
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'linear_probe.py'))
  config.pretrained_workdir = 'runs/hybrid'
  config.data.source = 'in_memory_synthetic'
  with pytest.raises(ValueError, match="data.source='in_memory_synthetic'"
                     '.*tfds, grain'):
    features.validate_extraction_config(config)


def test_the_train_loop_trains_and_resumes_without_tensorflow(tmp_path,
                                                              data_dir):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env['PYTHONPATH'] = os.pathsep.join(
      [REPO_ROOT, os.path.join(REPO_ROOT, 'tests'), env.get('PYTHONPATH', '')])
  result = subprocess.run(
      [sys.executable, WORKER, f'--data_dir={data_dir}',
       f'--workdir={tmp_path}'], cwd=REPO_ROOT, env=env, capture_output=True,
      text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['tensorflow_loaded'] == []
  # Stopped after 4 batches: the checkpoint at 3 holds the next step, 3.
  assert report['stopped_states'] == {'3': {'next_index': 3}}
  assert report['resumed_states'] == {'3': {'next_index': 3},
                                      '6': {'next_index': 6}}
  # Resumed from step 3, it saw the batches the straight run saw.
  assert report['max_param_diff'] < 1e-5
  # Evaluation reads the rings' array_record files: the kNN monitor ran
  # at steps 2, 4, 6 and the probe fitted 2 methods x 2 budgets x 2 seeds.
  assert [m['step'] for m in report['knn_metrics']] == [2, 4, 6]
  for m in report['knn_metrics']:
    assert 0.0 <= m['monitor/knn_accuracy'] <= 1.0
  runs = report['probe_runs']
  assert len(runs) == 8
  assert {r['method'] for r in runs} == {'linear_probe', 'knn'}
  assert all(0.0 <= r['accuracy'] <= 1.0 for r in runs)

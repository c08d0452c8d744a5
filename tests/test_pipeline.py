"""The input pipelines, tf.data and Grain, against the same cases.

Determinism per (seed, step), views, sharding, evaluation: every test runs
once per source on one dataset built with both tfrecord and array_record
files.
"""

import dataclasses
from typing import Any

import numpy as np
import pytest

from gzevo_jax import config_lib
from gzevo_jax.data import array_records
from gzevo_jax.data import build
from gzevo_jax.data import grain_pipeline
from gzevo_jax.data import pipeline

BATCH = 16
SOURCES = ('tfds', 'grain')


@pytest.fixture(scope='module')
def builder(tmp_path_factory):
  return build.prepare('gz_evo/synthetic_tiny',
                       data_dir=str(tmp_path_factory.mktemp('tfds')),
                       file_formats=build.FILE_FORMATS)


@dataclasses.dataclass
class Source:
  """One pipeline behind the calls the tests make."""
  name: str
  builder: Any

  @property
  def dataset(self) -> Any:
    """What the pipeline reads: the TFDS builder or the array_record files."""
    if self.name == 'tfds':
      return self.builder
    return array_records.open_dataset('gz_evo/synthetic_tiny',
                                      self.builder.data_dir_root)

  @property
  def module(self) -> Any:
    return pipeline if self.name == 'tfds' else grain_pipeline

  def train_batches(self, data_config, **kwargs):
    return self.module.train_batches(self.dataset, data_config, **kwargs)

  def eval_batches(self, split, **kwargs):
    return self.module.eval_batches(self.dataset, split, **kwargs)


@pytest.fixture(params=SOURCES)
def source(request, builder):
  return Source(request.param, builder)


@pytest.fixture
def data_config():
  config = config_lib.base_config('hybrid').data
  config.image_size = 24
  config.shuffle_buffer = 64
  return config


def _batches(source, data_config, start_step=0, n=1, seed=0,
             shard=pipeline.Shard('train')):
  it = source.train_batches(data_config, local_batch_size=BATCH,
                            two_views=True, seed=seed, start_step=start_step,
                            shard=shard, label_keys=('votes', 'id_str'))
  return [next(it) for _ in range(n)]


def test_batches_have_the_train_loop_contract(source, data_config):
  (batch,) = _batches(source, data_config)
  assert batch['image'].shape == (BATCH, 24, 24, 3)
  assert batch['image'].dtype == np.float32
  assert batch['image_2'].shape == batch['image'].shape
  assert batch['votes'].shape == (BATCH, 206)
  assert batch['votes'].dtype == np.int32
  assert 0.0 <= batch['image'].min() and batch['image'].max() <= 1.0


def test_two_views_of_a_galaxy_differ(source, data_config):
  (batch,) = _batches(source, data_config)
  diff = np.abs(batch['image'] - batch['image_2']).mean(axis=(1, 2, 3))
  assert np.all(diff > 1e-3)


def test_starting_at_step_k_continues_an_uninterrupted_run(source, builder,
                                                           data_config):
  per_epoch = builder.info.splits['train'].num_examples // BATCH
  straight = _batches(source, data_config, n=per_epoch + 3)
  for k in (2, per_epoch - 1, per_epoch + 1):  # Mid-epoch and the next epoch.
    (resumed,) = _batches(source, data_config, start_step=k)
    for key in ('image', 'image_2', 'votes', 'id_str'):
      np.testing.assert_array_equal(resumed[key], straight[k][key])
  # Each epoch is a fresh shuffle of the same examples.
  first = np.concatenate([b['id_str'] for b in straight[:per_epoch]])
  assert len(set(first)) == len(first) == per_epoch * BATCH
  second_epoch = straight[per_epoch]['id_str']
  assert not np.array_equal(second_epoch, straight[0]['id_str'])


def test_another_seed_gives_another_order(source, data_config):
  (a,), (b,) = _batches(source, data_config), _batches(source, data_config,
                                                       seed=1)
  assert not np.array_equal(a['id_str'], b['id_str'])


def test_processes_read_disjoint_examples(source, builder, data_config):
  per_process = builder.info.splits['train'].num_examples // 2
  steps = per_process // BATCH
  seen = []
  for p in range(2):
    shard = pipeline.Shard('train', p, 2)
    ids = np.concatenate([b['id_str'] for b in _batches(
        source, data_config, n=steps, shard=shard)])
    assert len(set(ids)) == len(ids)
    seen.append(set(ids))
  assert not seen[0] & seen[1]


def test_evaluation_pass_is_deterministic_and_complete(source, builder):
  def one_pass():
    return list(source.eval_batches('validation', batch_size=BATCH,
                                    image_size=32, keys=('id_str', 'votes')))

  a, b = one_pass(), one_pass()
  for x, y in zip(a, b):
    for key in ('image', 'id_str', 'votes', 'mask'):
      np.testing.assert_array_equal(x[key], y[key])
  n = builder.info.splits['validation'].num_examples
  assert sum(int(x['mask'].sum()) for x in a) == n
  assert all(len(x['mask']) == BATCH for x in a)
  ids = np.concatenate([x['id_str'][x['mask']] for x in a])
  assert len(set(ids)) == n
  # No augmentation: the stored image, as floats.
  stored = next(iter(builder.as_dataset(split='validation',
                                        shuffle_files=False)))
  np.testing.assert_allclose(a[0]['image'][0],
                             stored['image'].numpy() / 255.0, atol=1e-6)
  assert a[0]['id_str'][0] == stored['id_str'].numpy()


def test_both_sources_read_the_same_examples(builder):
  tfds_ids, grain_ids = (
      np.concatenate([x['id_str'][x['mask']] for x in Source(
          name, builder).eval_batches('train', batch_size=64, image_size=32)])
      for name in SOURCES)
  np.testing.assert_array_equal(tfds_ids, grain_ids)


def test_a_batch_larger_than_the_data_is_an_error(source, data_config):
  with pytest.raises(ValueError, match='exceeds'):
    next(source.train_batches(data_config, local_batch_size=10_000,
                              two_views=False, seed=0))

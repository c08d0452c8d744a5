"""Similarity search, anomaly scores and embeddings export, end to end."""

import csv
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import REPO_ROOT
from tiny import tiny_checkpoint
from gzevo_jax import config_lib
from gzevo_jax.data import common
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import similarity


def _reference_sims(x):
  """Brute force: [N, N] cosine similarities, -inf on the diagonal."""
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  sims = unit @ unit.T
  np.fill_diagonal(sims, -np.inf)
  return sims


@pytest.mark.parametrize('chunk_size', [1, 5, 8, 37, 100, None])
def test_neighbours_match_brute_force(chunk_size):
  x = np.random.default_rng(0).normal(size=(37, 8)).astype(np.float32)
  sims = _reference_sims(x.astype(np.float64))
  queries = np.array([0, 3, 8, 17, 36, 35, 7])  # Across chunk boundaries.
  indices, got = similarity.top_k_neighbours(x, queries, 5, chunk_size)
  expected = np.argsort(-sims[queries], axis=1, kind='stable')[:, :5]
  np.testing.assert_array_equal(indices, expected)
  np.testing.assert_allclose(got,
                             np.take_along_axis(sims[queries], expected, 1),
                             atol=1e-5)
  one, one_sims = similarity.nearest_neighbours(x, 17, 5, chunk_size)
  np.testing.assert_array_equal(one, expected[3])
  assert 17 not in one and np.all(np.diff(one_sims) <= 0)


@pytest.mark.parametrize('chunk_size', [1, 7, 37, None])
@pytest.mark.parametrize('k', [1, 4, 36])
def test_anomaly_scores_match_brute_force(chunk_size, k):
  x = np.random.default_rng(1).normal(size=(37, 6)) * 3.0  # Any scale.
  sims = _reference_sims(x)
  expected = 1.0 - np.sort(sims, axis=1)[:, ::-1][:, k - 1]
  got = similarity.anomaly_scores(x.astype(np.float32), k, chunk_size)
  assert got.shape == (37,) and got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=1e-5)


def test_planted_outlier_ranks_first():
  rng = np.random.default_rng(2)
  centres = rng.normal(size=(4, 32))
  x = centres[rng.integers(0, 4, 300)] + 0.1 * rng.normal(size=(300, 32))
  x[123] = rng.normal(size=32)  # Near none of the clusters.
  scores = similarity.anomaly_scores(x.astype(np.float32), 10)
  ranked = similarity.rank_by_score(scores)
  assert ranked[0] == 123
  assert scores[123] > 2 * scores[ranked[1]]


def test_self_is_excluded_by_index_not_value():
  x = np.random.default_rng(3).normal(size=(10, 4)).astype(np.float32)
  x[6] = 2 * x[2]  # Same direction: similarity 1 with row 2.
  indices, sims = similarity.nearest_neighbours(x, 2, 3)
  assert indices[0] == 6 and 2 not in indices
  np.testing.assert_allclose(sims[0], 1.0, atol=1e-6)
  assert similarity.anomaly_scores(x, 1)[2] == pytest.approx(0.0, abs=1e-6)


def test_bad_arguments():
  x = np.ones((5, 3), np.float32)
  with pytest.raises(ValueError, match='k=5'):
    similarity.nearest_neighbours(x, 0, 5)
  with pytest.raises(ValueError, match='query indices'):
    similarity.nearest_neighbours(x, 5, 2)


def test_export_round_trips(tmp_path):
  rng = np.random.default_rng(4)
  n = 11
  features = features_lib.Features(
      ids=np.array([f'galaxy_{i:03d}' for i in rng.permutation(n)]),
      features=rng.normal(size=(n, 7)).astype(np.float32),
      labels={
          'label': rng.integers(0, 2, n),
          'campaign': np.array([b'dr5', b'gz2+dr5'] * 5 + [b''], object),
          'votes': rng.integers(0, 9, (n, 3)),  # Not scalar: not a column.
      })
  npy, parquet = similarity.export_embeddings(features, str(tmp_path / 'out'))
  embeddings = np.load(npy)
  table = pq.read_table(parquet).to_pydict()
  assert embeddings.dtype == np.float32
  np.testing.assert_array_equal(embeddings, features.features)
  assert table['id_str'] == list(features.ids)
  assert table['row'] == list(range(n))
  assert table['label'] == list(features.labels['label'])
  assert table['campaign'][:2] == ['dr5', 'gz2+dr5']
  assert set(table) == {'row', 'id_str', 'label', 'campaign'}


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
  """A 2-step contrastive checkpoint."""
  return tiny_checkpoint('contrastive',
                         str(tmp_path_factory.mktemp('contrastive')))


def _test_ids(config):
  """The test split's ids, in the evaluation pipeline's order."""
  from gzevo_jax.data import pipeline, sources
  batch = next(
      pipeline.eval_batches(sources.prepare_dataset(config.data),
                            'test',
                            batch_size=1000,
                            image_size=8))
  return list(features_lib.decode_ids(batch['id_str'][batch['mask']]))


def _config(workdir, **overrides):
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'similarity.py:smoke'))
  config.pretrained_workdir = workdir
  config.data.dataset = 'gz_evo/synthetic_tiny'
  config.data.split = 'test'
  config.eval_batch_size = 16  # Several batches, the last one padded.
  for key, value in overrides.items():
    config[key] = value
  return config


def _non_blank(path):
  image = matplotlib.image.imread(path)[..., :3]
  return image.std() > 0.05 and len(np.unique(image.reshape(-1, 3),
                                              axis=0)) > 50


def test_end_to_end(pretrained, tmp_path):
  ids = _test_ids(_config(pretrained))
  queries = (ids[5], ids[-1])
  out = tmp_path / 'run'
  result = similarity.run(_config(pretrained, query_ids=queries), str(out))
  n = result['num_examples']
  assert n == len(ids) > 40 and result['pretrained_step'] == 2
  assert np.load(out / 'embeddings.npy').shape == (n, result['feature_dim'])
  assert pq.read_table(out /
                       'embeddings.parquet').column('id_str').to_pylist() == ids
  with open(out / 'neighbours.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 * 8
  for query in queries:
    near = [r for r in rows if r['query_id'] == query]
    assert [int(r['rank']) for r in near] == list(range(1, 9))
    assert near[0]['id_str'] != query
    assert query not in {r['id_str'] for r in near}
    sims = [float(r['similarity']) for r in near]
    assert sims == sorted(sims, reverse=True)
    assert _non_blank(out / f'neighbours_{query}.png')
  with open(out / 'anomalies.csv') as f:
    ranked = list(csv.DictReader(f))
  assert sorted(r['id_str'] for r in ranked) == sorted(ids)
  scores = [float(r['score']) for r in ranked]
  assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
  assert _non_blank(out / 'anomalies.png')


def test_unknown_query_id(pretrained, tmp_path):
  config = _config(pretrained, query_ids=('no_such_galaxy',))
  with pytest.raises(common.DataError) as error:
    similarity.run(config, str(tmp_path))
  message = str(error.value)
  assert "'no_such_galaxy'" in message
  assert "gz_evo/synthetic_tiny split 'test'" in message
  ids = _test_ids(config)
  assert f"({len(ids)} galaxies); ids there look like '{ids[0]}', " in message
  assert not (tmp_path / 'embeddings.npy').exists()  # Failed before writing.


def _last_error_line(*args: str) -> str:
  """The last stderr line of a failing `gzevo_jax.main` command."""
  command = [sys.executable, '-m', 'gzevo_jax.main',
             '--config=configs/similarity.py:smoke', *args]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode != 0
  return result.stderr.strip().splitlines()[-1]


def test_command_prints_one_line_errors(tmp_path):
  workdir = f'--config.pretrained_workdir={tmp_path}'
  assert _last_error_line(workdir, '--config.anomaly_k=0').startswith(
      'error: config.anomaly_k must be a positive integer')
  assert _last_error_line(workdir).startswith('error: no checkpoint in')


def test_validate():
  with pytest.raises(ValueError, match='pretrained_workdir'):
    similarity.validate(_config(None))
  with pytest.raises(ValueError, match='num_neighbours'):
    similarity.validate(_config('runs/x', num_neighbours=0))

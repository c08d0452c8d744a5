r"""Embeddings export, similarity search and anomaly ranking from a checkpoint.

  python -m gzevo_jax.main --config=configs/similarity.py \
      --config.pretrained_workdir=runs/hybrid \
      --config.query_ids="('ID_1', 'ID_2')" [--workdir=runs/NAME]

restores the pretrained encoder, extracts frozen features of one split and
writes to the workdir (one query can be --config.query_ids=ID_1):
  embeddings.npy       float32 [N, D]; row i is row i of embeddings.parquet
  embeddings.parquet   row, id_str and the dataset's scalar labels
  neighbours.csv       each query's nearest neighbours and their similarity
  neighbours_<id>.png  each query galaxy, then its nearest neighbours by
                       cosine similarity (similarity in the titles)
  anomalies.png        the galaxies farthest (cosine distance) from their k-th
                       nearest neighbour: the most unusual ones
  anomalies.csv        every galaxy, ranked by that anomaly score

Similarities are computed jit-compiled in chunks of query rows against all N
features, so memory is [chunk, N] whatever N. The grid images come from a
second pass of the same evaluation pipeline that keeps only the galaxies
shown, so memory does not grow with the split.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from typing import Any, Iterable, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gzevo_jax import config_lib
from gzevo_jax import losses
from gzevo_jax.data import common
from gzevo_jax.evaluation import features as features_lib

# Similarities per compiled chunk (chunk rows x N): 256 MB in float32.
_CHUNK_ELEMENTS = 1 << 26
_EXAMPLE_IDS = 5  # Ids an unknown-id error lists.


@functools.partial(jax.jit, static_argnames=('k',))
def _top_k_chunk(unit: jax.Array, rows: jax.Array,
                 k: int) -> tuple[jax.Array, jax.Array]:
  """The k most similar rows of `unit` to each of `unit[rows]`, self excluded.

  `rows` [B] (-1 marks padding); returns (similarities [B, k], indices [B, k]).
  """
  # HIGHEST: no reduced-precision (bf16/tf32) matmul that would reorder close
  # neighbours on accelerators.
  sims = jnp.matmul(unit[jnp.maximum(rows, 0)],
                    unit.T,
                    precision=jax.lax.Precision.HIGHEST)
  is_self = jnp.arange(unit.shape[0])[None, :] == rows[:, None]
  return jax.lax.top_k(jnp.where(is_self, -jnp.inf, sims), k)


def top_k_neighbours(
    features: np.ndarray,
    query_indices: Sequence[int],
    k: int,
    chunk_size: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """Each query's k nearest other rows of `features` by cosine similarity.

  Args:
    features: [N, D] features (normalised here; any scale).
    query_indices: [Q] rows of `features` to search from.
    k: neighbours per query, 1..N-1 (the query itself is never one).
    chunk_size: queries per compiled step; None keeps [chunk, N] near 2^26.

  Returns:
    (indices int [Q, k], similarities float32 [Q, k]), most similar first;
    ties go to the lower index.
  """
  features = np.asarray(features)
  rows = np.asarray(query_indices, np.int64).reshape(-1)
  if features.ndim != 2:
    raise ValueError(f'features must be [N, D], got {features.shape}')
  n = features.shape[0]
  if not 1 <= k < n:
    raise ValueError(f'k={k} must be between 1 and N - 1 = {n - 1}')
  if rows.size and not (0 <= rows.min() and rows.max() < n):
    raise ValueError(f'query indices must lie in [0, {n}), got '
                     f'{rows.min()}..{rows.max()}')
  if not rows.size:
    return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
  chunk = min(chunk_size or max(1, _CHUNK_ELEMENTS // n), rows.size)
  # One compiled shape: the last chunk is padded with -1 and its rows dropped.
  padded = np.pad(rows, (0, -rows.size % chunk),
                  constant_values=-1).astype(np.int32)
  unit = losses.l2_normalize(jnp.asarray(features))
  out = [
      _top_k_chunk(unit, jnp.asarray(padded[start:start + chunk]), k=k)
      for start in range(0, padded.size, chunk)
  ]
  sims, indices = (np.concatenate(x)[:rows.size] for x in zip(*out))
  return indices.astype(np.int64), sims.astype(np.float32)


def nearest_neighbours(
    features: np.ndarray,
    query_index: int,
    k: int,
    chunk_size: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """(indices [k], cosine similarities [k]) of the query's nearest others."""
  indices, sims = top_k_neighbours(features, [query_index], k, chunk_size)
  return indices[0], sims[0]


def anomaly_scores(features: np.ndarray,
                   k: int,
                   chunk_size: Optional[int] = None) -> np.ndarray:
  """float32 [N]: cosine distance to each row's k-th nearest other row.

  Higher is more unusual: a galaxy with few look-alikes is far even from its
  k-th neighbour. Exact duplicates count as neighbours (distance 0).
  """
  n = np.asarray(features).shape[0]
  _, sims = top_k_neighbours(features, np.arange(n), k, chunk_size)
  return 1.0 - sims[:, -1]


def _column(values: np.ndarray) -> Any:
  """A label array as a parquet column: bytes decoded to str."""
  import pyarrow as pa
  if values.dtype.kind in 'OS':
    return pa.array(features_lib.decode_ids(values))
  return pa.array(values)


def export_embeddings(features: features_lib.Features,
                      out_dir: str) -> tuple[str, str]:
  """Writes embeddings.npy and embeddings.parquet; returns their paths.

  Row i of the npy is the galaxy in row i of the parquet, which holds `row`,
  `id_str` and every scalar label (one value per galaxy).
  """
  import pyarrow as pa
  import pyarrow.parquet as pq
  os.makedirs(out_dir, exist_ok=True)
  npy = os.path.join(out_dir, 'embeddings.npy')
  parquet = os.path.join(out_dir, 'embeddings.parquet')
  np.save(npy, np.asarray(features.features, np.float32))
  columns = {
      'row': pa.array(np.arange(features.num_examples, dtype=np.int64)),
      'id_str': pa.array(features.ids.astype(str)),
  }
  for key, values in sorted(features.labels.items()):
    if values.ndim == 1 and key not in columns:
      columns[key] = _column(values)
  pq.write_table(pa.table(columns), parquet)
  return npy, parquet


def scalar_label_keys(data: Any) -> tuple[str, ...]:
  """A sources.EvalDataset's features with one value per galaxy, besides
  its id, sorted (tf.data and Grain list features in different orders)."""
  return tuple(sorted(name for name, shape in data.feature_shapes.items()
                      if name not in ('id_str', 'image') and shape == ()))


def query_rows(ids: np.ndarray, query_ids: Iterable[str],
               searched: str) -> np.ndarray:
  """Rows of `query_ids` in `ids`; an unknown id is a DataError."""
  row_of = {galaxy: i for i, galaxy in enumerate(ids)}
  rows = []
  for galaxy in query_ids:
    if galaxy not in row_of:
      examples = ', '.join(repr(str(x)) for x in ids[:_EXAMPLE_IDS])
      raise common.DataError(
          f'query id {galaxy!r} is not in {searched} ({len(ids)} galaxies); '
          f'ids there look like {examples}')
    rows.append(row_of[galaxy])
  return np.asarray(rows, np.int64)


def fetch_images(batches: Iterable[features_lib.Batch],
                 ids: Iterable[str]) -> dict[str, np.ndarray]:
  """The images of `ids` from one pass of `batches`, stopping once all are in.

  Only those images are kept, so memory is len(ids) images whatever the
  number of galaxies passed over.
  """
  wanted, found = set(ids), {}
  for batch in batches:
    keep = np.asarray(batch['mask'], bool)
    for galaxy, image in zip(features_lib.decode_ids(batch['id_str'][keep]),
                             batch['image'][keep]):
      if galaxy in wanted:
        found[galaxy] = np.array(image)
    if len(found) == len(wanted):
      break
  missing = wanted - found.keys()
  if missing:
    raise RuntimeError(f'the second pass did not find {sorted(missing)[:5]}: '
                       'the evaluation pipeline changed between passes')
  return found


def _file_safe(galaxy: str) -> str:
  return re.sub(r'[^A-Za-z0-9._-]', '_', galaxy)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a bad field before anything runs."""
  features_lib.validate_extraction_config(config)
  for field in ('num_neighbours', 'anomaly_k', 'num_anomalies'):
    config_lib.check_positive_int(config, field)
  if isinstance(config.query_ids,
                str) or not all(isinstance(x, str) for x in config.query_ids):
    raise ValueError('config.query_ids must be a tuple of id strings, e.g. '
                     f"--config.query_ids=\"('ID_1', 'ID_2')\"; got "
                     f'{config.query_ids!r}')


def _check_split(extractor: features_lib.Extractor, split: str, k: int) -> None:
  """DataError unless `split` exists and has more than k galaxies."""
  splits = extractor.data.split_sizes
  if split not in splits:
    raise common.DataError(
        f'{extractor.dataset} has no split {split!r}; choose one of '
        f'{", ".join(sorted(splits))}')
  n = extractor.num_examples(split)
  if n <= k:
    raise common.DataError(
        f'{extractor.dataset} {split} has {n} galaxies, too few for '
        f'{k} neighbours; lower config.num_neighbours / config.anomaly_k')


def write_neighbour_grid(ids: np.ndarray, images: dict[str, np.ndarray],
                         row: int, neighbours: np.ndarray, sims: np.ndarray,
                         out_dir: str, searched: str) -> str:
  """neighbours_<id>.png: the query, then its neighbours with similarities."""
  from gzevo_jax.data import pictures  # Matplotlib, lazily.
  titles = [f'query\n{ids[row]}'] + [
      f'{ids[i]}\nsimilarity {s:.4f}' for i, s in zip(neighbours, sims)
  ]
  return pictures.image_grid(
      [images[ids[i]] for i in (row, *neighbours)],
      titles,
      os.path.join(out_dir, f'neighbours_{_file_safe(ids[row])}.png'),
      columns=min(len(titles), 6),
      title=f'{ids[row]} and its {len(neighbours)} nearest neighbours '
      f'({searched})')


def write_neighbours_csv(ids: np.ndarray, queries: np.ndarray,
                         neighbours: np.ndarray, sims: np.ndarray,
                         out_dir: str) -> str:
  """neighbours.csv: each query's neighbours, most similar first."""
  path = os.path.join(out_dir, 'neighbours.csv')
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['query_id', 'rank', 'id_str', 'similarity', 'row'])
    for row, near, near_sims in zip(queries, neighbours, sims):
      writer.writerows((ids[row], rank + 1, ids[i], f'{s:.6g}', i)
                       for rank, (i, s) in enumerate(zip(near, near_sims)))
  return path


def rank_by_score(scores: np.ndarray) -> np.ndarray:
  """Row indices, highest score first (ties: lower row first)."""
  return np.argsort(-scores, kind='stable')


def write_anomalies(ids: np.ndarray, scores: np.ndarray, ranked: np.ndarray,
                    images: dict[str, np.ndarray], num_shown: int, k: int,
                    out_dir: str, searched: str) -> tuple[str, str]:
  """anomalies.png (the first `num_shown` of `ranked`), anomalies.csv (all)."""
  from gzevo_jax.data import pictures  # Matplotlib, lazily.
  shown = ranked[:num_shown]
  png = pictures.image_grid(
      [images[ids[i]] for i in shown],
      [f'{ids[i]}\nscore {scores[i]:.3g}' for i in shown],
      os.path.join(out_dir, 'anomalies.png'),
      columns=min(len(shown), 6),
      title=f'most unusual galaxies of {searched}: cosine distance to '
      f'neighbour k={k}')
  path = os.path.join(out_dir, 'anomalies.csv')
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['rank', 'id_str', 'score', 'row'])
    writer.writerows((rank + 1, ids[i], f'{scores[i]:.6g}', i)
                     for rank, i in enumerate(ranked))
  return png, path


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Features of the split, embeddings, neighbour grids and anomalies."""
  validate(config)
  split, k = config.data.split, config.num_neighbours
  extractor = features_lib.load_extractor(config)
  _check_split(extractor, split, max(k, config.anomaly_k))
  searched = f'{extractor.dataset} split {split!r}'
  features = extractor.extract(split, scalar_label_keys(extractor.data))
  ids = features.ids
  queries = query_rows(ids, config.query_ids, searched)
  paths = list(export_embeddings(features, workdir))
  neighbours, sims = top_k_neighbours(features.features, queries, k)
  scores = anomaly_scores(features.features, config.anomaly_k)
  ranked = rank_by_score(scores)
  shown = ranked[:config.num_anomalies]
  images = fetch_images(
      extractor.batches(split),
      ids[np.concatenate([queries, neighbours.ravel(), shown])])
  paths.append(write_neighbours_csv(ids, queries, neighbours, sims, workdir))
  paths += [
      write_neighbour_grid(ids, images, *query, workdir, searched)
      for query in zip(queries, neighbours, sims)
  ]
  paths += write_anomalies(ids, scores, ranked, images, config.num_anomalies,
                           config.anomaly_k, workdir, searched)
  for path in paths:
    logging.info('wrote %s', path)
  return {
      **extractor.facts(), 'split': split,
      'num_examples': features.num_examples,
      'feature_dim': int(features.features.shape[1]),
      'paths': paths
  }

"""Small manual_dirs in the layouts users download real GZ-Evo / GZ Rings in.

Each writer puts one catalogue table (and its images) into `manual_dir` and
returns a `Written` saying what it wrote, so tests can compare what the
builders read with what is on disk. Writers of different layouts can share
one manual_dir: their ids never collide. Images are small smooth random
pictures (40x40), so JPEG keeps them close to the original.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from gzevo_jax.schema import GZ_EVO_V0_1, Schema

IMAGE_SIZE = 40


@dataclasses.dataclass
class Written:
  """What a writer put on disk, in table row order."""
  table: str  # Path of the catalogue table.
  columns: dict[str, list[Any]]  # Its columns, to mutate and `write_table`.
  ids: list[str]
  images: dict[str, np.ndarray]  # id -> uint8 [40, 40, 3] before encoding.
  lossless: bool  # PNG (or raw bytes of PNG): images decode exactly.
  votes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  ring_votes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  ring_fraction: dict[str, float] = dataclasses.field(default_factory=dict)


def smooth_image(rng: np.random.Generator,
                 size: int = IMAGE_SIZE) -> np.ndarray:
  """uint8 [size, size, 3]: a random 5x5 colour grid, smoothly upsampled."""
  grid = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
  return np.asarray(
      Image.fromarray(grid).resize((size, size), Image.Resampling.BILINEAR))


def encode_image(array: np.ndarray, fmt: str) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt, quality=95)
  return buffer.getvalue()


def write_image(path: str, array: np.ndarray) -> None:
  """Writes PNG or JPEG by the file extension."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fmt = 'PNG' if path.endswith('.png') else 'JPEG'
  with open(path, 'wb') as f:
    f.write(encode_image(array, fmt))


def write_table(path: str, columns: dict[str, Any]) -> None:
  """Writes columns (lists or pyarrow arrays) as CSV or parquet."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  table = pa.table(columns)
  if path.endswith('.csv'):
    pa_csv.write_csv(table, path)
  else:
    pq.write_table(table, path)


def set_cell(written: Written, column: str, row: int, value: Any) -> None:
  """Rewrites one cell of a writer's table on disk."""
  values = list(pa.array(written.columns[column]).to_pylist())
  values[row] = value
  written.columns[column] = values
  write_table(written.table, written.columns)


def random_votes(rng: np.random.Generator, schema: Schema,
                 campaigns: Sequence[str]) -> np.ndarray:
  """int32 [num_answers]: random counts for the given campaigns' answers."""
  votes = np.zeros(schema.num_answers, dtype=np.int32)
  for campaign in campaigns:
    mask = schema.campaign_answer_mask(campaign)
    votes[mask] = rng.integers(0, 6, mask.sum())
    votes[np.flatnonzero(mask)[0]] += 1  # At least one vote.
  return votes


def _vote_columns(schema: Schema, campaigns: Sequence[str],
                  votes: Sequence[np.ndarray], dtype: pa.DataType,
                  unasked_empty: bool = False) -> dict:
  """Vote columns of the campaigns (all other columns absent), plus the
  `_fraction` and `_total-votes` extras real catalogues carry.

  `unasked_empty`: a campaign's cells are null in the rows of galaxies it
  did not ask (as in the Hugging Face shards), not 0.
  """
  columns = {}
  for q, sl in zip(schema.questions, schema.question_slices):
    if q.campaign not in campaigns:
      continue
    mask = schema.campaign_answer_mask(q.campaign)
    asked = [bool(v[mask].any()) or not unasked_empty for v in votes]
    total = [int(v[sl].sum()) for v in votes]
    for col in q.columns:
      i = schema.column_index(col)
      columns[col] = pa.array(
          [int(v[i]) if a else None for v, a in zip(votes, asked)], dtype)
      columns[f'{col}_fraction'] = [
          float(v[i]) / t if t else float('nan') for v, t in zip(votes, total)
      ]
    columns[f'{q.name}_total-votes'] = total
  return columns


def _galaxy_campaigns(n: int, campaigns: Sequence[str]) -> list[tuple]:
  """Cycles: first campaign only, second only, both, none (unlabelled)."""
  cycle = [(campaigns[0],), (campaigns[1],), tuple(campaigns), ()]
  return [cycle[i % len(cycle)] for i in range(n)]


def _gz_evo_galaxies(prefix: str, n: int, seed: int, schema: Schema,
                     campaigns: Sequence[str]):
  rng = np.random.default_rng(seed)
  ids = [f'{prefix}-{i:04d}' for i in range(n)]
  votes = [
      random_votes(rng, schema, c) for c in _galaxy_campaigns(n, campaigns)
  ]
  images = {i: smooth_image(rng) for i in ids}
  return rng, ids, votes, images


def write_csv_file_loc(
    manual_dir: str,
    n: int = 16,
    seed: int = 0,
    schema: Schema = GZ_EVO_V0_1,
    campaigns: Sequence[str] = ('dr5', 'dr8')
) -> Written:
  """catalog_csv.csv + PNGs located by `file_loc`: absolute, relative to
  manual_dir, and relative to manual_dir/images, in turn."""
  rng, ids, votes, images = _gz_evo_galaxies('csv', n, seed, schema, campaigns)
  file_locs = []
  for k, id_str in enumerate(ids):
    relative = os.path.join('csv_images', f'{id_str}.png')
    write_image(os.path.join(manual_dir, 'images', relative), images[id_str])
    file_locs.append([
        os.path.join(manual_dir, 'images', relative),
        os.path.join('images', relative), relative
    ][k % 3])
  columns = {
      'id_str': ids,
      'ra': rng.uniform(0, 360, n).tolist(),
      'dec': rng.uniform(-30, 60, n).tolist(),
      'file_loc': file_locs,
      **_vote_columns(schema, campaigns, votes, pa.int64()),
  }
  table = os.path.join(manual_dir, 'catalog_csv.csv')
  write_table(table, columns)
  return Written(table,
                 columns,
                 ids,
                 images,
                 lossless=True,
                 votes=dict(zip(ids, votes)))


def write_parquet_subfolder(
    manual_dir: str,
    n: int = 16,
    seed: int = 1,
    schema: Schema = GZ_EVO_V0_1,
    campaigns: Sequence[str] = ('gz2', 'candels')
) -> Written:
  """catalog_parquet.parquet + JPGs at images/{subfolder}/{filename}, with
  numeric-looking subfolders as in GZ2."""
  _, ids, votes, images = _gz_evo_galaxies('pq', n, seed, schema, campaigns)
  subfolders = [f'{587722 + i % 3}' for i in range(n)]
  filenames = [f'{i}.jpg' for i in ids]
  for id_str, sub, name in zip(ids, subfolders, filenames):
    write_image(os.path.join(manual_dir, 'images', sub, name), images[id_str])
  columns = {
      'id_str': ids,
      'subfolder': subfolders,
      'filename': filenames,
      **_vote_columns(schema, campaigns, votes, pa.int64()),
  }
  table = os.path.join(manual_dir, 'catalog_parquet.parquet')
  write_table(table, columns)
  return Written(table,
                 columns,
                 ids,
                 images,
                 lossless=False,
                 votes=dict(zip(ids, votes)))


def write_hf_parquet(manual_dir: str,
                     n: int = 12,
                     seed: int = 2,
                     shard: int = 0,
                     struct_images: bool = True,
                     schema: Schema = GZ_EVO_V0_1,
                     campaigns: Sequence[str] = ('dr12', 'hubble'),
                     row_group_size: Optional[int] = 5,
                     unasked_empty: bool = False,
                     split: str = 'train',
                     num_shards: int = 2) -> Written:
  """data/{split}-0000{shard}-of-0000{num_shards}.parquet, named as Hugging
  Face names a split's shards, with PNG bytes in `image`: a struct {bytes,
  path} as datasets.Image writes it, or plain binary; with `unasked_empty`,
  null vote cells where a campaign did not ask."""
  _, ids, votes, images = _gz_evo_galaxies(f'hf{shard}', n, seed, schema,
                                           campaigns)
  data = [encode_image(images[i], 'PNG') for i in ids]
  if struct_images:
    image_column = pa.array([{
        'bytes': d,
        'path': f'{i}.png'
    } for d, i in zip(data, ids)],
                            pa.struct([('bytes', pa.binary()),
                                       ('path', pa.string())]))
  else:
    image_column = pa.array(data, pa.binary())
  columns = {
      'image': image_column,
      'id_str': ids,
      'dataset_name': ['gz_evo'] * n,
      **_vote_columns(schema, campaigns, votes, pa.int32(), unasked_empty),
      'summary': ['featured' if v.any() else '' for v in votes],
  }
  table = os.path.join(manual_dir, 'data',
                       f'{split}-{shard:05d}-of-{num_shards:05d}.parquet')
  os.makedirs(os.path.dirname(table), exist_ok=True)
  pq.write_table(pa.table(columns), table, row_group_size=row_group_size)
  return Written(table,
                 columns,
                 ids,
                 images,
                 lossless=True,
                 votes=dict(zip(ids, votes)))


def write_unlabelled(manual_dir: str,
                     n: int = 12,
                     seed: int = 3,
                     schema: Schema = GZ_EVO_V0_1) -> Written:
  """unlabelled.parquet: id_str + subfolder/filename PNGs, no vote columns."""
  rng = np.random.default_rng(seed)
  ids = [f'unl-{i:04d}' for i in range(n)]
  images = {i: smooth_image(rng) for i in ids}
  for i in ids:
    write_image(os.path.join(manual_dir, 'images', 'unlabelled', f'{i}.png'),
                images[i])
  columns = {
      'id_str': ids,
      'subfolder': ['unlabelled'] * n,
      'filename': [f'{i}.png' for i in ids],
      'ra': rng.uniform(0, 360, n).tolist()
  }
  table = os.path.join(manual_dir, 'unlabelled.parquet')
  write_table(table, columns)
  zeros = np.zeros(schema.num_answers, dtype=np.int32)
  return Written(table,
                 columns,
                 ids,
                 images,
                 lossless=True,
                 votes={i: zeros for i in ids})


def write_rings_counts(manual_dir: str, n: int = 16, seed: int = 4) -> Written:
  """rings_counts.csv: ring_yes / ring_no counts (+ galaxy-datasets extras),
  PNGs at images/rings/{filename}."""
  rng = np.random.default_rng(seed)
  ids = [f'ring-{i:04d}' for i in range(n)]
  yes = rng.integers(0, 10, n)
  no = rng.integers(1, 10, n)  # Total votes > 0.
  images = {i: smooth_image(rng) for i in ids}
  for i in ids:
    write_image(os.path.join(manual_dir, 'images', 'rings', f'{i}.png'),
                images[i])
  columns = {
      'id_str': ids,
      'subfolder': ['rings'] * n,
      'filename': [f'{i}.png' for i in ids],
      'ring_yes': yes.tolist(),
      'ring_no': no.tolist(),
      'ring_total-votes': (yes + no).tolist()
  }
  table = os.path.join(manual_dir, 'rings_counts.csv')
  write_table(table, columns)
  return Written(
      table,
      columns,
      ids,
      images,
      lossless=True,
      ring_votes={
          i: np.array([y, m], np.int32) for i, y, m in zip(ids, yes, no)
      },
      ring_fraction={
          i: y / (y + m) for i, y, m in zip(ids, yes, no)
      })


def write_rings_fraction(manual_dir: str,
                         n: int = 12,
                         seed: int = 5) -> Written:
  """rings_fraction.parquet: ring_fraction only, JPGs via relative file_loc."""
  rng = np.random.default_rng(seed)
  ids = [f'ringf-{i:04d}' for i in range(n)]
  fraction = rng.uniform(0, 1, n)
  fraction[:2] = [0.0, 1.0]
  images = {i: smooth_image(rng) for i in ids}
  for i in ids:
    write_image(os.path.join(manual_dir, 'images', 'ringf', f'{i}.jpg'),
                images[i])
  columns = {
      'id_str': ids,
      'file_loc': [f'ringf/{i}.jpg' for i in ids],
      'ring_fraction': fraction.tolist()
  }
  table = os.path.join(manual_dir, 'rings_fraction.parquet')
  write_table(table, columns)
  return Written(table,
                 columns,
                 ids,
                 images,
                 lossless=False,
                 ring_votes={i: np.zeros(2, np.int32) for i in ids},
                 ring_fraction=dict(zip(ids, fraction.tolist())))


def empty_vote_cells(written: Written,
                     schema: Schema = GZ_EVO_V0_1) -> dict[str, int]:
  """Campaign -> null cells among the vote columns a writer wrote."""
  out: dict[str, int] = {}
  for q in schema.questions:
    for col in q.columns:
      if col in written.columns:
        cells = pa.array(written.columns[col]).null_count
        if cells:
          out[q.campaign] = out.get(q.campaign, 0) + cells
  return out

"""Small pieces every dataset shares: split assignment, campaign labels,
dataset versions, and what both input pipelines (tf.data and Grain) agree on:
seeds, per-process shards, padding.

Numpy only, so builders, the input pipelines and tests agree on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from gzevo_jax import errors
from gzevo_jax.schema import Schema

SPLITS = ('train', 'validation', 'test')


class DataError(errors.UserError):
  """Input data that cannot be used, with a message saying what to do.

  Commands print it as one `error:` line instead of a traceback.
  """


class DatasetNotBuiltError(DataError, FileNotFoundError):
  """A dataset that needs a download is not built yet."""


# The version each builder writes (`builders.py`), kept here so that readers
# without TensorFlow or TFDS (`array_records.py`) find the same directory.
VERSIONS = {'gz_evo': '1.2.0', 'gz_rings': '2.0.0', 'gz_radio': '2.0.0',
            'sdss5': '1.0.0'}

VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.1


def split_of(id_str: str, validation_fraction: float = VALIDATION_FRACTION,
             test_fraction: float = TEST_FRACTION) -> str:
  """The split of a galaxy, a pure function of its id.

  The id is hashed (SHA-256) to a number in [0, 1): below `test_fraction` is
  test, below `test_fraction + validation_fraction` is validation, the rest
  train. Adding galaxies to a catalogue never moves existing ones.
  """
  digest = hashlib.sha256(id_str.encode('utf-8')).digest()
  u = int.from_bytes(digest[:8], 'big') / 2.0**64
  if u < test_fraction:
    return 'test'
  if u < test_fraction + validation_fraction:
    return 'validation'
  return 'train'


def campaign_label(schema: Schema, votes: np.ndarray) -> str:
  """The campaigns with any vote for this galaxy, joined by '+'; '' if none."""
  votes = np.asarray(votes)
  return '+'.join(c for c in schema.campaigns
                  if votes[schema.campaign_answer_mask(c)].sum() > 0)


def rings_label(ring_fraction):
  """The rings task's label: 1 where most volunteers saw a ring."""
  return (np.asarray(ring_fraction) > 0.5).astype(np.int64)


def derive_seed(*parts: int) -> int:
  """A 31-bit seed from integers (e.g. seed, epoch, process)."""
  return int(np.random.SeedSequence([int(p) for p in parts])
             .generate_state(1)[0] & 0x7FFFFFFF)


@dataclasses.dataclass(frozen=True)
class Shard:
  """This process's part of a split."""
  split: str
  process_index: int = 0
  process_count: int = 1


def shard_range(num_examples: int, shard: Shard,
                drop_remainder: bool) -> tuple[int, int]:
  """[start, stop) of `shard` among a split's examples, as tfds.even_splits.

  Every process gets num_examples // process_count consecutive examples;
  without `drop_remainder` the first num_examples % process_count get one
  more, so every example is read once.
  """
  per, extra = divmod(num_examples, shard.process_count)
  if drop_remainder:
    extra = 0
  p = shard.process_index
  start = p * per + min(p, extra)
  return start, start + per + (1 if p < extra else 0)


def pad_batch(batch: dict[str, Any], size: int) -> dict[str, Any]:
  """Pads every array of `batch` along axis 0 to `size` (mask False there)."""
  n = len(batch['mask'])
  if n == size:
    return batch
  def pad(v: np.ndarray) -> np.ndarray:
    fill = b'' if v.dtype == object else 0
    return np.concatenate([v, np.full((size - n, *v.shape[1:]), fill, v.dtype)])

  return {k: pad(v) for k, v in batch.items()}

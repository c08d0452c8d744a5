"""Small pieces every dataset shares: split assignment and campaign labels.

Numpy only, so builders, the input pipeline and tests agree on them.
"""

from __future__ import annotations

import hashlib

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

"""Scalar metrics to stdout (absl logging), a JSONL file and TensorBoard.

TensorBoard event files are written with tensorboardX, which needs no
TensorFlow, so accelerator hosts without TF still get them. Only process 0
writes; other processes get a writer that does nothing.
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping, Optional

from absl import logging

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'


class MetricWriter:
  """Writes one dict of scalars per step to every sink."""

  def __init__(self, workdir: str, enabled: bool = True):
    self._enabled = enabled
    self._jsonl = None
    self._tensorboard = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, METRICS_FILE), 'a')
    import tensorboardX  # Lazy: only the writing process needs it.
    self._tensorboard = tensorboardX.SummaryWriter(
        os.path.join(workdir, TENSORBOARD_DIR))

  def write_scalars(self, step: int, scalars: Mapping[str, float],
                    prefix: str = 'train') -> None:
    if not self._enabled:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    logging.info('[%d] %s', step, format_scalars(scalars))
    self._jsonl.write(json.dumps({'step': step, **{
        f'{prefix}/{k}': (v if math.isfinite(v) else str(v))
        for k, v in scalars.items()}}) + '\n')
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tensorboard.add_scalar(f'{prefix}/{k}', v, step)
    self._tensorboard.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tensorboard is not None:
      self._tensorboard.close()


def format_scalars(scalars: Mapping[str, float]) -> str:
  return ', '.join(f'{k}={v:.4g}' for k, v in sorted(scalars.items()))


def read_metrics(workdir: str, key: Optional[str] = None) -> list[dict]:
  """The JSONL records of a run (optionally only those that have `key`)."""
  path = os.path.join(workdir, METRICS_FILE)
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if key is None or key in r]

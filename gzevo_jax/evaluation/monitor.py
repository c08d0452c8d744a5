"""kNN accuracy of the encoder during pretraining: a cheap progress signal.

Every `config.knn_monitor.every_steps`, the online encoder embeds a fixed,
labelled sample of a downstream dataset (train and validation splits, read
once and kept in memory as uint8), and a cosine kNN classifier fitted on the
train sample is scored on the validation sample. The result goes to the log
and metrics as `knn_accuracy` / `knn_balanced_accuracy`.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import ml_collections
import numpy as np

from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import knn as knn_lib
from gzevo_jax.evaluation import probe as probe_lib


def _cache(builder, split: str, config: ml_collections.ConfigDict,
           image_size: int, label_key: str) -> dict[str, np.ndarray]:
  """Up to `max_examples` galaxies of a split, images as uint8."""
  from gzevo_jax.data import pipeline  # TensorFlow, lazily.
  kept = {'image': [], 'id_str': [], label_key: [], 'mask': []}
  n = 0
  for batch in pipeline.eval_batches(builder, split, batch_size=256,
                                     image_size=image_size,
                                     keys=('id_str', label_key)):
    keep = batch['mask']
    kept['image'].append(np.round(batch['image'][keep] * 255).astype(np.uint8))
    for key in ('id_str', label_key, 'mask'):
      kept[key].append(batch[key][keep])
    n += int(keep.sum())
    if n >= config.max_examples:
      break
  return {k: np.concatenate(v)[:config.max_examples] for k, v in kept.items()}


def _batches(cache: Mapping[str, np.ndarray],
             batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  from gzevo_jax.data import pipeline
  for start in range(0, len(cache['mask']), batch_size):
    batch = {k: v[start:start + batch_size] for k, v in cache.items()}
    batch['image'] = batch['image'].astype(np.float32) / 255.0
    yield pipeline.pad_batch(batch, batch_size)


class KnnMonitor:
  """Callable: encoder variables -> {'knn_accuracy', 'knn_balanced_accuracy'}."""

  def __init__(self, config: ml_collections.ConfigDict, encoder: Any,
               image_size: int, data_dir: Any = None):
    """`config` is a pretraining config's `knn_monitor` section."""
    from gzevo_jax.data import sources
    data = ml_collections.ConfigDict({
        'dataset': config.dataset, 'data_dir': data_dir, 'manual_dir': None,
        'skip_bad_rows': False})
    builder = sources.prepare_dataset(data)
    self._config = config
    self._encoder = encoder
    self._mesh = features_lib.local_mesh()
    self._batch_size = features_lib.padded_batch_size(256, self._mesh)
    self._splits = {s: _cache(builder, s, config, image_size,
                              config.label_key)
                    for s in ('train', 'validation')}

  def _features(self, variables, split: str) -> features_lib.Features:
    return features_lib.extract(
        self._encoder, variables,
        _batches(self._splits[split], self._batch_size),
        label_keys=(self._config.label_key,), mesh=self._mesh,
        what=f'kNN monitor {split}', log_every=10**9)

  def __call__(self, variables: Mapping[str, Any]) -> dict[str, float]:
    train, val = (self._features(variables, s) for s in ('train', 'validation'))
    key = self._config.label_key
    labels = np.concatenate([train.labels[key], val.labels[key]])
    prob = knn_lib.knn_predict(
        train.features, train.labels[key], val.features,
        k=min(self._config.k, train.num_examples),
        temperature=self._config.temperature,
        num_classes=int(labels.max()) + 1)
    metrics = probe_lib.classification_metrics(val.labels[key], prob)
    return {f'knn_{m}': float(metrics[m])
            for m in ('accuracy', 'balanced_accuracy')}


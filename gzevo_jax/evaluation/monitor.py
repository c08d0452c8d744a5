"""kNN accuracy of the encoder during pretraining: a cheap progress signal.

Every `config.knn_monitor.every_steps`, the online encoder embeds a fixed,
labelled sample of a downstream dataset (train and validation splits, read
once and kept in memory as uint8), and a cosine kNN classifier fitted on the
train sample is scored on the validation sample. The result goes to the log
and metrics.jsonl as `monitor/knn_accuracy` and `monitor/knn_balanced_accuracy`.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import ml_collections
import numpy as np

from gzevo_jax.data import common
from gzevo_jax.evaluation import features as features_lib
from gzevo_jax.evaluation import knn as knn_lib
from gzevo_jax.evaluation import probe as probe_lib


def _batches(split: features_lib.Images,
             batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """The cached split as evaluation batches (padded, with `mask`)."""
  for start in range(0, len(split.labels), batch_size):
    images = split.images[start:start + batch_size]
    yield common.pad_batch({
        'image': images.astype(np.float32) / 255.0,
        'label': split.labels[start:start + batch_size],
        'id_str': np.arange(start, start + len(images)).astype(str),
        'mask': np.ones(len(images), bool)}, batch_size)


class KnnMonitor:
  """Callable: encoder variables -> {'knn_accuracy', 'knn_balanced_accuracy'}."""

  def __init__(self, config: ml_collections.ConfigDict, encoder: Any,
               image_size: int, data_dir: Any = None, source: str = 'tfds'):
    """`config` is a pretraining config's `knn_monitor` section; `source`
    its data source ('grain' reads the labelled sample without TensorFlow).
    """
    from gzevo_jax.data import sources
    data = ml_collections.ConfigDict({
        'dataset': config.dataset, 'data_dir': data_dir, 'manual_dir': None,
        'skip_bad_rows': False, 'source': source})
    dataset = sources.eval_dataset(data)
    self._config = config
    self._encoder = encoder
    self._mesh = features_lib.local_mesh()
    self._batch_size = features_lib.padded_batch_size(256, self._mesh)
    self._splits = {s: features_lib.load_images(dataset, s, image_size,
                                                config.label_key,
                                                config.max_examples)
                    for s in ('train', 'validation')}

  def _features(self, variables, split: str) -> features_lib.Features:
    return features_lib.extract(
        self._encoder, variables,
        _batches(self._splits[split], self._batch_size),
        label_keys=('label',), mesh=self._mesh,
        what=f'kNN monitor {split}', log_every=10**9)

  def __call__(self, variables: Mapping[str, Any]) -> dict[str, float]:
    train, val = (self._features(variables, s) for s in ('train', 'validation'))
    key = 'label'  # What _batches calls the cached split's labels.
    labels = np.concatenate([train.labels[key], val.labels[key]])
    prob = knn_lib.knn_predict(
        train.features, train.labels[key], val.features,
        k=min(self._config.k, train.num_examples),
        temperature=self._config.temperature,
        num_classes=int(labels.max()) + 1)
    metrics = probe_lib.classification_metrics(val.labels[key], prob)
    return {f'knn_{m}': float(metrics[m])
            for m in ('accuracy', 'balanced_accuracy')}


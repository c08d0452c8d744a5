"""TFDS datasets stored as array_record, read without TensorFlow or TFDS.

`python -m gzevo_jax.data.build --file_formats=tfrecord,array_record` also
writes each split as array_record files (TFDS's `file_format`). This module
finds them through the dataset's own `dataset_info.json` and `features.json`,
reads records at random with array_record's reader (Grain's
ArrayRecordDataSource), and decodes each record, a serialized
tf.train.Example, with protobuf (the message layout of TensorFlow's
example.proto, declared below) and Pillow: the same values TFDS decodes, as
numpy (int32 votes, uint8 images, bytes strings).

Neither TensorFlow nor tensorflow_datasets is imported, so accelerator hosts
without them can train from the same datasets (`config.data.source='grain'`).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import zlib
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from gzevo_jax.data import common

FILE_FORMAT = 'array_record'

# tf.train.Example (tensorflow/core/example/{example,feature}.proto) as a
# protobuf descriptor: the same field numbers and types, so protobuf parses
# the records TFDS wrote.
_EXAMPLE_PROTO = '''
name: "gzevo_jax/tf_example.proto" package: "gzevo_jax.tf_example"
syntax: "proto3"
message_type { name: "BytesList" field { name: "value" number: 1
  label: LABEL_REPEATED type: TYPE_BYTES } }
message_type { name: "FloatList" field { name: "value" number: 1
  label: LABEL_REPEATED type: TYPE_FLOAT options { packed: true } } }
message_type { name: "Int64List" field { name: "value" number: 1
  label: LABEL_REPEATED type: TYPE_INT64 options { packed: true } } }
message_type { name: "Feature"
  field { name: "bytes_list" number: 1 label: LABEL_OPTIONAL
    type: TYPE_MESSAGE type_name: ".gzevo_jax.tf_example.BytesList"
    oneof_index: 0 }
  field { name: "float_list" number: 2 label: LABEL_OPTIONAL
    type: TYPE_MESSAGE type_name: ".gzevo_jax.tf_example.FloatList"
    oneof_index: 0 }
  field { name: "int64_list" number: 3 label: LABEL_OPTIONAL
    type: TYPE_MESSAGE type_name: ".gzevo_jax.tf_example.Int64List"
    oneof_index: 0 }
  oneof_decl { name: "kind" } }
message_type { name: "Features"
  field { name: "feature" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
    type_name: ".gzevo_jax.tf_example.Features.FeatureEntry" }
  nested_type { name: "FeatureEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
      type_name: ".gzevo_jax.tf_example.Feature" }
    options { map_entry: true } } }
message_type { name: "Example" field { name: "features" number: 1
  label: LABEL_OPTIONAL type: TYPE_MESSAGE
  type_name: ".gzevo_jax.tf_example.Features" } }
'''


@functools.lru_cache(maxsize=None)
def _example_class() -> Any:
  """The protobuf message class of tf.train.Example."""
  from google.protobuf import descriptor_pb2, descriptor_pool
  from google.protobuf import message_factory, text_format
  pool = descriptor_pool.DescriptorPool()
  pool.Add(text_format.Parse(_EXAMPLE_PROTO,
                             descriptor_pb2.FileDescriptorProto()))
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName('gzevo_jax.tf_example.Example'))


@dataclasses.dataclass(frozen=True)
class Feature:
  """How one top-level TFDS feature is stored and decoded.

  kind: 'image' (PNG/JPEG bytes), 'text' (bytes), 'tensor' (a list of
  int64 or float, reshaped to `shape` and cast to `dtype`), or 'zlib' (a
  zlib-compressed raw tensor: images of more than 4 bands).
  """
  kind: str
  dtype: str
  shape: tuple[int, ...]


def _feature(spec: Mapping[str, Any]) -> Optional[Feature]:
  """A features.json entry as a Feature; None for kinds not read here."""
  def shape(tensor):
    return tuple(int(d) for d in tensor.get('shape', {}).get('dimensions', []))

  if 'image' in spec:
    return Feature('image', 'uint8', shape(spec['image']))
  if 'text' in spec:
    return Feature('text', 'object', ())
  if 'classLabel' in spec:
    return Feature('tensor', 'int64', ())
  if 'tensor' in spec and spec['tensor'].get('encoding', 'none') == 'none':
    return Feature('tensor', spec['tensor']['dtype'], shape(spec['tensor']))
  if 'tensor' in spec and spec['tensor'].get('encoding') == 'zlib':
    return Feature('zlib', spec['tensor']['dtype'], shape(spec['tensor']))
  return None  # Nested dicts (`truth`), encoded tensors: not needed here.


def decode_image(encoded: bytes, shape: Sequence[int]) -> np.ndarray:
  """PNG/JPEG bytes -> uint8 [H, W, C] (C = shape[-1])."""
  from PIL import Image  # Pillow decodes both formats TFDS writes.
  with Image.open(io.BytesIO(encoded)) as image:
    array = np.asarray(image.convert('L' if shape[-1] == 1 else 'RGB'))
  return array.reshape(array.shape[:2] + (shape[-1],))


def _decode(feature: Any, spec: Feature) -> Any:
  """One tf.train.Feature -> its numpy value."""
  if spec.kind == 'text':
    return np.asarray(feature.bytes_list.value[0], dtype=object)
  if spec.kind == 'image':
    return decode_image(feature.bytes_list.value[0], spec.shape)
  if spec.kind == 'zlib':  # More than 4 bands: a compressed raw tensor.
    raw = zlib.decompress(feature.bytes_list.value[0])
    return np.frombuffer(raw, spec.dtype).reshape(spec.shape)
  kind = feature.WhichOneof('kind')
  values = getattr(feature, kind).value if kind else []
  return np.asarray(values).astype(spec.dtype).reshape(spec.shape)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A built TFDS dataset's array_record files, splits and features."""
  name: str
  directory: str
  split_sizes: Mapping[str, int]
  split_files: Mapping[str, tuple[str, ...]]
  features: Mapping[str, Feature]

  def num_examples(self, split: str) -> int:
    return self.split_sizes[split]

  def source(self, split: str) -> Any:
    """Random access to the split's serialized records (Grain's source)."""
    import grain
    return grain.sources.ArrayRecordDataSource(list(self.split_files[split]))

  def parse(self, record: bytes, keys: Sequence[str]) -> dict[str, Any]:
    """The `keys` of one serialized example, decoded."""
    example = _example_class().FromString(record).features.feature
    return {k: _decode(example[k], self.features[k]) for k in keys}

  def check_keys(self, keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in self.features]
    if missing:
      raise common.DataError(
          f'dataset {self.name} has no feature {missing[0]!r} that the Grain '
          f'pipeline can read; it has {", ".join(sorted(self.features))}')


def default_data_dir() -> str:
  """TFDS's default: $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  return os.environ.get('TFDS_DATA_DIR',
                        os.path.join(os.path.expanduser('~'),
                                     'tensorflow_datasets'))


def build_command(name: str, data_dir: Optional[str]) -> str:
  """The command that writes `name` with array_record files too."""
  where = f' --data_dir={data_dir}' if data_dir else ''
  return (f'python -m gzevo_jax.data.build --dataset={name}{where} '
          '--file_formats=tfrecord,array_record')


def _version_dir(name: str, data_dir: str) -> Optional[str]:
  """data_dir/<dataset>/<config>/<version> of the version builders write.

  Other TFDS datasets: the highest version there is.
  """
  dataset, _, config = name.partition('/')
  base = os.path.join(data_dir, dataset, config)
  if dataset in common.VERSIONS:
    path = os.path.join(base, common.VERSIONS[dataset])
    return path if os.path.isfile(os.path.join(path, 'dataset_info.json')) \
        else None
  versions = sorted((tuple(int(p) for p in v.split('.')), v)
                    for v in (os.listdir(base) if os.path.isdir(base) else [])
                    if v.replace('.', '').isdigit() and os.path.isfile(
                        os.path.join(base, v, 'dataset_info.json')))
  return os.path.join(base, versions[-1][1]) if versions else None


def _split_files(directory: str, info: Mapping[str, Any],
                 split: Mapping[str, Any]) -> tuple[str, ...]:
  """The paths of one split's array_record shards, in order."""
  template = split.get('filepathTemplate',
                       '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}')
  n = len(split.get('shardLengths', []))
  return tuple(os.path.join(directory, template.format(
      DATASET=info['name'], SPLIT=split['name'], FILEFORMAT=FILE_FORMAT,
      SHARD_X_OF_Y=f'{i:05d}-of-{n:05d}', SHARD_INDEX=f'{i:05d}',
      NUM_SHARDS=f'{n:05d}')) for i in range(n))


def _formats(info: Mapping[str, Any]) -> list[str]:
  return [info.get('fileFormat', 'tfrecord'),
          *info.get('alternativeFileFormats', [])]


def open_dataset(name: str, data_dir: Optional[str] = None) -> Dataset:
  """The array_record files of a built dataset ('gz_evo/synthetic').

  Raises DatasetNotBuiltError, saying how to build it, when the dataset is
  not built in `data_dir` or was built without array_record files.
  """
  root = data_dir or default_data_dir()
  directory = _version_dir(name, root)
  if directory is None:
    raise common.DatasetNotBuiltError(
        f"config.data.source='grain' reads {name} from array_record files, "
        f'but it is not built in {root}; build it with '
        f'`{build_command(name, data_dir)}` (TensorFlow is needed there once)')
  with open(os.path.join(directory, 'dataset_info.json')) as f:
    info = json.load(f)
  if FILE_FORMAT not in _formats(info):
    raise common.DatasetNotBuiltError(
        f"config.data.source='grain' needs {name} as array_record, but "
        f'{directory} holds only {", ".join(_formats(info))}; add array_record '
        f'files with `{build_command(name, data_dir)}`')
  with open(os.path.join(directory, 'features.json')) as f:
    specs = json.load(f)['featuresDict']['features']
  features = {k: v for k, v in ((k, _feature(s)) for k, s in specs.items())
              if v is not None}
  splits = info.get('splits', [])
  return Dataset(
      name=name, directory=directory,
      split_sizes={s['name']: sum(int(n) for n in s.get('shardLengths', []))
                   for s in splits},
      split_files={s['name']: _split_files(directory, info, s)
                   for s in splits},
      features=features)

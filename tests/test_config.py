"""Config files, variants, durations and validation messages."""

import os

import pytest

from conftest import REPO_ROOT
from gzevo_jax import config_lib

OBJECTIVES = ('contrastive', 'supervised', 'hybrid')


def _load(spec):
  return config_lib.load_config_file(os.path.join(REPO_ROOT, 'configs', spec))


@pytest.mark.parametrize('objective', OBJECTIVES)
@pytest.mark.parametrize('variant', ['', ':smoke'])
def test_configs_validate(objective, variant):
  config = _load(f'{objective}.py{variant}')
  config_lib.validate(config)
  assert config.objective == objective
  assert config.run_name == objective + variant.replace(':', '_')


def test_hybrid_rescaled_variant():
  assert _load('hybrid.py:rescaled').loss.rescale_supervised
  assert not _load('hybrid.py').loss.rescale_supervised


def test_unknown_variant_lists_choices():
  with pytest.raises(ValueError, match='rescaled, smoke'):
    _load('hybrid.py:huge')


@pytest.mark.parametrize('field, value, listed', [
    ('objective', 'simclr', 'contrastive, supervised, hybrid'),
    ('model.encoder', 'vit', 'convnext_nano, convnext_tiny, resnet18, resnet50'),
    ('optimizer.name', 'rmsprop', 'adamw, lars, sgd'),
    ('model.dtype', 'float16', 'float32, bfloat16'),
    ('data.source', 'hub', 'tfds, grain, in_memory_synthetic'),
])
def test_bad_choices_list_the_valid_ones(field, value, listed):
  config = _load('hybrid.py')
  parent, _, leaf = field.rpartition('.')
  (config[parent] if parent else config)[leaf] = value
  with pytest.raises(ValueError, match=f'config.{field}.*{listed}'):
    config_lib.validate(config)


def test_unknown_field_message_lists_fields():
  config = _load('hybrid.py')
  msg = config_lib.unknown_field_message(config, 'model.encodr')
  assert "config.model has no field 'encodr'" in msg
  assert 'encoder' in msg and 'width_multiplier' in msg
  assert config_lib.unknown_field_message(config, 'model.encoder') is None
  assert 'valid fields' in config_lib.unknown_field_message(config, 'nope')


@pytest.mark.parametrize('text, expected', [
    ('300 steps', 300), ('1 step', 1), ('2 epochs', 20), ('0.25 epochs', 3),
    ('1e2 steps', 100), ('0 steps', 0)])
def test_parse_duration(text, expected):
  assert config_lib.parse_duration(text, steps_per_epoch=10) == expected


@pytest.mark.parametrize('text', ['300', 'ten steps', '2 hours', '1.5 steps'])
def test_bad_durations(text):
  with pytest.raises(ValueError, match='train_duration'):
    config_lib.parse_duration(text, 10, 'train_duration')


def test_missing_config_file():
  with pytest.raises(FileNotFoundError, match='nope.py'):
    config_lib.load_config_file('nope.py:smoke')


def test_gz_evo_variant_is_paper_scale_on_real_data():
  for name in ('contrastive', 'supervised', 'hybrid'):
    config = _load(f'{name}.py:gz_evo')
    config_lib.validate(config)
    assert config.data.dataset == 'gz_evo/real'
    assert config.data.image_size >= 128
    assert config.global_batch_size >= 512
    assert config.model.encoder in ('resnet18', 'resnet50', 'convnext_nano',
                                    'convnext_tiny')
    assert config.run_name == f'{name}_gz_evo'


def test_gz_evo_v1_variant_reads_the_release_with_its_schema():
  from gzevo_jax.data import builders
  for name in ('contrastive', 'supervised', 'hybrid'):
    config, paper_scale = _load(f'{name}.py:gz_evo_v1'), _load(
        f'{name}.py:gz_evo')
    config_lib.validate(config)
    assert config.data.dataset == 'gz_evo/real_v1'
    assert config.schema == 'gz_evo_v1'
    assert config.global_batch_size == paper_scale.global_batch_size
  real_v1 = builders.builder('gz_evo/real_v1')
  assert real_v1.info.features['votes'].shape == (224,)
  assert builders.builder('gz_evo/real').info.features['votes'].shape == (206,)


def test_bad_augmentation_field_is_named():
  config = _load('hybrid.py')
  config.data.augment.crop_scale_range = (1.2, 0.5)
  with pytest.raises(ValueError, match='data.augment.crop_scale_range'):
    config_lib.validate(config)

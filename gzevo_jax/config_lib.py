"""The base config every objective shares, its variants, and its validation.

Config files in `configs/` call `base_config(objective)` and then set what
differs; every field that matters is here, with a comment, so nothing is a
hidden default in a code path. `validate(config)` turns a bad value into a
message that lists the valid choices.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from typing import Any, Callable, Iterable, Mapping, Optional

import ml_collections
from ml_collections.config_dict import placeholder

from gzevo_jax import schema as schema_lib
from gzevo_jax.data import augment

OBJECTIVES = ('contrastive', 'supervised', 'hybrid')
DATA_SOURCES = ('tfds', 'grain', 'in_memory_synthetic')
EVAL_DATA_SOURCES = ('tfds', 'grain')  # Evaluations read TFDS datasets.
DTYPES = ('float32', 'bfloat16')
SUPERVISED_VIEWS = ('both', 'first')


def base_config(objective: str) -> ml_collections.ConfigDict:
  """Defaults shared by all objectives: a CPU-sized run on synthetic data."""
  c = ml_collections.ConfigDict()
  c.task = 'pretrain'            # What main runs: 'pretrain' or 'linear_probe'.
  c.objective = objective        # One of OBJECTIVES.
  c.run_name = objective         # Default workdir is runs/<run_name>.
  c.seed = 0                     # Parameters, dropout and data all derive from it.
  c.schema = 'gz_evo_v0_1'       # Built-in schema name, or a path to a .json.
  c.data = _data_config()

  c.global_batch_size = 64       # Split evenly over all devices of all hosts.
  # Durations as '<number> steps' or '<number> epochs' (see parse_duration).
  c.train_duration = '5 epochs'
  c.warmup_duration = '0.5 epochs'  # Linear warmup, then cosine decay to 0.

  c.model = _model_config()
  c.loss = _loss_config()
  c.ema = _ema_config()
  c.optimizer = _optimizer_config()
  c.knn_monitor = _knn_monitor_config()

  c.log_every_steps = 20         # Metrics to stdout, metrics.jsonl, TensorBoard.
  c.checkpoint_every_steps = 200  # Also saved at the end of training.
  c.keep_checkpoints = 3         # Most recent checkpoints kept on disk.
  c.async_checkpointing = True
  return c


def _data_config() -> ml_collections.ConfigDict:
  """config.data: which dataset, its images, and how the input reads it."""
  d = ml_collections.ConfigDict()
  # One of DATA_SOURCES: 'tfds' (tf.data over tfrecord files), 'grain' (the
  # same dataset's array_record files, no TensorFlow), 'in_memory_synthetic'.
  d.source = 'tfds'
  # TFDS name/config: gz_evo/synthetic (built here on first use), gz_evo/real.
  d.dataset = 'gz_evo/synthetic'
  d.data_dir = placeholder(str)    # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  d.manual_dir = placeholder(str)  # Real data: downloaded catalogues + images.
  d.skip_bad_rows = False    # Real data: skip and report bad rows, don't fail.
  d.image_size = 64          # Model input; views are resized to it.
  d.channels = 3             # Must match the dataset's images.
  # Examples (still encoded) in tf.data's shuffle buffer; Grain shuffles
  # the whole split.
  d.shuffle_buffer = 4096
  d.prefetch_batches = 2
  # tf.data private threads (0: TensorFlow decides) or Grain threads (0: one
  # per core).
  d.threads = 0
  d.augment = augment.default_augment_config()
  # Source 'in_memory_synthetic' only (the TFDS dataset sets its own size):
  d.num_train_examples = 4096      # Galaxies in the in-memory catalogue.
  d.labelled_fraction = 0.3        # Share of galaxies with any votes.
  return d


def _model_config() -> ml_collections.ConfigDict:
  """config.model: the encoder and the heads on top of it."""
  m = ml_collections.ConfigDict()
  m.encoder = 'resnet18'   # One of models.ENCODERS.
  m.width_multiplier = 0.25
  m.small_image_stem = False  # True: 3x3 stride-1 stem (<= 32 px images).
  m.drop_path_rate = 0.0     # Stochastic depth; ConvNeXt only.
  m.dtype = 'float32'        # Compute dtype; one of DTYPES.
  m.projector_hidden_dim = 512   # BYOL: 4096.
  m.projection_dim = 128         # BYOL: 256.
  m.predictor_hidden_dim = 512   # BYOL: 4096.
  m.head_dropout = 0.0           # Dropout before the Dirichlet head.
  return m


def _loss_config() -> ml_collections.ConfigDict:
  """config.loss: the BYOL form and how the hybrid weighs its two terms."""
  loss = ml_collections.ConfigDict()
  loss.supervised_weight = 1.0   # Hybrid: L = L_byol + w * L_sup.
  # Hybrid: False for plain w, True for the paper's w * |L_byol| / L_sup.
  loss.rescale_supervised = False
  # Hybrid: the Dirichlet head reads the online representation of 'both'
  # views, or of the 'first' only (the paper's code).
  loss.supervised_views = 'both'
  # 'squared_distance' (BYOL: 2 - 2 cos per direction, summed) or
  # 'negative_cosine' (the paper's code: -cos averaged over directions).
  loss.byol_form = 'squared_distance'
  return loss


def _ema_config() -> ml_collections.ConfigDict:
  """config.ema: the BYOL target network's decay."""
  ema = ml_collections.ConfigDict()
  ema.tau_base = 0.99          # Target decay at step 0.
  ema.schedule = 'cosine'      # 'cosine' to 1 (BYOL), or 'constant'.
  return ema


def _optimizer_config() -> ml_collections.ConfigDict:
  """config.optimizer: which optimizer, its learning rate and decay."""
  o = ml_collections.ConfigDict()
  o.name = 'lars'      # One of optim.OPTIMIZERS.
  o.base_learning_rate = 0.2
  # Peak lr = base * global_batch_size / lr_reference_batch_size (<= 0: no scaling).
  o.lr_reference_batch_size = 256
  o.weight_decay = 1.5e-6
  # False: biases and norm parameters get no weight decay; True: every
  # parameter does (PyTorch's default, as in the paper's code).
  o.decay_norm_and_bias = False
  o.momentum = 0.9           # LARS.
  o.trust_coefficient = 1e-3  # LARS.
  o.b1 = 0.9                 # AdamW.
  o.b2 = 0.999               # AdamW.
  o.eps = 1e-8               # AdamW.
  return o


def _knn_monitor_config() -> ml_collections.ConfigDict:
  """config.knn_monitor: kNN accuracy of the online encoder while training.

  On a labelled downstream sample, in the log and metrics every
  `every_steps` (0: off) and at the end.
  """
  k = ml_collections.ConfigDict()
  k.every_steps = 250
  k.dataset = 'gz_rings/synthetic'  # Built on first use.
  k.label_key = 'label'
  k.max_examples = 2000    # Per split (train, validation).
  k.k = 20
  k.temperature = 0.07
  return k


DOWNSTREAM_TASKS = ('linear_probe', 'finetune', 'similarity', 'votes',
                    'label_efficiency', 'ablation', 'predict', 'photoz',
                    'fixmatch')


def encoder_evaluation_config(task: str) -> ml_collections.ConfigDict:
  """Fields every evaluation of a pretrained encoder shares."""
  c = ml_collections.ConfigDict()
  c.task = task                  # One of DOWNSTREAM_TASKS.
  c.run_name = task              # Default workdir: runs/<run_name>_<pretrained>.
  c.pretrained_workdir = placeholder(str)  # Required: a pretraining workdir.
  c.pretrained_step = placeholder(int)     # None: its latest checkpoint.

  c.data = ml_collections.ConfigDict()
  c.data.dataset = 'gz_rings/synthetic'    # gz_rings/real for GZ Rings.
  # 'tfds' (tf.data; builds synthetic datasets on first use) or 'grain' (the
  # array_record files, no TensorFlow; see config.data.source of pretraining).
  c.data.source = 'tfds'
  c.data.data_dir = placeholder(str)
  c.data.manual_dir = placeholder(str)
  c.data.skip_bad_rows = False
  c.data.image_size = placeholder(int)     # None: the pretraining image size.
  c.data.threads = 0
  c.eval_batch_size = 256                  # Rounded up to a multiple of devices.
  return c


def downstream_config(task: str) -> ml_collections.ConfigDict:
  """An encoder evaluation on a labelled task at several label budgets."""
  c = encoder_evaluation_config(task)
  c.data.label_key = 'label'               # Integer class label feature.
  # Labelled training galaxies per fit; 'all' is the whole train split.
  c.budgets = (100, 300, 750, 3000, 'all')
  c.num_seeds = 3                          # Budget subsets resampled per seed.
  return c


def finetune_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The classifier (or regressor) training of `evaluation/finetune.py`,
  shared by finetuning, FixMatch and photo-z finetuning; returns `c`."""
  c.init = 'pretrained'        # 'pretrained' encoder, or 'scratch' (direct).
  c.learning_rate = 1e-3       # Head's peak lr (AdamW, warmup 1 epoch, cosine).
  c.layer_decay = 0.75         # Each encoder stage below the head: lr x 0.75.
  c.weight_decay = 0.05
  c.batch_size = 64
  c.max_epochs = 30
  c.min_steps_per_epoch = 20   # Small budgets: steps between validations.
  c.patience = 5               # Epochs without a lower validation loss.
  c.max_examples = 100_000     # Per split, held in memory as uint8.
  return c


def apply_variant(config: ml_collections.ConfigDict, arg: Optional[str],
                  variants: Mapping[str, Callable[[ml_collections.ConfigDict],
                                                  None]]
                  ) -> ml_collections.ConfigDict:
  """Applies the named variant (`--config=file.py:NAME`) in place.

  `NAME+OTHER` applies several, left to right (e.g. `paper+smoke`). Raises
  a ValueError listing the variants when a name is unknown.
  """
  if not arg:
    return config
  names = arg.split('+')
  for name in names:
    if name not in variants:
      raise ValueError(f'unknown config variant {name!r}; choose one of '
                       f'{", ".join(sorted(variants)) or "(none)"} (join '
                       'several with +)')
  for name in names:
    variants[name](config)
  config.run_name = f'{config.run_name}_{"_".join(names)}'
  return config


def smoke(config: ml_collections.ConfigDict) -> None:
  """A seconds-long CPU run that exercises every code path."""
  config.data.dataset = 'gz_evo/synthetic_tiny'
  config.data.image_size = 32
  config.model.small_image_stem = True
  config.data.num_train_examples = 256
  config.global_batch_size = 16
  config.train_duration = '30 steps'
  config.warmup_duration = '5 steps'
  config.model.width_multiplier = 0.125
  config.model.projector_hidden_dim = 64
  config.model.projection_dim = 32
  config.model.predictor_hidden_dim = 64
  config.log_every_steps = 10
  config.checkpoint_every_steps = 15
  config.knn_monitor.dataset = 'gz_rings/synthetic_tiny'
  config.knn_monitor.every_steps = 30


def gz_evo(config: ml_collections.ConfigDict) -> None:
  """Paper scale on the real GZ-Evo: 224 px, batch 512, full-width ResNet-18.

  Build the data first (README, "Real GZ-Evo"); sized for an accelerator pod.
  """
  config.data.dataset = 'gz_evo/real'
  config.data.image_size = 224
  config.data.shuffle_buffer = 50_000
  config.global_batch_size = 512
  config.train_duration = '100 epochs'
  config.warmup_duration = '2 epochs'
  config.model.encoder = 'resnet18'
  config.model.width_multiplier = 1.0
  config.model.dtype = 'bfloat16'
  config.model.projector_hidden_dim = 4096
  config.model.projection_dim = 256
  config.model.predictor_hidden_dim = 4096
  config.log_every_steps = 100
  config.checkpoint_every_steps = 1000
  config.knn_monitor.dataset = 'gz_rings/real'
  config.knn_monitor.every_steps = 5000


def paper(config: ml_collections.ConfigDict) -> None:
  """The hybrid paper's recipe (inigoval/byol), at this config's scale.

  From the published code's galaxy configs and its BYOL + supervised module:
  SGD (momentum 0.9, lr 0.06 unscaled, weight decay 5e-4 on every
  parameter, cosine decay, no warmup); a constant target decay of 0.99;
  projector 1024 -> 256 and predictor 1024 -> 256; the negative-cosine BYOL
  loss; the Dirichlet head on the first view's representation with dropout
  0.2; the supervised term rescaled to the BYOL term's size (w = 1: the
  hybrid's own config, and so its w, is not public); the paper's
  augmentations. The encoder's width, the image size, batch and length stay
  this config's (the paper: 512-d ResNet-18, 128 px, batch 512, 400 epochs;
  add --config.model.width_multiplier=1.0 for the 512-d encoder). README
  ("The paper's recipe") lists every remaining difference.
  """
  config.optimizer.name = 'sgd'
  config.optimizer.base_learning_rate = 0.06
  config.optimizer.lr_reference_batch_size = 0
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.decay_norm_and_bias = True
  config.warmup_duration = '0 steps'
  config.ema.schedule = 'constant'
  config.ema.tau_base = 0.99
  config.model.projector_hidden_dim = 1024
  config.model.projection_dim = 256
  config.model.predictor_hidden_dim = 1024
  config.model.head_dropout = 0.2
  config.loss.byol_form = 'negative_cosine'
  config.loss.supervised_views = 'first'
  config.loss.rescale_supervised = True
  config.loss.supervised_weight = 1.0
  config.data.augment = augment.paper_augment_config()


# Variants every objective's config file offers.
def gz_evo_v1(config: ml_collections.ConfigDict) -> None:
  """`gz_evo` on the release as it is: seven campaigns, UKIDSS included."""
  gz_evo(config)
  config.data.dataset = 'gz_evo/real_v1'
  config.schema = 'gz_evo_v1'


COMMON_VARIANTS = {'smoke': smoke, 'gz_evo': gz_evo, 'gz_evo_v1': gz_evo_v1,
                   'paper': paper}


def check_choice(field: str, value: str, choices: Iterable[str]) -> None:
  """A ValueError naming `config.<field>` unless `value` is a choice."""
  choices = tuple(choices)
  if value not in choices:
    raise ValueError(f'config.{field}={value!r} is not valid; choose one of '
                     f'{", ".join(choices)}')


_DURATION = re.compile(r'^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*'
                       r'(steps?|epochs?)\s*$')


def parse_duration(text: str, steps_per_epoch: int,
                   field: str = 'duration') -> int:
  """'300 steps' -> 300; '2.5 epochs' -> ceil(2.5 * steps_per_epoch)."""
  match = _DURATION.match(str(text))
  if not match:
    raise ValueError(f"config.{field}={text!r} is not a duration; write e.g. "
                     "'300 steps' or '2.5 epochs'")
  value, unit = float(match[1]), match[2]
  if unit.startswith('step'):
    if value != int(value):
      raise ValueError(f'config.{field}={text!r}: steps must be a whole '
                       'number')
    return int(value)
  return int(math.ceil(value * steps_per_epoch))


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field and its valid choices."""
  from gzevo_jax import losses, models, optim  # Local: keep import light.
  check_choice('objective', config.objective, OBJECTIVES)
  check_choice('data.source', config.data.source, DATA_SOURCES)
  check_choice('model.encoder', config.model.encoder, sorted(models.ENCODERS))
  check_choice('model.dtype', config.model.dtype, DTYPES)
  check_choice('optimizer.name', config.optimizer.name, optim.OPTIMIZERS)
  check_choice('ema.schedule', config.ema.schedule, optim.EMA_SCHEDULES)
  check_choice('loss.byol_form', config.loss.byol_form, losses.BYOL_FORMS)
  check_choice('loss.supervised_views', config.loss.supervised_views,
          SUPERVISED_VIEWS)
  if parse_duration(config.train_duration, 1, 'train_duration') < 1:
    raise ValueError(f'config.train_duration={config.train_duration!r} '
                     "trains for no step; give at least '1 steps'")
  schema_lib.get_schema(config.schema)  # A bad schema file fails here.
  parse_duration(config.warmup_duration, 1, 'warmup_duration')
  for field in ('global_batch_size', 'log_every_steps',
                'checkpoint_every_steps', 'keep_checkpoints',
                'data.image_size', 'data.channels', 'data.num_train_examples',
                'data.shuffle_buffer', 'data.prefetch_batches',
                'knn_monitor.max_examples', 'knn_monitor.k'):
    check_positive_int(config, field)
  augment.validate_augment_config(config.data.augment)
  if not 0.0 <= config.data.labelled_fraction <= 1.0:
    raise ValueError('config.data.labelled_fraction must lie in [0, 1], got '
                     f'{config.data.labelled_fraction}')
  if not 0.0 <= config.model.head_dropout < 1.0:
    raise ValueError('config.model.head_dropout must lie in [0, 1), got '
                     f'{config.model.head_dropout}')
  if not 0.0 <= config.ema.tau_base <= 1.0:
    raise ValueError(f'config.ema.tau_base must lie in [0, 1], got '
                     f'{config.ema.tau_base}')


def check_positive_int(config: ml_collections.ConfigDict, field: str) -> None:
  """Raises ValueError naming `field` unless it is an integer >= 1."""
  value = get_dotted(config, field)
  if not isinstance(value, int) or value < 1:
    raise ValueError(f'config.{field} must be a positive integer, got '
                     f'{value!r}')


# Fields that name this machine's files or runs, or how it reads a dataset
# (data.source: tf.data or Grain read the same examples), not what a run
# computes: left out where results are compared across machines.
MACHINE_FIELDS = ('data.data_dir', 'data.source', 'run_name',
                  'keep_checkpoints', 'pretrained_workdir', 'config_dir')


def plain_data(value: Any) -> Any:
  """A config value as plain JSON data (ConfigDicts and tuples included)."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  return json.loads(json.dumps(value, sort_keys=True, default=str))


def flat_fields(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a.b': value} for every leaf of a nested dict, machine fields left out."""
  out = {}
  for key, value in tree.items():
    dotted = prefix + key
    if any(dotted == f or dotted.endswith('.' + f) for f in MACHINE_FIELDS):
      continue
    if isinstance(value, dict):
      out.update(flat_fields(value, dotted + '.'))
    else:
      out[dotted] = value
  return out


def get_dotted(tree, dotted: str):
  """tree['a']['b'] for 'a.b' (a ConfigDict or a plain nested dict)."""
  for part in dotted.split('.'):
    tree = tree[part]
  return tree


def set_dotted(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  """config.a.b = value for 'a.b'; a dict value replaces a whole subtree.

  Raises ValueError listing the valid fields when 'a.b' is not a field.
  """
  message = unknown_field_message(config, dotted)
  if message:
    raise ValueError(message)
  *parents, leaf = dotted.split('.')
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = (ml_collections.ConfigDict(value) if isinstance(value, dict)
                else value)


def unknown_field_message(config: ml_collections.ConfigDict,
                          dotted: str) -> Optional[str]:
  """If `dotted` is not a field of `config`, a message listing valid fields."""
  node, walked = config, []
  for part in dotted.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = 'config' + ''.join(f'.{w}' for w in walked)
      valid = (sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict)
               else [])
      return (f'unknown config field {dotted!r}: {where} has no field '
              f'{part!r}; valid fields: {", ".join(valid)}')
    node = node[part]
    walked.append(part)
  return None


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:variant]` as --config does."""
  path, _, arg = spec.partition(':')
  if not os.path.exists(path):
    raise FileNotFoundError(f'config file not found: {path}')
  module_spec = importlib.util.spec_from_file_location('_gzevo_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)

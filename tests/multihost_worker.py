r"""One process of the multi-host test (test_multihost.py), or its reference.

  python tests/multihost_worker.py --process_id=I --num_processes=N \
      --port=P --devices=D --data_dir=DIR --workdir=DIR --out=FILE.npz
  python tests/multihost_worker.py --reference --num_processes=N \
      --devices=N*D --data_dir=DIR --workdir=DIR --out=FILE.npz

A worker joins the N-process job, trains the tiny hybrid config on
gz_evo/synthetic_tiny exactly as `main` would (its own shard of the data),
and saves its final parameters and the ids its shard holds for one epoch.
The reference is one process with all N*D devices fed the global batches
the N workers make between them (their local batches, concatenated in
process order).
"""

import argparse
import itertools
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument('--process_id', type=int, default=0)
parser.add_argument('--num_processes', type=int, required=True)
parser.add_argument('--port', type=int, default=0)
parser.add_argument('--devices', type=int, required=True)
parser.add_argument('--reference', action='store_true')
parser.add_argument('--data_dir', required=True)
parser.add_argument('--workdir', required=True)
parser.add_argument('--out', required=True)
args = parser.parse_args()
os.environ['XLA_FLAGS'] = (
    f'--xla_force_host_platform_device_count={args.devices}')
os.environ['JAX_PLATFORMS'] = 'cpu'

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gzevo_jax import distributed  # noqa: E402
from gzevo_jax import train  # noqa: E402
from gzevo_jax.data import pipeline  # noqa: E402
from gzevo_jax.data import sources  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import tiny_config  # noqa: E402

STEPS = 4


def config_for_test():
  return tiny_config(
      'hybrid', **{'data.source': 'tfds',
                   'data.dataset': 'gz_evo/synthetic_tiny',
                   'data.data_dir': args.data_dir,
                   'global_batch_size': 16,
                   'train_duration': f'{STEPS} steps',
                   'checkpoint_every_steps': STEPS,
                   'async_checkpointing': False,
                   # The monitor runs on each process's own devices.
                   'knn_monitor.every_steps': STEPS,
                   'knn_monitor.dataset': 'gz_rings/synthetic_tiny',
                   'knn_monitor.max_examples': 64})


def shard_batches(config, shard, label_keys=('votes',)):
  builder = sources.prepare_dataset(config.data)
  return pipeline.train_batches(
      builder, config.data,
      local_batch_size=config.global_batch_size // shard.process_count,
      two_views=True, seed=config.seed, shard=shard, label_keys=label_keys)


def reference_batches(config):
  """The global batches the workers build, as one process would see them."""
  shards = [shard_batches(config, pipeline.Shard('train', p,
                                                 args.num_processes))
            for p in range(args.num_processes)]
  for local_batches in zip(*shards):
    yield {k: np.concatenate([b[k] for b in local_batches])
           for k in local_batches[0]}


def epoch_ids(config):
  """The ids this process's shard reads in one epoch."""
  builder = sources.prepare_dataset(config.data)
  shard = pipeline.Shard('train', jax.process_index(), jax.process_count())
  per_epoch = pipeline.examples_per_process(builder, 'train',
                                            shard.process_count)
  local = config.global_batch_size // shard.process_count
  batches = shard_batches(config, shard, label_keys=('id_str',))
  ids = [b['id_str'] for b in itertools.islice(batches, per_epoch // local)]
  return np.concatenate(ids).astype(str)


def main():
  if not args.reference:
    distributed.initialize('auto', f'localhost:{args.port}',
                           args.num_processes, args.process_id)
  config = config_for_test()
  state = train.train_and_evaluate(
      config, args.workdir,
      data_iterator=reference_batches(config) if args.reference else None)
  leaves = jax.tree_util.tree_leaves_with_path(state.params)
  arrays = {jax.tree_util.keystr(path): np.asarray(x.addressable_data(0))
            for path, x in leaves}
  np.savez(args.out, __ids__=epoch_ids(config),
           __processes__=jax.process_count(), **arrays)


if __name__ == '__main__':
  main()

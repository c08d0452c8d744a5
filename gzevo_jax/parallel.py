"""Data parallelism: one 1-D device mesh, replicated state, batch-sharded inputs.

A per-device function written with the named axis `batch` (pmean on gradients,
cross-replica BatchNorm) is mapped over every device of every host with
`jax.shard_map` (the pmap semantics, without `jax.pmap`, which is in
maintenance mode), then jit-compiled with its state donated. The same program
runs on 1 CPU, 8 GPUs or a TPU pod.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gzevo_jax.models import BATCH_AXIS


def make_mesh(devices: Any = None) -> Mesh:
  """A 1-D mesh named `batch` over all devices of all processes."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (BATCH_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a host pytree (same on every process) on every device."""
  return jax.device_put(tree, replicated(mesh))


def local_copy(tree: Any) -> Any:
  """This process's copy of a replicated pytree (e.g. the train state).

  Arrays replicated over several processes cannot be moved onto another
  mesh directly (that is a cross-host transfer); their local shard can.
  """
  return jax.tree.map(
      lambda x: x.addressable_data(0) if isinstance(x, jax.Array) and
      not x.is_fully_addressable else x, tree)


def global_batch(local_batch: Mapping[str, np.ndarray],
                 mesh: Mesh) -> dict[str, jax.Array]:
  """Builds global, batch-sharded arrays from this process's rows.

  Every process passes its own slice of the global batch (leading axis); the
  result is one array per key whose leading axis is the global batch.
  """
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def data_parallel(per_device_fn: Callable[..., Any], mesh: Mesh,
                  donate_state: bool = True) -> Callable[..., Any]:
  """Maps `per_device_fn(state, batch) -> (state, metrics)` over the mesh.

  State is replicated (spec P()) and must come out identical on every device,
  which the `pmean`s inside the function guarantee; the batch is split along
  its leading axis. Metrics come out replicated.

  `check_vma=False` gives pmap semantics: `jax.grad` inside returns each
  device's own gradient and the function averages it with an explicit
  `pmean`. (With the checker on, differentiating with respect to replicated
  parameters silently inserts a `psum`, so an explicit `pmean` would yield
  device_count times the mean gradient.)
  """
  mapped = jax.shard_map(per_device_fn, mesh=mesh,
                         in_specs=(P(), P(BATCH_AXIS)), out_specs=(P(), P()),
                         check_vma=False)
  return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())

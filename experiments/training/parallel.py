"""Data parallelism over every device of every host with `jax.sharding`.

One mesh axis, "data", over `jax.devices()`. Parameters and optimizer state are replicated;
a batch is split along its first axis. Each process feeds its own rows (process p of P holds
rows [p·B/P, (p+1)·B/P) of the global batch of B) and `make_array_from_process_local_data`
assembles the global array, so the same code runs on one CPU, on forced host devices, and on
several hosts after `jax.distributed.initialize()`. The compiled step is the single-device step;
XLA inserts the gradient all-reduce that the sharded batch implies.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA = "data"


def data_mesh(devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    devices = mesh.devices.size
    if batch_size % devices:
        raise ValueError(f"train.batch_size must be a multiple of the {devices} devices it is split over, "
                         f"got {batch_size}")


def process_rows(global_batch: int) -> slice:
    """This process's rows of a global batch."""
    per_process = global_batch // jax.process_count()
    start = jax.process_index() * per_process
    return slice(start, start + per_process)


def shard_batch(arrays, mesh: Mesh):
    """Host numpy arrays holding the *global* batch -> global jax.Arrays split along axis 0."""
    sharding = batch_sharded(mesh)

    def place(array):
        local = np.asarray(array)[process_rows(array.shape[0])]
        return jax.make_array_from_process_local_data(sharding, local, array.shape)

    return jax.tree.map(place, arrays)


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, replicated(mesh))

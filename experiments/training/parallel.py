"""Data, FSDP and sequence parallelism over every device of every host with `jax.sharding`.

The devices form a 2-D mesh ("data", "seq") of shape `train.mesh` (Auto axis types, so GSPMD
places everything the code does not pin):

    batches        (B, T, …) arrays split P("data", "seq"); per-example (B,) arrays P("data")
    parameters     FSDP over "data": each array split along its largest dimension divisible by
    and optimizer  the "data" size, replicated when none is or when it has fewer than
    state          MIN_SHARDED_SIZE elements (its memory is negligible and an all-gather per
                   use would cost more than it saves); XLA inserts the all-gathers and the
                   gradients' reduce-scatters
    the model      when "seq" > 1 its mixers run their time-mixing in `shard_map` over "seq"
                   (ModelConfig.sequence_axis); everything per-token is left to GSPMD

With seq = 1 this is plain data parallelism with sharded parameters. Each process feeds its own
block of a global batch (the rows, and at seq > 1 the time steps, its devices hold) and
`make_array_from_process_local_data` assembles the global array, so the same code runs on one
CPU, on forced host devices, and on several hosts after `jax.distributed.initialize()`.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA, SEQ = "data", "seq"
MIN_SHARDED_SIZE = 1024  # elements: smaller parameters (biases, norm scales, small tables) stay replicated


def mesh_shape(requested: dict, device_count: int) -> tuple[int, int]:
    """(data, seq) from `train.mesh` ({"data": int or None, "seq": int}; data None = the devices
    left over by seq); ValueError unless data × seq is the device count."""
    seq = requested.get("seq", 1)
    data = requested.get("data")
    if data is None:
        if device_count % seq:
            raise ValueError(f"train.mesh.seq={seq} does not divide the device count {device_count}")
        data = device_count // seq
    if data * seq != device_count:
        raise ValueError(f"train.mesh.data × train.mesh.seq = {data} × {seq} = {data * seq} must equal "
                         f"the device count {device_count}")
    return data, seq


def make_mesh(requested: dict, devices=None) -> Mesh:
    """The ("data", "seq") mesh of shape `train.mesh` over `devices` (default: every device of
    every process, in process order, so a process's devices are contiguous along "data")."""
    devices = jax.devices() if devices is None else list(devices)
    shape = mesh_shape(requested, len(devices))
    return Mesh(np.asarray(devices).reshape(shape), (DATA, SEQ), axis_types=(AxisType.Auto,) * 2)


def check_batch_shape(batch_size: int, train_length: int, eval_lengths, mesh: Mesh) -> None:
    """ValueError unless the batch splits evenly over "data" and every length over "seq"."""
    data, seq = mesh.shape[DATA], mesh.shape[SEQ]
    if batch_size % data:
        raise ValueError(f"train.batch_size ({batch_size}) must be a multiple of train.mesh.data ({data}), "
                         "the devices it is split over")
    named = [("task.train_length", train_length)] + [("task.eval_lengths entry", n) for n in eval_lengths]
    for name, length in named:
        if length % seq:
            raise ValueError(f"{name} {length} must be a multiple of train.mesh.seq ({seq}), the devices "
                             "time is split over")


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def fsdp_sharding(shape: tuple[int, ...], mesh: Mesh) -> NamedSharding:
    """An array of `shape` split over "data" along its largest dimension that "data" divides
    (the first such on ties); replicated when none does or it has < MIN_SHARDED_SIZE elements."""
    data = mesh.shape[DATA]
    candidates = [axis for axis, size in enumerate(shape) if size % data == 0]
    if data == 1 or not candidates or int(np.prod(shape)) < MIN_SHARDED_SIZE:
        return replicated(mesh)
    axis = max(candidates, key=lambda a: (shape[a], -a))
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), DATA))


def state_shardings(tree, mesh: Mesh):
    """`fsdp_sharding` for every array of `tree` (parameters, optimizer state, RNG keys)."""
    return jax.tree.map(lambda x: fsdp_sharding(np.shape(x), mesh), tree)


def place_state(tree, mesh: Mesh):
    """`tree` on the mesh, FSDP-sharded (see `fsdp_sharding`)."""
    return jax.device_put(tree, state_shardings(tree, mesh))


def batch_sharding(ndim: int, mesh: Mesh) -> NamedSharding:
    """(B,) arrays over "data"; (B, T, …) arrays over "data" and "seq"."""
    return NamedSharding(mesh, PartitionSpec(DATA) if ndim == 1 else PartitionSpec(DATA, SEQ))


def process_block(sharding: NamedSharding, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The block of a global array of `shape` that this process's devices hold under `sharding`
    (the bounding box of their shards: rows, and time steps where "seq" spans processes)."""
    shards = [tuple(index[axis].indices(size)[:2] for axis, size in enumerate(shape))
              for index in sharding.addressable_devices_indices_map(shape).values()]
    return tuple(slice(min(shard[axis][0] for shard in shards), max(shard[axis][1] for shard in shards))
                 for axis in range(len(shape)))


def shard_batch(arrays, mesh: Mesh):
    """Host numpy arrays holding the *global* batch -> global jax.Arrays split as `batch_sharding`."""
    def place(array):
        array = np.asarray(array)
        sharding = batch_sharding(array.ndim, mesh)
        local = array[process_block(sharding, array.shape)]
        return jax.make_array_from_process_local_data(sharding, local, array.shape)

    return jax.tree.map(place, arrays)

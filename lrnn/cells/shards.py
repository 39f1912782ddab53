"""Sequence parallelism for the cells: what crosses devices besides the engine's scan.

With `sequence_axis` set, P devices along that mesh axis hold contiguous, equal shards of time,
device p the steps [p·T/P, (p+1)·T/P) (see `lrnn.scan.sequence_parallel`). The recurrence
itself crosses devices inside `lrnn.scan.scan` (shard summaries, one all-gather); anything else
that mixes along time needs its neighbours' steps, exchanged here with `lax.ppermute`:

    from_previous(x, n)   the last n steps of device p − 1's shard   (device 0: `first`, or zeros)
    from_next(x, n)       the first n steps of device p + 1's shard  (device P − 1: zeros)
    reverse_time(x)       the whole sequence reversed: x̃_t = x_{T−1−t}, i.e. each shard flipped
                          and sent to device P − 1 − p (a plain flip would keep the device order)

(inside `jax.shard_map` with the axis bound; arrays are batch-first, time on axis 1). A cell's
`forward` called with `sequence_axis` outside shard_map, under `jax.set_mesh(mesh)`, wraps itself
in shard_map (`split_forward`): time split over the axis, everything else replicated.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from lrnn.scan import sequence_parallel

is_bound = sequence_parallel.is_bound


def check_name(sequence_axis) -> None:
    """None or the name of a mesh axis (a str)."""
    if sequence_axis is not None and not isinstance(sequence_axis, str):
        raise TypeError(f"sequence_axis must be None or the name of a mesh axis (a str), "
                        f"got {type(sequence_axis).__name__} {sequence_axis!r}")


def _send(x, sequence_axis: str, to):
    """ppermute of x from every device p to `to(p)` (where that is a device); bool arrays ride as
    uint8 (no collective takes bool on every backend)."""
    devices = lax.axis_size(sequence_axis)
    pairs = [(p, to(p)) for p in range(devices) if 0 <= to(p) < devices]
    if x.dtype == jnp.bool_:
        return lax.ppermute(x.astype(jnp.uint8), sequence_axis, pairs).astype(bool)
    return lax.ppermute(x, sequence_axis, pairs)


def _check_halo(x, count: int, axis: int, what: str) -> None:
    if count > x.shape[axis]:
        raise ValueError(f"{what} needs {count} steps of a neighbouring device's shard, but each shard holds "
                         f"only {x.shape[axis]} (the time length over the devices of sequence_axis): use fewer "
                         f"devices or longer sequences")


def from_previous(x, count: int, sequence_axis: str, first=None, *, axis: int = 1, what: str = "a causal window"):
    """(B, count, ...): the last `count` steps (time at `axis`) of the previous device's shard; on
    device 0, `first`, shaped alike (None: zeros)."""
    _check_halo(x, count, axis, what)
    received = _send(lax.slice_in_dim(x, x.shape[axis] - count, None, axis=axis), sequence_axis, lambda p: p + 1)
    if first is None:
        return received
    return jnp.where(lax.axis_index(sequence_axis) == 0, first.astype(received.dtype), received)


def from_next(x, count: int, sequence_axis: str, *, what: str = "a look-ahead window"):
    """(B, count, ...): the first `count` steps of the next device's shard; zeros (False) on the
    last device."""
    _check_halo(x, count, 1, what)
    return _send(x[:, :count], sequence_axis, lambda p: p - 1)


def last_steps(x, count: int, sequence_axis: str, *, what: str = "the cache"):
    """(B, count, ...): the last `count` steps of the whole sequence (the last device's), on every device."""
    _check_halo(x, count, 1, what)
    return lax.all_gather(x[:, x.shape[1] - count:], sequence_axis)[-1]


def reverse_time(x, sequence_axis: str | None):
    """x with the whole sequence's time order reversed (jnp.flip on axis 1 when sequence_axis is None)."""
    flipped = jnp.flip(x, axis=1)
    if sequence_axis is None:
        return flipped
    devices = lax.axis_size(sequence_axis)
    return _send(flipped, sequence_axis, lambda p: devices - 1 - p)


def split_forward(forward, params, x, state, resets, inputs: dict, *, sequence_axis: str, **options):
    """forward(params, x, state, resets=…, sequence_axis=…, **options, **inputs) under `jax.shard_map`
    over the current mesh: x and resets split along time over `sequence_axis`, params, state and
    inputs replicated; y comes back split along time, the final state replicated."""
    sequence_parallel.check_outside(sequence_axis, x.shape[1], argument="x")

    def run(x_shard, replicated, resets_shard):
        return forward(replicated["params"], x_shard, replicated["state"], resets=resets_shard,
                       sequence_axis=sequence_axis, **options, **replicated["inputs"])

    replicated = {"params": params, "state": state, "inputs": inputs}
    return sequence_parallel.shard_locally(run, x, replicated, resets, axis=1, sequence_axis=sequence_axis)

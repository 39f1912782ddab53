"""Sequence parallelism: one scan whose time axis is split over a mesh axis.

P devices along the mesh axis hold contiguous, equal shards of time, device p the steps
[p·T/P, (p+1)·T/P). With E_p = the product of shard p's elements (its last step applied last),

    E_p      = e_{last} ∘ … ∘ e_{first}                  one state-sized element per device
    h_in^(p) = (E_{p−1} ∘ … ∘ E_0)(h_{−1})             the state entering shard p
    h_T      = (E_{P−1} ∘ … ∘ E_0)(h_{−1})             the final state, on every device

(`reverse`: the devices in the opposite order, E_p = e_{first} ∘ … ∘ e_{last}). So the devices
exchange only their summaries E_p — one all-gather over the mesh axis, P elements of the size of
one step's element each — and every device scans its own shard from h_in^(p) with any method,
`resets` and the diagonal VJP included. No device sees another's steps. Gradients: JAX transposes
the all-gather into a reduce-scatter of the summaries' cotangents, so the backward is the same
exchange run the other way.

Why all-gather rather than ppermute doubling (log₂ P rounds of one summary each): the summaries
are state-sized and P is a mesh axis (≤ a few hundred), so one collective round moving P−1
summaries beats log₂ P latency-bound rounds; the prefix over P summaries is P combines,
negligible beside the shard's own scan.

Two ways in (see `engine.scan`, option `sequence_axis`):
  * inside `jax.shard_map` with the axis bound: the elements are this device's shard;
  * under a mesh (`jax.set_mesh(mesh)`): the elements are global arrays, and the scan wraps
    itself in `shard_map`, time split over the axis, everything else replicated.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from lrnn.scan import timeaxis

tree_map = jax.tree_util.tree_map


def is_bound(sequence_axis: str) -> bool:
    """Whether `sequence_axis` is a manual axis here: we run inside shard_map over it."""
    return sequence_axis in jax.sharding.get_abstract_mesh().manual_axes


def check_outside(sequence_axis, length: int, argument: str = "elements") -> int:
    """The size of the mesh axis `sequence_axis` of the current mesh, checked against `length` steps."""
    if not isinstance(sequence_axis, str):
        raise TypeError(f"sequence_axis must be the name of a mesh axis (a str), got {type(sequence_axis).__name__}")
    mesh = jax.sharding.get_abstract_mesh()
    if sequence_axis not in mesh.axis_names:
        where = (f"the current mesh has axes {tuple(mesh.axis_names)}" if mesh.axis_names else
                 "there is no mesh: call inside jax.shard_map over it, or under jax.set_mesh(mesh)")
        raise ValueError(f"sequence_axis {sequence_axis!r} is not a mesh axis: {where}")
    size = mesh.shape[sequence_axis]
    if length % size:
        raise ValueError(f"{argument}: the time length {length} must be divisible by the {size} devices of mesh axis "
                         f"{sequence_axis!r} it is split over")
    return size


def shard_locally(run, leaves, initial, resets, *, axis: int, sequence_axis: str):
    """run(leaves, initial, resets) -> (states, final) under shard_map: time over `sequence_axis`,
    the rest replicated; states come back split the same way, the final state replicated."""
    time_split, replicated = PartitionSpec(*([None] * axis), sequence_axis), PartitionSpec()
    specs = {"leaves": time_split, "initial": replicated, "resets": time_split}  # pytree prefixes
    sharded = jax.shard_map(lambda a: run(a["leaves"], a["initial"], a["resets"]),
                            in_specs=(specs,), out_specs=(time_split, replicated), check_vma=False)
    return sharded({"leaves": leaves, "initial": initial, "resets": resets})


def product(monoid, leaves, axis: int, reverse: bool):
    """The element of a whole shard (time removed): its leaves, expanded, composed in processing order.

    A monoid whose elements outgrow its leaves (identity-minus-rank-one: K×K transitions from
    K-vectors) is composed EXPAND_BLOCK steps at a time, so no more than a block is ever expanded.
    """
    length = timeaxis.length(leaves, axis)
    if length <= EXPAND_BLOCK or not _expands(monoid, leaves, axis):
        return compose_all(monoid, monoid.expand(leaves), axis, reverse)
    whole = length - length % EXPAND_BLOCK

    @jax.checkpoint  # the backward keeps one element per block, not the block's expanded elements
    def compose_block(i, composed):
        block = tree_map(lambda x: lax.dynamic_slice_in_dim(x, i * EXPAND_BLOCK, EXPAND_BLOCK, axis), leaves)
        return monoid.combine(composed, compose_all(monoid, monoid.expand(block), axis, reverse))

    blocks = whole // EXPAND_BLOCK
    identity = monoid.expand(monoid.identity(timeaxis.at(leaves, 0, axis)))
    if reverse:  # the last block first
        composed = lax.fori_loop(0, blocks, lambda j, c: compose_block(blocks - 1 - j, c), identity)
    else:
        composed = lax.fori_loop(0, blocks, compose_block, identity)
    if whole == length:
        return composed
    tail = compose_all(monoid, monoid.expand(timeaxis.take(leaves, whole, length, axis)), axis, reverse)
    return monoid.combine(tail, composed) if reverse else monoid.combine(composed, tail)


EXPAND_BLOCK = 64


def _expands(monoid, leaves, axis: int) -> bool:
    """Whether one step's element holds more numbers than its leaf."""
    size = lambda tree: sum(x.size for x in jax.tree_util.tree_leaves(tree))  # noqa: E731
    leaf = jax.eval_shape(lambda l: timeaxis.at(l, 0, axis), leaves)
    return size(jax.eval_shape(monoid.expand, leaf)) > size(leaf)


def compose_all(monoid, elements, axis: int, reverse: bool):
    """e_{n−1} ∘ … ∘ e_0 of `elements` along `axis` (e_0 ∘ … ∘ e_{n−1} if `reverse`), time removed,
    by pairwise halving (log₂ n rounds, n − 1 combines)."""
    compose = (lambda first, then: monoid.combine(then, first)) if reverse else monoid.combine
    leftovers = []
    while (n := timeaxis.length(elements, axis)) > 1:
        if n % 2:
            leftovers.append(timeaxis.take(elements, n - 1, n, axis))
            elements = timeaxis.take(elements, 0, n - 1, axis)
        even = tree_map(lambda x: lax.slice_in_dim(x, 0, None, 2, axis=axis), elements)
        odd = tree_map(lambda x: lax.slice_in_dim(x, 1, None, 2, axis=axis), elements)
        elements = compose(even, odd)
    for last in reversed(leftovers):
        elements = compose(elements, last)
    return timeaxis.at(elements, 0, axis)


def entering_and_final(monoid, leaves, start, *, axis: int, reverse: bool, sequence_axis: str):
    """(the state entering this device's shard, the state after the whole sequence), from `start`,
    the state before the sequence's first processed step."""
    return exchange(monoid, product(monoid, leaves, axis, reverse), start, reverse=reverse,
                    sequence_axis=sequence_axis)


def exchange(monoid, summary, start, *, reverse: bool, sequence_axis: str):
    """`entering_and_final` from this device's shard summary (an element, time removed)."""
    summaries = lax.all_gather(summary, sequence_axis)
    devices, me = lax.axis_size(sequence_axis), lax.axis_index(sequence_axis)
    prefix = monoid.lift(start)
    entering = monoid.state_of(prefix)
    for q in (reversed if reverse else iter)(range(devices)):
        entering = tree_map(functools.partial(jnp.where, q == me), monoid.state_of(prefix), entering)
        prefix = monoid.combine(prefix, tree_map(lambda s: s[q], summaries))
    return entering, monoid.state_of(prefix)

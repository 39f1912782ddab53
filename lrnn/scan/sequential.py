"""The sequential method: h ← apply(leaf_t, h), one step at a time, time indexed in place.

Forward, in processing order t = 0 … T−1 (T−1 … 0 with `reverse`), from h_{−1} = initial:

    h_t = apply(leaf_t, h_{t-1})

Backward (a custom VJP): with h̄_t the cotangent of h_t plus what flows back from step t+1,

    (leaf̄_t, h̄_{t-1}) = vjp(apply, leaf_t, h_{t-1})(h̄_t)

run in the opposite order. The loops carry the states (and in the backward the leaf
cotangents) as buffers updated in place; autodiff through such a loop would copy its whole
buffer at every step (O(T²) — measured 22 ms vs 1.2 ms at T = 4096), which this VJP avoids.
Residuals: the leaves and the states, O(T·state). Reverse-mode only (custom_vjp).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lrnn.scan import timeaxis

tree_map = jax.tree_util.tree_map


def start_state(monoid, leaves, initial, axis):
    """`initial`, or the monoid's empty state when there is none."""
    return monoid.empty_state(timeaxis.at(leaves, 0, axis)) if initial is None else initial


def _loop(monoid, leaves, start, axis, reverse):
    length = timeaxis.length(leaves, axis)
    layout = jax.eval_shape(monoid.apply, timeaxis.at(leaves, 0, axis), start)

    def body(i, carry):
        state, states = carry
        t = length - 1 - i if reverse else i
        state = monoid.apply(timeaxis.at(leaves, t, axis), state)
        return state, timeaxis.put(states, state, t, axis)

    final, states = lax.fori_loop(0, length, body, (start, timeaxis.with_time(layout, length, axis)))
    return states, final


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4))
def _differentiable_loop(monoid, leaves, start, axis, reverse):
    return _loop(monoid, leaves, start, axis, reverse)


def _forward(monoid, leaves, start, axis, reverse):
    states, final = _loop(monoid, leaves, start, axis, reverse)
    return (states, final), (leaves, start, states)


def _inexact(x):
    return jnp.issubdtype(x.dtype, jnp.inexact)


def _backward(monoid, axis, reverse, residuals, cotangents):
    leaves, start, states = residuals
    states_bar, final_bar = cotangents
    length = timeaxis.length(leaves, axis)
    first = length - 1 if reverse else 0
    flat, treedef = jax.tree_util.tree_flatten(leaves)
    differentiable = [i for i, x in enumerate(flat) if _inexact(x)]

    def body(i, carry):
        state_bar, leaves_bar = carry
        t = i if reverse else length - 1 - i
        state_bar = tree_map(jnp.add, state_bar, timeaxis.at(states_bar, t, axis))
        before = jnp.clip(t + 1 if reverse else t - 1, 0, length - 1)
        previous = tree_map(lambda s, h: jnp.where(t == first, s, h), start, timeaxis.at(states, before, axis))
        _, step_vjp = jax.vjp(monoid.apply, timeaxis.at(leaves, t, axis), previous)
        leaf_bar, previous_bar = step_vjp(state_bar)
        leaf_bar = jax.tree_util.tree_leaves(leaf_bar)
        leaves_bar = [timeaxis.put(buf, leaf_bar[j], t, axis) for buf, j in zip(leaves_bar, differentiable)]
        return previous_bar, leaves_bar

    buffers = [jnp.zeros_like(flat[j]) for j in differentiable]
    start_bar, buffers = lax.fori_loop(0, length, body, (final_bar, buffers))
    flat_bar = [np.zeros(x.shape, jax.dtypes.float0) for x in flat]
    for j, buf in zip(differentiable, buffers):
        flat_bar[j] = buf
    return jax.tree_util.tree_unflatten(treedef, flat_bar), start_bar


_differentiable_loop.defvjp(_forward, _backward)


def sequential(monoid, leaves, initial, *, axis, reverse, chunk_size=None):
    """States (time at `axis`) and final state, one step at a time."""
    return _differentiable_loop(monoid, leaves, start_state(monoid, leaves, initial, axis), axis, reverse)

"""Indexing a pytree of arrays along the time axis, in place (the engine never transposes).

Every leaf of a scan shares its leading (batch..., time) dimensions, so one `axis` counted
from the front addresses time in all of them, and a state (a leaf with time removed) gains
time back at the same position.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

tree_map = jax.tree_util.tree_map


def length(tree, axis):
    """The number of steps: the size of the time axis (shared by every leaf)."""
    return jax.tree_util.tree_leaves(tree)[0].shape[axis]


def at(tree, t, axis):
    """The slice at time `t` (traced or static) of every leaf, time axis removed."""
    return tree_map(lambda x: lax.dynamic_index_in_dim(x, t, axis, keepdims=False), tree)


def put(tree, values, t, axis):
    """Write `values` (time removed) into every leaf of `tree` at time `t`."""
    return tree_map(lambda x, v: lax.dynamic_update_index_in_dim(x, v.astype(x.dtype), t, axis), tree, values)


def with_time(state, length, axis):
    """Zero buffers for `length` states laid out like `state` with time inserted at `axis`."""
    return tree_map(lambda s: jnp.zeros(s.shape[:axis] + (length,) + s.shape[axis:], s.dtype), state)


def split(tree, length, axis):
    """Reshape time (length n·C) into (n, C): chunk index at `axis`, position in chunk at axis+1."""
    def one(x):
        n = x.shape[axis] // length
        return x.reshape(x.shape[:axis] + (n, length) + x.shape[axis + 1:])
    return tree_map(one, tree)


def merge(tree, axis):
    """Inverse of `split`."""
    return tree_map(lambda x: x.reshape(x.shape[:axis] + (-1,) + x.shape[axis + 2:]), tree)


def concat(first, rest, axis):
    """`first` then `rest`, along time."""
    return tree_map(lambda f, r: jnp.concatenate([f, r], axis=axis), first, rest)


def take(tree, start, stop, axis):
    return tree_map(lambda x: lax.slice_in_dim(x, start, stop, axis=axis), tree)


def repeat(tree, count, axis):
    """`count` copies along a new time axis of a pytree with time removed."""
    return tree_map(lambda x: jnp.broadcast_to(jnp.expand_dims(x, axis), x.shape[:axis] + (count,) + x.shape[axis:]), tree)


def expand(tree, axis):
    """Insert a time axis of length 1."""
    return tree_map(lambda x: jnp.expand_dims(x, axis), tree)


def shift(tree, fill, axis, reverse):
    """x_{t-1} at t (x_{t+1} if reverse), `fill` (time removed) where that runs off the end."""
    def one(x, f):
        f = jnp.expand_dims(f.astype(x.dtype), axis)
        n = x.shape[axis]
        if reverse:
            return jnp.concatenate([lax.slice_in_dim(x, 1, n, axis=axis), f], axis=axis)
        return jnp.concatenate([f, lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
    return tree_map(one, tree, fill)

"""Token shift: each step reads the step before it (RWKV's time shift).

    shifted(x, first)[t] = x_{t−1}        with x_{−1} = first
    previous_tokens(x, x_prev, resets)    the same, zero where a reset starts a sequence at t
    last(x)                               x_{T−1}, the next call's `first`

A cell that mixes x_t with x_{t−1} carries x_{T−1} in its state so that a sequence cut in two
gives the same outputs as the whole. With time split over `sequence_axis` (bound inside
`jax.shard_map`), a device's first step reads the previous device's last one (device 0 reads
`first`), and `last` is the whole sequence's last step, on every device (`lrnn.cells.shards`).
Arrays are batch-first, time on axis 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lrnn.cells import shards


def shifted(x: jax.Array, first: jax.Array, sequence_axis: str | None = None) -> jax.Array:
    """(B, T, ...): x_{t−1} at every t, `first` (B, ...) before the first step."""
    before = first[:, None]
    if sequence_axis is not None:
        before = shards.from_previous(x, 1, sequence_axis, first=before, what="the token shift")
    return jnp.concatenate([before.astype(jnp.result_type(x, first)), x[:, :-1]], axis=1)


def previous_tokens(x: jax.Array, x_prev: jax.Array, resets=None, sequence_axis: str | None = None) -> jax.Array:
    """(B, T, d): x_{t−1} at every t (x_prev before the first step), and zeros where resets (B, T)
    start a fresh sequence (a sequence's first token has no previous one)."""
    previous = shifted(x, x_prev, sequence_axis)
    return previous if resets is None else jnp.where(resets[..., None], jnp.zeros_like(previous), previous)


def last(x: jax.Array, sequence_axis: str | None = None) -> jax.Array:
    """(B, ...): the last step of the whole sequence."""
    if sequence_axis is None:
        return x[:, -1]
    return shards.last_steps(x, 1, sequence_axis, what="the token shift")[:, 0]

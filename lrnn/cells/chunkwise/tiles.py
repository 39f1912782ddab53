"""Cutting a (B, H, T, ...) sequence into chunks (B, H, N, C, ...), and the masks a chunk needs.

The tail is padded with neutral tokens (zero keys and values, zero log decay), which change
no state. Resets (B, T) become per-chunk segment masks: a reset at t starts a fresh state
there, so inside a chunk a token sees only earlier tokens of its own segment, only the
chunk's first segment sees the state entering the chunk, and only its last segment reaches
the state leaving it.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrnn.cells import shards


def count(length: int, size: int) -> int:
    """The number of chunks of `size` covering `length` tokens."""
    return math.ceil(length / size)


def tile(x: jax.Array, size: int, fill=0) -> jax.Array:
    """(B, H, T, ...) -> (B, H, N, C, ...), the tail padded with `fill`."""
    length = x.shape[2]
    padding = count(length, size) * size - length
    if padding:
        widths = [(0, 0)] * x.ndim
        widths[2] = (0, padding)
        x = jnp.pad(x, widths, constant_values=fill)
    return x.reshape(x.shape[:2] + (-1, size) + x.shape[3:])


def untile(x: jax.Array, length: int) -> jax.Array:
    """(B, H, N, C, ...) -> (B, H, T, ...), the padding dropped."""
    return x.reshape(x.shape[:2] + (-1,) + x.shape[4:])[:, :, :length]


def causal(size: int, *, strict: bool = False) -> jax.Array:
    """(C, C) bool, True where token j can reach token i: j ≤ i (j < i when strict)."""
    return jnp.tril(jnp.ones((size, size), bool), -1 if strict else 0)


def entering(initial, after, sequence_axis: str | None = None):
    """The state entering each chunk, (B, H, N, ...): `initial`, then the state after each
    chunk but the last (trees of arrays alike). With time split over `sequence_axis` (bound),
    a device's first chunk is entered by the state after the previous device's last chunk
    (device 0's by `initial`)."""
    def each(h0, s):
        first = h0[:, :, None]
        if sequence_axis is not None:
            first = shards.from_previous(s, 1, sequence_axis, first=first, axis=2)
        return jnp.concatenate([first, s[:, :, :-1]], axis=2)
    return jax.tree_util.tree_map(each, initial, after)


@dataclasses.dataclass(frozen=True)
class Segments:
    """Masks of the reset segments inside each chunk, broadcastable over heads.

    same  (B, 1, N, C, C)  tokens i and j lie in the same segment
    first (B, 1, N, C)     token i lies in the chunk's first segment (sees the entering state)
    last  (B, 1, N, C)     token j lies in the chunk's last segment (reaches the leaving state)
    whole (B, 1, N)        no reset inside the chunk: the entering state passes through
    """

    same: jax.Array
    first: jax.Array
    last: jax.Array
    whole: jax.Array


def segments(resets: jax.Array | None, size: int) -> Segments | None:
    """The segment masks for resets (B, T), or None without resets."""
    if resets is None:
        return None
    flags = tile(resets[:, None], size, fill=False)  # (B, 1, N, C)
    ids = jnp.cumsum(flags, axis=-1)
    return Segments(
        same=ids[..., :, None] == ids[..., None, :],
        first=ids == 0,
        last=ids == ids[..., -1:],
        whole=ids[..., -1] == 0,
    )

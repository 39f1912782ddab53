"""Pooling over time for sequence classification, with a padding mask.

For features h (B, T, D) and a mask m (B, T) bool (True at real positions, padding at the end;
None: every position is real), with n_b = Σ_t m_bt real positions in row b:

    "mean":  Σ_t m_bt h_bt / n_b
    "last":  h_{b, n_b − 1}                 the last real position
    "max":   max_{t: m_bt} h_bt             per channel
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lrnn.cells import checks

POOLINGS = ("mean", "last", "max")


def pool(features: jax.Array, mask: jax.Array | None, kind: str) -> jax.Array:
    """(B, D) from features (B, T, D) and mask (B, T) bool or None, by `kind` (see above)."""
    checks.one_of("pooling", kind, POOLINGS)
    if mask is None:
        mask = jnp.ones(features.shape[:2], bool)
    weights = mask[..., None]  # B T 1
    if kind == "mean":
        total = jnp.sum(jnp.where(weights, features, 0), axis=1)
        return total / jnp.sum(weights, axis=1).astype(features.dtype)
    if kind == "max":
        return jnp.max(jnp.where(weights, features, -jnp.inf), axis=1)
    last = jnp.sum(mask, axis=1) - 1  # B
    return jnp.take_along_axis(features, last[:, None, None], axis=1)[:, 0]

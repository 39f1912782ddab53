"""Multi-head plumbing the matrix-state cells share.

    split_heads:   (B, T, H·d) -> (B, H, T, d)        merge_heads: the inverse
    l2_normalise:  x / sqrt(Σ x² + ε)  over the last axis (DeltaNet's q and k)
    head_norm:     (x − mean) / sqrt(var + ε) over each head's last axis, no affine (GroupNorm
                   with one group per head, RetNet / GLA output norms; `centre=False` gives RMSNorm)
    HeadSizes:     key_dim K = d_key / H and value_dim V = d_value / H for a cell with those fields
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


class HeadSizes:
    """Per-head widths of a multi-head cell whose fields n_heads, d_key and d_value are totals."""

    n_heads: int
    d_key: int
    d_value: int

    @property
    def key_dim(self) -> int:
        """K, the key width per head."""
        return self.d_key // self.n_heads

    @property
    def value_dim(self) -> int:
        """V, the value width per head."""
        return self.d_value // self.n_heads


def split_heads(x: jax.Array, n_heads: int) -> jax.Array:
    """(B, T, H·d) -> (B, H, T, d)."""
    b, t, width = x.shape
    return jnp.swapaxes(x.reshape(b, t, n_heads, width // n_heads), 1, 2)


def merge_heads(x: jax.Array) -> jax.Array:
    """(B, H, T, d) -> (B, T, H·d)."""
    b, h, t, d = x.shape
    return jnp.swapaxes(x, 1, 2).reshape(b, t, h * d)


def l2_normalise(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


def head_norm(x: jax.Array, eps: float = 1e-5, *, centre: bool = True) -> jax.Array:
    if centre:
        x = x - jnp.mean(x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)

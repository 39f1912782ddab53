"""Initialisers the papers share, each with its formula in its body.

    log_uniform:       log Δ ~ U[log low, log high]                (S4D, S5, Mamba's Δ)
    ring_log_radius:   log r with r² ~ U[r_min², r_max²], so r is uniform on the area of
                       the ring r_min ≤ |λ| ≤ r_max                 (LRU)
    inverse_softplus:  z with softplus(z) = y, for y > 0            (Mamba's Δ bias, RG-LRU's Λ)
    xavier_uniform:    W ~ U[−a, a], a = gain·√(6 / (d_in + d_out))   (RetNet, GLA, Aaren)
    scaled_normal:     W ~ N(0, std²)                               (the DeltaNet family, FLA's init)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def log_uniform(key, shape, low: float, high: float, dtype=jnp.float32) -> jax.Array:
    """log x for x log-uniform on [low, high]."""
    return jax.random.uniform(key, shape, dtype, jnp.log(low), jnp.log(high))


def ring_log_radius(key, shape, r_min: float, r_max: float, dtype=jnp.float32) -> jax.Array:
    """log r = ½·log(u·(r_max² − r_min²) + r_min²), u ~ U[0, 1]."""
    u = jax.random.uniform(key, shape, dtype)
    return 0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2)


def inverse_softplus(y: jax.Array) -> jax.Array:
    """log(exp(y) − 1), written as y + log(1 − exp(−y)) so large y does not overflow."""
    return y + jnp.log(-jnp.expm1(-y))


def xavier_uniform(key, d_in: int, d_out: int, gain: float = 1.0, dtype=jnp.float32) -> jax.Array:
    """W (d_in, d_out) ~ U[−a, a], a = gain·√(6 / (d_in + d_out)) (Glorot & Bengio; PyTorch's
    `xavier_uniform_`)."""
    bound = gain * np.sqrt(6.0 / (d_in + d_out))
    return jax.random.uniform(key, (d_in, d_out), dtype, -bound, bound)


def scaled_normal(key, d_in: int, d_out: int, std: float, dtype=jnp.float32) -> jax.Array:
    """W (d_in, d_out) ~ N(0, std²)."""
    return std * jax.random.normal(key, (d_in, d_out), dtype)

"""Dense layers as plain functions: the input and gate projections the cells share.

    y = x W + b          W: (d_in, d_out), b: (d_out,)

Initialised as PyTorch's nn.Linear (W, b ~ U[−1/√d_in, 1/√d_in]), which minGRU/minLSTM,
HGRN and Mamba inherit from their reference code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def init_weight(key, d_in: int, d_out: int, dtype=jnp.float32) -> jax.Array:
    """W ~ U[−1/√d_in, 1/√d_in], shape (d_in, d_out)."""
    bound = 1.0 / jnp.sqrt(d_in)
    return jax.random.uniform(key, (d_in, d_out), dtype, -bound, bound)


def init_bias(key, d_in: int, d_out: int, dtype=jnp.float32) -> jax.Array:
    """b ~ U[−1/√d_in, 1/√d_in], shape (d_out,)."""
    bound = 1.0 / jnp.sqrt(d_in)
    return jax.random.uniform(key, (d_out,), dtype, -bound, bound)


def init_linear(key, d_in: int, d_out: int, name: str, *, bias: bool = True, dtype=jnp.float32) -> dict:
    """{"W_<name>": (d_in, d_out), "b_<name>": (d_out,)} (the bias only when asked)."""
    key_w, key_b = jax.random.split(key)
    params = {f"W_{name}": init_weight(key_w, d_in, d_out, dtype)}
    if bias:
        params[f"b_{name}"] = init_bias(key_b, d_in, d_out, dtype)
    return params


def linear(params: dict, name: str, x: jax.Array) -> jax.Array:
    """x W_<name> (+ b_<name> when the params have it), over the last axis of x."""
    y = x @ params[f"W_{name}"]
    bias = params.get(f"b_{name}")
    return y if bias is None else y + bias

"""HGRN2 (Qin et al. 2024): per head (width K = V = expand_ratio), f_t = γ + (1 − γ) σ(x_t W_f + b_f),
i_t = SiLU(x_t W_i + b_i), q_t = σ(x_t W_q + b_q), S_t = Diag(f_t) S_{t−1} + (1 − f_t) i_tᵀ,
o_t = S_tᵀ q_t; y_t = W_o LayerNorm(o_t over heads) + b_o."""

import jax
import jax.numpy as jnp

from lrnn.cells.hgrn2 import HGRN2
from tests.cells.references import Case, over_time


def _layer_norm(z, scale, bias):
    mean = z.mean(-1, keepdims=True)
    var = ((z - mean) ** 2).mean(-1, keepdims=True)
    return (z - mean) / jnp.sqrt(var + 1e-5) * scale + bias


def hgrn2(cell, p, x, h0, lower_bound=0.0):
    batch, _, width = x.shape
    heads, head_width = h0.shape[1], h0.shape[2]
    gamma = jnp.asarray(lower_bound, jnp.float64)

    def step(S, x_t):
        f = gamma + (1 - gamma) * jax.nn.sigmoid(x_t @ p["W_f"] + p["b_f"])
        i = jax.nn.silu(x_t @ p["W_i"] + p["b_i"])
        q = jax.nn.sigmoid(x_t @ p["W_q"] + p["b_q"])
        f, i, q = (a.reshape(batch, heads, head_width) for a in (f, i, q))
        S = f[..., :, None] * S + (1 - f)[..., :, None] * i[..., None, :]
        o = jnp.einsum("bhk,bhkv->bhv", q, S).reshape(batch, width)
        return _layer_norm(o, p["norm_scale"], p["norm_bias"]) @ p["W_o"] + p["b_o"], S

    return over_time(step, h0, x, (p, gamma))


CASES = {
    "hgrn2-lower-bound": Case(HGRN2(d_in=6, expand_ratio=3), hgrn2, kwargs={"lower_bound": 0.7}),
}

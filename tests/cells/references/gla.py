"""GLA (Yang et al. 2023): per head, log α_t = log σ(x_t W_a1 W_a2 + b_a)/τ,
S_t = Diag(α_t) S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ q_t with q scaled by K^(−½);
y_t = W_o(LayerNorm_h(o_t) ⊙ swish(x_t W_r + b_r))."""

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells.gla import GLA
from tests.cells.references import Case, over_time


def _layer_norm(o, eps=1e-5):
    mean = o.mean(-1, keepdims=True)
    var = ((o - mean) ** 2).mean(-1, keepdims=True)
    return (o - mean) / jnp.sqrt(var + eps)


def gla(cell, p, x, h0):
    batch = x.shape[0]
    heads, key_dim, width = h0.shape[1:]

    def step(S, x_t):
        q = (x_t @ p["W_q"]).reshape(batch, heads, key_dim) / np.sqrt(key_dim)
        k = (x_t @ p["W_k"]).reshape(batch, heads, key_dim)
        v = (x_t @ p["W_v"]).reshape(batch, heads, width)
        alpha = jax.nn.sigmoid(x_t @ p["W_a1"] @ p["W_a2"] + p["b_a"]) ** (1 / cell.temperature)
        S = alpha.reshape(batch, heads, key_dim, 1) * S + k[..., :, None] * v[..., None, :]
        o = jnp.einsum("bhk,bhkv->bhv", q, S)
        gate = jax.nn.silu(x_t @ p["W_r"] + p["b_r"])
        return (_layer_norm(o).reshape(batch, heads * width) * gate) @ p["W_o"], S

    return over_time(step, h0, x, p)


CASES = {
    "gla": Case(GLA(d_in=8, n_heads=2), gla),  # the paper's sizes: d_key = d/2 (K = 2), d_value = d (V = 4)
}

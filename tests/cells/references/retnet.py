"""RetNet (Sun et al. 2023), per head h with γ_h = 1 − 2^(−5−h) and θ_m = 10000^(−m/(K/2−1)):
S_t = γ_h e^{−iθ} S_{t−1} + k^c_t v_tᵀ, o_t = Re(conj(q^c_t)ᵀ S_t) with key pairs (2m, 2m+1) as
complex numbers and k scaled by K^(−½); y_t = W_o(swish(x_t W_g) ⊙ GroupNorm_h(o_t))."""

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells.retnet import RetNet
from tests.cells.references import Case, over_time


def _group_norm(o, eps=1e-6):
    mean = o.mean(-1, keepdims=True)
    var = ((o - mean) ** 2).mean(-1, keepdims=True)
    return (o - mean) / jnp.sqrt(var + eps)


def retnet(cell, p, x, h0):
    batch = x.shape[0]
    heads, pairs, width = h0.shape[1:]
    gamma = np.array([1 - 2.0 ** (-5 - h) for h in range(heads)])
    theta = np.array([10000.0 ** (-m / (pairs - 1)) if pairs > 1 else 1.0 for m in range(pairs)])
    rotation = gamma[:, None] * (np.cos(theta) - 1j * np.sin(theta))[None, :]  # (H, K/2)
    key_dim = 2 * pairs

    def step(S, x_t):
        q = (x_t @ p["W_q"]).reshape(batch, heads, key_dim)
        k = (x_t @ p["W_k"]).reshape(batch, heads, key_dim) / np.sqrt(key_dim)
        v = (x_t @ p["W_v"]).reshape(batch, heads, width)
        qc = q[..., 0::2] + 1j * q[..., 1::2]
        kc = k[..., 0::2] + 1j * k[..., 1::2]
        S = rotation[None, :, :, None] * S + kc[..., :, None] * v[..., None, :]
        o = jnp.real(jnp.sum(jnp.conj(qc)[..., :, None] * S, axis=-2))  # (B, H, V)
        gate = jax.nn.silu(x_t @ p["W_g"])
        return (gate * _group_norm(o).reshape(batch, heads * width)) @ p["W_o"], S

    return over_time(step, h0, x, p)


CASES = {
    "retnet": Case(RetNet(d_in=4, n_heads=2, d_key=8, d_value=6), retnet),
}

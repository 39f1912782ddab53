"""GateLoop (Katsch 2023), per token and per head:

    a_t = σ(x_t W_a + b_a) (cos θ_t + i sin θ_t),   θ_t = x_t W_θ + b_θ
    S_t = Diag(a_t) S_{t−1} + k_t v_tᵀ,              o_t = Re(S_tᵀ q_t)
    y_t = W_o (GroupNorm(o_t) ⊙ SiLU(x_t W_g + b_g)) + b_o
"""

import jax
import jax.numpy as jnp

from lrnn.cells.gateloop import GateLoop
from tests.cells.references import Case, over_time


def _group_norm(z, groups, scale, bias):
    g = z.reshape(z.shape[:-1] + (groups, -1))
    mean = g.mean(-1, keepdims=True)
    var = ((g - mean) ** 2).mean(-1, keepdims=True)
    return ((g - mean) / jnp.sqrt(var + 1e-5)).reshape(z.shape) * scale + bias


def gateloop(cell, p, x, h0):
    b, h, kd, vd = x.shape[0], cell.n_heads, cell.key_dim, cell.value_dim

    def step(S, x_t):
        q = (x_t @ p["W_q"]).reshape(b, h, kd)
        k = (x_t @ p["W_k"]).reshape(b, h, kd)
        v = (x_t @ p["W_v"]).reshape(b, h, vd)
        theta = (x_t @ p["W_theta"] + p["b_theta"]).reshape(b, h, kd)
        a = jax.nn.sigmoid(x_t @ p["W_a"] + p["b_a"]).reshape(b, h, kd) * (jnp.cos(theta) + 1j * jnp.sin(theta))
        S = a[..., :, None] * S + k[..., :, None] * v[..., None, :]
        o = jnp.real(jnp.einsum("bhk,bhkv->bhv", q, S)).reshape(b, h * vd)
        gate = jax.nn.silu(x_t @ p["W_g"] + p["b_g"])
        z = _group_norm(o, cell.norm_groups, p["norm_scale"], p["norm_bias"]) * gate
        return z @ p["W_o"] + p["b_o"], S

    return over_time(step, h0, x, p)


CASES = {
    "gateloop-head-norm": Case(GateLoop(d_in=6, n_heads=2, d_value=8, norm_groups=2), gateloop),
}

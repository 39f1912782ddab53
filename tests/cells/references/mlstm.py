"""mLSTM (Beck et al. 2024), the stabilised per-token recurrence of the paper's appendix, per head:

    ĩ = x W_i + b_i,  log f = log σ(x W_f + b_f),  m_t = max(log f + m_{t−1}, ĩ)
    C̃_t = e^{log f + m_{t−1} − m_t} C̃_{t−1} + e^{ĩ − m_t} k vᵀ,   ñ_t alike with k,   k = x W_k / √K
    h̃_t = C̃_tᵀ q / max(|ñ_tᵀ q|, e^{−m_t})
    y_t = W_out (σ(x W_o + b_o) ⊙ LayerNorm_heads(h̃_t) · scale) + b_out
"""

import jax
import jax.numpy as jnp

from lrnn.cells.mlstm import MLSTM
from tests.cells.references import Case, over_time


def _head_norm(z):
    mean = z.mean(-1, keepdims=True)
    var = ((z - mean) ** 2).mean(-1, keepdims=True)
    return (z - mean) / jnp.sqrt(var + 1e-5)


def mlstm(cell, p, x, h0):
    b, h, kd, vd = x.shape[0], cell.n_heads, cell.key_dim, cell.value_dim

    def step(state, x_t):
        C, n, m = state
        q = (x_t @ p["W_q"]).reshape(b, h, kd)
        k = (x_t @ p["W_k"]).reshape(b, h, kd) / jnp.sqrt(kd)
        v = (x_t @ p["W_v"]).reshape(b, h, vd)
        i_pre = x_t @ p["W_i"] + p["b_i"]
        log_f = jax.nn.log_sigmoid(x_t @ p["W_f"] + p["b_f"])
        m_new = jnp.maximum(log_f + m, i_pre)
        f_s = jnp.exp(log_f + m - m_new)
        i_s = jnp.exp(i_pre - m_new)
        C = f_s[..., None, None] * C + i_s[..., None, None] * k[..., :, None] * v[..., None, :]
        n = f_s[..., None] * n + i_s[..., None] * k
        m = m_new
        numerator = jnp.einsum("bhk,bhkv->bhv", q, C)
        denominator = jnp.maximum(jnp.abs(jnp.einsum("bhk,bhk->bh", q, n)), jnp.exp(-m))
        h_tilde = numerator / denominator[..., None]
        z = _head_norm(h_tilde).reshape(b, h * vd) * p["norm_scale"]
        return (jax.nn.sigmoid(x_t @ p["W_o"] + p["b_o"]) * z) @ p["W_out"] + p["b_out"], (C, n, m)

    return over_time(step, tuple(h0), x, p)


CASES = {
    "mlstm": Case(MLSTM(d_in=4, n_heads=2, d_key=6, d_value=8), mlstm),
}

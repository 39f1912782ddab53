"""RWKV-6 "Finch" time mixing (Peng et al. 2024), one token at a time, per head h:

    z_□ = x_t + (x_{t−1} − x_t) ⊙ (λ_□ + tanh((x_t + (x_{t−1} − x_t) ⊙ μ_x) A_□) B_□)    □ ∈ {w, k, v, r, g}
    r = z_r W_r,  k = z_k W_k,  v = z_v W_v,  g = z_g W_g,  w = exp(−exp(λ_d + tanh(z_w A_d) B_d))
    o_h = r_h (S_h + diag(u_h) k_hᵀ v_h)           (the state before the token, plus the bonus)
    S_h ← diag(w_h) S_h + k_hᵀ v_h
    y_t = (GroupNorm_h(o) · scale + bias) ⊙ SiLU(g)  W_o,   GroupNorm ε = 6.4e−4

the state being (S, x_{t−1}). The order of the rows of lambda_mix / A_mix / B_mix is (w, k, v, r, g).
"""

import jax
import jax.numpy as jnp

from lrnn.cells.rwkv6 import RWKV6
from tests.cells.references import Case, over_time


def _group_norm(o, scale, bias):
    """o (B, H, V) normalised over each head, then the affine over the H·V channels."""
    mean = o.mean(-1, keepdims=True)
    var = ((o - mean) ** 2).mean(-1, keepdims=True)
    z = (o - mean) / jnp.sqrt(var + 64e-5)
    return z.reshape(o.shape[0], -1) * scale + bias


def rwkv6(cell, p, x, h0):
    batch, heads = x.shape[0], cell.n_heads
    key_dim, value_dim = cell.d_key // heads, cell.d_value // heads

    def step(state, x_t):
        S, x_prev = state
        delta = x_prev - x_t
        base = x_t + delta * p["mu_x"]
        z = {}
        for i, name in enumerate("wkvrg"):
            z[name] = x_t + delta * (p["lambda_mix"][i] + jnp.tanh(base @ p["A_mix"][i]) @ p["B_mix"][i])
        r = (z["r"] @ p["W_r"]).reshape(batch, heads, key_dim)
        k = (z["k"] @ p["W_k"]).reshape(batch, heads, key_dim)
        v = (z["v"] @ p["W_v"]).reshape(batch, heads, value_dim)
        g = jax.nn.silu(z["g"] @ p["W_g"])
        w = jnp.exp(-jnp.exp(p["lambda_decay"] + jnp.tanh(z["w"] @ p["A_decay"]) @ p["B_decay"]))
        w = w.reshape(batch, heads, key_dim)
        u = p["u"].reshape(heads, key_dim)
        kv = k[..., :, None] * v[..., None, :]
        o = jnp.einsum("bhk,bhkv->bhv", r, S + u[..., :, None] * kv)
        S = w[..., :, None] * S + kv
        y = (_group_norm(o, p["norm_scale"], p["norm_bias"]) * g) @ p["W_o"]
        return y, (S, x_t)

    return over_time(step, tuple(h0), x, p)


CASES = {
    "rwkv6": Case(RWKV6(d_in=8, n_heads=2, mix_rank=3, decay_rank=4), rwkv6),
    # K ≠ V, three heads, the first layer's init (ρ = 0: the bonus is the zigzag alone)
    "rwkv6-keys-values": Case(RWKV6(d_in=5, n_heads=3, d_key=6, d_value=9, mix_rank=2, decay_rank=3,
                                    layer_ratio=0.0), rwkv6),
}

"""Mamba-2's SSD (Dao & Gu 2024), per head h of P channels, heads in G groups sharing B and C
(head h reads group h // (H/G)):

    B_t, C_t = x_t W_B, x_t W_C (G, N),  Δ_t = softplus(x_t W_dt + b_dt) (H,),  A = −exp(A_log)
    ā_t = exp(Δ_t A)  (or 2·exp(Δ_t A) − 1 for eigenvalue_range (−1, 1))
    S_t[h] = ā_t[h] S_{t−1}[h] + B_t[g(h)] (Δ_t[h] x_t[h])ᵀ      S (N, P)
    y_t[h] = S_t[h]ᵀ C_t[g(h)] + D[h] x_t[h]
"""

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells.mamba2 import Mamba2
from tests.cells.references import Case, over_time


def mamba2(cell, p, x, h0):
    batch = x.shape[0]
    heads, n, width = h0.shape[1:]
    groups = cell.n_groups
    group_of = np.arange(heads) // (heads // groups)
    A = -jnp.exp(p["A_log"])

    def step(S, x_t):
        xh = x_t.reshape(batch, heads, width)
        B_t = (x_t @ p["W_B"]).reshape(batch, groups, n)[:, group_of]  # (B, H, N)
        C_t = (x_t @ p["W_C"]).reshape(batch, groups, n)[:, group_of]
        dt = jax.nn.softplus(x_t @ p["W_dt"] + p["b_dt"])  # (B, H)
        a = jnp.exp(dt * A)
        if cell.eigenvalue_range[0] < 0:
            a = 2 * a - 1
        S = a[:, :, None, None] * S + B_t[:, :, :, None] * (dt[:, :, None] * xh)[:, :, None, :]
        y = jnp.einsum("bhnp,bhn->bhp", S, C_t) + p["D"][None, :, None] * xh
        return y.reshape(batch, heads * width), S

    return over_time(step, h0, x, p)


CASES = {
    "mamba2": Case(Mamba2(d_in=6, n_heads=2, d_state=3), mamba2),
    "mamba2-negative-groups": Case(Mamba2(d_in=8, head_dim=2, d_state=3, n_groups=2, eigenvalue_range=(-1, 1)),
                                   mamba2),
}

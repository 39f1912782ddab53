"""Mamba's selective SSM (Gu & Dao 2023), per channel c and state n:

    (δ, B_t, C_t) = split(x_t W_x),  Δ = softplus(δ W_dt + b_dt),  A = −exp(A_log)
    h_t[c, n] = Ā[c, n] h_{t−1}[c, n] + Δ[c] x_t[c] B_t[n],  Ā = exp(Δ A) (or 2·exp(Δ A) − 1)
    y_t[c] = Σ_n C_t[n] h_t[c, n] + D[c] x_t[c]
"""

import jax
import jax.numpy as jnp

from lrnn.cells.mamba import Mamba
from tests.cells.references import Case, over_time


def mamba(cell, p, x, h0):
    r, n = p["W_dt"].shape[0], p["A_log"].shape[1]
    A = -jnp.exp(p["A_log"])

    def step(h, x_t):
        proj = x_t @ p["W_x"]
        delta, B_t, C_t = proj[:, :r], proj[:, r:r + n], proj[:, r + n:]
        dt = jax.nn.softplus(delta @ p["W_dt"] + p["b_dt"])
        A_bar = jnp.exp(dt[:, :, None] * A[None])
        if cell.eigenvalue_range[0] < 0:
            A_bar = 2 * A_bar - 1
        h = A_bar * h + (dt * x_t)[:, :, None] * B_t[:, None, :]
        return jnp.einsum("bcn,bn->bc", h, C_t) + p["D"] * x_t, h

    return over_time(step, h0, x, p)


CASES = {
    "mamba": Case(Mamba(d_in=3, d_state=4), mamba),
    "mamba-negative": Case(Mamba(d_in=2, d_state=5, dt_rank=2, eigenvalue_range=(-1, 1)), mamba),
}

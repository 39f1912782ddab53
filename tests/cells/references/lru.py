"""LRU (Orvieto et al. 2023): h_t = λ h_{t−1} + γ (B x_t), y_t = Re(C h_t) + D x_t."""

import jax.numpy as jnp

from lrnn.cells import LRU
from tests.cells.references import Case, over_time


def lru(cell, p, x, h0):
    lam = jnp.exp(-jnp.exp(p["nu_log"]) + 1j * jnp.exp(p["theta_log"]))
    gamma = jnp.exp(p["gamma_log"])
    B = p["B_re"] + 1j * p["B_im"]
    C = p["C_re"] + 1j * p["C_im"]

    def step(h, x_t):
        h = lam * h + gamma * jnp.einsum("nd,bd->bn", B, x_t)
        return jnp.real(jnp.einsum("dn,bn->bd", C, h)) + p["D"] * x_t, h

    return over_time(step, h0, x, p)


CASES = {
    "lru": Case(LRU(d_in=3, d_state=4), lru),
    "lru-ring": Case(LRU(d_in=2, d_state=5, r_min=0.9, r_max=0.999, max_phase=0.3), lru),
}

"""S4D (Gu et al. 2022), per channel c and mode n: A = −exp(A_re_log) + i·A_im, Δ_c = exp(log_dt_c),
zero-order hold Ā = exp(ΔA), B̄ = (Ā − 1)/A · B; h_t = Ā h_{t−1} + B̄ x_t,
y_t = 2·Re(Σ_n C h_t) + D x_t (factor 1 without conjugate symmetry)."""

import jax.numpy as jnp

from lrnn.cells.s4d import S4D
from tests.cells.references import Case, over_time


def s4d(cell, p, x, h0):
    A = -jnp.exp(p["A_re_log"]) + 1j * p["A_im"]
    dt = jnp.exp(p["log_dt"])[:, None]
    A_bar = jnp.exp(dt * A)
    B_bar = (A_bar - 1) / A * (p["B_re"] + 1j * p["B_im"])
    C = p["C_re"] + 1j * p["C_im"]
    factor = 2.0 if cell.conj_sym else 1.0

    def step(h, x_t):
        h = A_bar * h + B_bar * x_t[:, :, None]
        return factor * jnp.real(jnp.sum(C * h, axis=-1)) + p["D"] * x_t, h

    return over_time(step, h0, x, p)


CASES = {
    "s4d-lin": Case(S4D(d_in=3, d_state=4), s4d),
    "s4d-inv": Case(S4D(d_in=2, d_state=6, a_init="inv"), s4d),
    "s4d-no-conj": Case(S4D(d_in=2, d_state=3, conj_sym=False, dt_min=0.01, dt_max=0.5), s4d),
}

"""S5 (Smith et al. 2023): Λ = Λ_re + i·Λ_im (Λ_re clipped at −1e−4 with clip_eigs),
Δ = exp(log_step) per state; zero-order hold Λ̄ = exp(ΔΛ), B̄ = (Λ̄ − 1)/Λ · B̃, or bilinear
Λ̄ = (1 + ΔΛ/2)/(1 − ΔΛ/2), B̄ = Δ/(1 − ΔΛ/2) · B̃; h_t = Λ̄ h_{t−1} + B̄ x_t,
y_t = 2·Re(C̃ h_t) + D x_t (factor 1 without conjugate symmetry). Bidirectional: also
g_t = Λ̄ g_{t+1} + B̄ x_t run backward from g_T = 0, y_t = 2·Re(C̃ h_t + C̃₂ g_t) + D x_t."""

import jax.numpy as jnp

from lrnn.cells.s5 import S5
from tests.cells.references import Case, over_time


def s5(cell, p, x, h0):
    re = jnp.minimum(p["Lambda_re"], -1e-4) if cell.clip_eigs else p["Lambda_re"]
    lam = re + 1j * p["Lambda_im"]
    delta = jnp.exp(p["log_step"])
    B = p["B_re"] + 1j * p["B_im"]
    if cell.discretisation == "zoh":
        lam_bar = jnp.exp(delta * lam)
        B_bar = ((lam_bar - 1) / lam)[:, None] * B
    else:
        lam_bar = (1 + delta / 2 * lam) / (1 - delta / 2 * lam)
        B_bar = (delta / (1 - delta / 2 * lam))[:, None] * B
    factor = 2.0 if cell.conj_sym else 1.0

    def step(h, x_t):
        h = lam_bar * h + jnp.einsum("pd,bd->bp", B_bar, x_t)
        return h, h

    forward, h = over_time(step, h0, x, p)  # (B, T, P)
    out = jnp.einsum("dp,btp->btd", p["C_re"] + 1j * p["C_im"], forward)

    if cell.bidirectional:
        backward_reversed, _ = over_time(step, jnp.zeros_like(h0), x[:, ::-1], p)  # g_T … g_1
        C2 = p["C2_re"] + 1j * p["C2_im"]
        out = out + jnp.einsum("dp,btp->btd", C2, backward_reversed[:, ::-1])

    return factor * jnp.real(out) + p["D"] * x, h


CASES = {
    "s5": Case(S5(d_in=3, d_state=4), s5),
    "s5-blocks": Case(S5(d_in=2, d_state=8, blocks=2), s5),
    "s5-no-conj": Case(S5(d_in=2, d_state=3, conj_sym=False), s5),
    "s5-bilinear": Case(S5(d_in=3, d_state=6, discretisation="bilinear"), s5),
    "s5-clip": Case(S5(d_in=2, d_state=4, clip_eigs=True, dt_min=0.01, dt_max=0.5), s5),
    "s5-bidirectional": Case(S5(d_in=3, d_state=4, bidirectional=True), s5, stepwise=False),
    "s5-bidirectional-no-conj-bilinear": Case(
        S5(d_in=2, d_state=4, blocks=2, conj_sym=False, bidirectional=True, discretisation="bilinear"),
        s5, stepwise=False),
}

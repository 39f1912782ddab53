"""HGRN (Qin et al. 2023): λ_t = γ + (1 − γ) σ(W_f x_t + b_f),
h_t = λ_t [e^{iθ}] h_{t−1} + (1 − λ_t) c_t, y_t = W_o (LayerNorm(h_t or [Re h_t, Im h_t]) ⊙ SiLU(W_g x_t + b_g)) + b_o."""

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells.hgrn import HGRN
from tests.cells.references import Case, over_time


def _layer_norm(z, scale, bias):
    mean = z.mean(-1, keepdims=True)
    var = ((z - mean) ** 2).mean(-1, keepdims=True)
    return (z - mean) / jnp.sqrt(var + 1e-5) * scale + bias


def hgrn(cell, p, x, h0, lower_bound=0.0):
    gamma = jnp.asarray(lower_bound, jnp.float64)

    def step(h, x_t):
        lam = gamma + (1 - gamma) * jax.nn.sigmoid(x_t @ p["W_f"] + p["b_f"])
        if cell.complex_valued:
            c = jax.nn.silu(x_t @ p["W_c_re"] + p["b_c_re"]) + 1j * jax.nn.silu(x_t @ p["W_c_im"] + p["b_c_im"])
            h = lam * (jnp.cos(p["theta"]) + 1j * jnp.sin(p["theta"])) * h + (1 - lam) * c
            z = jnp.concatenate([jnp.real(h), jnp.imag(h)], axis=-1)
        else:
            h = lam * h + (1 - lam) * jax.nn.silu(x_t @ p["W_c"] + p["b_c"])
            z = h
        gate = jax.nn.silu(x_t @ p["W_g"] + p["b_g"])
        return (_layer_norm(z, p["norm_scale"], p["norm_bias"]) * gate) @ p["W_o"] + p["b_o"], h

    return over_time(step, h0, x, (p, gamma))


CASES = {
    "hgrn": Case(HGRN(d_in=3), hgrn),
    "hgrn-lower-bound": Case(HGRN(d_in=3, width=4), hgrn, kwargs={"lower_bound": 0.6}),
    "hgrn-complex": Case(HGRN(d_in=2, width=3, complex_valued=True), hgrn, kwargs={"lower_bound": 0.3}),
    "hgrn-complex-channel-bounds": Case(HGRN(d_in=3, width=2, complex_valued=True), hgrn,
                                       kwargs={"lower_bound": np.array([0.0, 0.9])}),
}

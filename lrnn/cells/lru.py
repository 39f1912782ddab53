"""LRU — the Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural
Networks for Long Sequences").

    λ = exp(−exp(ν) + i·exp(θ))                 complex, |λ| = exp(−exp(ν)) < 1 always
    h_t = λ ⊙ h_{t−1} + γ ⊙ (B x_t)             γ = exp(γ_log), trainable, init √(1 − |λ|²)
    y_t = Re(C h_t) + D ⊙ x_t

Initialisation (ring init): |λ|² ~ U[r_min², r_max²], arg λ ~ U[0, max_phase], i.e.
ν = log(−½·log(u·(r_max² − r_min²) + r_min²)), θ = log(max_phase·u'); B = B_re + i·B_im with
entries N(0, 1/(2·d_in)), C = C_re + i·C_im with entries N(0, 1/d_state), D ~ N(0, 1).
ν, θ, γ and B are the recurrent params (smaller learning rate, no weight decay).

Shapes: x (B, T, d_in), h (B, T, d_state) complex, y (B, T, d_in).

λ does not depend on the input, so `forward(..., method="convolution")` runs the convolution
h = λ^k * (γ ⊙ B x) by FFT over the d_state channels (`lrnn.cells.convolution`, log λ as above).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.base import Cell
from lrnn.cells.convolution import StateKernel, TimeInvariant
from lrnn.cells.initializers import ring_log_radius


@dataclasses.dataclass(frozen=True)
class LRU(TimeInvariant, Cell):
    d_in: int
    d_state: int
    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 2 * math.pi

    recurrent_params = frozenset({"nu_log", "theta_log", "gamma_log", "B_re", "B_im"})
    complex_state = True

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.positive_int("d_state", self.d_state)
        checks.in_range("r_min", self.r_min, 0.0, 1.0, closed_high=False)
        checks.in_range("r_max", self.r_max, 0.0, 1.0, closed_low=False)
        if self.r_min > self.r_max:
            raise ValueError(f"r_min must not exceed r_max, got r_min={self.r_min} > r_max={self.r_max}")
        checks.in_range("max_phase", self.max_phase, 0.0, 2 * math.pi, closed_low=False)

    @property
    def state_shape(self) -> tuple:
        return (self.d_state,)

    def init(self, key: jax.Array) -> dict:
        k_nu, k_theta, k_b_re, k_b_im, k_c_re, k_c_im, k_d = jax.random.split(key, 7)
        n, d = self.d_state, self.d_in
        log_radius = ring_log_radius(k_nu, (n,), self.r_min, self.r_max)
        nu_log = jnp.log(-log_radius)
        theta_log = jnp.log(self.max_phase * jax.random.uniform(k_theta, (n,)))
        gamma_log = 0.5 * jnp.log1p(-jnp.exp(2 * log_radius))
        b_std, c_std = 1 / math.sqrt(2 * d), 1 / math.sqrt(n)
        return {
            "nu_log": nu_log,
            "theta_log": theta_log,
            "gamma_log": gamma_log,
            "B_re": b_std * jax.random.normal(k_b_re, (n, d)),
            "B_im": b_std * jax.random.normal(k_b_im, (n, d)),
            "C_re": c_std * jax.random.normal(k_c_re, (d, n)),
            "C_im": c_std * jax.random.normal(k_c_im, (d, n)),
            "D": jax.random.normal(k_d, (d,)),
        }

    def log_eigenvalues(self, params: dict) -> jax.Array:
        """log λ = −exp(ν) + i·exp(θ) (d_state,) complex."""
        return -jnp.exp(params["nu_log"]) + 1j * jnp.exp(params["theta_log"])

    def eigenvalues(self, params: dict) -> jax.Array:
        """λ (d_state,) complex."""
        return jnp.exp(self.log_eigenvalues(params))

    def convolution_kernel(self, params):
        return StateKernel(log_decay=self.log_eigenvalues(params))

    def elements(self, params, x):
        b = jnp.exp(params["gamma_log"]) * (x @ (params["B_re"] + 1j * params["B_im"]).T)
        return jnp.broadcast_to(self.eigenvalues(params), b.shape), b

    def readout(self, params, h, x):
        return h.real @ params["C_re"].T - h.imag @ params["C_im"].T + params["D"] * x

"""Mamba's selective SSM, S6 (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces"), with the negative-eigenvalue option of Grazzi et al. 2024
("Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues").

The cell is the selective scan alone: the expanding input projection, the short causal
conv, the SiLU and the SiLU(z) output gate belong to the layer around it, so x here is
the conv's output and d_in is Mamba's d_inner. Per channel c of d_in, with N = d_state:

    (δ_t, B_t, C_t) = split(x_t W_x)                  sizes (dt_rank, N, N)
    Δ_t = softplus(δ_t W_dt + b_dt)                    (d_in,)
    A = −exp(A_log)                                    (d_in, N)
    Ā_t = exp(Δ_t A)                 eigenvalue_range (0, 1)
    Ā_t = 2·exp(Δ_t A) − 1           eigenvalue_range (−1, 1)   (Grazzi et al.)
    h_t = Ā_t ⊙ h_{t−1} + (Δ_t x_t) B_t               h: (d_in, N)
    y_t = h_t C_t + D ⊙ x_t                           (d_in,)

Δ_t B_t x_t is Mamba's simplified (Euler) input discretisation; the (−1, 1) variant changes
only the transition, as Grazzi et al. do.

Initialisation (Mamba's reference code): W_x as PyTorch's nn.Linear without bias
(U[±1/√d_in]); W_dt ~ U[±dt_rank^−½]; b_dt = inverse_softplus(Δ₀) with
Δ₀ = max(exp(U[log dt_min, log dt_max]), dt_init_floor), so Δ at init lies in
[dt_min, dt_max]; A_log = log(1, …, N) in every channel (S4D-Real); D = 1.
Recurrent params: A_log, b_dt and D (Mamba gives A_log and D no weight decay and never
re-initialises b_dt; Δ and A are the recurrence's step and eigenvalues).

dt_rank defaults to ceil(d_in / 16). Mamba uses ceil(d_model / 16) with d_model the block's
width before the expansion; a layer that expands should pass dt_rank explicitly to match it.

Shapes: x (B, T, d_in), h (B, T, d_in, d_state) real, y (B, T, d_in). The elements are
materialised per token, O(B·T·d_in·N) memory, where Mamba's fused kernel keeps them in SRAM.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrnn.cells import checks, linear
from lrnn.cells.base import Cell
from lrnn.cells.initializers import inverse_softplus, log_uniform


@dataclasses.dataclass(frozen=True)
class Mamba(Cell):
    d_in: int
    d_state: int = 16
    dt_rank: int | None = None
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4
    eigenvalue_range: tuple = (0, 1)

    recurrent_params = frozenset({"A_log", "b_dt", "D"})

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.positive_int("d_state", self.d_state)
        if self.dt_rank is not None:
            checks.positive_int("dt_rank", self.dt_rank)
        checks.step_range(self.dt_min, self.dt_max)
        checks.in_range("dt_init_floor", self.dt_init_floor, 0.0, math.inf, closed_low=False, closed_high=False)
        object.__setattr__(self, "eigenvalue_range", checks.eigenvalue_range(self.eigenvalue_range))

    @property
    def rank(self) -> int:
        """dt_rank, or ceil(d_in / 16) when it is None."""
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.d_in / 16)

    @property
    def state_shape(self) -> tuple:
        return (self.d_in, self.d_state)

    def init(self, key: jax.Array) -> dict:
        k_x, k_w, k_b = jax.random.split(key, 3)
        d, n, r = self.d_in, self.d_state, self.rank
        w_bound = r**-0.5
        dt = jnp.maximum(jnp.exp(log_uniform(k_b, (d,), self.dt_min, self.dt_max)), self.dt_init_floor)
        return {
            **linear.init_linear(k_x, d, r + 2 * n, "x", bias=False),
            "W_dt": jax.random.uniform(k_w, (r, d), jnp.float32, -w_bound, w_bound),
            "b_dt": inverse_softplus(dt),
            "A_log": jnp.log(jnp.broadcast_to(jnp.arange(1, n + 1, dtype=jnp.float32), (d, n))),
            "D": jnp.ones((d,), jnp.float32),
        }

    def project(self, params: dict, x: jax.Array) -> tuple:
        """(δ, B_t, C_t) = split(x W_x): (B, T, dt_rank), (B, T, d_state), (B, T, d_state)."""
        return tuple(jnp.split(linear.linear(params, "x", x), [self.rank, self.rank + self.d_state], axis=-1))

    def elements(self, params, x):
        delta, b_t, _ = self.project(params, x)
        step = jax.nn.softplus(linear.linear(params, "dt", delta))
        decay = jnp.exp(step[..., None] * -jnp.exp(params["A_log"]))
        a = 2 * decay - 1 if self.eigenvalue_range == (-1.0, 1.0) else decay
        return a, (step * x)[..., None] * b_t[..., None, :]

    def readout(self, params, h, x):
        _, _, c_t = self.project(params, x)
        return jnp.einsum("btdn,btn->btd", h, c_t) + params["D"] * x

"""S4D — diagonal S4 (Gu, Gupta, Goel & Ré 2022, "On the Parameterization and
Initialization of Diagonal State Space Models").

One single-input single-output SSM per input channel c, with M complex modes n:

    A_cn = −exp(A_re_log_cn) + i·A_im_cn              Re A < 0 always
    Δ_c = exp(log_dt_c)
    Ā = exp(Δ A),  B̄ = (Ā − 1)/A · B                   zero-order hold (lrnn.cells.discretize)
    h_t = Ā ⊙ h_{t−1} + B̄ x_t                          h_t (d_in, M) complex
    y_t = 2·Re(Σ_n C_n h_{t,n}) + D ⊙ x_t              factor 1 without conj_sym

With `conj_sym` each real SSM of size d_state is stored as M = d_state/2 modes, one of each
conjugate pair (the readout's factor 2 adds the partners back); without it, M = d_state.

Initialisation (N = d_state, n = 0 … M−1):
    Re A = −½ (A_re_log = log ½);
    a_init="lin" (S4D-Lin): Im A_n = π n;  a_init="inv" (S4D-Inv): Im A_n = (N/π)·(N/(2n+1) − 1);
    log Δ ~ U[log dt_min, log dt_max] per channel;  B = 1 (B_re = 1, B_im = 0);
    C complex standard normal (C_re, C_im ~ N(0, ½));  D ~ N(0, 1).
A_re_log, A_im, log_dt, B_re and B_im are the recurrent params (the paper gives A and Δ a
smaller learning rate and no weight decay; B is treated like them).

Params: A_re_log, A_im, B_re, B_im, C_re, C_im (d_in, M); log_dt, D (d_in,).
Shapes: x (B, T, d_in), h (B, T, d_in, M) complex, y (B, T, d_in).

Convolution mode (`forward(..., method="convolution")`, `lrnn.cells.convolution`): the SSM is
time-invariant, so y = K * x + D x with the kernel per channel

    K_k = 2·Re Σ_n C_n B̄_n Ā_n^k,   k = 0 … T−1         (T, d_in), Ā^k = exp(k·ΔA)

the paper's Vandermonde product, convolved with x by FFT; no state per token is formed.

The init choice is the field `a_init` (not `init`, which is the cell's init(key) method).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.base import Cell
from lrnn.cells.convolution import ChannelKernel, TimeInvariant
from lrnn.cells.discretize import zero_order_hold
from lrnn.cells.initializers import log_uniform


def s4d_imaginary(init: str, d_state: int, modes: int) -> jax.Array:
    """Im A_n for n = 0 … modes−1: π n (S4D-Lin) or (N/π)(N/(2n+1) − 1) (S4D-Inv), N = d_state."""
    n = jnp.arange(modes)
    if init == "lin":
        return math.pi * n
    return d_state / math.pi * (d_state / (2 * n + 1) - 1)


@dataclasses.dataclass(frozen=True)
class S4D(TimeInvariant, Cell):
    d_in: int
    d_state: int = 64
    a_init: str = "lin"
    conj_sym: bool = True
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    recurrent_params = frozenset({"A_re_log", "A_im", "log_dt", "B_re", "B_im"})
    complex_state = True

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.positive_int("d_state", self.d_state)
        checks.flag("conj_sym", self.conj_sym)
        if self.conj_sym and self.d_state % 2:
            raise ValueError(f"d_state must be even with conj_sym=True (conjugate pairs), got {self.d_state}")
        checks.one_of("a_init", self.a_init, ("lin", "inv"))
        checks.step_range(self.dt_min, self.dt_max)

    @property
    def modes(self) -> int:
        return self.d_state // 2 if self.conj_sym else self.d_state

    @property
    def state_shape(self) -> tuple:
        return (self.d_in, self.modes)

    def init(self, key: jax.Array) -> dict:
        k_dt, k_c_re, k_c_im, k_d = jax.random.split(key, 4)
        shape = (self.d_in, self.modes)
        c_std = math.sqrt(0.5)
        return {
            "A_re_log": jnp.full(shape, math.log(0.5)),
            "A_im": jnp.broadcast_to(s4d_imaginary(self.a_init, self.d_state, self.modes), shape),
            "log_dt": log_uniform(k_dt, (self.d_in,), self.dt_min, self.dt_max),
            "B_re": jnp.ones(shape),
            "B_im": jnp.zeros(shape),
            "C_re": c_std * jax.random.normal(k_c_re, shape),
            "C_im": c_std * jax.random.normal(k_c_im, shape),
            "D": jax.random.normal(k_d, (self.d_in,)),
        }

    def eigenvalues(self, params: dict) -> jax.Array:
        """A (d_in, M) complex, before discretisation."""
        return -jnp.exp(params["A_re_log"]) + 1j * params["A_im"]

    def convolution_kernel(self, params):
        a = self.eigenvalues(params)
        dt = jnp.exp(params["log_dt"])[:, None]
        _, scale = zero_order_hold(a, dt)
        c = (2.0 if self.conj_sym else 1.0) * (params["C_re"] + 1j * params["C_im"])
        return ChannelKernel(log_decay=dt * a, b=scale * (params["B_re"] + 1j * params["B_im"]), c=c,
                             d=params["D"])

    def elements(self, params, x):
        a_bar, scale = zero_order_hold(self.eigenvalues(params), jnp.exp(params["log_dt"])[:, None])
        b_bar = scale * (params["B_re"] + 1j * params["B_im"])
        b = b_bar * x[..., None]
        return jnp.broadcast_to(a_bar, b.shape), b

    def readout(self, params, h, x):
        y = jnp.sum(h.real * params["C_re"] - h.imag * params["C_im"], axis=-1)
        return (2.0 if self.conj_sym else 1.0) * y + params["D"] * x

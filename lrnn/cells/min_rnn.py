"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?").

GRU and LSTM with the hidden state removed from their gates and candidate, which makes
them diagonal linear recurrences:

    minGRU:   z_t = σ(W_z x_t + b_z)                   h̃_t = W_h x_t + b_h
              h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t
    minLSTM:  f_t = σ(W_f x_t + b_f)   i_t = σ(W_i x_t + b_i)   h̃_t = W_h x_t + b_h
              f'_t = f_t / (f_t + i_t)   i'_t = i_t / (f_t + i_t)
              h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ h̃_t
    y_t = h_t

Both are one update logit u_t away from each other: the keep and write coefficients are
σ(−u_t) and σ(u_t), with u_t = W_z x_t + b_z for minGRU and, for minLSTM,
u_t = log i_t − log f_t = softplus(−(W_f x_t + b_f)) − softplus(−(W_i x_t + b_i)),
so f'_t = σ(−u_t), i'_t = σ(u_t) exactly, with no division by f_t + i_t.

log_space=False is the paper's linear-space model (its "Parallel Mode" without log): h̃ as
above, any real state, the plain diagonal scan.

log_space=True is the paper's log-space model: the candidate goes through
g(v) = v + ½ for v ≥ 0, σ(v) otherwise (continuous, > 0), h̃_t = g(W_h x_t + b_h), and the
scan runs on (log a_t, log b_t) = (log σ(−u_t), log σ(u_t) + log g(·)) through
LogDiagonalMonoid, all computed with log-sigmoid (no log of a computed sigmoid), so products
of gates that underflow in linear space stay finite. The paper uses g only in this variant
(its sequential mode "trained in log-space" applies g; the linear-space one does not). The
state is h itself, which stays positive; the scan carries log h. A state passed in must be
≥ 0 (0, e.g. from `initial_state`, is the empty state, log 0 = −∞); a negative concrete
state raises a ValueError naming `state`, a traced one (under jit/grad/vmap) cannot be
checked and yields NaN. Gradients with respect to a state entry that is exactly 0 are NaN
(d log h / dh is infinite there): pass a positive state to differentiate through it.

Initialisation: every projection is PyTorch's nn.Linear default (W, b ~ U[±1/√d_in]), as in
the paper's code; the paper names no other init. Recurrent params: none. The paper trains all
params alike, and the gate projections are ordinary input projections (nothing in them is an
eigenvalue parametrisation that a smaller learning rate or no weight decay would protect).

Shapes: x (B, T, d_in), h (B, T, d_hidden), y (B, T, d_hidden).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells import checks, linear
from lrnn.cells.base import Cell
from lrnn.scan import DiagonalMonoid, LogDiagonalMonoid, Monoid


def g(v: jax.Array) -> jax.Array:
    """v + ½ for v ≥ 0, σ(v) otherwise: continuous and positive."""
    return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


def log_g(v: jax.Array) -> jax.Array:
    """log g(v), finite for every finite v (log σ(v) = −softplus(−v) below 0)."""
    return jnp.where(v >= 0, jnp.log(jnp.maximum(v, 0.0) + 0.5), jax.nn.log_sigmoid(v))


@dataclasses.dataclass(frozen=True)
class _MinRNN(Cell):
    d_in: int
    d_hidden: int
    log_space: bool = False

    projections: ClassVar[tuple] = ()

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.positive_int("d_hidden", self.d_hidden)
        checks.flag("log_space", self.log_space)

    @property
    def state_shape(self) -> tuple:
        return (self.d_hidden,)

    @property
    def d_out(self) -> int:
        return self.d_hidden

    @property
    def monoid(self) -> Monoid:
        return LogDiagonalMonoid() if self.log_space else DiagonalMonoid()

    def init(self, key: jax.Array) -> dict:
        params = {}
        for k, name in zip(jax.random.split(key, len(self.projections)), self.projections):
            params.update(linear.init_linear(k, self.d_in, self.d_hidden, name))
        return params

    def update_logit(self, params: dict, x: jax.Array) -> jax.Array:
        """u (B, T, d_hidden): keep h_{t−1} with σ(−u), write h̃_t with σ(u)."""
        raise NotImplementedError

    def elements(self, params, x):
        u = self.update_logit(params, x)
        v = linear.linear(params, "h", x)
        if self.log_space:
            return jax.nn.log_sigmoid(-u), jax.nn.log_sigmoid(u) + log_g(v)
        return jax.nn.sigmoid(-u), jax.nn.sigmoid(u) * v

    def readout(self, params, h, x):
        return h

    def to_scan_state(self, h):
        if not self.log_space:
            return h
        values = checks.concrete(h)
        if values is not None and np.any(values < 0):
            raise ValueError(
                "state must be ≥ 0 for a log-space cell (its scan carries log h; 0 is the empty "
                f"state), got a minimum of {values.min()}")
        return jnp.log(h)

    def from_scan_state(self, s):
        return jnp.exp(s) if self.log_space else s


@dataclasses.dataclass(frozen=True)
class MinGRU(_MinRNN):
    """minGRU: params W_z, b_z, W_h, b_h (W: (d_in, d_hidden), b: (d_hidden,))."""

    projections: ClassVar[tuple] = ("z", "h")

    def update_logit(self, params, x):
        return linear.linear(params, "z", x)


@dataclasses.dataclass(frozen=True)
class MinLSTM(_MinRNN):
    """minLSTM: params W_f, b_f, W_i, b_i, W_h, b_h (W: (d_in, d_hidden), b: (d_hidden,))."""

    projections: ClassVar[tuple] = ("f", "i", "h")

    def update_logit(self, params, x):
        return jax.nn.softplus(-linear.linear(params, "f", x)) - jax.nn.softplus(-linear.linear(params, "i", x))

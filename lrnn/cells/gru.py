"""GRU — the gated recurrent unit (Cho et al. 2014, "Learning Phrase Representations using RNN
Encoder–Decoder for Statistical Machine Translation"), in the convention of PyTorch's nn.GRU and
cuDNN: the reset gate scales the recurrent projection of h_{t−1} after the matrix product.

    r_t = σ(x_t W_r + b_r + h_{t−1} U_r + c_r)                reset gate
    z_t = σ(x_t W_z + b_z + h_{t−1} U_z + c_z)                update gate
    n_t = tanh(x_t W_n + b_n + r_t ⊙ (h_{t−1} U_n + c_n))     candidate
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1},    y_t = h_t

Cho et al. write the candidate as tanh(x W + (r ⊙ h_{t−1}) U), the reset before the product, and
with a single bias; the form above (two biases, c_n inside the reset) is the one PyTorch, cuDNN and
most code use, so its weights load unchanged (PyTorch's weight_ih_l0 is W_xᵀ, bias_hh_l0 is b_h).
Nonlinear in h_{t−1}: run by the step loop or the Newton solve (`lrnn.cells.nonlinear`).

Params: W_x (d_in, 3H) = [W_r | W_z | W_n], b_x (3H,), W_h (H, 3H) = [U_r | U_z | U_n], b_h (3H,)
= [c_r | c_z | c_n], H = d_hidden (default d_in). Initialisation: PyTorch's, every entry
~ U[−1/√H, 1/√H]. Recurrent params: none (the gates are ordinary projections; GRUs train all
params alike).

Shapes: x (B, T, d_in); state h (B, H); y (B, T, H).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.nonlinear import NonlinearCell


@dataclasses.dataclass(frozen=True)
class GRU(NonlinearCell):
    d_in: int
    d_hidden: int | None = None

    def __post_init__(self):
        self.check_sizes_and_solver()

    @property
    def state_shape(self) -> tuple:
        return (self.d_hidden,)

    def init(self, key: jax.Array) -> dict:
        h = self.d_hidden
        bound = 1.0 / jnp.sqrt(h)
        shapes = {"W_x": (self.d_in, 3 * h), "b_x": (3 * h,), "W_h": (h, 3 * h), "b_h": (3 * h,)}
        return {name: jax.random.uniform(k, shape, jnp.float32, -bound, bound)
                for k, (name, shape) in zip(jax.random.split(key, len(shapes)), shapes.items())}

    def inputs(self, params: dict, x: jax.Array) -> jax.Array:
        """x W_x + b_x (B, T, 3H): the gates' input parts [r | z | n]."""
        return x @ params["W_x"] + params["b_x"]

    def transition(self, params: dict, h: jax.Array, u_t: jax.Array) -> jax.Array:
        x_r, x_z, x_n = jnp.split(u_t, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(h @ params["W_h"] + params["b_h"], 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        return (1.0 - z) * n + z * h

    def readout(self, params: dict, states: jax.Array, x: jax.Array) -> jax.Array:
        return states

"""LSTM — long short-term memory (Hochreiter & Schmidhuber 1997, "Long Short-Term Memory") with the
forget gate of Gers, Schmidhuber & Cummins 2000, without peepholes: the LSTM of PyTorch's nn.LSTM.

    i_t = σ(x_t W_i + h_{t−1} U_i + b_i)        input gate
    f_t = σ(x_t W_f + h_{t−1} U_f + b_f)        forget gate
    g_t = tanh(x_t W_g + h_{t−1} U_g + b_g)     cell input
    o_t = σ(x_t W_o + h_{t−1} U_o + b_o)        output gate
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t),    y_t = h_t

State: the tuple (h, c), each (B, H). Nonlinear in (h_{t−1}, c_{t−1}): run by the step loop or the
Newton solve (`lrnn.cells.nonlinear`), whose state is [h | c], 2H numbers.

Params: W_x (d_in, 4H) = [W_i | W_f | W_g | W_o], W_h (H, 4H) = [U_i | U_f | U_g | U_o], b (4H,),
H = d_hidden (default d_in); one bias (PyTorch's two, b_ih + b_hh, are one bias in effect).
Initialisation: weights as PyTorch's, ~ U[−1/√H, 1/√H]; the forget gate's bias 1 and the other
biases 0, after Jozefowicz, Zaremba & Sutskever 2015 ("An Empirical Exploration of Recurrent
Network Architectures"), who found a forget bias of 1 closes most of the gap to the GRU (and
Keras's default). Recurrent params: none (LSTMs train all params alike).

Shapes: x (B, T, d_in); state (h, c), each (B, H); y (B, T, H).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.nonlinear import NonlinearCell

FORGET_BIAS = 1.0


@dataclasses.dataclass(frozen=True)
class LSTM(NonlinearCell):
    d_in: int
    d_hidden: int | None = None

    def __post_init__(self):
        self.check_sizes_and_solver()

    @property
    def state_shape(self) -> tuple:
        return ((self.d_hidden,), (self.d_hidden,))

    def initial_state(self, batch_shape: tuple, dtype=jnp.float32) -> tuple:
        """(h, c), zeros."""
        zeros = jnp.zeros(tuple(batch_shape) + (self.d_hidden,), dtype)
        return zeros, zeros

    def init(self, key: jax.Array) -> dict:
        h = self.d_hidden
        bound = 1.0 / jnp.sqrt(h)
        key_x, key_h = jax.random.split(key)
        return {
            "W_x": jax.random.uniform(key_x, (self.d_in, 4 * h), jnp.float32, -bound, bound),
            "W_h": jax.random.uniform(key_h, (h, 4 * h), jnp.float32, -bound, bound),
            "b": jnp.zeros((4 * h,), jnp.float32).at[h:2 * h].set(FORGET_BIAS),
        }

    def inputs(self, params: dict, x: jax.Array) -> jax.Array:
        """x W_x + b (B, T, 4H): the gates' input parts [i | f | g | o]."""
        return x @ params["W_x"] + params["b"]

    def transition(self, params: dict, state: tuple, u_t: jax.Array) -> tuple:
        h, c = state
        i, f, g, o = jnp.split(u_t + h @ params["W_h"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c

    def readout(self, params: dict, states: tuple, x: jax.Array) -> jax.Array:
        return states[0]

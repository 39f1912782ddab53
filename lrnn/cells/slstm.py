"""sLSTM — the scalar-memory LSTM of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term
Memory"): an LSTM with an exponential input gate, a normaliser state and a max-stabiliser, whose
gates read the previous output through block-diagonal recurrent weights (memory mixing within a
head, none across heads).

Per channel, with the gates' pre-activations (R_g block-diagonal: one hd × hd block per head)

    z̃_t = x_t W_z + b_z + R_z h_{t−1}      z_t = tanh(z̃_t)          cell input
    ĩ_t = x_t W_i + b_i + R_i h_{t−1}      i_t = exp(ĩ_t)           input gate
    f̃_t = x_t W_f + b_f + R_f h_{t−1}      f_t = σ(f̃_t) or exp(f̃_t)   forget gate (`forget_gate`)
    õ_t = x_t W_o + b_o + R_o h_{t−1}      o_t = σ(õ_t)             output gate

the paper's recurrence c_t = f_t c_{t−1} + i_t z_t, n_t = f_t n_{t−1} + i_t, h_t = o_t c_t / n_t
runs stabilised (c and n carry a common factor e^{−m_t}, which c_t / n_t does not see):

    m_t  = max(log f_t + m_{t−1}, ĩ_t)
    i'_t = exp(ĩ_t − m_t)        f'_t = exp(log f_t + m_{t−1} − m_t)      (both ≤ 1)
    c_t  = f'_t c_{t−1} + i'_t z_t
    n_t  = f'_t n_{t−1} + i'_t
    h_t  = o_t ⊙ c_t / n_t,      y_t = h_t

Every step sets one of i', f' to 1, so from the zero state n_t ≥ 1 once a token has been read and
|c_t / n_t| < 1: no pre-activation, however large, overflows or divides by zero.

State: the tuple (c, n, m, h), each (B, d_hidden). `initial_state` is zeros. A state with n = 0
holds nothing (c = 0), so its stabiliser is read as m_{t−1} = −∞: the first token sets m_t = ĩ_t,
i' = 1, f' = 0 (the xLSTM code's vanilla step does the same when its n is all zero). With
m_0 = 0 instead, a first token with ĩ ≪ log f would leave n_1 = e^{ĩ − log f}, which underflows
(ĩ below −88 in float32) to c/n = 0/0. A reset (`resets`) starts from the zero state, so a
packed sequence equals a separate one exactly.

As a nonlinear cell (`lrnn.cells.nonlinear`): `inputs` are the four input projections x W_g + b_g
for every token at once, `transition` the recurrent part and the gating of one token, `readout`
h. The block around the cell in xLSTM (short conv, group norm per head, up/down projections) is
the layer's, not the cell's.

The max makes m_t, and with it f', piecewise smooth in the state: the Newton solve's Jacobian is
that of the branch the max takes at the current iterate. The solve still converges (T iterations
always suffice). Measured from the default init on random inputs (d_hidden 4–16, 1–4 heads), with
the sigmoid forget gate DEER took 9–16 iterations at T = 64 (float64) and 13–50 at T = 1024–4096
(float32), quasi-DEER 18–26. With the exponential forget gate m integrates f̃ (on the forget
branch ∂m_t/∂m_{t−1} = 1, plus R_f through h), and undamped DEER's iterates grow by many orders of
magnitude before they converge: 13–31 iterations at T = 64, but in float32 150–300 at T = 1024 and
up to 3224 at T = 4096, where quasi-DEER takes 45–102; `damping` 0.2 brings DEER at T = 4096 to
≈ 860. Prefer quasi-DEER (the default) there.

Sizes: `d_hidden` (default d_in) channels in `n_heads` heads of hd = d_hidden / n_heads
(default 1 head; the xLSTM code uses 4). Output width d_out = d_hidden.

Params: W_z, W_i, W_f, W_o (d_in, d_hidden); R_z, R_i, R_f, R_o (n_heads, hd, hd), acting as
h R per head; b_z, b_i, b_f, b_o (d_hidden,). Recurrent params: W_i, R_i, b_i, W_f, R_f, b_f
(the gates that set the decay and the input scale of the recurrence, as for mLSTM).

Initialisation (the xLSTM code where it has one):
- W_g ~ N(0, 2/(5 d_in)), the code's "small init" of the layer's gate projections;
- b_z = b_i = b_o = 0; b_f per head "powerlaw_blockdependent" for the first block of a stack:
  b_f[j] = 5 − 12 (j / (hd − 1))^0.3, j = 0 … hd − 1, from +5 (f ≈ 0.993, long memory) down to −7
  (f ≈ 0.001). The code raises the exponent to 0.3 + 1.3·l/(L − 1) for block l of L; a cell
  does not know its depth, so every layer gets the first block's. With the exponential forget
  gate b_f = log σ(that value), so f = e^{f̃} starts at the same forget values;
- R_g ~ U[−1/√d_hidden, 1/√d_hidden], the code's "standard" recurrent init. Its default is
  R = 0; we start with memory mixing switched on (small), so that the recurrence — and the
  Newton solve — is nonlinear in h from the first step.

Deviations: the input projections are dense (d_in → d_hidden), as in the paper's equations; the
xLSTM layer uses per-head (block-diagonal) ones fed from a short conv. No soft-capping of
pre-activations and no ε in c / n (n ≥ 1).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.linear import linear
from lrnn.cells.nonlinear import NonlinearCell

GATES = ("z", "i", "f", "o")
FORGET_GATES = ("sigmoid", "exponential")
FORGET_BIAS_RANGE = (5.0, -7.0)  # b_f at the first and the last channel of a head
FORGET_BIAS_POWER = 0.3


def powerlaw_forget_bias(head_dim: int) -> jax.Array:
    """5 − 12 (j / (hd − 1))^0.3 for j = 0 … hd − 1 (hd = 1: just 5)."""
    start, end = FORGET_BIAS_RANGE
    return start + (end - start) * jnp.linspace(0.0, 1.0, head_dim) ** FORGET_BIAS_POWER


@dataclasses.dataclass(frozen=True)
class SLSTM(NonlinearCell):
    d_in: int
    d_hidden: int | None = None
    n_heads: int = 1
    forget_gate: str = "sigmoid"

    recurrent_params = frozenset({"W_i", "R_i", "b_i", "W_f", "R_f", "b_f"})

    def __post_init__(self):
        self.check_sizes_and_solver()
        checks.positive_int("n_heads", self.n_heads)
        if self.d_hidden % self.n_heads:
            raise ValueError(f"n_heads must divide d_hidden = {self.d_hidden}, got n_heads = {self.n_heads}")
        checks.one_of("forget_gate", self.forget_gate, FORGET_GATES)

    @property
    def head_dim(self) -> int:
        return self.d_hidden // self.n_heads

    @property
    def state_shape(self) -> tuple:
        return ((self.d_hidden,),) * 4

    def initial_state(self, batch_shape: tuple, dtype=jnp.float32) -> tuple:
        """(c, n, m, h), all zeros: the empty state."""
        return tuple(jnp.zeros(tuple(batch_shape) + (self.d_hidden,), dtype) for _ in range(4))

    def init(self, key: jax.Array) -> dict:
        d, e, h, hd = self.d_in, self.d_hidden, self.n_heads, self.head_dim
        keys = jax.random.split(key, 2 * len(GATES))
        small = jnp.sqrt(2.0 / (5.0 * d))
        bound = 1.0 / jnp.sqrt(e)
        forget_bias = jnp.tile(powerlaw_forget_bias(hd), h)
        if self.forget_gate == "exponential":
            forget_bias = jax.nn.log_sigmoid(forget_bias)
        params = {}
        for gate, k_w, k_r in zip(GATES, keys[::2], keys[1::2]):
            params[f"W_{gate}"] = small * jax.random.normal(k_w, (d, e))
            params[f"R_{gate}"] = jax.random.uniform(k_r, (h, hd, hd), minval=-bound, maxval=bound)
            params[f"b_{gate}"] = forget_bias if gate == "f" else jnp.zeros((e,))
        return params

    # ---- the nonlinear cell's pieces -----------------------------------------------------
    def inputs(self, params: dict, x: jax.Array) -> tuple:
        """(x W_z + b_z, x W_i + b_i, x W_f + b_f, x W_o + b_o), each (B, T, d_hidden)."""
        return tuple(linear(params, gate, x) for gate in GATES)

    def transition(self, params: dict, state: tuple, u_t: tuple) -> tuple:
        """(c, n, m, h) after one token, from the state before it (each (B, d_hidden)) and the
        token's input projections u_t (each (B, d_hidden))."""
        c, n, m, h = state
        heads = h.reshape(h.shape[:-1] + (self.n_heads, self.head_dim))
        z_pre, i_pre, f_pre, o_pre = (
            u + jnp.einsum("...hj,hjk->...hk", heads, params[f"R_{gate}"]).reshape(h.shape)
            for gate, u in zip(GATES, u_t))
        log_f = jax.nn.log_sigmoid(f_pre) if self.forget_gate == "sigmoid" else f_pre
        log_f_m = jnp.where(n == 0, -jnp.inf, log_f + m)  # an empty state: m_{t−1} = −∞
        m_new = jnp.maximum(log_f_m, i_pre)
        keep, write = jnp.exp(log_f_m - m_new), jnp.exp(i_pre - m_new)
        c_new = keep * c + write * jnp.tanh(z_pre)
        n_new = keep * n + write
        return c_new, n_new, m_new, jax.nn.sigmoid(o_pre) * c_new / n_new

    def readout(self, params: dict, states: tuple, x: jax.Array) -> jax.Array:
        """y = h (B, T, d_hidden)."""
        return states[3]

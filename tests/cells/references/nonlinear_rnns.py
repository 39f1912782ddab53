"""GRU (PyTorch's convention of Cho et al. 2014) and LSTM (Hochreiter & Schmidhuber 1997 with a
forget gate), one token at a time in float64:

    GRU:   r = σ(x W_r + b_r + h U_r + c_r),  z = σ(x W_z + b_z + h U_z + c_z)
           n = tanh(x W_n + b_n + r ⊙ (h U_n + c_n)),   h' = (1 − z) ⊙ n + z ⊙ h,   y = h'
    LSTM:  [i, f, g, o] = x W + h U + b,   c' = σ(f) c + σ(i) tanh(g),   h' = σ(o) tanh(c'),   y = h'

The params are sliced by gate here (W_x = [W_r | W_z | W_n] …), column block k of width H.
Every case is solved in parallel by a Newton method (the cell's `solver`) for the engine methods;
"sequential" (and "auto", on CPU) is the cell's step loop. `resets` (B, T) bool, optional: the
state before a flagged token is zero (packed sequences).
"""

import jax
import jax.numpy as jnp

from lrnn.cells.gru import GRU
from lrnn.cells.lstm import LSTM
from tests.cells.references import Case, over_time


def _gate(w, k, width):
    """Column block k of width `width` of a stacked weight or bias."""
    return w[..., k * width:(k + 1) * width]


def _with_resets(step, x, resets):
    """(step reading (x_t, reset_t), inputs) for `over_time`: the reset flag rides as x's last column
    and zeroes the state before the token."""
    if resets is None:
        resets = jnp.zeros(x.shape[:2], bool)

    def flagged(state, xr_t):
        keep = (xr_t[:, -1:] < 0.5).astype(xr_t.dtype)
        return step(jax.tree_util.tree_map(lambda s: keep * s, state), xr_t[:, :-1])

    return flagged, jnp.concatenate([x, resets[..., None].astype(x.dtype)], axis=-1)


def gru(cell, p, x, h0, resets=None):
    width = cell.d_hidden

    def part(name, k, v):
        return v @ _gate(p[f"W_{name}"], k, width) + _gate(p[f"b_{name}"], k, width)

    def step(h, x_t):
        r = jax.nn.sigmoid(part("x", 0, x_t) + part("h", 0, h))
        z = jax.nn.sigmoid(part("x", 1, x_t) + part("h", 1, h))
        n = jnp.tanh(part("x", 2, x_t) + r * part("h", 2, h))
        h = (1 - z) * n + z * h
        return h, h

    flagged, xr = _with_resets(step, x, resets)
    return over_time(flagged, h0, xr, p)


def lstm(cell, p, x, h0, resets=None):
    width = cell.d_hidden

    def pre(k, x_t, h):
        return x_t @ _gate(p["W_x"], k, width) + h @ _gate(p["W_h"], k, width) + _gate(p["b"], k, width)

    def step(state, x_t):
        h, c = state
        i, f, g, o = (pre(k, x_t, h) for k in range(4))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, (h, c)

    flagged, xr = _with_resets(step, x, resets)
    return over_time(flagged, tuple(h0), xr, p)


CASES = {
    "gru": Case(GRU(d_in=3, d_hidden=4, solver="deer"), gru),
    "gru-quasi": Case(GRU(d_in=2, d_hidden=5, solver="quasi_deer"), gru),
    "lstm": Case(LSTM(d_in=3, d_hidden=4, solver="deer"), lstm),
    "lstm-quasi-damped": Case(LSTM(d_in=3, d_hidden=3, solver="quasi_deer", damping=0.25), lstm),
}

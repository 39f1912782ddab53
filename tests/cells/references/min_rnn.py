"""minGRU / minLSTM (Feng et al. 2024), the paper's sequential mode in linear space:

    minGRU:  z = σ(W_z x + b_z),  h_t = (1 − z) h_{t−1} + z h̃_t
    minLSTM: f = σ(W_f x + b_f),  i = σ(W_i x + b_i),  h_t = f/(f+i) h_{t−1} + i/(f+i) h̃_t

with h̃_t = W_h x_t + b_h, or g(W_h x_t + b_h) for the log-space variant (whose parallel
scan runs in log space; the loop here stays in linear space).
"""

import jax
import jax.numpy as jnp

from lrnn.cells.min_rnn import MinGRU, MinLSTM
from tests.cells.references import Case, over_time


def candidate(cell, p, x_t):
    v = x_t @ p["W_h"] + p["b_h"]
    return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v)) if cell.log_space else v


def min_gru(cell, p, x, h0):
    def step(h, x_t):
        z = jax.nn.sigmoid(x_t @ p["W_z"] + p["b_z"])
        h = (1 - z) * h + z * candidate(cell, p, x_t)
        return h, h
    return over_time(step, h0, x, p)


def min_lstm(cell, p, x, h0):
    def step(h, x_t):
        f = jax.nn.sigmoid(x_t @ p["W_f"] + p["b_f"])
        i = jax.nn.sigmoid(x_t @ p["W_i"] + p["b_i"])
        h = f / (f + i) * h + i / (f + i) * candidate(cell, p, x_t)
        return h, h
    return over_time(step, h0, x, p)


def positive(h):
    """Log-space cells keep h > 0."""
    return jnp.abs(h) + 0.1


CASES = {
    "mingru": Case(MinGRU(d_in=3, d_hidden=4), min_gru),
    "mingru-log": Case(MinGRU(d_in=2, d_hidden=5, log_space=True), min_gru, prepare_state=positive),
    "minlstm": Case(MinLSTM(d_in=3, d_hidden=4), min_lstm),
    "minlstm-log": Case(MinLSTM(d_in=2, d_hidden=6, log_space=True), min_lstm, prepare_state=positive),
}

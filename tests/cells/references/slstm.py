"""sLSTM (Beck et al. 2024), the stabilised recurrence of the paper, one token at a time:

    z̃, ĩ, f̃, õ = x W_g + b_g + (R_g h_{t−1} per head)              g ∈ {z, i, f, o}
    log f = log σ(f̃)  (sigmoid forget gate)  or  f̃  (exponential forget gate)
    m_t = max(log f + m_{t−1}, ĩ)             (m_t = ĩ from a state with n = 0: it holds nothing)
    c_t = e^{log f + m_{t−1} − m_t} c_{t−1} + e^{ĩ − m_t} tanh(z̃)
    n_t = e^{log f + m_{t−1} − m_t} n_{t−1} + e^{ĩ − m_t}
    h_t = σ(õ) c_t / n_t,        y_t = h_t

and the same recurrence without the stabiliser (c, n grow as e^{Σ ĩ}, so it only serves where
that stays far from overflow), for the stabiliser's own test.
"""

import jax
import jax.numpy as jnp

from lrnn.cells import SLSTM
from tests.cells.references import Case, over_time


def _pre_activations(cell, p, x_t, h):
    """{g: x W_g + b_g + R_g h} for the four gates, each (B, d_hidden); R_g acts per head."""
    b = h.shape[0]
    heads = h.reshape(b, cell.n_heads, -1)
    return {g: x_t @ p[f"W_{g}"] + p[f"b_{g}"] + jnp.einsum("bhj,hjk->bhk", heads, p[f"R_{g}"]).reshape(b, -1)
            for g in "zifo"}


def _log_forget(cell, f_pre):
    return jax.nn.log_sigmoid(f_pre) if cell.forget_gate == "sigmoid" else f_pre


def slstm(cell, p, x, h0):
    def step(state, x_t):
        c, n, m, h = state
        g = _pre_activations(cell, p, x_t, h)
        log_f = _log_forget(cell, g["f"])
        empty = n == 0
        m_new = jnp.where(empty, g["i"], jnp.maximum(log_f + m, g["i"]))
        keep = jnp.exp(jnp.where(empty, -jnp.inf, log_f + m - m_new))
        write = jnp.exp(g["i"] - m_new)
        c = keep * c + write * jnp.tanh(g["z"])
        n = keep * n + write
        h = jax.nn.sigmoid(g["o"]) * c / n
        return h, (c, n, m_new, h)

    return over_time(step, tuple(h0), x, p)


def slstm_unstabilised(cell, p, x):
    """(y, (c, n)) of the paper's recurrence without m, from c = n = h = 0."""
    b = x.shape[0]

    def step(state, x_t):
        c, n, h = state
        g = _pre_activations(cell, p, x_t, h)
        f = jnp.exp(_log_forget(cell, g["f"]))
        i = jnp.exp(g["i"])
        c = f * c + i * jnp.tanh(g["z"])
        n = f * n + i
        h = jax.nn.sigmoid(g["o"]) * c / n
        return h, (c, n, h)

    zeros = jnp.zeros((b, cell.d_hidden), x.dtype)
    y, (c, n, _) = over_time(step, (zeros, zeros, zeros), x, p)
    return y, (c, n)


def valid_state(state):
    """A random normal (c, n, m, h) made one a sequence can reach: n > 0, |c| < n, |h| < 1."""
    c, n, m, h = state
    n = jnp.exp(n)
    return n * jnp.tanh(c), n, m, jnp.tanh(h)


CASES = {
    "slstm": Case(SLSTM(d_in=3, d_hidden=4, n_heads=2), slstm, prepare_state=valid_state),
    "slstm-deer-exponential-forget": Case(SLSTM(d_in=4, forget_gate="exponential", solver="deer"), slstm,
                                          prepare_state=valid_state),
}

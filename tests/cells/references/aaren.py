"""Aaren (Feng et al. 2024): per head, with the learned query q and s_i = q · (x_i W_k) / √K,

    o_t = (e^{m0} w0 + Σ_{i≤t} e^{s_i} v_i) / (e^{m0} u0 + Σ_{i≤t} e^{s_i}),   v_i = x_i W_v,
    y_t = [o_t^1, …, o_t^H] W_o + b_o   (or the merged heads without the output projection),

written from the definition: every output sums over its whole prefix afresh (no recurrence),
with the common shift M_t = max(m0, s_1..s_t) so the exponentials stay finite. The final state
is (M_T, e^{m0−M_T} u0 + Σ e^{s_i−M_T}, e^{m0−M_T} w0 + Σ e^{s_i−M_T} v_i).
"""

import jax.numpy as jnp

from lrnn.cells.aaren import Aaren
from tests.cells.references import Case


def aaren(cell, p, x, h0):
    m0, u0, w0 = h0  # (B, H), (B, H), (B, H, V)
    batch, length, _ = x.shape
    heads, kd, vd = cell.n_heads, cell.key_dim, cell.value_dim
    k = (x @ p["W_k"]).reshape(batch, length, heads, kd)
    v = (x @ p["W_v"]).reshape(batch, length, heads, vd)
    s = jnp.sum(k * p["q"], axis=-1) / jnp.sqrt(kd)  # (B, T, H): score of every token
    ys = []
    for t in range(length):
        # Tokens i ≤ t (a mask rather than a slice keeps every step's shapes the same).
        prefix = jnp.where((jnp.arange(length) <= t)[None, :, None], s, -jnp.inf)
        shift = jnp.maximum(m0, jnp.max(prefix, axis=1))  # (B, H)
        e = jnp.exp(prefix - shift[:, None])  # e^{s_i − M_t}, 0 for i > t
        carried = jnp.exp(m0 - shift)
        u = carried * u0 + jnp.sum(e, axis=1)
        w = carried[..., None] * w0 + jnp.sum(e[..., None] * v, axis=1)
        o = (w / u[..., None]).reshape(batch, heads * vd)
        ys.append(o @ p["W_o"] + p["b_o"] if cell.output_projection else o)
    return jnp.stack(ys, axis=1), (shift, u, w)


def valid_state(state):
    """A random (m, u, w) with u > 0 (u near 0 with w away from 0 is no sum of exponentials)."""
    m, u, w = state
    return m, jnp.abs(u) + 0.5, w


CASES = {
    "aaren": Case(Aaren(d_in=4, n_heads=2), aaren, prepare_state=valid_state),
}

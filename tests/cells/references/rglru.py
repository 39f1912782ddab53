"""RG-LRU (De et al. 2024): r_t = σ(W_a x_t + b_a), i_t = σ(W_x x_t + b_x), a_t = σ(Λ)^{c r_t},
h_t = a_t h_{t−1} + √(1 − a_t²) (i_t x_t), y_t = h_t; W_a, W_x block-diagonal."""

import jax
import jax.numpy as jnp

from lrnn.cells.rglru import RGLRU
from tests.cells.references import Case, over_time


def _dense(blocks):
    """The full (d_in, d_in) matrix of a block-diagonal weight (H, K, K)."""
    h, k, _ = blocks.shape
    w = jnp.zeros((h * k, h * k), blocks.dtype)
    for j in range(h):
        w = w.at[j * k:(j + 1) * k, j * k:(j + 1) * k].set(blocks[j])
    return w


def rglru(cell, p, x, h0):
    w_a, w_x = _dense(p["W_a"]), _dense(p["W_x"])
    a_base = jax.nn.sigmoid(p["Lambda"])

    def step(h, x_t):
        r = jax.nn.sigmoid(x_t @ w_a + p["b_a"])
        i = jax.nn.sigmoid(x_t @ w_x + p["b_x"])
        a = a_base ** (cell.c * r)
        h = a * h + jnp.sqrt(1 - a**2) * (i * x_t)
        return h, h

    return over_time(step, h0, x, p)


CASES = {
    "rglru": Case(RGLRU(d_in=3), rglru),
    "rglru-blocks": Case(RGLRU(d_in=4, num_blocks=2, c=4.0, min_rad=0.5, max_rad=0.95), rglru),
}

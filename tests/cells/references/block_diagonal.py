"""Block-diagonal input-dependent LRNN (Fan, Chi & Rudnicky 2024): per block k, the b × b matrix
G = reshape(W_A x_t + b_A)[k] (row i, column j), its columns centred (when the cell says so),
divided by the largest column p-norm; h_t = A_t h_{t−1} + W_B x_t + b_B with A_t the full
d × d block-diagonal matrix built here; y_t = h_t."""

import jax.numpy as jnp

from lrnn.cells.block_diagonal import BlockDiagonalLRNN
from tests.cells.references import Case, over_time


def _dense_transition(cell, p, x_t):
    """A_t (B, d, d): the block-diagonal transition, zeros off the blocks."""
    d, b = cell.d_in, cell.block_size
    g = x_t @ p["W_A"] + p["b_A"]  # (B, n·b·b), block-major, then row, then column
    a = jnp.zeros((x_t.shape[0], d, d), x_t.dtype)
    for k in range(d // b):
        block = g[:, k * b * b:(k + 1) * b * b].reshape(-1, b, b)
        if cell.center_columns:
            block = block - block.sum(axis=1, keepdims=True) / b
        column_norms = (jnp.abs(block) ** cell.p).sum(axis=1) ** (1 / cell.p)  # (B, b), one per column
        block = block / column_norms.max(axis=1)[:, None, None]
        a = a.at[:, k * b:(k + 1) * b, k * b:(k + 1) * b].set(block)
    return a


def block_diagonal(cell, p, x, h0):
    batch = x.shape[0]

    def step(h, x_t):
        h = jnp.einsum("bij,bj->bi", _dense_transition(cell, p, x_t), h) + x_t @ p["W_B"] + p["b_B"]
        return h, h

    y, final = over_time(step, h0.reshape(batch, cell.d_in), x, p)
    return y, final.reshape(h0.shape)


CASES = {
    "block_diagonal": Case(BlockDiagonalLRNN(d_in=4, block_size=2), block_diagonal),
    "block_diagonal-b3-p1": Case(BlockDiagonalLRNN(d_in=6, block_size=3, p=1.0), block_diagonal),
    "block_diagonal-one-block-uncentred": Case(
        BlockDiagonalLRNN(d_in=4, block_size=4, p=2.0, center_columns=False), block_diagonal),
}

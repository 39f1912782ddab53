"""Block-diagonal input-dependent linear RNN (Fan, Chi & Rudnicky 2024, "Advancing Regular
Language Reasoning in Linear Recurrent Neural Networks", NAACL 2024).

The transition is block-diagonal, n_blocks blocks of b × b (d_in = n_blocks · b), each block
read from the token, with every column's p-norm at most 1 so that long products stay tame:

    G_t = reshape(W_A x_t + b_A)             (n_blocks, b, b), G_t^(k)[i, j]: row i, column j
    C_t^(k) = G_t^(k) − mean_i G_t^(k)[i, :]  each column centred (center_columns, default on)
    A_t^(k) = C_t^(k) / max_j ‖C_t^(k)[:, j]‖_p                 p = 1.2
    h_t = diag(A_t^(1), …, A_t^(n_blocks)) h_{t−1} + (W_B x_t + b_B)
    y_t = h_t

so every column of every block has p-norm ≤ 1 and, in each block, the largest one is exactly 1.
The paper states the constraint (column p-norms bounded by one, p = 1.2 in its experiments);
the formula above is that of the authors' released code (github.com/tinghanf/RegluarLRNN,
`block_model.py`): the columns are centred, and each block is rescaled by its largest column
p-norm, not clipped column by column with max(1, ‖·‖_p) — a block whose columns are all short
is scaled up too. A block that is exactly zero (only by construction) stays zero.

Stability: the induced 1-norm of a matrix is its largest column 1-norm, so with p = 1 every
‖A_t‖₁ ≤ 1 and any product ‖A_T ⋯ A_1‖₁ ≤ 1, whatever the length. For p > 1 the bound per step
is only ‖A_t‖₁ ≤ b^(1 − 1/p) (‖v‖₁ ≤ b^(1−1/p) ‖v‖_p), 1.41 for b = 8, p = 1.2: a product is not
bounded in general; p slightly above 1 is the paper's trade between that guarantee and what
the blocks can express. Centring makes 1ᵀA_t^(k) = 0 (0 is always an eigenvalue).

Readout: the state itself, y_t = h_t, as the authors' code (its model adds the input back
through a residual connection and normalises; here the mixer's out-projection and the block's
residual play those parts).

Initialisation: W_A, b_A, W_B, b_B as PyTorch's nn.Linear (U[−1/√d_in, 1/√d_in]), the
authors' code's layers. No param is "recurrent" (the authors train every param with one
learning rate and weight decay).

Differences from the authors' code: its blocks and input vectors come from two-layer ReLU
MLPs of x_t (hidden widths d_in · b and d_in); here each is one linear map of x_t, the
recurrence's definition (the mixer's in-projection and short conv feed it). Its h_0 is a
learned vector; here h_0 is zeros or the `state` passed in, as for every cell.

Engine: `DenseMonoid` with the blocks as a batch axis — transitions (B, T, n_blocks, b, b) and
updates (B, T, n_blocks, b, 1) — so the block-diagonal d × d transition is never formed: a
step costs n_blocks · b² = d · b, not d², and a composition n_blocks · b³ (the paper's
O(b³ h log T) parallel scan). States are (B, n_blocks, b) at the public boundary and
(B, n_blocks, b, 1) in the scan (`to_scan_state` / `from_scan_state`). Every engine method,
method="streamed", resets and sequence parallelism come from `Cell`.

Shapes: x (B, T, d_in); state (B, n_blocks, block_size); y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.base import Cell
from lrnn.cells.linear import init_linear, linear
from lrnn.scan import DenseMonoid


def normalise_columns(g: jax.Array, p: float) -> jax.Array:
    """Blocks g (..., b, b) divided by their largest column p-norm (columns: axis −1 indexes
    them, axis −2 runs down each). A zero block stays zero, with zero gradient."""
    largest = jnp.max(jnp.sum(jnp.abs(g) ** p, axis=-2), axis=-1)  # max_j Σ_i |g_ij|^p
    safe = jnp.where(largest > 0, largest, 1.0)
    return g / (safe ** (1.0 / p))[..., None, None]


@dataclasses.dataclass(frozen=True)
class BlockDiagonalLRNN(Cell):
    d_in: int
    block_size: int = 8
    p: float = 1.2
    center_columns: bool = True

    monoid = DenseMonoid()

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.positive_int("block_size", self.block_size)
        if self.d_in % self.block_size:
            raise ValueError(f"block_size must divide d_in = {self.d_in}, got block_size={self.block_size}")
        checks.in_range("p", self.p, 1.0, math.inf, closed_high=False)
        checks.flag("center_columns", self.center_columns)
        if self.center_columns and self.block_size < 2:
            raise ValueError("block_size must be at least 2 with center_columns=True (a centred 1 × 1 block "
                             f"is zero), got block_size={self.block_size}")

    @property
    def n_blocks(self) -> int:
        return self.d_in // self.block_size

    @property
    def state_shape(self) -> tuple:
        return (self.n_blocks, self.block_size)

    def init(self, key: jax.Array) -> dict:
        key_a, key_b = jax.random.split(key)
        b = self.block_size
        return {**init_linear(key_a, self.d_in, self.n_blocks * b * b, "A"),
                **init_linear(key_b, self.d_in, self.d_in, "B")}

    def transitions(self, params: dict, x: jax.Array) -> jax.Array:
        """A_t (B, T, n_blocks, b, b), each block's columns of p-norm ≤ 1."""
        b = self.block_size
        g = linear(params, "A", x).reshape(x.shape[:-1] + (self.n_blocks, b, b))
        if self.center_columns:
            g = g - jnp.mean(g, axis=-2, keepdims=True)
        return normalise_columns(g, self.p)

    def elements(self, params, x):
        update = linear(params, "B", x).reshape(x.shape[:-1] + (self.n_blocks, self.block_size, 1))
        return self.transitions(params, x), update

    def readout(self, params, h, x):
        return h.reshape(h.shape[:-2] + (self.d_in,))

    def to_scan_state(self, h: jax.Array) -> jax.Array:
        return h[..., None]

    def from_scan_state(self, s: jax.Array) -> jax.Array:
        return s[..., 0]

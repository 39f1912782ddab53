"""RG-LRU — the Real-Gated Linear Recurrent Unit of Hawk and Griffin (De et al. 2024, "Griffin:
Mixing Gated Linear Recurrences with Local Attention for Efficient Language Models").

    r_t = σ(W_a x_t + b_a)                   recurrence gate
    i_t = σ(W_x x_t + b_x)                   input gate
    log a_t = −c · softplus(−Λ) ⊙ r_t        i.e. a_t = a^{c r_t} with a = σ(Λ), c = 8
    h_t = a_t ⊙ h_{t−1} + √(1 − a_t²) ⊙ (i_t ⊙ x_t)
    y_t = h_t

W_a and W_x are block-diagonal, num_blocks blocks of (d_in/num_blocks)² stored as
(num_blocks, block, block) (Griffin uses one block per head; num_blocks=1 is dense).
1 − a_t² is computed as −expm1(2 log a_t), and its square root by `sqrt_bounded_derivative`,
whose derivative is clipped at 1000 (as Griffin's code, which needs it near a_t → 1 in bf16).

Initialisation: Λ such that a^c = σ(Λ)^c ~ U[min_rad, max_rad] (the paper: a^c uniform on
[0.9, 0.999]); that is softplus(−Λ) = −log(u)/c with u ~ U[min_rad, max_rad]. Gates as
Griffin's code (recurrentgemma, PyTorch version): W ~ N(0, 1/block), b = 0.
Λ is the recurrent param. Griffin describes no separate learning rate or weight decay for the
gates; its code builds them as ordinary block-diagonal linear layers, so they are regular here.

Differences from Griffin's code: its `a_param` (= −Λ) is initialised so that σ(Λ) — not
σ(Λ)^c — lies area-uniformly on the ring [0.9, 0.999]; here the paper's statement is followed.
Its code also skips the √(1 − a²) factor on the first token of each document; here every
token is normalised (a reset only restarts the state).

Shapes: x (B, T, d_in), h (B, T, d_in), y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.base import Cell
from lrnn.cells.initializers import inverse_softplus

MAX_SQRT_GRADIENT = 1000.0


@jax.custom_jvp
def sqrt_bounded_derivative(x: jax.Array) -> jax.Array:
    """√x whose derivative 1/(2√x) is clipped at MAX_SQRT_GRADIENT (x below 1/(4·1000²))."""
    return jnp.sqrt(x)


@sqrt_bounded_derivative.defjvp
def _sqrt_bounded_derivative_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    floor = 1.0 / (4.0 * MAX_SQRT_GRADIENT**2)
    return jnp.sqrt(x), dx * 0.5 * jax.lax.rsqrt(jnp.maximum(x, floor))


def block_diagonal_linear(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """x (..., H·K) through H blocks w (H, K, K), plus b (H·K,)."""
    blocks = x.reshape(x.shape[:-1] + w.shape[:2])
    return jnp.einsum("...hi,hij->...hj", blocks, w).reshape(x.shape) + b


@dataclasses.dataclass(frozen=True)
class RGLRU(Cell):
    d_in: int
    num_blocks: int = 1
    c: float = 8.0
    min_rad: float = 0.9
    max_rad: float = 0.999

    recurrent_params = frozenset({"Lambda"})

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.positive_int("num_blocks", self.num_blocks)
        if self.d_in % self.num_blocks:
            raise ValueError(f"num_blocks must divide d_in, got num_blocks={self.num_blocks} for d_in={self.d_in}")
        checks.in_range("c", self.c, 0.0, math.inf, closed_low=False, closed_high=False)
        checks.in_range("min_rad", self.min_rad, 0.0, 1.0, closed_low=False, closed_high=False)
        checks.in_range("max_rad", self.max_rad, 0.0, 1.0, closed_low=False, closed_high=False)
        if self.min_rad > self.max_rad:
            raise ValueError(f"min_rad must not exceed max_rad, got min_rad={self.min_rad} > max_rad={self.max_rad}")

    @property
    def state_shape(self) -> tuple:
        return (self.d_in,)

    def init(self, key: jax.Array) -> dict:
        k_lambda, k_a, k_x = jax.random.split(key, 3)
        h, k = self.num_blocks, self.d_in // self.num_blocks
        a_pow_c = jax.random.uniform(k_lambda, (self.d_in,), jnp.float32, self.min_rad, self.max_rad)
        return {
            "Lambda": -inverse_softplus(-jnp.log(a_pow_c) / self.c),
            "W_a": jax.random.normal(k_a, (h, k, k)) / math.sqrt(k),
            "b_a": jnp.zeros((self.d_in,)),
            "W_x": jax.random.normal(k_x, (h, k, k)) / math.sqrt(k),
            "b_x": jnp.zeros((self.d_in,)),
        }

    def elements(self, params, x):
        r = jax.nn.sigmoid(block_diagonal_linear(x, params["W_a"], params["b_a"]))
        i = jax.nn.sigmoid(block_diagonal_linear(x, params["W_x"], params["b_x"]))
        log_a = -self.c * jax.nn.softplus(-params["Lambda"]) * r
        return jnp.exp(log_a), sqrt_bounded_derivative(-jnp.expm1(2 * log_a)) * (i * x)

    def readout(self, params, h, x):
        return h

"""Aaren — attention as a recurrent neural network (Feng, Tung, Hajimirsadeghi, Ahmed, Bengio &
Mori 2024, "Attention as an RNN").

Softmax attention of one query over a growing prefix is an RNN, and all its prefix outputs are
one prefix scan. Aaren's query is not a function of the input: it is a parameter learned by
backpropagation, one per head and layer, so token t's output attends over tokens 1..t only and
the module is causal. Per head h (K = key_dim, V = value_dim, the widths per head):

    k_t = x_t W_k[h]     v_t = x_t W_v[h]        (K,), (V,)
    s_t = q_h · k_t / √K                          the score of token t
    o_t = Σ_{i≤t} e^{s_i} v_i / Σ_{i≤t} e^{s_i}   softmax attention of q_h over the prefix
    y_t = [o_t^1, …, o_t^H] W_o + b_o             heads concatenated, output projection

The state is the max-shifted pair of sums, per head, (m, u, w) with m = max_{i≤t} s_i,
u = Σ_{i≤t} e^{s_i − m}, w = Σ_{i≤t} e^{s_i − m} v_i, so o_t = w_t / u_t; one token updates it as

    m' = max(m, s_t),  u' = u e^{m − m'} + e^{s_t − m'},  w' = w e^{m − m'} + e^{s_t − m'} v_t

which is `lrnn.scan.SoftmaxMonoid` on the leaves (s_t, 1, v_t): `forward` runs it with any engine
method (O(T) states, never a T×T score matrix), `step` applies it once (O(H·V) memory). A given
state (m0, u0, w0) stands for the sums e^{m0} u0 and e^{m0} w0 of tokens before the sequence:
o_t = (e^{m0} w0 + Σ_{i≤t} e^{s_i} v_i) / (e^{m0} u0 + Σ_{i≤t} e^{s_i}), which needs u0 > 0 or the
state empty. `initial_state` is the empty sum (m = −∞, u = 0, w = 0): the first token then gives
(s_1, 1, v_1). (The engine's own empty element uses the lowest finite float for m instead of −∞
so that two empty elements never meet as e^{−∞+∞}; both stand for the same empty sum.)

Sizes: `n_heads` H (default 1); `d_key` = H·K and `d_value` = H·V, the key and value widths
across all heads (default d_in each, so K = V = d_in // H; n_heads must divide both), with the
widths per head K and V read as `key_dim` and `value_dim`.

Shapes: x (B, T, d_in); state (m (B, H), u (B, H), w (B, H, V)); y (B, T, d_out) with
d_out = d_in, or H·V = d_value without the output projection.

Params: "q" (H, K), "W_k" (d_in, H·K), "W_v" (d_in, H·V), and with `output_projection`
"W_o" (H·V, d_in), "b_o" (d_in,). Recurrent params: none (the paper trains Aaren as it trains
the Transformer it replaces, with no parameter groups).

Initialisation: the paper gives none, and no official code is public; Aaren stands where a
Transformer's attention stands (its experiments reuse the Transformer's hyperparameters), so
the projections are initialised as PyTorch's nn.MultiheadAttention initialises its own:
W_k, W_v Glorot-uniform (each its own matrix; PyTorch draws one for q, k and v stacked),
W_o as nn.Linear (U[±1/√(H·V)]), b_o = 0; the query q ~ N(0, 1), the scale a Transformer's
query x W_q has at init (unit inputs through a Glorot W_q).

Choices and deviations:
- The score is scaled by K^(−1/2) as in the Transformer's scaled dot-product attention; the
  paper writes s_i = q · k_i, which differs only by the reparametrisation q → q/√K of a free
  parameter (the init above sets the scores' scale either way).
- No key or value bias: a key bias b_k adds the constant q_h · b_k to every score of a head,
  which the softmax cancels, and a value bias passes through the convex combination unchanged,
  so W_o b_v would duplicate b_o.
- A stacked model (the paper's Figure 3) puts each Aaren where a Transformer block puts its
  self-attention, with residuals, norms and the feed-forward around it; those belong to the
  layer, not to this cell. The query of each layer is its own `q`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.base import Cell
from lrnn.cells.heads import HeadSizes
from lrnn.cells.initializers import xavier_uniform
from lrnn.cells.linear import init_weight
from lrnn.scan import SoftmaxMonoid


@dataclasses.dataclass(frozen=True)
class Aaren(HeadSizes, Cell):
    d_in: int
    n_heads: int = 1
    d_key: int | None = None  # H·K over all heads; default d_in (K = d_in // n_heads)
    d_value: int | None = None  # H·V over all heads; default d_in (V = d_in // n_heads)
    output_projection: bool = True

    monoid: ClassVar[SoftmaxMonoid] = SoftmaxMonoid()

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.head_sizes(self, self.d_in, self.d_in)
        checks.flag("output_projection", self.output_projection)

    @property
    def d_out(self) -> int:
        return self.d_in if self.output_projection else self.d_value

    def initial_state(self, batch_shape: tuple, dtype=jnp.float32) -> tuple:
        """The empty sum: m = −∞, u = 0 (each (*batch_shape, H)), w = 0 (*batch_shape, H, V)."""
        lead = tuple(batch_shape) + (self.n_heads,)
        return (jnp.full(lead, -jnp.inf, dtype), jnp.zeros(lead, dtype),
                jnp.zeros(lead + (self.value_dim,), dtype))

    def init(self, key: jax.Array) -> dict:
        k_q, k_k, k_v, k_o = jax.random.split(key, 4)
        h, d = self.n_heads, self.d_in
        params = {
            "q": jax.random.normal(k_q, (h, self.key_dim), jnp.float32),
            "W_k": xavier_uniform(k_k, d, self.d_key),
            "W_v": xavier_uniform(k_v, d, self.d_value),
        }
        if self.output_projection:
            params["W_o"] = init_weight(k_o, self.d_value, d)
            params["b_o"] = jnp.zeros((d,), jnp.float32)
        return params

    def scores(self, params: dict, x: jax.Array) -> jax.Array:
        """s (B, T, H): each head's learned query against every token's key, scaled by K^(−½)."""
        b, t, _ = x.shape
        k = (x @ params["W_k"]).reshape(b, t, self.n_heads, self.key_dim)
        return jnp.einsum("bthk,hk->bth", k, params["q"]) * self.key_dim ** -0.5

    def elements(self, params: dict, x: jax.Array, **_) -> tuple:
        """The softmax monoid's leaves (s (B, T, H), 1 (B, T, H), v (B, T, H, V))."""
        b, t, _ = x.shape
        s = self.scores(params, x)
        v = (x @ params["W_v"]).reshape(b, t, self.n_heads, self.value_dim)
        return s, jnp.ones_like(s), v

    def readout(self, params: dict, h: tuple, x: jax.Array, **_) -> jax.Array:
        """y (B, T, d_out) from the states (m, u, w): o = w / u per head, heads merged, W_o."""
        o = SoftmaxMonoid.normalised(h)
        o = o.reshape(o.shape[:-2] + (self.d_value,))
        return o @ params["W_o"] + params["b_o"] if self.output_projection else o

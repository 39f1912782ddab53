"""GLA — gated linear attention (Yang, Wang, Shen, Panda & Kim 2023, "Gated Linear Attention
Transformers with Hardware-Efficient Training").

Per head, with a data-dependent decay per key dim:

    q_t = K^(−½) · x_t W_q,   k_t = x_t W_k,   v_t = x_t W_v                  K, V: widths per head
    log α_t = log σ(x_t W_a1 W_a2 + b_a) / τ                                   α_t = σ(·)^(1/τ) ∈ (0, 1)
    S_t = Diag(α_t) S_{t−1} + k_t v_tᵀ,     o_t = S_tᵀ q_t                     S_t ∈ ℝ^(K × V)
    y_t = W_o (LayerNorm_h(o_t) ⊙ swish(x_t W_r + b_r))                        norm per head, no affine

The decay enters only as log α = log_sigmoid(·)/τ (never σ(·)^(1/τ) itself), so the chunkwise
form stays exact for strong decays (log α ≈ −20 per token is fine in float32 at chunk 64, see
`lrnn.cells.chunkwise.decay`).

Sizes (the paper's): low rank r = 16 (`gate_rank`), τ = 16 (`temperature`), key width
d_key = d_in/2 and value width d_value = d_in across all heads (fields to change them);
n_heads defaults to 4 (the official code's default).

Init, from the paper's code (berlino/gated_linear_attention, `post_init`): W_q, W_k, W_a1, W_a2
Xavier-uniform with gain 2^(−2.5); b_a, W_v, W_r, b_r, W_o as PyTorch's nn.Linear
(U[−1/√fan_in, 1/√fan_in]), which that code leaves them at. The decay at init is then close
to σ(0)^(1/16) = 0.957 per token.

Params: W_q (d_in, d_key), W_k (d_in, d_key), W_v (d_in, d_value), W_a1 (d_in, r),
W_a2 (r, d_key), b_a (d_key,), W_r (d_in, d_value), b_r (d_value,), W_o (d_value, d_in).
Recurrent params (they set the decay): W_a1, W_a2, b_a.

Choices where the paper's code and its later home (fla-org/flash-linear-attention) differ,
and this cell follows the paper: the output norm is a per-head LayerNorm without affine
(ε = 1e−5) — fla uses a per-head RMSNorm with a learnable scale; the output gate has a bias
b_r — fla has none; the q scaling is K^(−½) with K the key width per head (the paper's
code scales k by (d_in/H)^(−½), the same up to that constant; fla scales q by K^(−½)).

Shapes: x (B, T, d_in); state (B, H, K, V); y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.chunkwise import decay_attention
from lrnn.cells.heads import head_norm
from lrnn.cells.initializers import xavier_uniform
from lrnn.cells.linear import init_bias, init_linear, init_weight
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import MatrixDecayMonoid

LAYER_NORM_EPS = 1e-5
GATE_GAIN = 2.0**-2.5


@dataclasses.dataclass(frozen=True)
class GLA(MatrixCell):
    d_in: int
    n_heads: int = 4
    d_key: int | None = None
    d_value: int | None = None
    gate_rank: int = 16
    temperature: float = 16.0

    recurrent_params = frozenset({"W_a1", "W_a2", "b_a"})
    monoid = MatrixDecayMonoid()

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.head_sizes(self, self.d_in // 2, self.d_in)
        checks.positive_int("gate_rank", self.gate_rank)
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, numbers.Real) \
                or not 0 < self.temperature < float("inf"):
            raise ValueError(f"temperature must be a positive finite number, got {self.temperature!r}")

    def init(self, key: jax.Array) -> dict:
        k_q, k_k, k_v, k_a1, k_a2, k_ba, k_r, k_o = jax.random.split(key, 8)
        d, dk, dv, r = self.d_in, self.d_key, self.d_value, self.gate_rank
        return {
            "W_q": xavier_uniform(k_q, d, dk, GATE_GAIN),
            "W_k": xavier_uniform(k_k, d, dk, GATE_GAIN),
            "W_v": init_weight(k_v, d, dv),
            "W_a1": xavier_uniform(k_a1, d, r, GATE_GAIN),
            "W_a2": xavier_uniform(k_a2, r, dk, GATE_GAIN),
            "b_a": init_bias(k_ba, r, dk),
            **init_linear(k_r, d, dv, "r"),
            "W_o": init_weight(k_o, dv, d),
        }

    # ---- projections -------------------------------------------------------------------------
    def _heads(self, y, width):
        return y.reshape(y.shape[:-1] + (self.n_heads, width))

    def log_decay(self, params, x) -> jax.Array:
        """log α = log σ(x W_a1 W_a2 + b_a) / τ, (B, T, H, K), all < 0."""
        logits = (x @ params["W_a1"]) @ params["W_a2"] + params["b_a"]
        return self._heads(jax.nn.log_sigmoid(logits) / self.temperature, self.key_dim)

    def _qkv(self, params, x):
        """q (scaled), k (B, T, H, K) and v (B, T, H, V)."""
        q = self._heads(x @ params["W_q"], self.key_dim) * self.key_dim**-0.5
        k = self._heads(x @ params["W_k"], self.key_dim)
        v = self._heads(x @ params["W_v"], self.value_dim)
        return q, k, v

    # ---- the recurrence ----------------------------------------------------------------------
    def elements(self, params, x):
        _, k, v = self._qkv(params, x)
        return jnp.exp(self.log_decay(params, x)), k[..., :, None] * v[..., None, :]

    def readout(self, params, states, x):
        q, _, _ = self._qkv(params, x)
        return self.output(params, jnp.einsum("bthk,bthkv->bthv", q, states), x)

    def output(self, params, o, x):
        """y (B, T, d_in) from o (B, T, H, V): W_o(LayerNorm_h(o) ⊙ swish(x W_r + b_r))."""
        normed = head_norm(o, LAYER_NORM_EPS).reshape(o.shape[:2] + (self.d_value,))
        gate = jax.nn.silu(x @ params["W_r"] + params["b_r"])
        return (normed * gate) @ params["W_o"]

    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        q, k, v, log_decay = (jnp.swapaxes(a, 1, 2) for a in (*self._qkv(params, x), self.log_decay(params, x)))
        o, final = decay_attention(q, k, v, log_decay, state, chunk_size=chunk_size, method=method, resets=resets,
                                   sequence_axis=sequence_axis)
        return self.output(params, jnp.swapaxes(o, 1, 2), x), final

"""RetNet — multi-scale retention (Sun et al. 2023, "Retentive Network: A Successor to
Transformer for Large Language Models").

Per head h, with fixed decay γ_h = 1 − 2^(−5−h) and rotary frequencies θ_m:

    q_t = x_t W_q,   k_t = K^(−½) · x_t W_k,   v_t = x_t W_v          K: key width per head
    q^c_t, k^c_t ∈ ℂ^(K/2)      key dims paired into complex numbers: z_m = u_{2m} + i·u_{2m+1}
    S_t = γ_h e^{−iθ} ⊙ S_{t−1} + k^c_t v_tᵀ                          S_t ∈ ℂ^(K/2 × V), rows decay
    o_t = Re(conj(q^c_t)ᵀ S_t)                                         retention, (V,) per head
    y_t = W_o (swish(x_t W_g) ⊙ GroupNorm(o_t))                        one group per head

Why this is the paper's retention with rotary positions: the paper (and its code) rotates q and
k by their absolute position n, q_n e^{inθ} and k_m e^{imθ}, and scores with γ^{n−m}
Re(q^c_n e^{inθ} conj(k^c_m e^{imθ})) = Re(conj(q^c_n) k^c_m (γ e^{−iθ})^{n−m}). The rotation
thus moves into a rotating complex decay γ_h e^{−iθ_m} per key pair, and neither the training
path nor `step` needs a position counter; the state is complex (complex_state = True). The
parallel form (Q Kᵀ ⊙ D) V with the rotation applied by absolute position is checked against
this cell in tests/cells/test_retnet.py.

Constants, from the paper's code (microsoft/torchscale, RetNetRelPos / MultiScaleRetention):
γ_h = 1 − 2^(−5−h) for h = 0..H−1; θ_m = 10000^(−m/(K/2 − 1)) for m = 0..K/2−1 (torchscale's
`10000 ** -linspace(0, 1, K/2)`, shared by the two dims of a pair; θ = 1 when K = 2); pairs are
adjacent dims (2m, 2m+1) as in torchscale's `rotate_every_two`. Neither γ nor θ is a param.
GroupNorm has no affine and ε = 1e−6 (torchscale's `layernorm_eps`).

Init (torchscale `reset_parameters`): W_q, W_k, W_v, W_g Xavier-uniform with gain 2^(−2.5),
W_o Xavier-uniform with gain 1; no biases. Params: W_q (d_in, d_key), W_k (d_in, d_key),
W_v (d_in, d_value), W_g (d_in, d_value), W_o (d_value, d_in). No recurrent params (the decay
is fixed). Sizes: `d_key` (default d_in) and `d_value` (default 2·d_in, the paper's value
width) across all heads; K = d_key / n_heads must be even.

Deviations from the paper and its code, with the reason:
- The paper's extra normalisations (the decay mask divided by √(Σ_m D_nm), the scores
  divided by max(|Σ_m (QKᵀ⊙D)_nm|, 1), the running scale of its recurrent form) are left
  out: each is a positive factor per token and head, which the per-head GroupNorm removes
  (up to its ε), so they are numerics of the reference code, not the model. lrnn's
  chunkwise form is stable without them (every decay factor it forms is ≤ 1).
- The paper writes GroupNorm; torchscale's latest code uses RMSNorm per head. This cell
  centres (GroupNorm / LayerNorm per head, no affine), as the paper and the first release.
- The default n_heads (4) is a small-model choice; the paper's models use key head width 256
  (n_heads = d_in / 256).

Convolution mode: the decay is fixed, so retention's time-invariant kernel is the decay mask
D_ts = (γ_h e^{−iθ})^{t−s} (s ≤ t) of the parallel form o = (Q Kᵀ ⊙ D) V. The chunkwise form
with one chunk of T tokens is exactly that form (its intra-chunk scores are Q Kᵀ ⊙ D, the
initial state enters as (q ⊙ e^{b}) S_0), so `forward(..., method="convolution")` runs it
(`MatrixCell.forward`): no scan, O(T²) memory per head.

Shapes: x (B, T, d_in); state (B, H, K/2, V) complex; y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells import checks
from lrnn.cells.chunkwise import decay_attention
from lrnn.cells.convolution import TimeInvariant
from lrnn.cells.heads import head_norm
from lrnn.cells.initializers import xavier_uniform
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import MatrixDecayMonoid

GROUP_NORM_EPS = 1e-6
QKVG_GAIN = 2.0**-2.5


def retention_decays(n_heads: int) -> np.ndarray:
    """γ_h = 1 − 2^(−5−h), h = 0..n_heads−1 (float64)."""
    return 1.0 - 2.0 ** (-5.0 - np.arange(n_heads))


def rotary_frequencies(n_pairs: int) -> np.ndarray:
    """θ_m = 10000^(−m/(n_pairs − 1)), m = 0..n_pairs−1 (torchscale's linspace; θ = 1 for one pair)."""
    return 10000.0 ** -np.linspace(0.0, 1.0, n_pairs)


def to_complex(u: jax.Array) -> jax.Array:
    """(..., K) real -> (..., K/2) complex, z_m = u_{2m} + i·u_{2m+1}."""
    return u[..., 0::2] + 1j * u[..., 1::2]


@dataclasses.dataclass(frozen=True)
class RetNet(TimeInvariant, MatrixCell):
    d_in: int
    n_heads: int = 4
    d_key: int | None = None
    d_value: int | None = None

    complex_state = True
    monoid = MatrixDecayMonoid()

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.head_sizes(self, self.d_in, 2 * self.d_in)
        if (self.d_key // self.n_heads) % 2:
            raise ValueError(f"d_key must give an even key width per head (pairs of dims rotate together), "
                             f"got d_key / n_heads = {self.d_key // self.n_heads}")

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def state_shape(self) -> tuple:
        return (self.n_heads, self.key_dim // 2, self.value_dim)

    def init(self, key: jax.Array) -> dict:
        k_q, k_k, k_v, k_g, k_o = jax.random.split(key, 5)
        d, dk, dv = self.d_in, self.d_key, self.d_value
        return {
            "W_q": xavier_uniform(k_q, d, dk, QKVG_GAIN),
            "W_k": xavier_uniform(k_k, d, dk, QKVG_GAIN),
            "W_v": xavier_uniform(k_v, d, dv, QKVG_GAIN),
            "W_g": xavier_uniform(k_g, d, dv, QKVG_GAIN),
            "W_o": xavier_uniform(k_o, dv, d, 1.0),
        }

    # ---- the recurrence --------------------------------------------------------------------
    def log_decay(self, dtype) -> jax.Array:
        """log(γ_h e^{−iθ_m}) = log γ_h − iθ_m, (H, K/2) complex."""
        gamma = np.log(retention_decays(self.n_heads))[:, None]
        theta = rotary_frequencies(self.key_dim // 2)[None, :]
        return jnp.asarray(gamma - 1j * theta, jnp.promote_types(dtype, jnp.complex64))

    def _heads(self, params, name, x, width):
        """x W_<name> as (B, T, H, width)."""
        y = x @ params[f"W_{name}"]
        return y.reshape(y.shape[:-1] + (self.n_heads, width))

    def _qkv(self, params, x):
        """conj(q^c), k^c (B, T, H, K/2) complex and v (B, T, H, V)."""
        q = self._heads(params, "q", x, self.key_dim)
        k = self._heads(params, "k", x, self.key_dim) * self.key_dim**-0.5
        v = self._heads(params, "v", x, self.value_dim)
        return jnp.conj(to_complex(q)), to_complex(k), v

    def elements(self, params, x):
        _, k, v = self._qkv(params, x)
        decay = jnp.broadcast_to(jnp.exp(self.log_decay(x.dtype)), k.shape)
        return decay, k[..., :, None] * v[..., None, :]

    def readout(self, params, states, x):
        q_conj, _, _ = self._qkv(params, x)
        o = jnp.einsum("bthk,bthkv->bthv", q_conj, states).real
        return self.output(params, o, x)

    def output(self, params, o, x):
        """y (B, T, d_in) from the retention o (B, T, H, V): W_o(swish(x W_g) ⊙ GroupNorm(o))."""
        normed = head_norm(o, GROUP_NORM_EPS).reshape(o.shape[:2] + (self.d_value,))
        return (jax.nn.silu(x @ params["W_g"]) * normed) @ params["W_o"]

    # ---- the training path -------------------------------------------------------------------
    def retention(self, params, x, state, *, chunk_size: int, method: str = "auto", resets=None,
                  sequence_axis: str | None = None):
        """The retention o (B, T, H, V) (before GroupNorm) and the final state, chunkwise, for
        x (B, T, d_in) in a float32 or wider dtype and a complex state (B, H, K/2, V)."""
        q_conj, k, v = (jnp.swapaxes(a, 1, 2) for a in self._qkv(params, x))
        # The barrier keeps XLA from constant-folding the chunks' cumulative sums of this constant
        # (B·H·T·K/2 of them): 6.8 s instead of 1.9 s to compile the forward at T = 16384, D = 64.
        decay = jax.lax.optimization_barrier(self.log_decay(x.dtype))
        log_decay = jnp.broadcast_to(decay[:, None, :], k.shape)
        o, final = decay_attention(q_conj, k, v, log_decay, state, chunk_size=chunk_size,
                                   method=method, resets=resets, sequence_axis=sequence_axis)
        return jnp.swapaxes(o.real, 1, 2), final

    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        o, final = self.retention(params, x, state, chunk_size=chunk_size, method=method, resets=resets,
                                  sequence_axis=sequence_axis)
        return self.output(params, o, x), final


__all__ = ["RetNet", "retention_decays", "rotary_frequencies", "to_complex"]

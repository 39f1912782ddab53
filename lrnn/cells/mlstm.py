"""mLSTM — the matrix-memory LSTM of xLSTM (Beck et al. 2024, "xLSTM: Extended Long
Short-Term Memory"), with its exponential input gate and max-stabiliser.

Per head (K×V memory C, normaliser n (K,), scalar gates):

    q_t = x_t W_q      k_t = K^(−½) x_t W_k      v_t = x_t W_v          (no biases)
    ĩ_t = x_t W_i + b_i        i_t = exp(ĩ_t)                            input gate
    f̃_t = x_t W_f + b_f        f_t = σ(f̃_t),  log f_t = log σ(f̃_t)      forget gate
    C_t = f_t C_{t−1} + i_t k_t v_tᵀ
    n_t = f_t n_{t−1} + i_t k_t
    h̃_t = C_tᵀ q_t / max(|n_tᵀ q_t|, 1)
    y_t = W_out (σ(x_t W_o + b_o) ⊙ LayerNorm_heads(h̃_t) · scale) + b_out      output gate, per-head norm

Stabilised form (the state this cell carries): C_t = e^{m_t} C̃_t, n_t = e^{m_t} ñ_t with

    m_t = max(log f_t + m_{t−1}, ĩ_t)
    C̃_t = e^{log f_t + m_{t−1} − m_t} C̃_{t−1} + e^{ĩ_t − m_t} k_t v_tᵀ     (ñ_t alike)
    h̃_t = C̃_tᵀ q_t / max(|ñ_tᵀ q_t|, e^{−m_t})

every exponent ≤ 0, so a huge input gate (ĩ ≫ 88, where e^ĩ overflows float32) stays finite.
The public state is the tuple (C̃ (B, H, K, V), ñ (B, H, K), m (B, H)).

`initial_state` gives m = −∞ (with C̃ = 0, ñ = 0): the zero state, whose log scale is −∞.
The xLSTM code starts from m_0 = 0 instead; since C = e^m C̃ and n = e^m ñ are both zero,
the two represent the same state and give the same outputs (h̃ is invariant to the
representation), but the first stabiliser then reads max(log f_1, ĩ_1) rather than ĩ_1. With
m_0 = −∞ the state after a reset (`resets`) equals the state of a fresh sequence exactly,
m included, and `forward` from `initial_state` equals `forward` with no state.

Training path: `lrnn.cells.chunkwise.stabilised_attention` with v augmented by a column
of ones, [v_t, 1], so that the normaliser rides along as the last column of the memory
([C̃ | ñ] is K×(V+1)); then h̃ = numerator[:V] / max(|numerator[V]|, e^{−m}), evaluated for
m < 0 as numerator[:V] e^m / max(|numerator[V]| e^m, 1) (the same value; no e^{−m} = ∞, and
so no NaN gradient, once an input gate shut far below −88 drives m there). Per-token
definition (`forward_materialised`, `step`): `StabilisedDecayMonoid` with leaves
(log f_t, ĩ_t, k_t [v_t, 1]ᵀ); `to_scan_state` / `from_scan_state` map (C̃, ñ, m) ↔
(m, [C̃ | ñ]).

Sizes: `n_heads` H (default 1); `d_key` = H·K and `d_value` = H·V, the key and value widths
across all heads (default d_in each, so K = V = d_in // H; n_heads must divide both), with the
widths per head K and V read as `key_dim` and `value_dim`; the output has d_out = d_in
channels.

Initialisation (the xLSTM code): W_q, W_k, W_v, W_o ~ N(0, 2/(5 d_in)) ("small init"), b_o = 0;
W_i = 0, b_i ~ N(0, 0.1²); W_f = 0, b_f = linspace(3, 6, H) over the heads (forget gates
σ(3)…σ(6) ≈ 0.95…0.998 at init); the norm's scale 1; W_out ~ N(0, (2/√d_in)²) ("Wang init"
with one block; a stack of L blocks divides by L), b_out = 0. Params: W_q, W_k (d_in, H·K),
W_v, W_o (d_in, H·V), b_o (H·V,), W_i, W_f (d_in, H), b_i, b_f (H,), norm_scale (H·V,),
W_out (H·V, d_in), b_out (d_in,). Recurrent params: W_i, b_i, W_f, b_f (the gates that set
the decay and the input scale of the recurrence).

Shapes: x (B, T, d_in); state (C̃ (B, H, K, V), ñ (B, H, K), m (B, H)); y (B, T, d_in).

Deviations and choices:
- The layer around the cell is the one of the xLSTM 7B code (q, k, v, output gate and the
  two scalar gates projected from the input; the output gate applied after the per-head
  norm; an output projection), minus the short convolution, which belongs to the layer;
  the original xLSTM block's up-projection, learnable skip and SiLU branch (which stand in
  for the output gate there) are left to the layer too. The gates read x directly (the
  original code feeds them [q, k, v], all linear in x once the convolution is gone).
- No ε is added to the denominator (the xLSTM code adds 1e−6): the equations are the paper's,
  and max(|nᵀq|, 1) is never below 1.
- The per-head norm is a LayerNorm over each head's V channels (ε = 1e−5) with a scale and
  no bias, as the xLSTM code's MultiHeadLayerNorm.
- The xLSTM 7B code soft-caps the gate pre-activations (15 tanh(z/15)); the paper does not,
  nor does this cell (the stabiliser makes any ĩ safe).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.chunkwise import stabilised_attention
from lrnn.cells.heads import head_norm, split_heads
from lrnn.cells.linear import linear
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import StabilisedDecayMonoid

NORM_EPS = 1e-5
FORGET_BIAS_RANGE = (3.0, 6.0)
INPUT_BIAS_STD = 0.1


@dataclasses.dataclass(frozen=True)
class MLSTM(MatrixCell):
    d_in: int
    n_heads: int = 1
    d_key: int | None = None
    d_value: int | None = None

    monoid = StabilisedDecayMonoid()
    recurrent_params = frozenset({"W_i", "b_i", "W_f", "b_f"})

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.head_sizes(self, self.d_in, self.d_in)

    @property
    def state_shape(self) -> tuple:
        return ((self.n_heads, self.key_dim, self.value_dim), (self.n_heads, self.key_dim), (self.n_heads,))

    def initial_state(self, batch_shape: tuple, dtype=jnp.float32):
        """(C̃, ñ, m) = (0, 0, −∞): the zero state (its log scale m is −∞)."""
        batch = tuple(batch_shape)
        h, k, v = self.n_heads, self.key_dim, self.value_dim
        return (jnp.zeros(batch + (h, k, v), dtype), jnp.zeros(batch + (h, k), dtype),
                jnp.full(batch + (h,), -jnp.inf, dtype))

    def init(self, key: jax.Array) -> dict:
        d, h, hk, hv = self.d_in, self.n_heads, self.d_key, self.d_value
        k_q, k_k, k_v, k_o, k_i, k_out = jax.random.split(key, 6)
        small = jnp.sqrt(2.0 / (5.0 * d))
        return {
            "W_q": small * jax.random.normal(k_q, (d, hk)),
            "W_k": small * jax.random.normal(k_k, (d, hk)),
            "W_v": small * jax.random.normal(k_v, (d, hv)),
            "W_o": small * jax.random.normal(k_o, (d, hv)),
            "b_o": jnp.zeros((hv,)),
            "W_i": jnp.zeros((d, h)),
            "b_i": INPUT_BIAS_STD * jax.random.normal(k_i, (h,)),
            "W_f": jnp.zeros((d, h)),
            "b_f": jnp.linspace(*FORGET_BIAS_RANGE, h),
            "norm_scale": jnp.ones((hv,)),
            "W_out": 2.0 / jnp.sqrt(d) * jax.random.normal(k_out, (hv, d)),
            "b_out": jnp.zeros((d,)),
        }

    # ---- the pieces both paths share -----------------------------------------------------
    def _heads(self, z: jax.Array) -> jax.Array:
        """(B, T, H·d) -> (B, T, H, d)."""
        return z.reshape(z.shape[:-1] + (self.n_heads, -1))

    def gates(self, params: dict, x: jax.Array) -> tuple:
        """(log f, ĩ), each (B, T, H): the forget gate's log and the input gate's pre-activation."""
        return jax.nn.log_sigmoid(linear(params, "f", x)), linear(params, "i", x)

    def _keys(self, params: dict, x: jax.Array) -> jax.Array:
        return linear(params, "k", x) / jnp.sqrt(jnp.asarray(self.key_dim, x.dtype))

    def _output(self, params: dict, h: jax.Array, x: jax.Array) -> jax.Array:
        """y (B, T, d_in) from h̃ (B, T, H, V)."""
        z = head_norm(h, NORM_EPS).reshape(h.shape[:2] + (-1,)) * params["norm_scale"]
        return linear(params, "out", jax.nn.sigmoid(linear(params, "o", x)) * z)

    @staticmethod
    def _normalise(numerator, normaliser, m):
        """h̃ = numerator / max(|normaliser|, e^{−m}), written with e^{−|m|} ≤ 1 only: for m < 0
        as numerator e^m / max(|normaliser| e^m, 1), so that a very negative m (an input gate
        shut far below −88 in float32) gives h̃ → 0 with finite gradients rather than a
        division by e^{−m} = ∞."""
        r = jnp.exp(-jnp.abs(m))
        magnitude = jnp.abs(normaliser)
        positive = m >= 0
        scale = jnp.where(positive, 1.0, r) / jnp.where(positive, jnp.maximum(magnitude, r),
                                                        jnp.maximum(magnitude * r, 1.0))
        return numerator * scale[..., None]

    # ---- per-token definition ------------------------------------------------------------
    def to_scan_state(self, state):
        c, n, m = state
        return m, jnp.concatenate([c, n[..., None]], axis=-1)

    def from_scan_state(self, scan_state):
        m, s = scan_state
        return s[..., :-1], s[..., -1], m

    def elements(self, params, x):
        log_f, log_i = self.gates(params, x)
        k = self._heads(self._keys(params, x))
        v = self._heads(linear(params, "v", x))
        v1 = jnp.concatenate([v, jnp.ones_like(v[..., :1])], axis=-1)
        return log_f, log_i, k[..., :, None] * v1[..., None, :]

    def readout(self, params, states, x):
        c, n, m = states
        q = self._heads(linear(params, "q", x))
        numerator = jnp.einsum("bthk,bthkv->bthv", q, c)
        normaliser = jnp.einsum("bthk,bthk->bth", q, n)
        return self._output(params, self._normalise(numerator, normaliser, m), x)

    # ---- training path -------------------------------------------------------------------
    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        h = self.n_heads
        q = split_heads(linear(params, "q", x), h)
        k = split_heads(self._keys(params, x), h)
        v = split_heads(linear(params, "v", x), h)
        v1 = jnp.concatenate([v, jnp.ones_like(v[..., :1])], axis=-1)
        log_f, log_i = (jnp.swapaxes(g, 1, 2) for g in self.gates(params, x))  # (B, H, T)
        (numerator, m), final = stabilised_attention(q, k, v1, log_f, log_i, self.to_scan_state(state),
                                                     chunk_size=chunk_size, method=method, resets=resets,
                                                     sequence_axis=sequence_axis)
        h_tilde = self._normalise(numerator[..., :-1], numerator[..., -1], m)  # (B, H, T, V)
        return self._output(params, jnp.swapaxes(h_tilde, 1, 2), x), self.from_scan_state(final)

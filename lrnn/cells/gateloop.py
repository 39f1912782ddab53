"""GateLoop — Katsch 2023, "GateLoop: Fully Data-Controlled Linear Recurrence for Sequence
Modeling" (ICLR 2024): linear attention whose state transition is a data-controlled complex
gate per key dimension.

Per head (K×V state S, complex; q, k, v real):

    q_t = x_t W_q      k_t = x_t W_k      v_t = x_t W_v            (no biases)
    a_t = σ(x_t W_a + b_a) · exp(i (x_t W_θ + b_θ))                (K,) magnitude in (0, 1)
    S_t = Diag(a_t) S_{t−1} + k_t v_tᵀ
    o_t = Re(S_tᵀ q_t)                                             (V,)
    y_t = W_o (GroupNorm(o_t) ⊙ SiLU(x_t W_g + b_g)) + b_o

with o_t gathered over heads to H·V channels before the norm. GroupNorm has `norm_groups`
groups over the H·V channels (mean and variance per group, ε = 1e−5) and an affine
scale and bias per channel.

Training path: `lrnn.cells.chunkwise.decay_attention` with the complex log decay
log a_t = log σ(x_t W_a + b_a) + i (x_t W_θ + b_θ), whose real part is ≤ 0 as the op
requires (log-sigmoid, never the log of a computed sigmoid). The per-token definition
(`forward_materialised`, `step`) is `MatrixDecayMonoid` with complex leaves (a_t, k_t v_tᵀ).

Sizes: `n_heads` H (default d_in: the paper's "max-headed" GateLoop, one key and one value
per head, so each head's state is a single complex number); `d_key` = H·K and `d_value` = H·V,
the key and value widths across all heads (default d_in each, so K = V = d_in // H; n_heads
must divide both), with the widths per head K and V read as `key_dim` and `value_dim`. The
output has d_out = d_in channels.

Initialisation: every projection as PyTorch's nn.Linear (lrnn.cells.linear,
U[±1/√fan_in] for weights and biases); the norm's scale 1 and bias 0. The paper states no
init. Params: W_q, W_k (d_in, H·K), W_v (d_in, H·V), W_a, b_a, W_theta, b_theta (d_in, H·K;
(H·K,)), W_g, b_g (d_in, H·V; (H·V,)), norm_scale, norm_bias (H·V,), W_o (H·V, d_in),
b_o (d_in,). Recurrent params (smaller learning rate, no weight decay): W_a, b_a, W_theta,
b_theta, the state-transition projection (a lower learning rate for it is the paper's
suggestion, as reported by the implementations the author reviewed).

Shapes: x (B, T, d_in); state (B, H, K, V) complex (complex64, or complex128 under float64);
y (B, T, d_in).

Deviations and choices where the paper leaves room:
- The public implementations (among them one the author reviewed) form a_t from one
  complex projection z_t in polar form, σ(|z_t|)·e^{i arg z_t}. Here magnitude and phase
  have their own real projections, σ(x W_a + b_a)·e^{i(x W_θ + b_θ)}: the same family of
  gates, but smooth everywhere (|z| and arg z are not differentiable at z = 0), with
  magnitudes over all of (0, 1) rather than [½, 1), and a log decay that is exactly a
  log-sigmoid plus an angle, the form the chunkwise op takes.
- The output is Re(S_tᵀ q_t) per head, then the norm, the SiLU gate and a real output
  projection. (Some implementations gate and project the complex readout and take the real
  part last; with a real gate and projection the two agree, except through the norm.)
- The norm is a GroupNorm over the H·V output channels with `norm_groups` groups (default
  1, a LayerNorm over all channels): in the max-headed setting a norm per head would see
  one channel and return zero. `norm_groups = n_heads` gives the per-head norm of RetNet
  and GLA.
- The short convolution and the layer's residual, pre-norm and channel mixer belong to the
  layer, not to this cell.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.chunkwise import decay_attention
from lrnn.cells.heads import head_norm, merge_heads, split_heads
from lrnn.cells.linear import init_linear, linear
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import MatrixDecayMonoid

NORM_EPS = 1e-5


def group_norm(z: jax.Array, groups: int, scale: jax.Array, bias: jax.Array, eps: float = NORM_EPS) -> jax.Array:
    """GroupNorm over the last axis of z (..., C): C/groups consecutive channels per group,
    then a per-channel scale and bias."""
    shape = z.shape
    z = head_norm(z.reshape(shape[:-1] + (groups, shape[-1] // groups)), eps).reshape(shape)
    return z * scale + bias


@dataclasses.dataclass(frozen=True)
class GateLoop(MatrixCell):
    d_in: int
    n_heads: int | None = None
    d_key: int | None = None
    d_value: int | None = None
    norm_groups: int = 1

    monoid = MatrixDecayMonoid()
    complex_state = True
    recurrent_params = frozenset({"W_a", "b_a", "W_theta", "b_theta"})

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        if self.n_heads is None:
            object.__setattr__(self, "n_heads", self.d_in)
        checks.head_sizes(self, self.d_in, self.d_in)
        checks.positive_int("norm_groups", self.norm_groups)
        channels = self.d_value
        if channels % self.norm_groups or channels // self.norm_groups < 2:
            raise ValueError(f"norm_groups must divide the d_value = {channels} output channels "
                             f"into groups of at least 2 (a group of one normalises to 0), got {self.norm_groups}")

    def init(self, key: jax.Array) -> dict:
        d, hk, hv = self.d_in, self.d_key, self.d_value
        keys = jax.random.split(key, 7)
        return {
            **init_linear(keys[0], d, hk, "q", bias=False),
            **init_linear(keys[1], d, hk, "k", bias=False),
            **init_linear(keys[2], d, hv, "v", bias=False),
            **init_linear(keys[3], d, hk, "a"),
            **init_linear(keys[4], d, hk, "theta"),
            **init_linear(keys[5], d, hv, "g"),
            "norm_scale": jnp.ones((hv,)),
            "norm_bias": jnp.zeros((hv,)),
            **init_linear(keys[6], hv, d, "o"),
        }

    # ---- the pieces both paths share -----------------------------------------------------
    def log_decay(self, params: dict, x: jax.Array) -> jax.Array:
        """log a (B, T, H·K) complex: log σ(x W_a + b_a) + i (x W_θ + b_θ)."""
        return jax.nn.log_sigmoid(linear(params, "a", x)) + 1j * linear(params, "theta", x)

    def _heads(self, z: jax.Array) -> jax.Array:
        """(B, T, H·d) -> (B, T, H, d)."""
        return z.reshape(z.shape[:-1] + (self.n_heads, -1))

    def _output(self, params: dict, o: jax.Array, x: jax.Array) -> jax.Array:
        """y (B, T, d_in) from the real readout o (B, T, H·V)."""
        z = group_norm(o, self.norm_groups, params["norm_scale"], params["norm_bias"])
        return linear(params, "o", z * jax.nn.silu(linear(params, "g", x)))

    # ---- per-token definition ------------------------------------------------------------
    def elements(self, params, x):
        decay = jnp.exp(self._heads(self.log_decay(params, x)))  # (B, T, H, K)
        k = self._heads(linear(params, "k", x))
        v = self._heads(linear(params, "v", x))
        update = (k[..., :, None] * v[..., None, :]).astype(decay.dtype)  # (B, T, H, K, V)
        return decay, update

    def readout(self, params, states, x):
        q = self._heads(linear(params, "q", x))
        o = jnp.einsum("bthk,bthkv->bthv", q, states).real
        return self._output(params, o.reshape(o.shape[:2] + (-1,)), x)

    # ---- training path -------------------------------------------------------------------
    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        h = self.n_heads
        q, k, v = (split_heads(linear(params, name, x), h) for name in ("q", "k", "v"))
        log_decay = split_heads(self.log_decay(params, x), h)
        o, final = decay_attention(q, k, v, log_decay, state, chunk_size=chunk_size, method=method, resets=resets,
                                   sequence_axis=sequence_axis)
        return self._output(params, merge_heads(o.real), x), final

"""HGRN2 — HGRN with state expansion (Qin, Yang, Sun, Shen, Li, Sun & Zhong 2024, "HGRN2: Gated
Linear RNNs with State Expansion").

HGRN's gated recurrence h_t = f_t ⊙ h_{t−1} + (1 − f_t) ⊙ i_t, with the forget/input product
widened to an outer product, read out by the output gate. Per head:

    f_t = γ + (1 − γ) σ(x_t W_f + b_f)         forget gate, (K,) per head; γ ∈ [0, 1) the layer's lower bound
    i_t = SiLU(x_t W_i + b_i)                   input, (V,) per head: the value
    q_t = σ(x_t W_q + b_q)                      output gate, (K,) per head: the query
    S_t = Diag(f_t) S_{t−1} + (1 − f_t) i_tᵀ    S_t ∈ ℝ^(K × V); 1 − f_t is the key
    o_t = S_tᵀ q_t
    y_t = W_o LayerNorm([o_t over heads]) + b_o     LayerNorm over the full width, with affine

Heads and sizes follow the paper's code (Doraemonzzz/hgru2-pytorch `Hgru2_1d`, which fla's
HGRN2 layer mirrors): the head width is the expand ratio, K = V = expand_ratio, and
n_heads = d_in / expand_ratio, so the state holds d_in · expand_ratio numbers in all (HGRN's d_in
times the expand ratio). `expand_ratio` defaults to 128, the paper's language-model setting, or
to d_in (one head) when d_in < 128.

The lower bound is a per-call input, as for `lrnn.cells.hgrn.HGRN`:
`forward(params, x, lower_bound=γ)`, `step(params, state, x_t, lower_bound=γ)`; a scalar or a
(d_in,) array in [0, 1) (values checked when concrete), one per forget channel. A stack of L
layers takes γ^k = `lrnn.cells.hgrn.lower_bounds(logits)[k]` (layer 0 has bound 0).

Numerics: the chunkwise form takes log f and k = 1 − f, both computed from z = x W_f + b_f
without cancellation: 1 − f = (1 − γ) σ(−z) exactly; log f = log1p(−(1 − f)) where f ≥ ½
(accurate as f → 1), and log(γ + (1 − γ) σ(z)) where f < ½ (a sum of non-negative terms,
accurate down to the floor below), with smooth derivatives in γ and z everywhere on [0, 1).

Init: every projection as PyTorch's nn.Linear (U[−1/√fan_in, 1/√fan_in], weights and biases),
as the paper's code (its one `in_proj` to 3·d_in has the same distribution as W_i, W_q,
W_f); LayerNorm scale 1, bias 0, ε = 1e−5. Params: W_i, W_q, W_f (d_in, d_in), b_i, b_q, b_f
(d_in,), norm_scale, norm_bias (d_in,), W_o (d_in, d_in), b_o (d_in,). Recurrent params (they set
the forget gate): W_f, b_f.

Choices and deviations, with the reason:
- The module follows `Hgru2_1d`'s defaults (σ output gate, SiLU input, LayerNorm, biases),
  which are the paper's equations. Its language-model configuration swaps in a SiLU output
  gate, an identity input activation, a scale-free RMSNorm and no biases; not offered here.
- No q scaling: the paper's code passes scale 1 to the GLA kernel (fla's layer leaves the
  kernel's default K^(−½); LayerNorm follows, so the difference is its ε).
- log f is floored at the dtype's smallest normal number (log f ≥ −87 in float32), where f
  itself would underflow (γ = 0 and z < −87): a decay of e^(−87) in place of a smaller one,
  which no output can tell apart, instead of log 0 = −∞ and NaN gradients.

Shapes: x (B, T, d_in); state (B, H, K, V) with K = V = expand_ratio; y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells import checks
from lrnn.cells.chunkwise import decay_attention
from lrnn.cells.hgrn import layer_norm
from lrnn.cells.linear import init_linear, linear
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import MatrixDecayMonoid

PAPER_EXPAND_RATIO = 128


def forget_gate(z: jax.Array, lower_bound) -> tuple[jax.Array, jax.Array]:
    """(log f, 1 − f) for f = γ + (1 − γ) σ(z), γ = lower_bound ∈ [0, 1), without cancellation.

    1 − f = (1 − γ) σ(−z). log f = log1p(−(1 − f)) while 1 − f ≤ ½; below f = ½ the direct
    log(γ + (1 − γ) σ(z)), floored at log(tiny) of the dtype. Each branch is fed a safe stand-in
    where the other is taken (no NaN gradient from the unused one; `where`, not min/max, so the
    derivative is not halved at the switch)."""
    gamma = jnp.asarray(lower_bound, z.dtype)
    one_minus_f = (1 - gamma) * jax.nn.sigmoid(-z)
    near_one = one_minus_f <= 0.5
    log_near_one = jnp.log1p(-jnp.where(near_one, one_minus_f, 0))
    f_small = jnp.where(near_one, 0.5, gamma + (1 - gamma) * jax.nn.sigmoid(z))
    tiny = jnp.finfo(z.dtype).tiny
    log_small = jnp.log(jnp.where(f_small > tiny, f_small, tiny))
    return jnp.where(near_one, log_near_one, log_small), one_minus_f


@dataclasses.dataclass(frozen=True)
class HGRN2(MatrixCell):
    d_in: int
    expand_ratio: int | None = None

    recurrent_params = frozenset({"W_f", "b_f"})
    monoid = MatrixDecayMonoid()

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        if self.expand_ratio is None:
            object.__setattr__(self, "expand_ratio", min(PAPER_EXPAND_RATIO, self.d_in))
        checks.positive_int("expand_ratio", self.expand_ratio)
        if self.d_in % self.expand_ratio:
            raise ValueError(f"expand_ratio must divide d_in = {self.d_in} (it is the head width), "
                             f"got {self.expand_ratio}")

    @property
    def n_heads(self) -> int:
        return self.d_in // self.expand_ratio

    @property
    def state_shape(self) -> tuple:
        return (self.n_heads, self.expand_ratio, self.expand_ratio)

    def init(self, key: jax.Array) -> dict:
        k_i, k_q, k_f, k_o = jax.random.split(key, 4)
        d = self.d_in
        return {**init_linear(k_i, d, d, "i"), **init_linear(k_q, d, d, "q"), **init_linear(k_f, d, d, "f"),
                "norm_scale": jnp.ones((d,)), "norm_bias": jnp.zeros((d,)), **init_linear(k_o, d, d, "o")}

    def _check_lower_bound(self, lower_bound, dtype) -> jax.Array:
        """lower_bound as an array of `dtype`, scalar or (d_in,), with values in [0, 1)."""
        shape = jnp.shape(lower_bound)
        if shape not in ((), (self.d_in,)):
            raise ValueError(f"lower_bound must be a scalar or have shape (d_in,) = ({self.d_in},), got shape {shape}")
        values = checks.concrete(lower_bound)
        if values is not None and not np.all((values >= 0) & (values < 1)):
            raise ValueError(f"lower_bound must lie in [0, 1), got {lower_bound!r}")
        return jnp.asarray(lower_bound).astype(dtype)

    # ---- gates -----------------------------------------------------------------------------
    def _heads(self, y):
        return y.reshape(y.shape[:-1] + (self.n_heads, self.expand_ratio))

    def gates(self, params, x, lower_bound=0.0):
        """log f, k = 1 − f, q (B, T, H, K) and the input i (B, T, H, V)."""
        gamma = self._check_lower_bound(lower_bound, x.dtype)
        log_f, k = forget_gate(linear(params, "f", x), gamma)
        q = jax.nn.sigmoid(linear(params, "q", x))
        i = jax.nn.silu(linear(params, "i", x))
        return self._heads(log_f), self._heads(k), self._heads(q), self._heads(i)

    # ---- the recurrence ----------------------------------------------------------------------
    def elements(self, params, x, lower_bound=0.0):
        log_f, k, _, i = self.gates(params, x, lower_bound)
        return jnp.exp(log_f), k[..., :, None] * i[..., None, :]

    def readout(self, params, states, x, lower_bound=0.0):
        q = self._heads(jax.nn.sigmoid(linear(params, "q", x)))
        return self.output(params, jnp.einsum("bthk,bthkv->bthv", q, states))

    def output(self, params, o):
        """y (B, T, d_in) from o (B, T, H, V): W_o LayerNorm(o over all heads) + b_o."""
        merged = o.reshape(o.shape[:2] + (self.d_in,))
        return linear(params, "o", layer_norm(merged, params["norm_scale"], params["norm_bias"]))

    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None, lower_bound=0.0):
        log_f, k, q, i = (jnp.swapaxes(a, 1, 2) for a in self.gates(params, x, lower_bound))
        o, final = decay_attention(q, k, i, log_f, state, chunk_size=chunk_size, method=method, resets=resets,
                                   sequence_axis=sequence_axis)
        return self.output(params, jnp.swapaxes(o, 1, 2)), final

"""DeltaNet — linear attention with the delta rule (Schlag, Irie & Schmidhuber 2021, "Linear
Transformers Are Secretly Fast Weight Programmers"), trained chunkwise in the WY form of Yang
et al. 2024 ("Parallelizing Linear Transformers with the Delta Rule over Sequence Length"),
with the negative-eigenvalue option of Grazzi et al. 2025 ("Unlocking State-Tracking in Linear
RNNs Through Negative Eigenvalues").

Per head h (state S: K×V, rows indexed by key dims), for token t:

    q_t = K^−½ · l2(SiLU(x_t W_q)),   k_t = l2(SiLU(x_t W_k)),   v_t = SiLU(x_t W_v)
    β_t = σ(x_t W_beta)               eigenvalue_range (0, 1)
    β_t = 2σ(x_t W_beta)              eigenvalue_range (−1, 1)   (Grazzi et al.)
    S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ
    o_t = S_tᵀ q_t
    y_t = W_o [RMSNorm(o_t) ⊙ w (⊙ SiLU(x_t W_g) with output_gate)]  over the heads

with l2(z) = z / √(Σ z² + 10⁻⁶) and RMSNorm per head over V with a scale w shared by the heads.
S_t is one step of online gradient descent on ½‖Sᵀk_t − v_t‖² with step size β_t; since
‖k_t‖ ≤ 1 the transition I − β_t k_t k_tᵀ has eigenvalues 1 (K−1 times) and 1 − β_t‖k_t‖²,
in (0, 1] or, with β ∈ (0, 2), in (−1, 1]: the state never grows.

Per-token definition: `IdentityMinusRankOneMonoid` with leaves (u, w, update) =
(β_t k_t, k_t, β_t k_t v_tᵀ), whose `apply` is the O(K·V) step above; `forward` is the
chunkwise `lrnn.cells.chunkwise.delta_rule`.

Choices taken from the papers' code (flash-linear-attention, `fla.layers.DeltaNet`, and its
models), where the text leaves them open:
- q, k and v pass through SiLU, and q, k are then L2-normalised (FLA's defaults
  `qk_activation="silu"`, `qk_norm="l2"`, v's SiLU as in its short-conv branch). The short
  convolution before the SiLU belongs to the layer (a later issue), so x here is the layer's
  input; `features` maps projected (pre-activation) q, k, v to the cell's, the point where a
  layer's convolution would go in.
- q is scaled by K^−½, as FLA's kernels do by default. Under the RMS norm that follows, this
  changes the output only where the norm's ε matters.
- The output is RMSNorm per head (scale `norm_scale`, init 1, ε = `norm_eps` = 10⁻⁵, FLA's
  layer default), optionally gated by SiLU(x W_g) (FLA's `use_gate`, default off for DeltaNet),
  then W_o. No projection has a bias.
- Init: every projection W ~ N(0, `initializer_range`²) with initializer_range = 0.02, FLA's
  model init (its GPT-2-style 1/√(2·layers) rescale of W_o depends on the depth and belongs
  to the model).

Params: W_q (d_in, d_key), W_k (d_in, d_key), W_v (d_in, d_value), W_beta (d_in, H),
[W_g (d_in, d_value)], W_o (d_value, d_in), norm_scale (d_value / H,).
`recurrent_params` is empty: the papers' code exempts none of DeltaNet's params from weight
decay (β is an input-dependent step size, not a fixed eigenvalue).

Sizes: d_key and d_value are the widths summed over the n_heads heads (default d_in
each, FLA's expand_k = expand_v = 1); K = d_key / H, V = d_value / H.
Shapes: x (B, T, d_in); state (B, H, K, V); y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrnn.cells import checks, params_check
from lrnn.cells.chunkwise import delta_rule
from lrnn.cells.heads import head_norm, l2_normalise
from lrnn.cells.initializers import scaled_normal
from lrnn.cells.linear import linear
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import IdentityMinusRankOneMonoid

INITIALIZER_RANGE = 0.02
NORM_EPS = 1e-5


def to_heads(x: jax.Array, n_heads: int) -> jax.Array:
    """(B, T, H·d) -> (B, T, H, d)."""
    return x.reshape(x.shape[:-1] + (n_heads, x.shape[-1] // n_heads))


class DeltaRuleCell(MatrixCell):
    """What DeltaNet, GatedDeltaNet and DeltaProduct share: sizes and their checks, the q/k/v
    features, β from its logits and the output path. Subclasses are frozen dataclasses with
    the fields d_in, n_heads, d_key, d_value, eigenvalue_range, output_gate, norm_eps and
    initializer_range."""

    default_value_ratio = 1  # d_value defaults to this times d_key

    def _check_sizes(self):
        checks.positive_int("d_in", self.d_in)
        d_key = self.d_in if self.d_key is None else self.d_key
        checks.head_sizes(self, d_key, self.default_value_ratio * d_key)
        object.__setattr__(self, "eigenvalue_range", checks.eigenvalue_range(self.eigenvalue_range))
        checks.flag("output_gate", self.output_gate)
        checks.in_range("norm_eps", self.norm_eps, 0.0, math.inf, closed_low=False, closed_high=False)
        checks.in_range("initializer_range", self.initializer_range, 0.0, math.inf, closed_low=False,
                        closed_high=False)

    def _init_output(self, key) -> dict:
        """W_o, norm_scale and (with output_gate) W_g."""
        key_o, key_g = jax.random.split(key)
        params = {"W_o": scaled_normal(key_o, self.d_value, self.d_in, self.initializer_range),
                  "norm_scale": jnp.ones((self.value_dim,), jnp.float32)}
        if self.output_gate:
            params["W_g"] = scaled_normal(key_g, self.d_in, self.d_value, self.initializer_range)
        return params

    def beta(self, logits: jax.Array) -> jax.Array:
        """σ(logits) in (0, 1), or 2σ(logits) in (0, 2) for eigenvalue_range (−1, 1)."""
        gate = jax.nn.sigmoid(logits)
        return 2 * gate if self.eigenvalue_range == (-1.0, 1.0) else gate

    def features(self, q=None, k=None, v=None) -> tuple:
        """The cell's q, k, v (…, H·d) -> (…, H, d) from their projections: SiLU, then L2 per
        head for q and k (and K^−½ for q). Pass only those wanted; the others come back None."""
        scale = self.key_dim**-0.5
        q = None if q is None else scale * l2_normalise(to_heads(jax.nn.silu(q), self.n_heads))
        k = None if k is None else l2_normalise(to_heads(jax.nn.silu(k), self.n_heads))
        v = None if v is None else to_heads(jax.nn.silu(v), self.n_heads)
        return q, k, v

    def query(self, params: dict, x: jax.Array) -> jax.Array:
        """q (B, T, H, K) from x (B, T, d_in)."""
        return self.features(q=linear(params, "q", x))[0]

    def readout(self, params, h, x, **_):
        """y from states h (B, T, H, K, V): o_t = S_tᵀ q_t, then the output path."""
        return self.output(params, jnp.einsum("bthkv,bthk->bthv", h, self.query(params, x)), x)

    def output(self, params: dict, o: jax.Array, x: jax.Array) -> jax.Array:
        """y (B, T, d_in) from the heads' outputs o (B, T, H, V): RMSNorm per head ⊙ scale
        (⊙ SiLU(x W_g)), merged, W_o."""
        z = head_norm(o, self.norm_eps, centre=False) * params["norm_scale"]
        if self.output_gate:
            z = z * to_heads(jax.nn.silu(linear(params, "g", x)), self.n_heads)
        return linear(params, "o", z.reshape(z.shape[:-2] + (self.d_value,)))

    def _direct_step(self, params, state, x_t, update):
        """`step` through update(params, state (B, H, K, V), x (B, 1, d_in)) -> new state: the
        cell's own O(K·V) rank-one form, never a K×K transition."""
        params_check.check(self, params)
        x_t = checks.token(x_t, self.d_in)
        state = self._check_state("state", state, x_t.shape[0])
        xc = x_t.astype(jnp.promote_types(x_t.dtype, jnp.float32))[:, None]
        h = update(params, state, xc)
        y = self.readout(params, h[:, None], xc)[:, 0]
        return y.astype(x_t.dtype), h


def delta_update(state, k, v, beta, alpha=None):
    """α (I − β k kᵀ) S + β k vᵀ = αS + β k (v − αSᵀk)ᵀ for S (B, H, K, V), k (B, H, K),
    v (B, H, V), β and α (B, H) (α = 1 when None): O(K·V), no K×K matrix."""
    if alpha is not None:
        state = alpha[..., None, None] * state
    error = v - jnp.einsum("bhkv,bhk->bhv", state, k)
    return state + (beta[..., None] * k)[..., :, None] * error[..., None, :]


def heads_first(x: jax.Array) -> jax.Array:
    """(B, T, H, ...) -> (B, H, T, ...), the chunkwise ops' layout."""
    return jnp.swapaxes(x, 1, 2)


@dataclasses.dataclass(frozen=True)
class DeltaNet(DeltaRuleCell):
    d_in: int
    n_heads: int
    d_key: int | None = None
    d_value: int | None = None
    eigenvalue_range: tuple = (0, 1)
    output_gate: bool = False
    norm_eps: float = NORM_EPS
    initializer_range: float = INITIALIZER_RANGE

    monoid = IdentityMinusRankOneMonoid()

    def __post_init__(self):
        self._check_sizes()

    def init(self, key: jax.Array) -> dict:
        k_q, k_k, k_v, k_b, k_out = jax.random.split(key, 5)
        d, std = self.d_in, self.initializer_range
        return {"W_q": scaled_normal(k_q, d, self.d_key, std), "W_k": scaled_normal(k_k, d, self.d_key, std),
                "W_v": scaled_normal(k_v, d, self.d_value, std),
                "W_beta": scaled_normal(k_b, d, self.n_heads, std), **self._init_output(k_out)}

    def inputs(self, params: dict, x: jax.Array) -> tuple:
        """k (B, T, H, K), v (B, T, H, V), β (B, T, H) of every token."""
        _, k, v = self.features(k=linear(params, "k", x), v=linear(params, "v", x))
        return k, v, self.beta(linear(params, "beta", x))

    def elements(self, params, x):
        k, v, beta = self.inputs(params, x)
        u = beta[..., None] * k
        return u, k, u[..., :, None] * v[..., None, :]

    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        k, v, beta = self.inputs(params, x)
        q = self.query(params, x)
        o, final = delta_rule(heads_first(q), heads_first(k), heads_first(v), heads_first(beta), state,
                              chunk_size=chunk_size, method=method, resets=resets, sequence_axis=sequence_axis)
        return self.output(params, heads_first(o), x), final


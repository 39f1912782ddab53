"""Gated DeltaNet (Yang, Kautz & Hatamizadeh 2024, "Gated Delta Networks: Improving Mamba2 with
Delta Rule"): the delta rule with a Mamba-2-style scalar decay per head, with the
negative-eigenvalue option of Grazzi et al. 2025.

Per head h (state S: K×V, rows indexed by key dims), for token t:

    q_t, k_t, v_t, β_t                as DeltaNet (`lrnn.cells.deltanet`), eigenvalue_range alike
    log α_t = −exp(A_log) · softplus(x_t W_a + dt_bias)          α_t ∈ (0, 1), a scalar per head
    S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ
    o_t = S_tᵀ q_t
    y_t = W_o [RMSNorm(o_t) ⊙ w ⊙ SiLU(x_t W_g)]   (the gate only with output_gate, default on)

The paper writes S as V×K (S_t = α_t S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ); this is its
transpose, the layout every matrix cell here shares. The transition's eigenvalues are α_t
(K−1 times) and α_t(1 − β_t‖k_t‖²): in (0, 1), or in (−1, 1) with β ∈ (0, 2).

Per-token definition: `DenseMonoid` with leaves (α_t (I − β_t k_t k_tᵀ), β_t k_t v_tᵀ), a K×K
transition per token (the small-size reference `forward_materialised`); `step` is overridden
with the direct O(K·V) update S ← αS + β k (v − αSᵀk)ᵀ, so inference never builds K×K.
`forward` is the chunkwise `delta_rule(..., log_decay=log α)`.

Initialisation (the paper's code, FLA's `GatedDeltaNet` and its model): A_log = log A with
A ~ U[0, 16] per head; dt_bias = softplus⁻¹(Δ₀), Δ₀ = max(exp(U[log 10⁻³, log 10⁻¹]), 10⁻⁴),
so softplus(dt_bias) lies in [10⁻³, 10⁻¹] at init; projections W ~ N(0, 0.02²) (no biases);
norm_scale = 1. Recurrent params: A_log and dt_bias (the paper's code exempts them from
weight decay; they set the decay's rate and step).

Choices where the paper's text is loose, from its code (as for DeltaNet): SiLU on q, k, v
(the short convolution before it belongs to the layer), L2-normalised q and k, q scaled by
K^−½, the RMS norm's ε = 10⁻⁵, the output gate SiLU(x W_g) on the normalised output.

Params: W_q, W_k (d_in, d_key), W_v (d_in, d_value), W_beta (d_in, H), W_a (d_in, H),
A_log (H,), dt_bias (H,), [W_g (d_in, d_value)], W_o (d_value, d_in), norm_scale (V,).
Sizes: d_key defaults to d_in and d_value to 2·d_key (the paper's expand_v = 2),
both summed over the heads. Shapes: x (B, T, d_in); state (B, H, K, V); y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.chunkwise import delta_rule
from lrnn.cells.deltanet import INITIALIZER_RANGE, NORM_EPS, DeltaRuleCell, delta_update, heads_first
from lrnn.cells.initializers import inverse_softplus, log_uniform, scaled_normal
from lrnn.cells.linear import linear
from lrnn.scan import DenseMonoid

A_INIT_RANGE = (0.0, 16.0)


def init_decay(key, n_heads: int, dt_min: float, dt_max: float, dt_init_floor: float) -> dict:
    """A_log = log U[0, 16]; dt_bias = softplus⁻¹(max(exp(U[log dt_min, log dt_max]), floor))."""
    key_a, key_dt = jax.random.split(key)
    a = jax.random.uniform(key_a, (n_heads,), jnp.float32, *A_INIT_RANGE)
    dt = jnp.maximum(jnp.exp(log_uniform(key_dt, (n_heads,), dt_min, dt_max)), dt_init_floor)
    return {"A_log": jnp.log(a), "dt_bias": inverse_softplus(dt)}


def log_decay(params: dict, x: jax.Array) -> jax.Array:
    """log α = −exp(A_log) · softplus(x W_a + dt_bias), (B, T, H), ≤ 0."""
    return -jnp.exp(params["A_log"]) * jax.nn.softplus(linear(params, "a", x) + params["dt_bias"])


def check_decay_init(cell) -> None:
    checks.step_range(cell.dt_min, cell.dt_max)
    checks.in_range("dt_init_floor", cell.dt_init_floor, 0.0, float("inf"), closed_low=False, closed_high=False)


@dataclasses.dataclass(frozen=True)
class GatedDeltaNet(DeltaRuleCell):
    d_in: int
    n_heads: int
    d_key: int | None = None
    d_value: int | None = None
    eigenvalue_range: tuple = (0, 1)
    output_gate: bool = True
    norm_eps: float = NORM_EPS
    initializer_range: float = INITIALIZER_RANGE
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4

    monoid = DenseMonoid()
    recurrent_params = frozenset({"A_log", "dt_bias"})
    default_value_ratio = 2

    def __post_init__(self):
        self._check_sizes()
        check_decay_init(self)

    def init(self, key: jax.Array) -> dict:
        k_q, k_k, k_v, k_b, k_a, k_decay, k_out = jax.random.split(key, 7)
        d, h, std = self.d_in, self.n_heads, self.initializer_range
        return {"W_q": scaled_normal(k_q, d, self.d_key, std), "W_k": scaled_normal(k_k, d, self.d_key, std),
                "W_v": scaled_normal(k_v, d, self.d_value, std), "W_beta": scaled_normal(k_b, d, h, std),
                "W_a": scaled_normal(k_a, d, h, std),
                **init_decay(k_decay, h, self.dt_min, self.dt_max, self.dt_init_floor), **self._init_output(k_out)}

    def inputs(self, params: dict, x: jax.Array) -> tuple:
        """k (B, T, H, K), v (B, T, H, V), β (B, T, H), log α (B, T, H) of every token."""
        _, k, v = self.features(k=linear(params, "k", x), v=linear(params, "v", x))
        return k, v, self.beta(linear(params, "beta", x)), log_decay(params, x)

    def elements(self, params, x):
        k, v, beta, log_alpha = self.inputs(params, x)
        eye = jnp.eye(self.key_dim, dtype=k.dtype)
        reflect = eye - beta[..., None, None] * k[..., :, None] * k[..., None, :]
        u = beta[..., None] * k
        return jnp.exp(log_alpha)[..., None, None] * reflect, u[..., :, None] * v[..., None, :]

    def step(self, params, state, x_t):
        def update(params, state, x):
            k, v, beta, log_alpha = (a[:, 0] for a in self.inputs(params, x))
            return delta_update(state, k, v, beta, jnp.exp(log_alpha))
        return self._direct_step(params, state, x_t, update)

    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        k, v, beta, log_alpha = self.inputs(params, x)
        q = self.query(params, x)
        o, final = delta_rule(heads_first(q), heads_first(k), heads_first(v), heads_first(beta), state,
                              log_decay=heads_first(log_alpha), chunk_size=chunk_size, method=method, resets=resets,
                              sequence_axis=sequence_axis)
        return self.output(params, heads_first(o), x), final


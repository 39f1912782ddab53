"""DeltaProduct (Siems et al. 2025, "DeltaProduct: Improving State-Tracking in Linear RNNs via
Householder Products"): n_h delta-rule steps per token, so each token's transition is a
product of n_h generalised Householder factors; with the optional forget gate, Gated
DeltaProduct. eigenvalue_range (−1, 1) is Grazzi et al.'s β ∈ (0, 2), under which every
factor may reflect.

Per head h (state S: K×V, rows indexed by key dims), for token t and sub-step j = 1..n_h, with
n_h keys, values and betas per token from the input:

    q_t = K^−½ · l2(SiLU(x_t W_q))
    k_{t,j} = l2(SiLU(x_t W_k)_j),   v_{t,j} = SiLU(x_t W_v)_j,   β_{t,j} = σ(x_t W_beta)_j  (2σ for (−1, 1))
    S_{t,0} = α_t S_{t−1}            (α_t = 1 without the forget gate)
    S_{t,j} = (I − β_{t,j} k_{t,j} k_{t,j}ᵀ) S_{t,j−1} + β_{t,j} k_{t,j} v_{t,j}ᵀ
    S_t = S_{t,n_h},   o_t = S_tᵀ q_t
    y_t = W_o [RMSNorm(o_t) ⊙ w ⊙ SiLU(x_t W_g)]   (the gate only with output_gate, default on)

so S_t = α_t ∏_{j=n_h..1}(I − β_{t,j} k_{t,j} k_{t,j}ᵀ) S_{t−1} + Σ_j ∏_{i=n_h..j+1}(…) β_{t,j} k_{t,j} v_{t,j}ᵀ,
the paper's A(x_t), B(x_t): the decay multiplies the product of factors once per token, not
the token's own writes. log α_t = −exp(A_log)·softplus(x_t W_a + dt_bias) as Gated DeltaNet.
With n_h = 1 this is DeltaNet (GatedDeltaNet with the forget gate) with the same params.

Per-token definition: `DenseMonoid` with leaves (α_t ∏_j (I − β_{t,j} k_{t,j} k_{t,j}ᵀ), B(x_t)),
built by running the n_h sub-steps on (α_t I, 0) (the small-size reference
`forward_materialised`); `step` is overridden with n_h rank-one updates, O(n_h·K·V).

`forward` runs the chunkwise `delta_rule` on the sub-steps interleaved into one sequence of
T·n_h steps (token t's sub-steps at t·n_h … t·n_h + n_h − 1): the decay on each token's first
sub-step, q on its last (zero elsewhere), resets on its first, chunks of chunk_size·n_h
sub-steps (chunk_size counts tokens), and every n_h-th output kept.

Layout of the projections (the paper's code, FLA's `GatedDeltaProduct`): x W_k (d_in, n_h·d_key)
is split sub-step first, then head, then key dim; W_v and W_beta (d_in, n_h·H) alike.
Initialisation and the choices the text leaves open (SiLU before the L2 norms, q scaled by
K^−½, the RMS norm's ε = 10⁻⁵, W ~ N(0, 0.02²), no biases, the decay's A_log / dt_bias init)
are as for Gated DeltaNet (`lrnn.cells.gated_deltanet`). The paper's code puts the forget
gate on the first sub-step as here.

Params: W_q (d_in, d_key), W_k (d_in, n_h·d_key), W_v (d_in, n_h·d_value),
W_beta (d_in, n_h·H), [W_a (d_in, H), A_log (H,), dt_bias (H,) with forget_gate],
[W_g (d_in, d_value) with output_gate], W_o (d_value, d_in), norm_scale (V,).
Recurrent params: A_log and dt_bias (with the forget gate; none without).
Sizes: d_key defaults to d_in and d_value to 2·d_key (the paper's code), both summed
over the heads. Shapes: x (B, T, d_in); state (B, H, K, V); y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks
from lrnn.cells.chunkwise import delta_rule
from lrnn.cells.deltanet import INITIALIZER_RANGE, NORM_EPS, DeltaRuleCell, delta_update, heads_first
from lrnn.cells.gated_deltanet import check_decay_init, init_decay, log_decay
from lrnn.cells.initializers import scaled_normal
from lrnn.cells.linear import linear
from lrnn.scan import DenseMonoid


@dataclasses.dataclass(frozen=True)
class DeltaProduct(DeltaRuleCell):
    d_in: int
    n_heads: int
    n_h: int = 2
    d_key: int | None = None
    d_value: int | None = None
    forget_gate: bool = False
    eigenvalue_range: tuple = (0, 1)
    output_gate: bool = True
    norm_eps: float = NORM_EPS
    initializer_range: float = INITIALIZER_RANGE
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4

    monoid = DenseMonoid()
    default_value_ratio = 2

    def __post_init__(self):
        checks.positive_int("n_h", self.n_h)
        self._check_sizes()
        checks.flag("forget_gate", self.forget_gate)
        check_decay_init(self)

    @property
    def recurrent_params(self) -> frozenset:
        return frozenset({"A_log", "dt_bias"} if self.forget_gate else ())

    def init(self, key: jax.Array) -> dict:
        k_q, k_k, k_v, k_b, k_a, k_decay, k_out = jax.random.split(key, 7)
        d, h, n, std = self.d_in, self.n_heads, self.n_h, self.initializer_range
        params = {"W_q": scaled_normal(k_q, d, self.d_key, std),
                  "W_k": scaled_normal(k_k, d, n * self.d_key, std),
                  "W_v": scaled_normal(k_v, d, n * self.d_value, std),
                  "W_beta": scaled_normal(k_b, d, n * h, std), **self._init_output(k_out)}
        if self.forget_gate:
            params.update({"W_a": scaled_normal(k_a, d, h, std),
                           **init_decay(k_decay, h, self.dt_min, self.dt_max, self.dt_init_floor)})
        return params

    def inputs(self, params: dict, x: jax.Array) -> tuple:
        """k (B, T, n_h, H, K), v (B, T, n_h, H, V), β (B, T, n_h, H) of every token's sub-steps
        and log α (B, T, H) (None without the forget gate)."""
        sub = lambda a: a.reshape(a.shape[:-1] + (self.n_h, -1))  # noqa: E731  (…, n_h·w) -> (…, n_h, w)
        _, k, v = self.features(k=sub(linear(params, "k", x)), v=sub(linear(params, "v", x)))
        beta = self.beta(sub(linear(params, "beta", x)))
        return k, v, beta, (log_decay(params, x) if self.forget_gate else None)

    def elements(self, params, x):
        k, v, beta, log_alpha = self.inputs(params, x)
        eye = jnp.eye(self.key_dim, dtype=k.dtype)
        transition = jnp.broadcast_to(eye, k.shape[:2] + k.shape[3:] + eye.shape[-1:])  # (B, T, H, K, K)
        if log_alpha is not None:
            transition = jnp.exp(log_alpha)[..., None, None] * transition
        update = jnp.zeros(v.shape[:2] + (self.n_heads, self.key_dim, self.value_dim), k.dtype)
        for j in range(self.n_h):
            factor = eye - beta[:, :, j, :, None, None] * k[:, :, j, :, :, None] * k[:, :, j, :, None, :]
            u = beta[:, :, j, :, None] * k[:, :, j]
            transition = factor @ transition
            update = factor @ update + u[..., :, None] * v[:, :, j, :, None, :]
        return transition, update

    def step(self, params, state, x_t):
        def update(params, state, x):
            k, v, beta, log_alpha = self.inputs(params, x)
            if log_alpha is not None:
                state = jnp.exp(log_alpha[:, 0])[..., None, None] * state
            for j in range(self.n_h):
                state = delta_update(state, k[:, 0, j], v[:, 0, j], beta[:, 0, j])
            return state
        return self._direct_step(params, state, x_t, update)

    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        k, v, beta, log_alpha = self.inputs(params, x)
        q = self.query(params, x)
        b, t, n = x.shape[0], x.shape[1], self.n_h

        def interleave(a):  # (B, T, n_h, H, ...) -> (B, H, T·n_h, ...)
            a = jnp.moveaxis(a, 3, 1)
            return a.reshape(a.shape[:2] + (t * n,) + a.shape[4:])

        def on_sub_step(a, j):  # (B, T, H, ...) on sub-step j of each token, zero on the others
            placed = jnp.zeros(a.shape[:2] + (n,) + a.shape[2:], a.dtype).at[:, :, j].set(a)
            return interleave(placed)

        decay = None if log_alpha is None else on_sub_step(log_alpha, 0)
        if resets is not None:
            resets = jnp.zeros((b, t, n), bool).at[:, :, 0].set(resets).reshape(b, t * n)
        o, final = delta_rule(on_sub_step(q, n - 1), interleave(k), interleave(v), interleave(beta), state,
                              log_decay=decay, chunk_size=chunk_size * n, method=method, resets=resets,
                              sequence_axis=sequence_axis)
        o = o.reshape(o.shape[:2] + (t, n) + o.shape[3:])[:, :, :, -1]  # (B, H, T, V)
        return self.output(params, heads_first(o), x), final

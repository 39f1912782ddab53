"""Mamba-2's state space model, SSD (Dao & Gu 2024, "Transformers are SSMs: Generalized Models
and Efficient Algorithms Through Structured State Space Duality"), with the negative-eigenvalue
option of Grazzi et al. 2024 ("Unlocking State-Tracking in Linear RNNs Through Negative
Eigenvalues").

The cell is the SSD core alone, as `Mamba` is S6 alone: the block's input projection, the
short causal conv, the SiLU, the SiLU(z) gate, the gated RMSNorm and the output projection
belong to the layer around it, so x here is the conv's output and d_in is Mamba-2's d_ssm.
x_t splits into H heads of P = head_dim channels, and the heads into G = n_groups groups
that share B and C (head h reads group ⌊h / (H/G)⌋). Per token t and head h, N = d_state:

    B_t, C_t = x_t W_B, x_t W_C                       each (G, N), broadcast to the heads
    Δ_t = softplus(x_t W_dt + b_dt)                   (H,)
    A = −exp(A_log)                                   (H,): one scalar per head
    ā_t = exp(Δ_t A)                 eigenvalue_range (0, 1)
    ā_t = 2·exp(Δ_t A) − 1           eigenvalue_range (−1, 1)    (Grazzi et al.)
    S_t = ā_t S_{t−1} + B_t (Δ_t x_t)ᵀ               S ∈ ℝ^(N × P) per head
    y_t = S_tᵀ C_t + D_h x_t                          (P,) per head; y (d_in,)

SSD is the scalar-decay case of linear attention with q = C, k = B, v = Δ x: per-token
definition `MatrixDecayMonoid` with one decay per state (the small-size reference
`forward_materialised`, and `step`); `forward` is the chunkwise
`lrnn.cells.chunkwise.decay_attention` with the head's log decay broadcast over the N keys,
which reaches the Pallas decay kernel with `method="pallas"` (no resets there, as for GLA).

Negative decays, exactly. decay_attention takes log ā, which (−1, 1) does not have. With the
running sign s_t = Π_{τ ≤ t} sign(ā_τ) (since the last reset; sign(0) = +1), S̃_t = s_t S_t
follows

    S̃_t = |ā_t| S̃_{t−1} + (s_t k_t) v_tᵀ,      o_t = S_tᵀ q_t = S̃_tᵀ (s_t q_t)

(s_t ā_t = s_{t−1} |ā_t|), a positive-decay recurrence; an initial state enters unchanged
(s_0 = 1), and the final state is S_T = s_T S̃_T. log |ā| is floored at log 10⁻³⁰ so that
ā = 0 (Δ A = −log 2) gives a finite decay whose effect, 10⁻³⁰ of the state, is below any
precision; s is piecewise constant, so nothing differentiates through it.

Defaults and init, from the official code (state-spaces/mamba, mamba_ssm/modules/mamba2.py):
d_state N = 128, head_dim P = 64, n_groups G = 1 (its README: N "typically 64 or 128").
With neither n_heads nor head_dim given, P = 64 when 64 divides d_in and one head of width d_in
otherwise; with one given the other follows from d_in. A_log = log A, A ~ U[1, 16] per head
(`a_init_range`); b_dt = softplus⁻¹(Δ₀), Δ₀ = max(exp(U[log dt_min, log dt_max]),
dt_init_floor) with dt_min = 10⁻³, dt_max = 10⁻¹, floor 10⁻⁴, so softplus(b_dt) lies in
[dt_min, dt_max]; D = 1 per head (D_has_hdim=False); W_B, W_C, W_dt as PyTorch's nn.Linear
without bias (U[±1/√d_in]), as the official in_proj. Recurrent params: A_log, b_dt and D (the
official code gives all three no weight decay; they set the recurrence's eigenvalues and step).

Where this differs from the official block, with the reason: there B, C and Δ come from the
block's input projection in parallel with x (B and C then pass through the conv with x); a
cell sees only x, so here they are projections of x, as lrnn's `Mamba` does for S6 (a layer
that wants the official wiring computes them outside and calls the chunkwise op itself).
The default chunk is 64 (the official 256; the Pallas kernel takes chunks up to 128).

Params: W_B, W_C (d_in, G·N), W_dt (d_in, H), b_dt (H,), A_log (H,), D (H,).
Shapes: x (B, T, d_in); state (B, H, N, P) real; y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from lrnn.cells import checks, linear
from lrnn.cells.chunkwise import decay_attention
from lrnn.cells.gated_deltanet import check_decay_init
from lrnn.cells.initializers import inverse_softplus, log_uniform
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import DiagonalMonoid, MatrixDecayMonoid, scan

HEAD_DIM = 64
DECAY_FLOOR = 1e-30  # |ā| at ā = 0: log finite, and its effect below any precision
LOG_DECAY_FLOOR = math.log(DECAY_FLOOR)


def transition(u: jax.Array, eigenvalue_range: tuple) -> tuple[jax.Array, jax.Array]:
    """(log |ā|, ā < 0) for u = Δ·A ≤ 0: log |ā| = u in (0, 1); log |2e^u − 1| floored at
    LOG_DECAY_FLOOR in (−1, 1)."""
    if eigenvalue_range == (0.0, 1.0):
        return u, jnp.zeros(u.shape, bool)
    a = 2 * jnp.exp(u) - 1
    return jnp.log(jnp.maximum(jnp.abs(a), DECAY_FLOOR)), a < 0


def running_sign(negative: jax.Array, resets, *, sequence_axis: str | None = None) -> jax.Array:
    """(s (B, T, H), the whole sequence's last s (B, H)): s_t = (−1)^(number of negative decays since
    the last reset, t included), ±1.

    The diagonal recurrence s_t = σ_t s_{t−1} from s_{−1} = 1, σ_t = −1 where negative else 1,
    restarted at a reset (s_t = σ_t there: a_t = 0, b_t = σ_t), through `lrnn.scan` (products of
    ±1 and 0 are exact), so time split over `sequence_axis` carries the sign across devices.

    negative: (B, T, H) bool; resets: (B, T) bool or None."""
    sigma = jnp.where(negative, -1.0, 1.0)
    restart = jnp.zeros(negative.shape[:2], bool) if resets is None else resets
    restart = restart[..., None]
    elements = (jnp.where(restart, 0.0, sigma), jnp.where(restart, sigma, 0.0))
    return scan(DiagonalMonoid(), elements, axis=1, initial=jnp.ones_like(sigma[:, 0]), sequence_axis=sequence_axis)


@dataclasses.dataclass(frozen=True)
class Mamba2(MatrixCell):
    d_in: int
    n_heads: int | None = None
    head_dim: int | None = None
    d_state: int = 128
    n_groups: int = 1
    eigenvalue_range: tuple = (0, 1)
    a_init_range: tuple = (1.0, 16.0)
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4

    monoid = MatrixDecayMonoid()
    recurrent_params = frozenset({"A_log", "b_dt", "D"})

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        self._resolve_heads()
        checks.positive_int("d_state", self.d_state)
        checks.positive_int("n_groups", self.n_groups)
        if self.n_heads % self.n_groups:
            raise ValueError(f"n_heads must be divisible by n_groups = {self.n_groups} (heads share B and C "
                             f"in groups), got n_heads = {self.n_heads}")
        object.__setattr__(self, "eigenvalue_range", checks.eigenvalue_range(self.eigenvalue_range))
        low_high = self.a_init_range
        if not (isinstance(low_high, (tuple, list)) and len(low_high) == 2
                and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in low_high)
                and 0 < low_high[0] <= low_high[1] < float("inf")):
            raise ValueError(f"a_init_range must be (low, high) with 0 < low ≤ high (finite), got {low_high!r}")
        object.__setattr__(self, "a_init_range", tuple(float(v) for v in low_high))
        check_decay_init(self)

    def _resolve_heads(self):
        """Fill in n_heads or head_dim from d_in (see the module docstring), then check
        n_heads · head_dim = d_in."""
        heads, width = self.n_heads, self.head_dim
        for name, value in (("n_heads", heads), ("head_dim", width)):
            if value is not None:
                checks.positive_int(name, value)
        if heads is None and width is None:
            width = HEAD_DIM if self.d_in % HEAD_DIM == 0 else self.d_in
        if heads is None:
            if self.d_in % width:
                raise ValueError(f"head_dim must divide d_in = {self.d_in}, got head_dim = {width}")
            heads = self.d_in // width
        if width is None:
            if self.d_in % heads:
                raise ValueError(f"n_heads must divide d_in = {self.d_in}, got n_heads = {heads}")
            width = self.d_in // heads
        if heads * width != self.d_in:
            raise ValueError(f"n_heads · head_dim must equal d_in = {self.d_in}, "
                             f"got n_heads = {heads}, head_dim = {width}")
        object.__setattr__(self, "n_heads", heads)
        object.__setattr__(self, "head_dim", width)

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def key_dim(self) -> int:
        """N: the state's rows (B and C's width)."""
        return self.d_state

    @property
    def value_dim(self) -> int:
        """P: the state's columns (a head's channels)."""
        return self.head_dim

    @property
    def d_key(self) -> int:
        return self.n_heads * self.d_state

    @property
    def d_value(self) -> int:
        return self.d_in

    def init(self, key: jax.Array) -> dict:
        k_b, k_c, k_dt, k_a, k_bias = jax.random.split(key, 5)
        d, h, gn = self.d_in, self.n_heads, self.n_groups * self.d_state
        step = jnp.maximum(jnp.exp(log_uniform(k_bias, (h,), self.dt_min, self.dt_max)), self.dt_init_floor)
        return {
            "W_B": linear.init_weight(k_b, d, gn),
            "W_C": linear.init_weight(k_c, d, gn),
            "W_dt": linear.init_weight(k_dt, d, h),
            "b_dt": inverse_softplus(step),
            "A_log": jnp.log(jax.random.uniform(k_a, (h,), jnp.float32, *self.a_init_range)),
            "D": jnp.ones((h,), jnp.float32),
        }

    # ---- the recurrence ------------------------------------------------------------------
    def _groups_to_heads(self, y):
        """(B, T, G·N) -> (B, T, H, N): every head its group's row."""
        grouped = y.reshape(y.shape[:-1] + (self.n_groups, self.d_state))
        return jnp.repeat(grouped, self.n_heads // self.n_groups, axis=-2)

    def inputs(self, params, x) -> tuple:
        """q = C_t, k = B_t (B, T, H, N), v = Δ_t x_t (B, T, H, P), u = Δ_t A (B, T, H) ≤ 0."""
        step = jax.nn.softplus(linear.linear(params, "dt", x))
        v = step[..., None] * x.reshape(x.shape[:-1] + (self.n_heads, self.head_dim))
        q, k = (self._groups_to_heads(x @ params[f"W_{name}"]) for name in "CB")
        return q, k, v, step * -jnp.exp(params["A_log"])

    def elements(self, params, x):
        _, k, v, u = self.inputs(params, x)
        decay = jnp.exp(u) if self.eigenvalue_range == (0.0, 1.0) else 2 * jnp.exp(u) - 1
        return decay, k[..., :, None] * v[..., None, :]

    def readout(self, params, states, x):
        q, _, _, _ = self.inputs(params, x)
        return self.output(params, jnp.einsum("bthn,bthnp->bthp", q, states), x)

    def output(self, params, o, x):
        """y = o + D_h x, (B, T, d_in), from o (B, T, H, P)."""
        skip = jnp.repeat(params["D"], self.head_dim) * x
        return o.reshape(x.shape) + skip

    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        q, k, v, u = self.inputs(params, x)
        log_decay, negative = transition(u, self.eigenvalue_range)
        signed = self.eigenvalue_range[0] < 0
        if signed:  # the running sign on q and k (see the module docstring)
            sign, last = running_sign(negative, resets, sequence_axis=sequence_axis)
            sign = sign.astype(q.dtype)[..., None]  # B T H 1
            q, k = q * sign, k * sign
        q, k, v = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))
        log_decay = jnp.broadcast_to(jnp.swapaxes(log_decay, 1, 2)[..., None], k.shape)
        o, final = decay_attention(q, k, v, log_decay, state, chunk_size=chunk_size, method=method, resets=resets,
                                   sequence_axis=sequence_axis)
        if signed:
            final = final * last[:, :, None, None].astype(final.dtype)
        return self.output(params, jnp.swapaxes(o, 1, 2), x), final


__all__ = ["LOG_DECAY_FLOOR", "Mamba2", "running_sign", "transition"]

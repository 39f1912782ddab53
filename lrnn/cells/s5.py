"""S5 — the simplified state space layer (Smith, Warrington & Linderman 2023, "Simplified
State Space Layers for Sequence Modeling"): one multi-input multi-output diagonal SSM.

    Λ = min(Λ_re, −1e−4) + i·Λ_im        (the min only with clip_eigs)
    Δ = exp(log_step)                    one step per state
    Λ̄, B̄ = zoh(Λ, Δ) or bilinear(Λ, Δ)   (lrnn.cells.discretize), B̄ = scale ⊙ B̃
    h_t = Λ̄ ⊙ h_{t−1} + B̄ x_t            h_t (P_s,) complex
    y_t = 2·Re(C̃ h_t) + D ⊙ x_t          factor 1 without conj_sym

Bidirectional: a second scan runs backward in time over the same Λ̄, B̄ (as the paper's
code), g_t = Λ̄ ⊙ g_{t+1} + B̄ x_t, and y_t = 2·Re(C̃ h_t + C̃₂ g_t) + D ⊙ x_t. It is not
causal: `step` refuses it. `forward`'s `state` (h0) starts the forward direction, the
backward one starts from zeros at the end of the sequence (and at the end of every packed
sequence when `resets` are given), and the returned final state is the forward direction's.
With time split over devices (`sequence_axis`), the backward scan runs in the engine reversed
(devices in the opposite order), and the reverse resets read the next device's first flag.

Convolution mode (`forward(..., method="convolution")`, `lrnn.cells.convolution`): Λ̄ does not
depend on the input, so h = Λ̄^k * (B̄ x) runs by FFT over the P_s state channels, with
log Λ̄ = ΔΛ (zoh) or log(1 + ΔΛ/2) − log(1 − ΔΛ/2) (bilinear); bidirectional adds the same
convolution over the time-reversed inputs for g.

Initialisation (HiPPO-N, lrnn.cells.hippo), with P = d_state, J = blocks:
    each of the J blocks of size P/J diagonalises the normal part of HiPPO-LegS of that size,
    S = V Λ V*, Λ = −½ + iω; Λ is repeated over the blocks and V is block-diagonal (P × P).
    With conj_sym each block keeps half its eigenvalues, the first half of ω ascending (ω < 0,
    as the paper's code; the others are their conjugates), and the matching columns of V, so
    the state has P_s = P/2 entries; without it P_s = P.
    B̃ = V*B, B (P, d_in) real lecun-normal: truncated to ±2σ, variance 1/P. (As the paper's
    code, where jax's lecun_normal on the (P, H) array takes fan_in = P, the state size.)
    C̃ = C V, C (d_in, P) complex; Re C, Im C each truncated to ±2σ with variance 1/P: the
    paper code's default "trunc_standard_normal" (which is a lecun_normal draw, std 1/√P, not
    std 1 as its name says). C̃₂ likewise, drawn independently.
    D ~ N(0, 1);  log_step ~ U[log dt_min, log dt_max] per state.
B and C are drawn over the full P-sized state even under conj_sym (the paper's local_P).
Λ_re, Λ_im, B̃ and log_step are the recurrent params (the paper's ssm_lr group).
Not carried over from the paper's code: its other C inits (lecun_normal, complex_normal) and
step_rescale (a fixed factor on Δ for resampled inputs).

Params: Lambda_re, Lambda_im, log_step (P_s,); B_re, B_im (P_s, d_in); C_re, C_im and, when
bidirectional, C2_re, C2_im (d_in, P_s); D (d_in,).
Shapes: x (B, T, d_in), h (B, T, P_s) complex, y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells import checks, shards
from lrnn.cells.base import Cell
from lrnn.cells.convolution import StateKernel, TimeInvariant
from lrnn.cells.discretize import DISCRETISATIONS
from lrnn.cells.hippo import hippo_legs_normal_eig
from lrnn.cells.initializers import log_uniform

CLIP = -1e-4


def hippo_n(block_size: int, conj_sym: bool) -> tuple[np.ndarray, np.ndarray]:
    """(Λ (K,), V (block_size, K)) complex128 for one block: HiPPO-N, with K = block_size/2
    under conj_sym (the first half of ω ascending and their columns), block_size otherwise."""
    lam, v = hippo_legs_normal_eig(block_size)
    if conj_sym:
        half = block_size // 2
        lam, v = lam[:half], v[:, :half]
    return lam, v


@dataclasses.dataclass(frozen=True)
class S5(TimeInvariant, Cell):
    d_in: int
    d_state: int
    blocks: int = 1
    conj_sym: bool = True
    clip_eigs: bool = False
    discretisation: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    bidirectional: bool = False

    recurrent_params = frozenset({"Lambda_re", "Lambda_im", "B_re", "B_im", "log_step"})
    complex_state = True

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        checks.positive_int("d_state", self.d_state)
        checks.positive_int("blocks", self.blocks)
        if self.d_state % self.blocks:
            raise ValueError(f"d_state must be divisible by blocks, got d_state={self.d_state}, blocks={self.blocks}")
        for flag in ("conj_sym", "clip_eigs", "bidirectional"):
            checks.flag(flag, getattr(self, flag))
        if self.conj_sym and (self.d_state // self.blocks) % 2:
            raise ValueError(f"d_state / blocks (the block size) must be even with conj_sym=True, "
                             f"got d_state={self.d_state}, blocks={self.blocks}")
        checks.one_of("discretisation", self.discretisation, tuple(DISCRETISATIONS))
        checks.step_range(self.dt_min, self.dt_max)

    @property
    def state_size(self) -> int:
        return self.d_state // 2 if self.conj_sym else self.d_state

    @property
    def state_shape(self) -> tuple:
        return (self.state_size,)

    def init(self, key: jax.Array) -> dict:
        k_b, k_c, k_c2, k_d, k_step = jax.random.split(key, 5)
        J, P = self.blocks, self.d_state
        lam, v = hippo_n(P // J, self.conj_sym)
        v = jnp.asarray(v)
        lecun_b = jax.nn.initializers.lecun_normal(in_axis=0, out_axis=1)  # fan_in = d_state
        lecun_c = jax.nn.initializers.lecun_normal(in_axis=1, out_axis=0)  # fan_in = d_state

        def c_tilde(key):  # C V, V block-diagonal
            k_re, k_im = jax.random.split(key)
            c = lecun_c(k_re, (self.d_in, P)) + 1j * lecun_c(k_im, (self.d_in, P))
            return jnp.einsum("djn,nk->djk", c.reshape(self.d_in, J, -1), v).reshape(self.d_in, -1)

        b = lecun_b(k_b, (P, self.d_in)).reshape(J, -1, self.d_in)
        b_tilde = jnp.einsum("nk,jnd->jkd", v.conj(), b).reshape(-1, self.d_in)  # V* B
        c = c_tilde(k_c)
        lam = np.tile(lam, J)
        params = {
            "Lambda_re": jnp.asarray(lam.real),
            "Lambda_im": jnp.asarray(lam.imag),
            "B_re": b_tilde.real,
            "B_im": b_tilde.imag,
            "C_re": c.real,
            "C_im": c.imag,
            "D": jax.random.normal(k_d, (self.d_in,)),
            "log_step": log_uniform(k_step, (self.state_size,), self.dt_min, self.dt_max),
        }
        if self.bidirectional:
            c2 = c_tilde(k_c2)
            params.update(C2_re=c2.real, C2_im=c2.imag)
        return params

    def eigenvalues(self, params: dict) -> jax.Array:
        """Λ (P_s,) complex, before discretisation (real parts clipped with clip_eigs)."""
        re = jnp.minimum(params["Lambda_re"], CLIP) if self.clip_eigs else params["Lambda_re"]
        return re + 1j * params["Lambda_im"]

    def convolution_kernel(self, params):
        lam, step = self.eigenvalues(params), jnp.exp(params["log_step"])
        if self.discretisation == "zoh":
            return StateKernel(log_decay=step * lam)
        return StateKernel(log_decay=jnp.log1p(0.5 * step * lam) - jnp.log1p(-0.5 * step * lam))

    def elements(self, params, x):
        discretise = DISCRETISATIONS[self.discretisation]
        lam_bar, scale = discretise(self.eigenvalues(params), jnp.exp(params["log_step"]))
        b = x @ (scale[:, None] * (params["B_re"] + 1j * params["B_im"])).T
        return jnp.broadcast_to(lam_bar, b.shape), b

    def scan(self, elements, initial, *, resets=None, backward_initial=None, backward_resets=None, **options):
        """The forward scan; bidirectional adds the backward one, its states concatenated after
        the forward ones on the last axis, (B, T, 2·P_s). The final state is the forward one's.
        The backward scan starts from `backward_initial` (None: empty) and restarts where
        `backward_resets` says (None: `reverse_resets(resets)`); a streamed forward passes
        both for each chunk."""
        states, final = super().scan(elements, initial, resets=resets, **options)
        if not self.bidirectional:
            return states, final
        if backward_resets is None and resets is not None:
            backward_resets = self.reverse_resets(resets, sequence_axis=options.get("sequence_axis"))
        backward, _ = super().scan(elements, backward_initial, reverse=True, resets=backward_resets, **options)
        return jnp.concatenate([states, backward], axis=-1), final

    @staticmethod
    def reverse_resets(resets, *, sequence_axis: str | None = None):
        """Where the reverse scan starts afresh: at the last token of every packed sequence, i.e.
        (B, T) bool True at t when a sequence starts at t + 1. With time split over
        `sequence_axis` (bound), a shard's last token reads the next device's first reset."""
        resets = jnp.asarray(resets)
        after_last = (jnp.zeros_like(resets[:, :1]) if sequence_axis is None
                      else shards.from_next(resets, 1, sequence_axis, what="S5's reverse resets"))
        return jnp.concatenate([resets[:, 1:], after_last], axis=1)

    def readout(self, params, h, x):
        c_re, c_im = params["C_re"], params["C_im"]
        if self.bidirectional:
            c_re = jnp.concatenate([c_re, params["C2_re"]], axis=-1)
            c_im = jnp.concatenate([c_im, params["C2_im"]], axis=-1)
        y = h.real @ c_re.T - h.imag @ c_im.T
        return (2.0 if self.conj_sym else 1.0) * y + params["D"] * x

    def step(self, params, state, x_t):
        if self.bidirectional:
            raise ValueError("bidirectional S5 is not causal (its backward scan reads later tokens), "
                             "so it has no step-wise path: use forward, or bidirectional=False to step")
        return super().step(params, state, x_t)

"""The (gated) delta rule, chunkwise in the WY/UT form: DeltaNet, Gated DeltaNet, DeltaProduct.

    S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,     o_t = S_tᵀ q_t

(α_t = e^{log_decay_t}, a scalar per head; α = 1 for DeltaNet). Writing each step as
S_t = α_t S_{t−1} + k_t δ_tᵀ with δ_t = β_t (v_t − α_t S_{t−1}ᵀ k_t), and with b_i the
within-chunk cumulative log decay, Γ_ij = e^{b_i − b_j} (j ≤ i) and S_0 the state entering
the chunk, the δ of a chunk (rows Δ) solve one unit-lower-triangular system:

    (I + A) Δ = diag(β) (V − diag(e^b) K S_0),     A = strict_tril(diag(β) (K Kᵀ ⊙ Γ))

so Δ = U − W S_0 with U = (I + A)⁻¹ diag(β) V and W = (I + A)⁻¹ diag(β e^b) K, and

    O   = diag(e^b) Q S_0 + (Q Kᵀ ⊙ Γ ⊙ M) Δ                       (M: j ≤ i)
    S_C = (e^{b_C} I − K̃ᵀ W) S_0 + K̃ᵀ U,                          K̃ = diag(e^{b_C − b}) K.

The chunk transitions (e^{b_C} I − K̃ᵀ W, K̃ᵀ U) — a dense K×K matrix and a K×V update — go
through `lrnn.scan` (DenseMonoid). Every exponent is ≤ 0.

(I + A)⁻¹ is formed by block doubling, matmuls only: with I + A = [[L₁, 0], [X, L₂]],
(I + A)⁻¹ = [[L₁⁻¹, 0], [−L₂⁻¹ X L₁⁻¹, L₂⁻¹]], from 1×1 blocks up in log₂ C levels. (A batched
`solve_triangular` on CPU can deadlock jaxlib 0.10's thread pool on two cores when several
run at once, as forward+backward does; the matmul form is also faster there.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lrnn.cells.chunkwise import inputs, kernels, tiles
from lrnn.scan import DenseMonoid, scan


def unit_lower_inverse(a: jax.Array) -> jax.Array:
    """(I + A)⁻¹ for A (..., C, C) strictly lower triangular."""
    size = a.shape[-1]
    padded = 1 << (size - 1).bit_length()
    if padded != size:
        a = jnp.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, padded - size)] * 2)
    lead = a.shape[:-2]
    inverse = jnp.ones(lead + (padded, 1, 1), a.dtype)  # the 1×1 diagonal blocks of I + A
    half = 1
    while half < padded:
        n = padded // (2 * half)
        blocks = a.reshape(lead + (n, 2 * half, n, 2 * half))
        diagonal = jnp.moveaxis(jnp.diagonal(blocks, axis1=-4, axis2=-2), -1, -3)  # (..., n, 2h, 2h)
        pairs = inverse.reshape(lead + (n, 2, half, half))
        first, second = pairs[..., 0, :, :], pairs[..., 1, :, :]
        lower = -second @ diagonal[..., half:, :half] @ first
        inverse = jnp.concatenate([jnp.concatenate([first, jnp.zeros_like(lower)], -1),
                                   jnp.concatenate([lower, second], -1)], -2)
        half *= 2
    return inverse[..., 0, :size, :size]


def delta_rule(q, k, v, beta, initial, *, log_decay=None, chunk_size: int, method: str = "auto", resets=None,
               sequence_axis: str | None = None):
    """Chunkwise o_t = S_tᵀ q_t with S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ.

    Args:
      q, k: (B, H, T, K); v: (B, H, T, V); beta: (B, H, T).
      initial: (B, H, K, V), the state before the first token.
      log_decay: (B, H, T) log α_t ≤ 0, or None for α = 1 (DeltaNet).
      chunk_size: tokens per chunk C (any C ≥ 1; any T).
      method: the engine's method for the scan across chunks, or "pallas" for the Pallas
        kernel (no resets); "auto" picks the kernel where it measured faster.
      resets: (B, T) bool or None; True at t starts from a zero state there.
      sequence_axis: as for `decay_attention` (time split over a bound mesh axis).

    Returns:
      o (B, H, T, V) and the final state (B, H, K, V).
    """
    inputs.attention(q, k, v, initial, chunk_size, beta=(beta, "(B, H, T)"), log_decay=(log_decay, "(B, H, T)"))
    length = q.shape[2]
    kernel = kernels.select("delta_rule", method, length=length, lanes=q.shape[0] * q.shape[1] * q.shape[3]
                            * v.shape[3], resets=resets, sharded=sequence_axis is not None,
                            arrays=(q, k, v, beta, log_decay, initial))
    if kernel is not None:
        return kernel(q, k, v, beta, initial, log_decay=log_decay, chunk_size=chunk_size)
    if log_decay is None:
        log_decay = jnp.zeros(beta.shape, beta.dtype)
    q, k, v, beta, log_decay = (tiles.tile(x, chunk_size) for x in (q, k, v, beta, log_decay))
    segments = tiles.segments(resets, chunk_size)
    b = jnp.cumsum(log_decay, axis=-1)  # (B, H, N, C)

    reach = tiles.causal(chunk_size)
    if segments is not None:
        reach = reach & segments.same
    gaps = jnp.where(reach, b[..., :, None] - b[..., None, :], -jnp.inf)
    gamma = jnp.exp(gaps)  # Γ ⊙ M (⊙ same segment), zero elsewhere
    strict = gamma * (1 - jnp.eye(chunk_size, dtype=gamma.dtype))

    entry = jnp.exp(b)
    if segments is not None:
        entry = jnp.where(segments.first, entry, 0)
    inverse = unit_lower_inverse(beta[..., :, None] * (k @ jnp.swapaxes(k, -1, -2)) * strict)
    right = jnp.concatenate([beta[..., None] * v, (beta * entry)[..., None] * k], axis=-1)
    solved = inverse @ right
    u, w = solved[..., : v.shape[-1]], solved[..., v.shape[-1]:]

    leave = jnp.exp(b[..., -1:] - b)
    carry = jnp.exp(b[..., -1])
    if segments is not None:
        leave = jnp.where(segments.last, leave, 0)
        carry = jnp.where(segments.whole, carry, 0)
    k_leaving = jnp.swapaxes(leave[..., None] * k, -1, -2)  # K̃ᵀ (B, H, N, K, C)
    eye = jnp.eye(k.shape[-1], dtype=k.dtype)
    transition = carry[..., None, None] * eye - k_leaving @ w
    after, final = scan(DenseMonoid(), (transition, k_leaving @ u), axis=2, initial=initial, method=method,
                        sequence_axis=sequence_axis)

    states = tiles.entering(initial.astype(after.dtype), after, sequence_axis)
    deltas = u - w @ states
    o = entry[..., None] * (q @ states) + ((q @ jnp.swapaxes(k, -1, -2)) * gamma) @ deltas
    return tiles.untile(o, length), final

"""Linear attention with a per-key decay, chunkwise: GLA, HGRN2, RetNet, GateLoop.

    S_t = Diag(α_t) S_{t−1} + k_t v_tᵀ,     o_t = S_tᵀ q_t,     α_t = exp(log_decay_t)

with q, k, log α (..., K) and v (..., V); complex log α (a rotating decay: RetNet's positions,
GateLoop) makes S complex. With b_i = Σ_{s≤i} log α_s inside a chunk and S_0 the state
entering it:

    o_i  = Σ_{j≤i} P_ij v_j + (q_i ⊙ e^{b_i}) S_0,     P_ij = Σ_k q_ik k_jk e^{b_ik − b_jk}
    S_C  = Diag(e^{b_C}) S_0 + Σ_j (k_j ⊙ e^{b_C − b_j}) v_jᵀ

and the pairs (e^{b_C}, Σ_j …) of all chunks go through `lrnn.scan` (MatrixDecayMonoid).

Safety for strong decays: factoring P into (q e^{b}) (k e^{−b})ᵀ overflows once the log decay
summed over a chunk passes ~88 (float32), e.g. log α = −20 at C = 64. Instead P is built by
halving: for a block split into halves [first | second] with r the cumulative log decay at the
end of the first half, the off-diagonal quarter is

    P[second, first] = (q ⊙ e^{b − r})[second] · (k ⊙ e^{r − b})[first]ᵀ

where both exponents are ≤ 0 (b does not increase); the two diagonal quarters recurse, down to
P_ii = q_i·k_i. Every exponential stays ≤ 1 (underflow to 0 is the right limit), the work is
one C×C×K product in log₂ C matmul levels, and no (C, C, K) tensor is formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lrnn.cells.chunkwise import inputs, kernels, tiles
from lrnn.scan import MatrixDecayMonoid, scan


def _power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def intra_chunk_scores(q: jax.Array, k: jax.Array, b: jax.Array) -> jax.Array:
    """P (..., C, C): P_ij = Σ_k q_ik k_jk e^{b_ik − b_jk} for j ≤ i, 0 for j > i.

    q, k, b (..., C, K) with b the within-chunk cumulative log decay, non-increasing along C
    (in its real part)."""
    size = q.shape[-2]
    padded = _power_of_two(size)
    if padded != size:  # neutral tokens (zero q and k, no decay) to a power of two, cut after
        widths = [(0, 0)] * (q.ndim - 2) + [(0, padded - size), (0, 0)]
        q, k = jnp.pad(q, widths), jnp.pad(k, widths)
        b = jnp.pad(b, widths, mode="edge")
    lead = q.shape[:-2]
    blocks = jnp.sum(q * k, axis=-1)[..., None, None]  # (..., C, 1, 1): the diagonal
    half = 1
    while half < padded:
        pairs = lead + (padded // (2 * half), 2, half, q.shape[-1])
        qp, kp, bp = q.reshape(pairs), k.reshape(pairs), b.reshape(pairs)
        r = bp[..., 0, -1:, :]
        q_second = qp[..., 1, :, :] * jnp.exp(bp[..., 1, :, :] - r)
        k_first = kp[..., 0, :, :] * jnp.exp(r - bp[..., 0, :, :])
        lower = jnp.einsum("...ik,...jk->...ij", q_second, k_first)
        diagonal = blocks.reshape(lead + (padded // (2 * half), 2, half, half))
        top = jnp.concatenate([diagonal[..., 0, :, :], jnp.zeros_like(lower)], axis=-1)
        bottom = jnp.concatenate([lower, diagonal[..., 1, :, :]], axis=-1)
        blocks = jnp.concatenate([top, bottom], axis=-2)
        half *= 2
    return blocks[..., 0, :size, :size]


def decay_attention(q, k, v, log_decay, initial, *, chunk_size: int, method: str = "auto", resets=None,
                    sequence_axis: str | None = None):
    """Chunkwise o_t = S_tᵀ q_t with S_t = Diag(e^{log_decay_t}) S_{t−1} + k_t v_tᵀ.

    Args:
      q, k, log_decay: (B, H, T, K); log_decay ≤ 0 (real), or complex with real part ≤ 0.
      v: (B, H, T, V).
      initial: (B, H, K, V), the state before the first token.
      chunk_size: tokens per chunk C (any C ≥ 1; any T).
      method: the engine's method for the scan across chunks, or "pallas" for the Pallas
        kernel (real inputs, no resets); "auto" picks the kernel where it measured faster.
      resets: (B, T) bool or None; True at t starts from a zero state there.
      sequence_axis: a mesh axis bound by an enclosing `jax.shard_map`, time split over it: the
        inputs are this device's shard (chunks are cut in it) and the chunk summaries cross devices
        in the engine's scan; the final state is the whole sequence's. No kernel runs then.

    Returns:
      o (B, H, T, V) and the final state (B, H, K, V).
    """
    inputs.attention(q, k, v, initial, chunk_size, log_decay=(log_decay, "(B, H, T, K)"))
    length = q.shape[2]
    kernel = kernels.select("decay_attention", method, length=length, lanes=q.shape[0] * q.shape[1] * q.shape[3]
                            * v.shape[3], resets=resets, sharded=sequence_axis is not None,
                            arrays=(q, k, v, log_decay, initial))
    if kernel is not None:
        return kernel(q, k, v, log_decay, initial, chunk_size=chunk_size)
    q, k, v, log_decay = (tiles.tile(x, chunk_size) for x in (q, k, v, log_decay))
    segments = tiles.segments(resets, chunk_size)
    b = jnp.cumsum(log_decay, axis=-2)  # (B, H, N, C, K)
    b_last = b[..., -1:, :]

    scores = intra_chunk_scores(q, k, b)
    q_entering = q * jnp.exp(b)
    k_leaving = k * jnp.exp(b_last - b)
    decay = jnp.exp(b_last[..., 0, :])
    if segments is not None:
        scores = jnp.where(segments.same, scores, 0)
        q_entering = jnp.where(segments.first[..., None], q_entering, 0)
        k_leaving = jnp.where(segments.last[..., None], k_leaving, 0)
        decay = jnp.where(segments.whole[..., None], decay, 0)
    update = jnp.einsum("...ck,...cv->...kv", k_leaving, v)

    after, final = scan(MatrixDecayMonoid(), (decay, update), axis=2, initial=initial, method=method,
                        sequence_axis=sequence_axis)
    states = tiles.entering(initial.astype(after.dtype), after, sequence_axis)
    o = scores @ v + q_entering @ states
    return tiles.untile(o, length), final

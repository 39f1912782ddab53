"""Scalar-decay linear attention with an exponential input gate, max-stabilised: the mLSTM.

    C_t = f_t C_{t−1} + e^{ĩ_t} k_t v_tᵀ,     numerator_t = C_tᵀ q_t

carried as (m_t, C̃_t) with C_t = e^{m_t} C̃_t and m_t = max(log f_t + m_{t−1}, ĩ_t) (see
`lrnn.scan.StabilisedDecayMonoid`). Inside a chunk with b_i = Σ_{s≤i} log f_s and (m_0, C̃_0)
entering it, the log weight of token j ≤ i at token i and of the entering state are

    l_ij = b_i − b_j + ĩ_j,      l_i0 = b_i + m_0,      m_i = max(max_j l_ij, l_i0)

(m_i is exactly the step-wise stabiliser), and

    C̃_iᵀ q_i = Σ_{j≤i} e^{l_ij − m_i} (q_i·k_j) v_j + e^{l_i0 − m_i} C̃_0ᵀ q_i.

A chunk's summary for the engine is (log decay b_C, log weight w = max_j (b_C − b_j + ĩ_j),
Σ_j e^{b_C − b_j + ĩ_j − w} k_j v_jᵀ). Every exponent is ≤ 0.
"""

from __future__ import annotations

import jax.numpy as jnp

from lrnn.cells.chunkwise import inputs, tiles
from lrnn.scan import StabilisedDecayMonoid, scan
from lrnn.scan.stabilised import lowest


def stabilised_attention(q, k, v, log_forget, log_input, initial, *, chunk_size: int, method: str = "auto",
                         resets=None, sequence_axis: str | None = None):
    """Chunkwise (C̃_tᵀ q_t, m_t) of the max-stabilised mLSTM recurrence.

    Args:
      q, k: (B, H, T, K); v: (B, H, T, V).
      log_forget: (B, H, T) log f_t ≤ 0; log_input: (B, H, T) the input gate's pre-activation ĩ_t.
      initial: (m (B, H), C̃ (B, H, K, V)), the state before the first token; m = −∞ for
        a zero state.
      chunk_size, method, resets, sequence_axis: as for `decay_attention`.

    Returns:
      (numerator (B, H, T, V), m (B, H, T)) and the final state (m, C̃).
    """
    inputs.attention(q, k, v, initial, chunk_size, log_forget=(log_forget, "(B, H, T)"),
                     log_input=(log_input, "(B, H, T)"))
    length = q.shape[2]
    q, k, v, log_forget = (tiles.tile(x, chunk_size) for x in (q, k, v, log_forget))
    log_input = tiles.tile(log_input, chunk_size, fill=jnp.finfo(log_input.dtype).min)
    segments = tiles.segments(resets, chunk_size)
    b = jnp.cumsum(log_forget, axis=-1)  # (B, H, N, C)
    b_last = b[..., -1:]

    reach = tiles.causal(chunk_size)
    if segments is not None:
        reach = reach & segments.same
    weights = jnp.where(reach, b[..., :, None] - b[..., None, :] + log_input[..., None, :], -jnp.inf)

    leaving = b_last - b + log_input
    carry = b_last[..., 0]
    if segments is not None:
        leaving = jnp.where(segments.last, leaving, -jnp.inf)
        carry = jnp.where(segments.whole, carry, lowest(carry))
    w = jnp.max(leaving, axis=-1)
    update = jnp.einsum("...c,...ck,...cv->...kv", jnp.exp(leaving - w[..., None]), k, v)

    m0, c0 = initial
    after, final = scan(StabilisedDecayMonoid(), (carry, w, update), axis=2, initial=(m0, c0), method=method,
                        sequence_axis=sequence_axis)
    m_in, c_in = tiles.entering((m0.astype(after[0].dtype), c0.astype(after[1].dtype)), after, sequence_axis)

    from_state = b + m_in[..., None]
    if segments is not None:
        from_state = jnp.where(segments.first, from_state, -jnp.inf)
    m = jnp.maximum(jnp.max(weights, axis=-1), from_state)
    scores = (q @ jnp.swapaxes(k, -1, -2)) * jnp.exp(weights - m[..., None])
    numerator = scores @ v + jnp.exp(from_state - m)[..., None] * (q @ c_in)
    return (tiles.untile(numerator, length), tiles.untile(m, length)), final

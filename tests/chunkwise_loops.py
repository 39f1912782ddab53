"""Per-token loops of the chunkwise ops' recurrences (float64 references, shape-generic):
q, k (B, H, T, K), v (B, H, T, V), per-token gates (B, H, T) or (B, H, T, K), states
(B, H, K, V), resets (B, T) or None. Each returns (outputs with time at axis 2, final state)."""

import jax
import jax.numpy as jnp


def _loop(step, state, length, resets, empty):
    """`out_t, state = step(t, state)` for t = 0 … length−1, emptying the state where resets is
    True; outputs stacked at axis 2. A lax.scan over the per-step body: it compiles the body
    once (a Python loop unrolls it, and the stabilised loop's gradient took ~20 s to compile)."""
    def body(state, t):
        if resets is not None:
            state = jax.tree_util.tree_map(
                lambda s, e: jnp.where(resets[:, t].reshape(resets.shape[:1] + (1,) * (s.ndim - 1)), e, s), state, empty)
        out, state = step(t, state)
        return state, out

    state, outs = jax.lax.scan(body, state, jnp.arange(length))
    return jax.tree_util.tree_map(lambda o: jnp.moveaxis(o, 0, 2), outs), state


def decay_loop(q, k, v, log_decay, state, resets=None):
    """S_t = Diag(e^{log α_t}) S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ q_t."""
    def step(t, s):
        s = jnp.exp(log_decay[:, :, t])[..., None] * s + k[:, :, t, :, None] * v[:, :, t, None, :]
        return jnp.einsum("bhk,bhkv->bhv", q[:, :, t], s), s
    return _loop(step, state, q.shape[2], resets, jnp.zeros_like(state))


def delta_loop(q, k, v, beta, state, log_decay=None, resets=None):
    """S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, o_t = S_tᵀ q_t."""
    def step(t, s):
        kt, bt = k[:, :, t], beta[:, :, t, None, None]
        alpha = 1.0 if log_decay is None else jnp.exp(log_decay[:, :, t])[..., None, None]
        transition = jnp.eye(kt.shape[-1]) - bt * kt[..., :, None] * kt[..., None, :]
        s = alpha * transition @ s + bt * kt[..., :, None] * v[:, :, t, None, :]
        return jnp.einsum("bhk,bhkv->bhv", q[:, :, t], s), s
    return _loop(step, state, q.shape[2], resets, jnp.zeros_like(state))


def stabilised_loop(q, k, v, log_forget, log_input, state, resets=None):
    """xLSTM's m_t = max(log f_t + m_{t−1}, ĩ_t), C̃_t = e^{log f_t + m_{t−1} − m_t} C̃_{t−1}
    + e^{ĩ_t − m_t} k_t v_tᵀ; outputs (C̃_tᵀ q_t, m_t)."""
    def step(t, s):
        m, c = s
        m_new = jnp.maximum(log_forget[:, :, t] + m, log_input[:, :, t])
        c = (jnp.exp(log_forget[:, :, t] + m - m_new)[..., None, None] * c
             + jnp.exp(log_input[:, :, t] - m_new)[..., None, None] * k[:, :, t, :, None] * v[:, :, t, None, :])
        return (jnp.einsum("bhk,bhkv->bhv", q[:, :, t], c), m_new), (m_new, c)
    m0, c0 = state
    return _loop(step, state, q.shape[2], resets, (jnp.full_like(m0, -jnp.inf), jnp.zeros_like(c0)))

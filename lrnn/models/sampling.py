"""The next token from a row of logits: greedy, temperature, top-k.

For logits z (B, V), temperature τ ≥ 0 and k (or None):

    τ = 0:  argmax_v z_v                                      (greedy; no randomness)
    τ > 0:  v ~ softmax(z / τ) over the k largest logits      (all V when k is None)

Top-k draws among exactly the k largest logits (ties at the k-th broken by index, as
`lax.top_k` does).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from lrnn.cells import checks


def check_sampling(temperature, top_k, vocab_size: int) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not 0 <= temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number ≥ 0 (0 is greedy), got {temperature!r}")
    if top_k is not None:
        checks.positive_int("top_k", top_k)
        if top_k > vocab_size:
            raise ValueError(f"top_k must be at most vocab_size = {vocab_size}, got {top_k}")


def sample_next_token(logits: jax.Array, key: jax.Array | None, *, temperature: float = 0.0,
                      top_k: int | None = None) -> jax.Array:
    """Token ids (B,) int32 drawn from logits (B, V); `key` may be None when temperature is 0."""
    check_sampling(temperature, top_k, logits.shape[-1])
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if key is None:
        raise ValueError("key must be a PRNG key when temperature > 0, got None")
    scaled = logits / temperature
    if top_k is None:
        return jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)
    top_values, top_ids = jax.lax.top_k(scaled, top_k)  # B k
    choice = jax.random.categorical(key, top_values, axis=-1)
    return jnp.take_along_axis(top_ids, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)

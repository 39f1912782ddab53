"""Griffin with `sequence_axis` on a (2 data × 4 seq) mesh of forced CPU devices equals the same
model without it (float64): logits and every param's gradient, and a prefill continuing a cache
(its logits and cache); the local attention's window reaches across devices (window − 1 = 3
keys from the previous device's shard of 4). A window longer than a shard allows fails clearly.

Runs under 8 forced CPU devices only (tests/test_sharded_suite.py).
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AxisType

from lrnn.models import CausalLM, griffin
from tests.helpers import seed_of

B, T, V, PROMPT = 4, 16, 11, 5
TOL = dict(rtol=1e-10, atol=1e-10)
CONFIG = griffin(8, 2, n_heads=2, window=4, layers=("recurrent", "attention"))  # one block of each kind


def mesh():
    return jax.make_mesh((2, 4), ("data", "seq"), axis_types=(AxisType.Auto,) * 2)


def model_of(sequence_axis=None, **changes):
    config = dataclasses.replace(CONFIG, sequence_axis=sequence_axis, **changes)
    return CausalLM(config, vocab_size=V, param_dtype=jnp.float64, rngs=nnx.Rngs(0))


def tokens(length=T):
    return jnp.asarray(np.random.default_rng(seed_of("sharded griffin", length)).integers(0, V, (B, length)))


def logits_and_gradients(model, tokens):
    def loss(model):
        logits = model(tokens)
        weights = jnp.sin(jnp.arange(logits.size, dtype=logits.dtype)).reshape(logits.shape)
        return jnp.sum(weights * logits), logits
    return nnx.jit(nnx.value_and_grad(loss, has_aux=True))(model)


def test_sequence_parallel_griffin_equals_the_unsharded_one():
    expected = logits_and_gradients(model_of(), tokens())
    with jax.set_mesh(mesh()):
        got = logits_and_gradients(model_of("seq"), tokens())
    assert all(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(expected[1])), "a vanishing gradient"
    chex.assert_trees_all_equal_shapes(got, expected)
    chex.assert_trees_all_close(got, expected, **TOL)


def test_sequence_parallel_prefill_from_a_cache_equals_the_unsharded_one():
    prompt, rest = tokens(PROMPT), tokens()
    _, cache = model_of().prefill(prompt)  # 5 tokens: the attention's ring buffer has wrapped
    prefill = nnx.jit(lambda model, tokens, cache: model.prefill(tokens, cache))
    expected = prefill(model_of(), rest, cache)
    with jax.set_mesh(mesh()):
        got = prefill(model_of("seq"), rest, cache)
    chex.assert_trees_all_equal_shapes(got, expected)
    chex.assert_trees_all_close(got, expected, **TOL)


def test_a_window_longer_than_a_shard_allows_fails_clearly():
    model = model_of("seq", attention_window=6, layers=("attention",), n_layers=1)
    message = "local attention with window 6 needs 5 steps of a neighbouring device's shard, but each shard holds only 4"
    with jax.set_mesh(mesh()), pytest.raises(ValueError, match=message):
        model(tokens())

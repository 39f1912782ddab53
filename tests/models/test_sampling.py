"""Next-token sampling: temperature 0 is the argmax, top-k draws only (and all) of the k
largest logits, and generate's decode loop samples through the same rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrnn.models import CausalLM, ModelConfig, sample_next_token
from tests.helpers import seed_of

B, V, K, DRAWS = 3, 10, 3, 400


def random_logits():
    return jax.random.normal(jax.random.key(seed_of("logits")), (B, V), jnp.float64)


def test_temperature_zero_is_greedy():
    logits = random_logits()
    np.testing.assert_array_equal(sample_next_token(logits, None), np.argmax(np.asarray(logits), axis=-1))
    np.testing.assert_array_equal(sample_next_token(logits, jax.random.key(0), temperature=0.0, top_k=K),
                                  np.argmax(np.asarray(logits), axis=-1))


def test_top_k_draws_only_and_all_of_the_k_largest():
    logits = random_logits()
    keys = jax.random.split(jax.random.key(seed_of("draws")), DRAWS)
    # a high temperature flattens the distribution, so every one of the top k shows up
    draws = np.asarray(jax.vmap(lambda k: sample_next_token(logits, k, temperature=50.0, top_k=K))(keys))  # DRAWS B
    top = np.argsort(-np.asarray(logits), axis=-1)[:, :K]
    for b in range(B):
        assert set(draws[:, b]) == set(top[b])
    # without top-k the same temperature reaches beyond them
    wide = np.asarray(jax.vmap(lambda k: sample_next_token(logits, k, temperature=50.0))(keys))
    assert any(not set(wide[:, b]) <= set(top[b]) for b in range(B))


def test_bad_sampling_arguments_raise():
    logits = random_logits()
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(logits, jax.random.key(0), temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        sample_next_token(logits, jax.random.key(0), temperature=1.0, top_k=V + 1)
    with pytest.raises(ValueError, match="key"):
        sample_next_token(logits, None, temperature=1.0)


def test_generate_samples_with_the_rule():
    config = ModelConfig(cell="mingru", cell_options={"d_hidden": 8}, d_model=8, n_layers=1, conv_size=None, ffn=None)
    model = CausalLM(config, vocab_size=V, rngs=nnx.Rngs(0))
    prompt = jnp.array([[1, 2], [3, 4]], jnp.int32)
    greedy = model.generate(prompt, 4)
    assert greedy.shape == (2, 6)
    np.testing.assert_array_equal(greedy[:, :2], prompt)
    # top-1 sampling at any temperature is greedy decoding
    np.testing.assert_array_equal(model.generate(prompt, 4, key=jax.random.key(1), temperature=1.0, top_k=1), greedy)
    np.testing.assert_array_equal(model.generate(prompt, 0), prompt)
    with pytest.raises(ValueError, match="key"):
        model.generate(prompt, 4, temperature=1.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(prompt, -1)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(prompt, 2, key=jax.random.key(1), temperature=1.0, top_k=0)

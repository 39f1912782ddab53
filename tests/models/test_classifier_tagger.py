"""Classifier pooling (mean, last, max with a padding mask) against numpy on the features the
head pools; padding beyond the mask changes no logit (causal and bidirectional layers); the
tagger is causal exactly when its layers are."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrnn.models import ModelConfig, SequenceClassifier, SequenceTagger
from tests.helpers import seed_of

B, T, D, F, C, V = 3, 6, 8, 3, 4, 7
LENGTHS = np.array([6, 4, 1])
MASK = jnp.arange(T)[None] < LENGTHS[:, None]
TOL = dict(rtol=1e-10, atol=1e-10)
SMALL = dict(cell="mingru", cell_options={"d_hidden": D}, d_model=D, n_layers=1, conv_size=2)


def numpy_pool(features, lengths, kind):
    rows = [np.asarray(features[b, :n]) for b, n in enumerate(lengths)]
    if kind == "mean":
        return np.stack([r.mean(axis=0) for r in rows])
    if kind == "max":
        return np.stack([r.max(axis=0) for r in rows])
    return np.stack([r[-1] for r in rows])


def features_and_logits(model, x, mask):
    return model.features(x, mask), model(x, mask)


@pytest.mark.parametrize("pooling", ["mean", "last", "max"])
def test_pooling_matches_numpy(pooling):
    model = SequenceClassifier(ModelConfig(**SMALL, pooling=pooling), n_features=F, n_classes=C,
                               param_dtype=jnp.float64, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(seed_of("pool x")), (B, T, F), jnp.float64)
    features, logits = nnx.jit(features_and_logits)(model, x, MASK)
    chex.assert_shape(features, (B, T, D))
    expected = numpy_pool(features, LENGTHS, pooling) @ np.asarray(model.head.kernel[...]) + np.asarray(model.head.bias[...])
    chex.assert_trees_all_close(logits, expected, **TOL)


@pytest.mark.parametrize("options", [dict(), dict(bidirectional=True),
                                     dict(cell="s5", cell_options={"d_state": 4, "bidirectional": True})],
                         ids=["causal", "bidirectional-mixer", "bidirectional-s5"])
def test_padding_beyond_the_mask_changes_no_logit(options):
    config = ModelConfig(**{**SMALL, "pooling": "mean", **options})
    model = SequenceClassifier(config, vocab_size=V, n_classes=C, param_dtype=jnp.float64, rngs=nnx.Rngs(2))
    tokens = jax.random.randint(jax.random.key(seed_of("tokens", str(options))), (B, T), 0, V, jnp.int32)
    other = jnp.where(MASK, tokens, (tokens + 3) % V)
    classify = nnx.jit(lambda m, x, other: (m(x, MASK), m(other, MASK), m(x), m(other)))
    masked, masked_other, unmasked, unmasked_other = classify(model, tokens, other)
    chex.assert_trees_all_close(masked, masked_other, **TOL)
    assert not np.allclose(unmasked, unmasked_other)  # unmasked, the padding counts (the test can fail)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_tagger_is_causal_unless_bidirectional(bidirectional):
    model = SequenceTagger(ModelConfig(**SMALL, bidirectional=bidirectional), vocab_size=V, n_classes=C,
                           param_dtype=jnp.float64, rngs=nnx.Rngs(3))
    tokens = jax.random.randint(jax.random.key(seed_of("tag tokens")), (B, T), 0, V, jnp.int32)
    changed = tokens.at[:, 3].set((tokens[:, 3] + 1) % V)
    tag = nnx.jit(lambda m, x: m(x))
    logits, logits_changed = tag(model, tokens), tag(model, changed)
    chex.assert_shape(logits, (B, T, C))
    assert not np.allclose(logits[:, 3:], logits_changed[:, 3:])
    assert np.allclose(logits[:, :3], logits_changed[:, :3], rtol=1e-12, atol=1e-12) != bidirectional


def test_bad_inputs_raise():
    model = SequenceClassifier(ModelConfig(**SMALL), vocab_size=V, n_classes=C, rngs=nnx.Rngs(0))
    tokens = jnp.zeros((B, T), jnp.int32)
    with pytest.raises(ValueError, match="tokens must be an integer array"):
        model(jnp.zeros((B, T, F)))
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, vocab_size"):
        model(tokens + V)
    with pytest.raises(ValueError, match="mask must be a bool array"):
        model(tokens, jnp.ones((B, T)))
    with pytest.raises(ValueError, match="padding"):
        model(tokens, jnp.arange(T)[None].repeat(B, 0) > 2)
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        SequenceClassifier(ModelConfig(**SMALL), vocab_size=V, n_features=F, n_classes=C, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_classes"):
        SequenceTagger(ModelConfig(**SMALL), n_features=F, n_classes=0, rngs=nnx.Rngs(0))

"""Models with `ModelConfig(sequence_axis=)` on a (2 data × 4 seq) mesh of forced CPU devices equal
the same model without it (float64): a causal LM on GLA (logits, every param's gradient, and prefill's
logits and cache) and a classifier with bidirectional LRU mixers over padded sequences (logits and
gradients), both with the short conv; and the bad input of a sequence-parallel model fails clearly.

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

from lrnn.models import ModelConfig, build_model
from tests.helpers import seed_of

B, T = 4, 16
TOL = dict(rtol=1e-10, atol=1e-10)
LM = ModelConfig(cell="gla", cell_options={"n_heads": 2}, d_model=8, n_layers=2, conv_size=4, chunk_size=2)
CLASSIFIER = ModelConfig(cell="lru", d_model=8, n_layers=2, conv_size=3, bidirectional=True, output_gate=True)
VOCAB, FEATURES, CLASSES = 11, 3, 5


def mesh(axes=("data", "seq"), shape=(2, 4)):
    return jax.make_mesh(shape, axes, axis_types=(AxisType.Auto,) * len(shape))


def model_of(config: ModelConfig, sequence_axis=None):
    """The LM or the classifier of `config` (float64 params, the same for either sequence_axis)."""
    sizes = dict(vocab_size=VOCAB) if config is LM else dict(n_features=FEATURES, n_classes=CLASSES)
    return build_model("lm" if config is LM else "classify", dataclasses.replace(config, sequence_axis=sequence_axis),
                       **sizes, param_dtype=jnp.float64, rngs=nnx.Rngs(0))


def inputs_of(config: ModelConfig, batch=B, length=T):
    """(tokens,) for the LM, (features, mask) with padded rows for the classifier."""
    rng = np.random.default_rng(seed_of("sharded models", config.cell, batch, length))
    if config is LM:
        return (jnp.asarray(rng.integers(0, VOCAB, (batch, length))),)
    lengths = np.array([length, length - 7, 5, length - 4])[:batch]
    return jnp.asarray(rng.normal(size=(batch, length, FEATURES))), jnp.asarray(np.arange(length) < lengths[:, None])


def logits_and_gradients(model, inputs):
    """(loss, logits) and the gradient of every param, for a loss every logit reaches."""
    def loss(model):
        logits = model(*inputs)
        weights = jnp.sin(jnp.arange(logits.size, dtype=logits.dtype)).reshape(logits.shape)
        return jnp.sum(weights * logits), logits
    return nnx.jit(nnx.value_and_grad(loss, has_aux=True))(model)


@pytest.mark.parametrize("config", [LM, CLASSIFIER], ids=["lm-gla", "classifier-bidirectional-lru"])
def test_sequence_parallel_model_equals_the_unsharded_one(config):
    inputs = inputs_of(config)
    expected = logits_and_gradients(model_of(config), inputs)
    with jax.set_mesh(mesh()):
        got = logits_and_gradients(model_of(config, "seq"), inputs)
    (_, logits), grads = expected
    chex.assert_shape(logits, (B, T, VOCAB) if config is LM else (B, CLASSES))
    assert all(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(grads)), "a vanishing gradient"
    chex.assert_trees_all_equal_shapes(got, expected)
    chex.assert_trees_all_close(got, expected, **TOL)


def test_sequence_parallel_prefill_equals_the_unsharded_one():
    (tokens,) = inputs_of(LM)
    prefill = nnx.jit(lambda model, tokens: model.prefill(tokens))
    expected = prefill(model_of(LM), tokens)
    with jax.set_mesh(mesh()):
        got = prefill(model_of(LM, "seq"), tokens)
    chex.assert_trees_all_equal_shapes(got, expected)
    chex.assert_trees_all_close(got, expected, **TOL)


def test_bad_input_fails_clearly():
    model = model_of(LM, "seq")
    with pytest.raises(ValueError, match="sequence_axis 'seq' is not a mesh axis: there is no mesh"):
        model(*inputs_of(LM))
    with jax.set_mesh(mesh(("data", "time"))), pytest.raises(
            ValueError, match=r"sequence_axis 'seq' is not a mesh axis: the current mesh has axes \('data', 'time'\)"):
        model(*inputs_of(LM))
    with jax.set_mesh(mesh()):
        with pytest.raises(ValueError, match="the mixer's input x: the time length 10 must be divisible by the 4 "
                                             "devices of mesh axis 'seq'"):
            model(*inputs_of(LM, length=10))
        with pytest.raises(ValueError, match=r"the batch 3 must be divisible by the 2 devices of the mesh's other "
                                             r"axes \('data',\)"):
            model(*inputs_of(LM, batch=3))
        with pytest.raises(ValueError, match="the short conv needs 3 steps of a neighbouring device's shard, but each "
                                             "shard holds only 2"):
            model(*inputs_of(LM, length=8))
    with pytest.raises(ValueError, match="sequence_axis must be None or the name of a mesh axis"):
        dataclasses.replace(LM, sequence_axis=1)

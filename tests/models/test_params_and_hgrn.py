"""Param types: RecurrentParam exactly where the cell labels a param "recurrent"; float32 by
default. HGRN: the model's lower-bound logits reach layer l as lower_bounds(logits)[l], and
a two-layer HGRN LM with a conv and a GLU decodes step by step as its parallel forward."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lrnn.cells import RECURRENT, get_cell, lower_bounds
from lrnn.models import CausalLM, ModelConfig, build_model
from lrnn.nn import RecurrentParam
from tests.helpers import seed_of

D, V, B, T = 8, 9, 2, 6


def paths(state) -> set:
    return {path for path, _ in nnx.to_flat_state(state)}


def test_recurrent_params_are_exactly_the_cells_recurrent_labels():
    config = ModelConfig(cell="lru", cell_options={"d_state": 4}, d_model=D, n_layers=2, conv_size=3)
    model = build_model("classify", config, vocab_size=V, n_classes=3, rngs=nnx.Rngs(0))
    cell = get_cell("lru")(d_in=D, d_state=4)
    labels = cell.param_labels(cell.init(jax.random.key(0)))
    recurrent = {name for name, label in labels.items() if label == RECURRENT}
    assert recurrent and recurrent != set(labels)
    expected = {("backbone", "blocks", layer, "mixer", "cell_params", name) for layer in range(2) for name in recurrent}
    assert paths(nnx.state(model, RecurrentParam)) == expected
    regular = paths(nnx.state(model, nnx.All(nnx.Param, nnx.Not(RecurrentParam))))
    assert {("backbone", "blocks", 0, "mixer", "cell_params", name) for name in set(labels) - recurrent} <= regular
    assert not regular & expected
    dtypes = {leaf.dtype for leaf in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))}
    assert dtypes == {jnp.dtype(jnp.float32)}


def hgrn_lm() -> CausalLM:
    config = ModelConfig(cell="hgrn", d_model=D, n_layers=2, conv_size=3, ffn="glu")
    return CausalLM(config, vocab_size=V, param_dtype=jnp.float64, rngs=nnx.Rngs(seed_of("hgrn")))


def chained_by_hand(model, tokens, bounds):
    """The LM's logits with each layer's lower bound given explicitly."""
    x = model.encoder(tokens)
    for block, bound in zip(model.backbone.blocks, bounds):
        x = block(x, lower_bound=bound)
    return model.head(model.backbone.final_norm(x))


def test_hgrn_layers_get_their_lower_bounds():
    model = hgrn_lm()
    logits_param = model.backbone.lower_bound_logits
    assert isinstance(logits_param, RecurrentParam) and logits_param.shape == (2, D)
    logits_param[...] = jax.random.normal(jax.random.key(seed_of("bound logits")), (2, D), jnp.float64)
    bounds = lower_bounds(logits_param[...])
    tokens = jax.random.randint(jax.random.key(seed_of("hgrn tokens")), (B, T), 0, V, jnp.int32)
    compare = nnx.jit(lambda m, tokens, bounds: (m(tokens), chained_by_hand(m, tokens, bounds),
                                                 chained_by_hand(m, tokens, jnp.zeros_like(bounds))))
    logits, expected, unbounded = compare(model, tokens, bounds)
    chex.assert_trees_all_close(logits, expected, rtol=1e-10, atol=1e-10)
    assert not np.allclose(logits, unbounded)  # the bounds matter


def test_two_layer_lm_with_conv_and_glu_decodes_as_its_forward():
    model = hgrn_lm()
    tokens = jax.random.randint(jax.random.key(seed_of("decode tokens")), (B, T), 0, V, jnp.int32)

    def paths_of(m, tokens):
        full = m(tokens)
        prefill_logits, cache = m.prefill(tokens[:, :2])
        stepped = []
        for t in range(2, T):
            logits, cache = m.step(tokens[:, t], cache)
            stepped.append(logits)
        return full, prefill_logits, jnp.stack(stepped, axis=1)

    full, prefill_logits, stepped = nnx.jit(paths_of)(model, tokens)
    chex.assert_trees_all_close(prefill_logits, full[:, :2], rtol=1e-9, atol=1e-9)
    chex.assert_trees_all_close(stepped, full[:, 2:], rtol=1e-9, atol=1e-9)

"""Hawk and Griffin (De et al. 2024) from `lrnn.models.hawk` / `griffin`: the recurrent block is the
paper's (against a float64 loop of GeLU gate ⊙ RG-LRU(Conv1D(x W_in)) with the cells' RG-LRU
reference), the MLP its GeGLU; a tiny Hawk and Griffin CausalLM decode step by step after a prefill
as their full forward (float64, 1e-8; Griffin past its attention window, so the ring buffer
wraps) and greedy `generate` equals a greedy loop re-running the forward; the param counts are
the paper's layer formulas; the layer pattern and every new ModelConfig field are checked.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrnn.models import CausalLM, ModelConfig, griffin, hawk
from lrnn.nn import Block, LocalAttention, Mixer
from tests.cells.references.rglru import rglru
from tests.helpers import seed_of
from tests.models.test_lm_cells import PROMPT, check_decoding, forward_and_decode

D, V, B, T, WINDOW = 12, 11, 2, 9, 4  # PROMPT (3) as test_lm_cells'
TOL = dict(rtol=1e-8, atol=1e-8)
MODELS = {"hawk": lambda: hawk(D, 2, n_heads=2), "griffin": lambda: griffin(D, 3, n_heads=2, window=WINDOW)}


def gelu(z):
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


def test_the_presets_are_the_papers_layers():
    config = griffin(256, 4)
    assert config.layer_kinds == ("recurrent", "recurrent", "attention", "recurrent")
    assert config.attention_heads == 2 and config.attention_window == 1024  # head width 128
    assert config.inner_width == 2 * round(4 * 256 / 6) and config.cell_options == {"num_blocks": 2}
    assert (config.ffn, config.ffn_ratio, config.conv_size, config.conv_activation, config.gate_activation) == \
        ("geglu", 3.0, 4, None, "gelu")
    assert hawk(64, 3).layer_kinds == ("recurrent",) * 3 and hawk(64, 3, dropout=0.1).dropout == 0.1
    model = nnx.eval_shape(lambda: CausalLM(config, vocab_size=V, rngs=nnx.Rngs(0)))
    kinds = [type(block.mixer) for block in model.backbone.blocks]
    assert kinds == [Mixer, Mixer, LocalAttention, Mixer]


def test_hawks_recurrent_block_is_gelu_gate_times_rglru_of_the_conv():
    config = hawk(D, 1, n_heads=2)
    block = Block(**config.block_options(), param_dtype=jnp.float64, rngs=nnx.Rngs(seed_of("hawk block")))
    mixer = block.mixer
    x = jax.random.normal(jax.random.key(seed_of("hawk x")), (B, T, D), jnp.float64)
    w_in, w_gate, w_out = (np.asarray(p.kernel[...]) for p in (mixer.in_proj, mixer.gate_proj, mixer.out_proj))
    kernel, bias = np.asarray(mixer.conv.kernel[...]), np.asarray(mixer.conv.bias[...])
    u = np.asarray(x) @ w_in
    padded = np.concatenate([np.zeros((B, 3, u.shape[2])), u], axis=1)
    conv = np.stack([bias + sum(kernel[j] * padded[:, t + j] for j in range(4)) for t in range(T)], axis=1)
    params = {name: variable[...] for name, variable in mixer.cell_params.items()}
    recurrent, _ = jax.jit(functools.partial(rglru, mixer.cell))(params, jnp.asarray(conv), jnp.zeros((B, u.shape[2])))
    expected = (gelu(np.asarray(x) @ w_gate) * np.asarray(recurrent)) @ w_out
    chex.assert_shape(u, (B, T, 2 * round(4 * D / 6)))

    def outputs(block, x):  # the mixer, the block, and the block's residual stream after the mixer, normed
        h = x + block.mixer(block.pre_mixer_norm(x))
        return block.mixer(x), block(x), h, block.pre_ffn_norm(h)

    mixed, out, h, normed = (np.asarray(a) for a in nnx.jit(outputs)(block, x))
    chex.assert_trees_all_close(mixed, expected, **TOL)
    # the block: x + mixer(RMSNorm(x)), then + GeGLU(RMSNorm(·)) with hidden width 3D
    ffn = block.ffn
    geglu = (gelu(normed @ np.asarray(ffn.gate.kernel[...])) * (normed @ np.asarray(ffn.up.kernel[...]))) \
        @ np.asarray(ffn.down.kernel[...])
    chex.assert_shape(ffn.up.kernel[...], (D, 3 * D))
    chex.assert_trees_all_close(out, h + geglu, **TOL)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_step_and_generate_match_the_parallel_forward(name):
    model = CausalLM(MODELS[name](), vocab_size=V, param_dtype=jnp.float64, rngs=nnx.Rngs(seed_of("lm", name)))
    check_decoding(model, jax.random.randint(jax.random.key(seed_of("tokens", name)), (B, T), 0, V, jnp.int32))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_param_counts_are_the_papers_layer_formulas(name):
    config = MODELS[name]()
    model = nnx.eval_shape(lambda: CausalLM(config, vocab_size=V, rngs=nnx.Rngs(0)))
    counts = {kind: sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(block, nnx.Param)))
              for block, kind in zip(model.backbone.blocks, config.layer_kinds)}
    e, heads = config.inner_width, config.attention_heads
    mlp = 3 * D * 3 * D
    norms = 2 * D
    # W_in, W_gate: D → E; conv: 4E + E; RG-LRU: Λ, b_a, b_x (E each), W_a, W_x block-diagonal (E² / H each); W_out
    recurrent = 2 * D * e + 5 * e + 3 * e + 2 * e * e // heads + e * D
    attention = D * D + 2 * D * (D // heads) + D * D  # W_q, W_k, W_v (one head of width D / H), W_o
    assert counts["recurrent"] == recurrent + mlp + norms
    if "attention" in counts:
        assert counts["attention"] == attention + mlp + norms
    total = sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))
    blocks = sum(recurrent + mlp + norms if kind == "recurrent" else attention + mlp + norms
                 for kind in config.layer_kinds)
    assert total == blocks + 2 * V * D + D  # embedding, head, final norm


def test_hgrn_lower_bounds_go_to_the_recurrent_layers_only():
    config = ModelConfig(cell="hgrn", d_model=8, n_layers=3, layers=("recurrent", "attention"), attention_heads=2,
                         attention_window=2, conv_size=None)
    model = CausalLM(config, vocab_size=V, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    assert model.backbone.lower_bound_logits.shape == (2, 8)
    inputs = model.backbone.layer_inputs()
    assert [set(layer) for layer in inputs] == [{"lower_bound"}, set(), {"lower_bound"}]
    tokens = jnp.zeros((B, 5), jnp.int32)
    full, prefill_logits, stepped = nnx.jit(forward_and_decode)(model, tokens)
    chex.assert_trees_all_close(jnp.concatenate([prefill_logits, stepped], axis=1), full, **TOL)


BAD = [
    (dict(layers=()), "layers must be a non-empty tuple"),
    (dict(layers=("recurrent", "transformer")), "layers must be"),
    (dict(layers="attention"), "layers must be"),
    (dict(n_layers=2, layers=("recurrent", "recurrent", "attention")), "must not be longer than n_layers"),
    (dict(attention_heads=3), "attention_heads must divide d_model"),
    (dict(attention_heads=0), "attention_heads"),
    (dict(attention_window=0), "attention_window"),
    (dict(attention_rope_fraction=2.0), "attention_rope_fraction"),
    (dict(d_inner=0), "d_inner"),
    (dict(d_inner=96, expand=2), "not both"),
    (dict(conv_activation="relu"), "conv_activation"),
    (dict(gate_activation=None), "gate_activation"),
    (dict(ffn="swiglu"), "ffn"),
    (dict(bidirectional=True, layers=("recurrent", "attention")), "bidirectional needs every layer recurrent"),
    (dict(cell="rglru", cell_options={"num_blocks": 5}, d_inner=96), "num_blocks"),
]


@pytest.mark.parametrize("overrides, match", BAD, ids=[str(o) for o, _ in BAD])
def test_bad_config_raises_value_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{"d_model": 64, "cell_options": {"n_heads": 2}, **overrides})


def test_bad_preset_arguments_are_named():
    with pytest.raises(ValueError, match="n_heads"):
        hawk(64, 2, n_heads=0)
    with pytest.raises(ValueError, match="attention_heads must divide d_model"):
        griffin(64, 3, n_heads=3)
    with pytest.raises(ValueError, match="must not be longer than n_layers"):
        griffin(64, 2)
    with pytest.raises(TypeError, match="colour"):
        hawk(64, 2, colour="red")

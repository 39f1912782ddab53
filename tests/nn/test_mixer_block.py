"""Mixer and Block: the step-wise path (init_cache, then step token by token), a prefill
continued by steps, and a prefill split in two all equal the parallel `__call__`, for a
diagonal cell (LRU) and a matrix cell (DeltaNet), in float64. The bidirectional mixer against
its definition written out with the cell's pure functions; dropout only in training mode."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrnn.nn import Block, Mixer
from tests.helpers import seed_of

B, T, D = 2, 7, 8
TOL = dict(rtol=1e-9, atol=1e-9)
CELLS = {"lru": {"d_state": 6}, "deltanet": {"n_heads": 2}}


def inputs(*key):
    return jax.random.normal(jax.random.key(seed_of(*key)), (B, T, D), jnp.float64)


def step_through(module, x, cache):
    """module.step over every token of x (B, T', D) from `cache`: outputs (B, T', D)."""
    def one(cache, x_t):
        y_t, cache = module.step(x_t, cache)
        return cache, y_t

    _, ys = jax.lax.scan(one, cache, jnp.moveaxis(x, 1, 0))
    return jnp.moveaxis(ys, 0, 1)


def all_paths(module, x, prompt=3):
    """(parallel, steps from init_cache, prefill of the prompt + steps, prefill of the prompt +
    prefill of the rest): four (B, T, D) outputs that must agree."""
    parallel = module(x)
    stepped = step_through(module, x, module.init_cache(x.shape[0]))
    y_prompt, cache = module.prefill(x[:, :prompt])
    y_rest, _ = module.prefill(x[:, prompt:], cache)
    then_stepped = jnp.concatenate([y_prompt, step_through(module, x[:, prompt:], cache)], axis=1)
    split = jnp.concatenate([y_prompt, y_rest], axis=1)
    return parallel, stepped, then_stepped, split


def assert_all_paths_agree(module, x):
    parallel, *others = nnx.jit(all_paths)(module, x)
    for other in others:
        chex.assert_trees_all_close(other, parallel, **TOL)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_mixer_step_and_prefill_match_parallel(cell):
    mixer = Mixer(D, cell, CELLS[cell], expand=2, conv_size=3, output_gate=True, norm=True,
                  scan_options={"chunk_size": 2}, param_dtype=jnp.float64, rngs=nnx.Rngs(seed_of("mixer", cell)))
    assert_all_paths_agree(mixer, inputs("mixer x", cell))


@pytest.mark.parametrize("cell, ffn, norm", [("lru", "mlp", "layernorm"), ("deltanet", "glu", "rmsnorm")])
def test_block_step_and_prefill_match_parallel(cell, ffn, norm):
    block = Block(D, cell, CELLS[cell], conv_size=4, ffn=ffn, ffn_ratio=1.5, norm=norm, param_dtype=jnp.float64,
                  rngs=nnx.Rngs(seed_of("block", cell)))
    assert_all_paths_agree(block, inputs("block x", cell))


def test_bidirectional_mixer_is_its_definition_and_has_no_step():
    mixer = Mixer(D, "lru", CELLS["lru"], bidirectional=True, param_dtype=jnp.float64, rngs=nnx.Rngs(3))
    x = inputs("bidirectional x")
    # y = W_out (cell(θ_f, u) + rev(cell(θ_b, rev(u)))), u = x W_in (no conv, norm or gate here)
    cell = mixer.cell
    params = {k: v[...] for k, v in mixer.cell_params.items()}
    params_b = {k: v[...] for k, v in mixer.backward_cell_params.items()}
    u = x @ mixer.in_proj.kernel[...]
    forward, _ = cell.forward(params, u, method="sequential")
    backward, _ = cell.forward(params_b, u[:, ::-1], method="sequential")
    expected = (forward + backward[:, ::-1]) @ mixer.out_proj.kernel[...]
    chex.assert_trees_all_close(mixer(x), expected, **TOL)

    for call in (lambda: mixer.init_cache(B), lambda: mixer.prefill(x), lambda: mixer.step(x[:, 0], {})):
        with pytest.raises(ValueError, match="causal"):
            call()


def test_bidirectional_cell_in_a_mixer_has_no_step():
    mixer = Mixer(D, "s5", {"d_state": 4, "bidirectional": True}, rngs=nnx.Rngs(0))
    assert not mixer.causal
    with pytest.raises(ValueError, match="causal"):
        mixer.init_cache(B)


def test_mask_keeps_padding_out_of_a_bidirectional_mixer():
    mixer = Mixer(D, "mingru", {"d_hidden": D}, conv_size=3, bidirectional=True, param_dtype=jnp.float64,
                  rngs=nnx.Rngs(4))
    x = inputs("masked x")
    lengths = np.array([T, 4])
    mask = jnp.arange(T)[None] < lengths[:, None]
    other = jnp.where(mask[..., None], x, 100.0 * inputs("padding"))

    def outputs(m, x, other, mask):
        return m(x, mask=mask), m(other, mask=mask), m(x), m(other), m(x[1:, :4])

    y, y_other, unmasked, unmasked_other, alone = nnx.jit(outputs)(mixer, x, other, mask)
    chex.assert_trees_all_close(jnp.where(mask[..., None], y, 0), jnp.where(mask[..., None], y_other, 0), **TOL)
    # without the mask the backward direction reads the padding
    assert not np.allclose(unmasked[1, :4], unmasked_other[1, :4])
    # the real part alone, as its own sequence, gives the same outputs
    chex.assert_trees_all_close(y[1, :4], alone[0], **TOL)


def test_dropout_only_in_training():
    mixer = Mixer(D, "mingru", {"d_hidden": D}, dropout=0.5, param_dtype=jnp.float64, rngs=nnx.Rngs(5))
    x = inputs("dropout x")
    mixer.eval()
    clean = mixer(x)
    chex.assert_trees_all_close(mixer(x), clean, rtol=0, atol=0)
    chex.assert_trees_all_close(mixer.prefill(x)[0], clean, **TOL)  # prefill never drops
    mixer.train()
    dropped = np.asarray(mixer(x))
    kept = dropped != 0
    assert 0.2 < kept.mean() < 0.8
    np.testing.assert_allclose(dropped[kept], 2.0 * np.asarray(clean)[kept], rtol=1e-12)  # scaled by 1 / (1 − rate)
    assert not np.array_equal(dropped, np.asarray(mixer(x)))  # a fresh mask per call


@pytest.mark.parametrize("make, match", [
    (lambda: Mixer(D, "no_such_cell", rngs=nnx.Rngs(0)), "cell must be one of"),
    (lambda: Mixer(-4, "mingru", {"d_hidden": 4}, rngs=nnx.Rngs(0)), "d_model"),
    (lambda: Mixer(D, "mingru", {"d_hidden": 4}, expand=0, rngs=nnx.Rngs(0)), "expand"),
    (lambda: Mixer(D, "mingru", {"d_hidden": 4}, conv_size=-2, rngs=nnx.Rngs(0)), "conv_size"),
    (lambda: Mixer(D, "mingru", {"d_hidden": 4}, dropout=1.0, rngs=nnx.Rngs(0)), "dropout"),
    (lambda: Mixer(D, "mingru", {"d_hidden": 4}, scan_options={"method": "magic"}, rngs=nnx.Rngs(0)), "method"),
    (lambda: Mixer(D, "mingru", {"d_hidden": 4, "wings": 2}, rngs=nnx.Rngs(0)), "wings"),
    (lambda: Mixer(D, "mingru", {"d_in": 4}, rngs=nnx.Rngs(0)), "d_in"),
    (lambda: Mixer(D, "lru", {"d_state": -1}, rngs=nnx.Rngs(0)), "d_state"),
    (lambda: Block(D, "mingru", {"d_hidden": 4}, norm="batchnorm", rngs=nnx.Rngs(0)), "norm"),
    (lambda: Block(D, "mingru", {"d_hidden": 4}, ffn="moe", rngs=nnx.Rngs(0)), "ffn"),
    (lambda: Block(D, "mingru", {"d_hidden": 4}, ffn_ratio=0, rngs=nnx.Rngs(0)), "ffn_ratio"),
])
def test_bad_hyperparameters_raise_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()

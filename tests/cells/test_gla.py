"""GLA beyond the contract suite: the decay α = σ(·)^(1/τ), strong decays in float32, chunk
sizes at an odd length, the paper's sizes and init."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.gla import GLA
from tests.cells.references.gla import gla as reference
from tests.helpers import to64

CELL = GLA(d_in=8, n_heads=2)


def _setup(cell=CELL, length=37, seed=0):
    key_p, key_x, key_h = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = to64(cell.init(key_p))
    x = jax.random.normal(key_x, (2, length, cell.d_in), jnp.float64)
    h0 = 0.5 * jax.random.normal(key_h, (2,) + cell.state_shape, jnp.float64)
    return params, x, h0


@pytest.mark.parametrize("cell", [CELL, GLA(d_in=5, n_heads=2, d_key=6, d_value=4, gate_rank=3, temperature=4.0)],
                         ids=["paper-sizes", "other-sizes"])
def test_chunk_sizes_and_the_materialised_scan_match_the_reference(cell):
    params, x, h0 = _setup(cell)
    expected = reference(cell, params, x, h0)
    for chunk_size in (1, 16, 64):
        out = jax.jit(lambda p, x, h: cell.forward(p, x, h, chunk_size=chunk_size))(params, x, h0)
        chex.assert_trees_all_close(out, expected, rtol=1e-9, atol=1e-10)
    out = jax.jit(lambda p, x, h: cell.forward_materialised(p, x, h))(params, x, h0)
    chex.assert_trees_all_close(out, expected, rtol=1e-9, atol=1e-10)


def test_strong_decay_is_exact_in_float32_at_chunk_64():
    """b_a = −320 gives log α = log σ(≈ −320)/16 ≈ −20 per token: a chunk of 64 sums to
    ≈ −1280, which the factored form exp(b) exp(−b) could not hold in float32."""
    length = 100  # two chunks of 64
    params, x, _ = _setup(length=length, seed=3)
    params = dict(params, b_a=jnp.full_like(params["b_a"], -320.0))
    log_alpha = CELL.log_decay(params, x)
    assert float(jnp.max(log_alpha)) < -19 and float(jnp.min(log_alpha)) > -21
    h0 = jnp.zeros((2,) + CELL.state_shape, jnp.float64)
    y_ref, final_ref = jax.jit(reference, static_argnums=0)(CELL, params, x, h0)  # jitted: a lax.scan of its step

    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    x32 = x.astype(jnp.float32)
    forward = jax.jit(lambda p, x: CELL.forward(p, x, chunk_size=64))
    y, final = forward(params32, x32)
    assert y.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(final)))
    scale = float(jnp.max(jnp.abs(y_ref)))
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), atol=1e-4 * scale)
    np.testing.assert_allclose(np.asarray(final), np.asarray(final_ref), atol=1e-4 * float(jnp.max(jnp.abs(final_ref))))

    def loss(p, x):
        y, final = CELL.forward(p, x, chunk_size=64)
        return jnp.sum(jnp.sin(y)) + jnp.sum(final**2)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params32, x32)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    assert float(jnp.max(jnp.abs(grads[1]))) > 0


def test_decay_is_sigmoid_to_the_one_over_tau():
    cell = GLA(d_in=16, n_heads=2, temperature=8.0)
    params = cell.init(jax.random.PRNGKey(1))
    x = 4 * jax.random.normal(jax.random.PRNGKey(2), (3, 20, 16))
    decay, update = cell.elements(params, x)
    chex.assert_shape(decay, (3, 20, 2, 4))
    chex.assert_shape(update, (3, 20, 2, 4, 8))
    logits = (x @ params["W_a1"]) @ params["W_a2"] + params["b_a"]
    np.testing.assert_allclose(decay.reshape(3, 20, 8) ** 8.0, jax.nn.sigmoid(logits), rtol=1e-5)
    assert bool(jnp.all((decay > 0) & (decay < 1)))


def test_decay_at_init_is_near_sigmoid_zero_to_the_one_over_16():
    """The gate path is small at init (Xavier gain 2^(−2.5), rank 16) and b_a is centred, so
    α ≈ σ(0)^(1/16) = 2^(−1/16) ≈ 0.958: a long memory from the start."""
    cell = GLA(d_in=128)
    params = cell.init(jax.random.PRNGKey(3))
    decay, _ = cell.elements(params, jax.random.normal(jax.random.PRNGKey(4), (4, 32, 128)))
    assert abs(float(jnp.mean(decay)) - 2 ** (-1 / 16)) < 5e-3
    assert float(jnp.min(decay)) > 0.9


def test_paper_sizes_are_the_defaults():
    cell = GLA(d_in=64)
    assert (cell.n_heads, cell.d_key, cell.d_value, cell.gate_rank, cell.temperature) == (4, 32, 64, 16, 16.0)
    assert cell.state_shape == (4, 8, 16)
    assert cell.d_out == 64 and not cell.complex_state
    assert cell.recurrent_params == {"W_a1", "W_a2", "b_a"}


def test_init_follows_the_papers_code():
    d_in = 256
    cell = GLA(d_in=d_in)
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_q": (256, 128), "W_k": (256, 128), "W_v": (256, 256), "W_a1": (256, 16), "W_a2": (16, 128),
              "b_a": (128,), "W_r": (256, 256), "b_r": (256,), "W_o": (256, 256)}
    assert {k: v.shape for k, v in params.items()} == shapes
    xavier = {"W_q", "W_k", "W_a1", "W_a2"}
    for name, value in params.items():
        w = np.asarray(value, np.float64)
        fan_in = 16 if name == "b_a" else (d_in if name == "b_r" else w.shape[0])
        if name in xavier:
            bound = 2**-2.5 * np.sqrt(6 / sum(w.shape))
        else:  # nn.Linear's default
            bound = 1 / np.sqrt(fan_in)
        assert np.all(np.abs(w) <= bound) and np.max(np.abs(w)) > 0.9 * bound, name
        if w.size >= 2048:
            np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.1, err_msg=name)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=8, n_heads=0), "n_heads"),
    (dict(d_in=8, n_heads=3), "n_heads"),  # the default 4 keys over 3 heads
    (dict(d_in=8, n_heads=2, d_value=5), "d_value"),
    (dict(d_in=1), "d_key"),  # d_in / 2 = 0 keys
    (dict(d_in=8, n_heads=2, gate_rank=0), "gate_rank"),
    (dict(d_in=8, n_heads=2, temperature=0.0), "temperature"),
    (dict(d_in=8, n_heads=2, temperature=-16), "temperature"),
    (dict(d_in=8, n_heads=2, temperature=float("inf")), "temperature"),
    (dict(d_in=8, n_heads=2, temperature="16"), "temperature"),
    (dict(d_in=8, n_heads=2, temperature=True), "temperature"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        GLA(**kwargs)

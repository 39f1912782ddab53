"""RetNet beyond the contract suite: the complex rotating decay equals the paper's parallel
retention with rotary positions by absolute position, the fixed decays and frequencies, the init."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.retnet import RetNet, retention_decays, rotary_frequencies
from tests.cells.references.retnet import retnet as reference
from tests.helpers import to64

CELL = RetNet(d_in=4, n_heads=2, d_key=8, d_value=6)
LENGTH = 37


def _setup(cell=CELL, length=LENGTH, seed=0):
    key_p, key_x, key_h = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = to64(cell.init(key_p))
    x = jax.random.normal(key_x, (2, length, cell.d_in), jnp.float64)
    shape = (2,) + cell.state_shape
    h0 = (jax.random.normal(key_h, shape, jnp.float64) + 1j * jax.random.normal(key_x, shape, jnp.float64)) / 2
    return params, x, h0


def _rotate(u, angles):
    """Rotary positions as the paper's code applies them (torchscale `theta_shift`): each
    adjacent pair (u_{2m}, u_{2m+1}) turned by its angle; u (B, T, H, K), angles (T, K/2)."""
    cos, sin = np.cos(angles)[None, :, None], np.sin(angles)[None, :, None]
    even, odd = u[..., 0::2], u[..., 1::2]
    turned = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return turned.reshape(u.shape)


def _parallel_retention(cell, params, x, sign=1.0):
    """(Q Kᵀ ⊙ D) V per head with Q, K rotated by absolute position n·θ and D_nm = γ^(n−m)
    for n ≥ m: the paper's parallel form, o (B, T, H, V). `sign` −1 turns the other way."""
    batch, length, _ = x.shape
    heads, key_dim, width = cell.n_heads, cell.d_key // cell.n_heads, cell.d_value // cell.n_heads
    theta = 10000.0 ** (-np.arange(key_dim // 2) / max(key_dim // 2 - 1, 1))
    angles = sign * np.arange(length)[:, None] * theta[None, :]
    q = _rotate((x @ params["W_q"]).reshape(batch, length, heads, key_dim), angles)
    k = _rotate((x @ params["W_k"]).reshape(batch, length, heads, key_dim), angles) * key_dim**-0.5
    v = (x @ params["W_v"]).reshape(batch, length, heads, width)
    n, m = np.arange(length)[:, None], np.arange(length)[None, :]
    gamma = 1 - 2.0 ** (-5 - np.arange(heads))
    decay = np.where(n >= m, gamma[:, None, None] ** np.maximum(n - m, 0), 0.0)  # (H, T, T)
    scores = jnp.einsum("bnhk,bmhk->bhnm", q, k) * decay
    return jnp.einsum("bhnm,bmhv->bnhv", scores, v)


def _group_norm_output(cell, params, x, o):
    mean = o.mean(-1, keepdims=True)
    normed = (o - mean) / jnp.sqrt(((o - mean) ** 2).mean(-1, keepdims=True) + 1e-6)
    return (jax.nn.silu(x @ params["W_g"]) * normed.reshape(o.shape[:2] + (-1,))) @ params["W_o"]


def test_retention_equals_the_parallel_form_with_rotary_positions():
    params, x, _ = _setup()
    zeros = CELL.initial_state((2,), jnp.float64)
    expected = _parallel_retention(CELL, params, x)
    for chunk_size in (1, 16, 64):
        o, _ = jax.jit(lambda p, x, h: CELL.retention(p, x, h, chunk_size=chunk_size))(params, x, zeros)
        chex.assert_trees_all_close(o, expected, rtol=1e-10, atol=1e-12)
    # The whole cell: the parallel retention through GroupNorm, the swish gate and W_o.
    y, _ = jax.jit(lambda p, x: CELL.forward(p, x))(params, x)
    chex.assert_trees_all_close(y, _group_norm_output(CELL, params, x, expected), rtol=1e-9, atol=1e-10)
    # The sign convention is seen: the rotation turned the other way is another function.
    assert float(jnp.max(jnp.abs(o - _parallel_retention(CELL, params, x, sign=-1.0)))) > 1e-3


@pytest.mark.parametrize("cell", [CELL, RetNet(d_in=4, n_heads=2, d_key=4)], ids=["K4", "K2"])
def test_chunk_sizes_and_the_materialised_scan_match_the_reference(cell):
    params, x, h0 = _setup(cell)
    y_ref, final_ref = reference(cell, params, x, h0)
    for chunk_size in (1, 16, 64):
        out = jax.jit(lambda p, x, h: cell.forward(p, x, h, chunk_size=chunk_size))(params, x, h0)
        chex.assert_trees_all_close(out, (y_ref, final_ref), rtol=1e-9, atol=1e-10)
    out = jax.jit(lambda p, x, h: cell.forward_materialised(p, x, h))(params, x, h0)
    chex.assert_trees_all_close(out, (y_ref, final_ref), rtol=1e-9, atol=1e-10)


def test_decays_and_frequencies_are_the_papers():
    np.testing.assert_allclose(retention_decays(4), [1 - 1 / 32, 1 - 1 / 64, 1 - 1 / 128, 1 - 1 / 256], rtol=1e-15)
    np.testing.assert_allclose(rotary_frequencies(4), [1.0, 10000 ** (-1 / 3), 10000 ** (-2 / 3), 1e-4], rtol=1e-12)
    np.testing.assert_array_equal(rotary_frequencies(1), [1.0])
    cell = RetNet(d_in=8, n_heads=4, d_key=16)
    params = cell.init(jax.random.PRNGKey(0))
    decay, update = cell.elements(params, jnp.ones((1, 3, 8)))
    chex.assert_shape(decay, (1, 3, 4, 2))
    chex.assert_shape(update, (1, 3, 4, 2, 4))
    assert jnp.iscomplexobj(decay) and jnp.iscomplexobj(update)
    # |decay| = γ_h per head, arg decay = −θ_m per key pair, the same for every token.
    np.testing.assert_allclose(np.abs(decay[0, 1]), np.broadcast_to(1 - 2.0 ** (-5 - np.arange(4))[:, None], (4, 2)),
                               rtol=1e-6)
    np.testing.assert_allclose(np.angle(decay[0, 2]), np.broadcast_to(-np.array([1.0, 1e-4]), (4, 2)), rtol=1e-5)


def test_sizes_and_defaults():
    cell = RetNet(d_in=6, n_heads=3)
    assert (cell.d_key, cell.d_value) == (6, 12)
    assert cell.state_shape == (3, 1, 4)
    assert cell.complex_state and cell.d_out == 6
    assert cell.recurrent_params == frozenset()
    assert RetNet(d_in=8).n_heads == 4
    state = cell.initial_state((5,))
    assert state.shape == (5, 3, 1, 4) and state.dtype == jnp.complex64


def test_init_follows_the_papers_code():
    d_in, heads = 256, 4
    cell = RetNet(d_in=d_in, n_heads=heads)
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_q": (256, 256), "W_k": (256, 256), "W_v": (256, 512), "W_g": (256, 512), "W_o": (512, 256)}
    assert {k: v.shape for k, v in params.items()} == shapes
    for name, gain in [("q", 2**-2.5), ("k", 2**-2.5), ("v", 2**-2.5), ("g", 2**-2.5), ("o", 1.0)]:
        w = np.asarray(params[f"W_{name}"], np.float64)
        bound = gain * np.sqrt(6 / sum(w.shape))  # Xavier-uniform
        assert np.all(np.abs(w) <= bound) and np.max(np.abs(w)) > 0.99 * bound
        np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.03)
        assert abs(w.mean()) < 0.01 * bound


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=4, n_heads=0), "n_heads"),
    (dict(d_in=4, n_heads=2.0), "n_heads"),
    (dict(d_in=4, n_heads=3), "n_heads"),  # the default 4 keys over 3 heads
    (dict(d_in=4, n_heads=2, d_key=6), "d_key"),  # K = 3 is odd: no complex pairs
    (dict(d_in=4, n_heads=2, d_value=5), "d_value"),
    (dict(d_in=4, d_key=0), "d_key"),
    (dict(d_in=4, n_heads=2, d_value=-2), "d_value"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        RetNet(**kwargs)

"""RWKV-6 beyond the contract suite: every parameter drawn at random (the init zeroes the LoRA
down-projections A_□, A_d, so the contract cases leave the data-dependent mixing at its first
order), the bonus u, the token shift across chunks, calls and resets, strong decays in float32,
the paper code's init and sizes, and the checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.rwkv6 import RWKV6
from tests.cells.references.rwkv6 import rwkv6 as reference
from tests.helpers import to64

CELL = RWKV6(d_in=6, n_heads=2, d_key=4, d_value=6, mix_rank=3, decay_rank=2)
TOL = dict(rtol=1e-9, atol=1e-9)
B = 2


def _setup(cell=CELL, length=13, seed=0, spread=0.5):
    """float64 params with every entry moved by N(0, spread²) (A_□ and A_d non-zero), x and a
    random state (S, x_prev)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = to64(cell.init(keys[0]))
    names = sorted(params)
    moves = jax.random.split(keys[1], len(names))
    params = {n: params[n] + spread * jax.random.normal(k, params[n].shape, jnp.float64) for n, k in zip(names, moves)}
    x = jax.random.normal(keys[2], (B, length, cell.d_in), jnp.float64)
    s0, x0 = cell.initial_state((B,), jnp.float64)
    k_s, k_x = jax.random.split(keys[3])
    state = (0.5 * jax.random.normal(k_s, s0.shape, jnp.float64), jax.random.normal(k_x, x0.shape, jnp.float64))
    return params, x, state


def test_random_params_match_the_reference_on_every_path():
    """Chunks of 1 and 5 (full chunks and a tail), the materialised scan and T steps."""
    params, x, h0 = _setup(length=13)
    expected = reference(CELL, params, x, h0)

    @jax.jit
    def every_path(p, x, h):
        chunked = [CELL.forward(p, x, h, chunk_size=c) for c in (1, 5)]
        stepped = jax.lax.scan(lambda s, x_t: CELL.step(p, s, x_t)[::-1], h, jnp.swapaxes(x, 0, 1))
        return chunked, CELL.forward_materialised(p, x, h), (jnp.swapaxes(stepped[1], 0, 1), stepped[0])

    chunked, materialised, stepped = every_path(params, x, h0)
    for name, got in [("C=1", chunked[0]), ("C=5", chunked[1]), ("materialised", materialised), ("step", stepped)]:
        chex.assert_trees_all_close(got, expected, **TOL, custom_message=name)


def test_random_params_gradients_match_the_reference():
    params, x, h0 = _setup(length=9, seed=1)
    weights = jax.random.normal(jax.random.PRNGKey(7), (B, 9, CELL.d_in), jnp.float64)

    def loss(forward):
        def value(p, x, h):
            y, (s, x_last) = forward(p, x, h)
            return jnp.sum(y * weights) + jnp.sum(jnp.sin(s)) + jnp.sum(x_last**2)
        return jax.grad(value, argnums=(0, 1, 2))

    got, expected = jax.jit(lambda p, x, h: (loss(lambda *a: CELL.forward(*a, chunk_size=4))(p, x, h),
                                             loss(lambda *a: reference(CELL, *a))(p, x, h)))(params, x, h0)
    chex.assert_trees_all_close(got, expected, rtol=1e-8, atol=1e-8)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree_util.tree_leaves(got))


def test_the_bonus_is_the_only_way_a_token_sees_itself():
    """From a zero state with u = 0 (and the norm's bias 0) the first output is exactly 0: the
    output reads S_{t−1}, not S_t; with u ≠ 0 it is not. And u never reaches the state."""
    params, x, _ = _setup(seed=2)
    params["norm_bias"] = jnp.zeros_like(params["norm_bias"])
    forward = jax.jit(lambda p, x: CELL.forward(p, x, chunk_size=4))
    y_without, _ = forward(dict(params, u=jnp.zeros_like(params["u"])), x[:, :1])
    np.testing.assert_array_equal(np.asarray(y_without), 0.0)
    y_with, _ = forward(params, x[:, :1])
    assert float(jnp.min(jnp.max(jnp.abs(y_with), axis=-1))) > 1e-3

    du = jax.jit(jax.grad(lambda u: jnp.sum(CELL.forward(dict(params, u=u), x, chunk_size=4)[1][0] ** 2)))(params["u"])
    np.testing.assert_array_equal(np.asarray(du), 0.0)
    dy = jax.jit(jax.grad(lambda u: jnp.sum(CELL.forward(dict(params, u=u), x, chunk_size=4)[0] ** 2)))(params["u"])
    assert float(jnp.min(jnp.abs(dy))) > 0


@pytest.mark.parametrize("cut", [4, 6], ids=["at-a-chunk-boundary", "inside-a-chunk"])
def test_a_sequence_cut_in_two_continues_through_the_state(cut):
    """forward(x[:, :cut]) then forward(x[:, cut:], state) is forward(x): the second call's first
    token mixes with x_prev = x[:, cut − 1] from the state."""
    params, x, h0 = _setup(seed=3)

    @jax.jit
    def whole_and_halves(p, x, h):
        first, state = CELL.forward(p, x[:, :cut], h, chunk_size=4)
        second, final = CELL.forward(p, x[:, cut:], state, chunk_size=4)
        return CELL.forward(p, x, h, chunk_size=4), (jnp.concatenate([first, second], axis=1), final), state

    whole, halves, middle = whole_and_halves(params, x, h0)
    chex.assert_trees_all_close(halves, whole, **TOL)
    np.testing.assert_array_equal(np.asarray(middle[1]), np.asarray(x[:, cut - 1]))
    np.testing.assert_array_equal(np.asarray(whole[1][1]), np.asarray(x[:, -1]))


@pytest.mark.parametrize("path", ["chunked", "materialised"])
def test_a_reset_cuts_the_token_shift(path):
    """With a reset at t, y_t and later outputs do not depend on x_{t−1} or anything before it
    (the token shift reads zeros there); without it, y_t does. Resets at 4 (a chunk boundary
    of C = 4) and 6 (inside a chunk)."""
    params, x, h0 = _setup(seed=4)
    forward = {"chunked": lambda *a, **k: CELL.forward(*a, chunk_size=4, **k),
               "materialised": CELL.forward_materialised}[path]
    resets = jnp.zeros((B, x.shape[1]), bool).at[0, 4].set(True).at[1, 6].set(True)

    def gradients(resets):
        def output_at(t, row):
            return lambda x, h: jnp.sum(forward(params, x, h, resets=resets)[0][row, t:])
        return [jax.grad(output_at(t, row), argnums=(0, 1))(x, h0) for row, t in ((0, 4), (1, 6))]

    with_resets, without = jax.jit(lambda: (gradients(resets), gradients(None)))()
    for (row, t), (dx, dh), (dx_free, _) in zip(((0, 4), (1, 6)), with_resets, without):
        np.testing.assert_array_equal(np.asarray(dx[row, :t]), 0.0)
        assert all(np.all(np.asarray(d[row]) == 0) for d in dh), "the state before the reset reaches y"
        assert float(jnp.min(jnp.abs(dx_free[row, t - 1]))) > 0, "y_t does not read x_{t−1} without a reset"


def test_strong_decays_are_exact_in_float32_at_chunk_64():
    """λ_d = log 20 (B_d = 0) gives log w = −20 on every key: a chunk of 64 sums to −1280."""
    params, x, h0 = _setup(length=100, seed=5, spread=0.1)
    params = dict(params, lambda_decay=jnp.full_like(params["lambda_decay"], np.log(20.0)),
                  B_decay=jnp.zeros_like(params["B_decay"]))
    y_ref, (s_ref, _) = jax.jit(reference, static_argnums=0)(CELL, params, x, h0)
    narrow = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), (params, x, h0))
    y, (s, _) = jax.jit(lambda p, x, h: CELL.forward(p, x, h, chunk_size=64))(*narrow)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), atol=1e-4 * float(jnp.max(jnp.abs(y_ref))))
    np.testing.assert_allclose(np.asarray(s), np.asarray(s_ref), atol=1e-4 * float(jnp.max(jnp.abs(s_ref))))
    grads = jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.sin(CELL.forward(p, x, chunk_size=64)[0]))))(*narrow[:2])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_init_follows_the_papers_code(rho):
    d = 128
    cell = RWKV6(d_in=d, layer_ratio=rho)
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), jax.jit(cell.init)(jax.random.PRNGKey(0)))
    shapes = {"mu_x": (d,), "lambda_mix": (5, d), "A_mix": (5, d, 32), "B_mix": (5, 32, d), "W_r": (d, d),
              "W_k": (d, d), "W_v": (d, d), "W_g": (d, d), "lambda_decay": (d,), "A_decay": (d, 64),
              "B_decay": (64, d), "u": (d,), "norm_scale": (d,), "norm_bias": (d,), "W_o": (d, d)}
    assert {k: v.shape for k, v in params.items()} == shapes
    ddd, n = np.arange(d) / d, np.arange(d) / (d - 1)
    shallow = 1 - rho
    np.testing.assert_allclose(params["mu_x"], 1 - ddd**shallow, atol=1e-6)
    np.testing.assert_allclose(params["lambda_mix"], np.stack([
        1 - ddd**shallow, 1 - ddd**shallow, 1 - (ddd**shallow + 0.3 * rho), 1 - ddd ** (0.5 * shallow),
        1 - ddd ** (0.5 * shallow)]), atol=1e-6)
    # decays exp(−exp(λ_d)) from exp(−e^−6) = 0.9975 on the first key to exp(−e^−1) = 0.69 on the last
    np.testing.assert_allclose(params["lambda_decay"], -6 + 5 * n ** (0.7 + 1.3 * rho), atol=1e-5)
    w = np.exp(-np.exp(params["lambda_decay"]))
    np.testing.assert_allclose(w[[0, -1]], [np.exp(-np.exp(-6)), np.exp(-np.exp(-1))], rtol=1e-5)
    assert np.all(np.diff(w) <= 0)
    np.testing.assert_allclose(params["u"], rho * (1 - n) + 0.1 * ((np.arange(d) + 1) % 3 - 1), atol=1e-6)
    for name in ("A_mix", "A_decay", "norm_bias"):
        np.testing.assert_array_equal(params[name], 0.0, err_msg=name)
    np.testing.assert_array_equal(params["norm_scale"], 1.0)
    for name in ("B_mix", "B_decay"):
        assert np.all(np.abs(params[name]) <= 0.01) and np.max(np.abs(params[name])) > 0.0099, name
    for name, gain in (("W_r", 1.0), ("W_v", 1.0), ("W_k", 0.1), ("W_g", 0.1)):
        np.testing.assert_allclose(np.linalg.svd(params[name], compute_uv=False), gain, rtol=1e-5, err_msg=name)
    bound = 1 / np.sqrt(d)
    assert np.all(np.abs(params["W_o"]) <= bound) and np.max(np.abs(params["W_o"])) > 0.9 * bound


def test_the_mix_is_data_independent_at_init():
    """A_□ = 0 at init: ddlerp_□(x_t, x_{t−1}) = x_t + (x_{t−1} − x_t) ⊙ λ_□."""
    cell = RWKV6(d_in=16)
    params = cell.init(jax.random.PRNGKey(1))
    x, previous = jax.random.normal(jax.random.PRNGKey(2), (2, 2, 5, 16))
    mixed = jax.jit(cell.ddlerp)(params, x, previous)
    chex.assert_shape(mixed, (5, 2, 5, 16))
    expected = x + (previous - x) * params["lambda_mix"][:, None, None]
    chex.assert_trees_all_close(mixed, expected, rtol=1e-6, atol=1e-6)


def test_paper_sizes_are_the_defaults():
    cell = RWKV6(d_in=128)
    assert (cell.n_heads, cell.d_key, cell.d_value, cell.mix_rank, cell.decay_rank, cell.layer_ratio) == \
        (2, 128, 128, 32, 64, 0.5)
    assert cell.state_shape == ((2, 64, 64), (128,)) and cell.d_out == 128
    chex.assert_trees_all_equal_shapes(cell.initial_state((3,)), (jnp.zeros((3, 2, 64, 64)), jnp.zeros((3, 128))))
    assert RWKV6(d_in=100).n_heads == 1 and RWKV6(d_in=8, d_key=128).n_heads == 2
    assert cell.recurrent_params == {"lambda_decay", "A_decay", "B_decay"}


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=8, n_heads=0), "n_heads"),
    (dict(d_in=8, n_heads=3), "n_heads"),
    (dict(d_in=8, n_heads=2, d_key=5), "d_key"),
    (dict(d_in=8, mix_rank=0), "mix_rank"),
    (dict(d_in=8, decay_rank=2.0), "decay_rank"),
    (dict(d_in=8, layer_ratio=1.5), "layer_ratio"),
    (dict(d_in=8, layer_ratio=-0.1), "layer_ratio"),
    (dict(d_in=8, layer_ratio="0.5"), "layer_ratio"),
    (dict(d_in=8, layer_ratio=True), "layer_ratio"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        RWKV6(**kwargs)


def test_a_bad_state_names_its_part():
    params, x, (s0, x0) = _setup(length=3)
    with pytest.raises(ValueError, match=r"state\[1\] must be a real floating array of shape \(2, 6\)"):
        CELL.forward(params, x, (s0, x0[:, :4]))
    with pytest.raises(ValueError, match=r"state must be a tuple of 2 arrays"):
        CELL.step(params, s0, x[:, 0])

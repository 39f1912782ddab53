"""The block-diagonal LRNN beyond the contract suite: the column normalisation and what it
bounds, the block layout of the elements, the init, and the options it refuses."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.block_diagonal import BlockDiagonalLRNN, normalise_columns
from tests.helpers import to64


def _transitions(cell, length, seed=0, scale=1.0):
    """A_t (1, length, n_blocks, b, b) in float64 for random params and inputs x ~ N(0, scale²)."""
    params = to64(cell.init(jax.random.PRNGKey(seed)))
    x = scale * jax.random.normal(jax.random.PRNGKey(seed + 1), (1, length, cell.d_in), jnp.float64)
    return np.asarray(cell.transitions(params, x))


@pytest.mark.parametrize("block_size, p, center", [(8, 1.2, True), (4, 1.0, True), (3, 2.0, False)])
def test_every_column_has_p_norm_at_most_one_and_each_block_one_of_exactly_one(block_size, p, center):
    cell = BlockDiagonalLRNN(d_in=4 * block_size, block_size=block_size, p=p, center_columns=center)
    a = _transitions(cell, 64, scale=10.0)  # large inputs: the raw blocks are far from norm 1
    chex.assert_shape(a, (1, 64, 4, block_size, block_size))
    column_norms = np.sum(np.abs(a) ** p, axis=-2) ** (1 / p)  # (1, T, n_blocks, b)
    assert np.all(column_norms <= 1 + 1e-12)
    np.testing.assert_allclose(column_norms.max(axis=-1), 1.0, rtol=1e-12)
    if center:
        np.testing.assert_allclose(a.sum(axis=-2), 0.0, atol=1e-12)  # 1ᵀ A = 0: centred columns


def test_a_block_is_rescaled_not_clipped():
    """Short columns are scaled up with the block (the authors' code), unlike max(1, ‖·‖_p)."""
    g = jnp.array([[0.1, 0.0], [0.0, 0.05]], jnp.float64)
    np.testing.assert_allclose(normalise_columns(g, 1.0), [[1.0, 0.0], [0.0, 0.5]], rtol=1e-12)
    # A zero block stays zero, and its gradient is finite.
    zero = jnp.zeros((2, 2), jnp.float64)
    np.testing.assert_array_equal(normalise_columns(zero, 1.2), 0.0)
    assert np.all(np.isfinite(jax.grad(lambda g: normalise_columns(g, 1.2).sum())(zero)))


def test_with_p_one_products_of_a_thousand_steps_stay_bounded():
    """The induced 1-norm is the largest column 1-norm, so ‖A_T ⋯ A_1‖₁ ≤ 1 at every T."""
    cell = BlockDiagonalLRNN(d_in=16, block_size=4, p=1.0)
    a = jnp.asarray(_transitions(cell, 1000, scale=3.0)[0])  # (T, n_blocks, b, b)
    products = jax.lax.associative_scan(lambda earlier, later: later @ earlier, a)
    one_norms = jnp.max(jnp.sum(jnp.abs(products), axis=-2), axis=-1)  # (T, n_blocks)
    assert float(jnp.max(one_norms)) <= 1 + 1e-9
    # ... and so are the states: ‖h_t‖₁ ≤ ‖h_0‖₁ + Σ_s ‖u_s‖₁.
    params = to64(cell.init(jax.random.PRNGKey(0)))
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(1), (1, 1000, 16), jnp.float64)
    h0 = jnp.ones((1, 4, 4), jnp.float64)
    y, _ = jax.jit(lambda p, x, h: cell.forward(p, x, h, method="associative"))(params, x, h0)
    _, update = cell.elements(params, x)
    bound = 16.0 + jnp.cumsum(jnp.sum(jnp.abs(update), axis=(-3, -2, -1)), axis=1)  # (1, T)
    assert bool(jnp.all(jnp.sum(jnp.abs(y), axis=-1) <= bound + 1e-9))


@pytest.mark.parametrize("block_size, p", [(8, 1.2), (4, 1.5)])
def test_with_p_above_one_each_step_is_bounded_by_b_to_the_one_minus_one_over_p(block_size, p):
    cell = BlockDiagonalLRNN(d_in=2 * block_size, block_size=block_size, p=p)
    a = _transitions(cell, 256, scale=3.0)
    one_norms = np.abs(a).sum(axis=-2).max(axis=-1)
    assert np.all(one_norms <= block_size ** (1 - 1 / p) + 1e-12)


def test_at_init_a_thousand_step_product_decays():
    """The paper's p = 1.2 gives no bound on products, but at init (b = 8, centred) the blocks
    contract: the product of 1000 steps is far below 1 in norm."""
    cell = BlockDiagonalLRNN(d_in=32, block_size=8)
    a = jnp.asarray(_transitions(cell, 1000)[0])
    product = jax.lax.associative_scan(lambda earlier, later: later @ earlier, a)[-1]
    assert float(jnp.max(jnp.abs(product))) < 1e-3


def test_elements_are_blocks_on_a_head_axis_and_the_state_is_per_block():
    cell = BlockDiagonalLRNN(d_in=12, block_size=3)
    params = cell.init(jax.random.PRNGKey(0))
    transition, update = cell.elements(params, jnp.ones((2, 5, 12)))
    chex.assert_shape(transition, (2, 5, 4, 3, 3))  # n_blocks · b² = d · b numbers, not d²
    chex.assert_shape(update, (2, 5, 4, 3, 1))
    chex.assert_shape(cell.initial_state((2,)), (2, 4, 3))
    # Block k of the state only sees block k of the input's update: perturbing block 0 of h0
    # leaves the other blocks' outputs unchanged.
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 12))
    h0 = cell.initial_state((2,))
    y0, _ = cell.forward(params, x, h0)
    y1, _ = cell.forward(params, x, h0.at[:, 0].set(1.0))
    np.testing.assert_array_equal(y1[..., 3:], y0[..., 3:])
    assert not np.allclose(y1[..., :3], y0[..., :3])


def test_init_is_pytorch_linear_and_nothing_is_recurrent():
    d_in, b = 64, 4
    cell = BlockDiagonalLRNN(d_in=d_in, block_size=b)
    params = cell.init(jax.random.PRNGKey(0))
    assert {k: v.shape for k, v in params.items()} == {
        "W_A": (d_in, 16 * b * b), "b_A": (16 * b * b,), "W_B": (d_in, d_in), "b_B": (d_in,)}
    bound = 1 / np.sqrt(d_in)
    for name, w in params.items():
        w = np.asarray(w)
        assert np.all(np.abs(w) <= bound) and np.abs(w).max() > 0.95 * bound, name
        np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.1 if w.ndim == 2 else 0.4)  # U[−a, a]: a²/3
    assert set(cell.param_labels(params).values()) == {"regular"}


@pytest.mark.parametrize("options, match", [
    (dict(d_in=6, block_size=4), "block_size must divide d_in = 6"),
    (dict(d_in=6, block_size=0), "block_size must be a positive int"),
    (dict(d_in=6, block_size=2.0), "block_size must be a positive int"),
    (dict(d_in=0), "d_in must be a positive int"),
    (dict(d_in=4, block_size=2, p=0.5), r"p must lie in \[1.0, inf\)"),
    (dict(d_in=4, block_size=2, p=float("inf")), r"p must lie in \[1.0, inf\)"),
    (dict(d_in=4, block_size=2, p=True), "p must be a number"),
    (dict(d_in=4, block_size=2, center_columns="yes"), "center_columns must be True or False"),
    (dict(d_in=4, block_size=1), "block_size must be at least 2 with center_columns=True"),
])
def test_bad_options_are_refused_by_name(options, match):
    with pytest.raises(ValueError, match=match):
        BlockDiagonalLRNN(**options)


def test_block_size_one_without_centring_is_a_diagonal_sign_recurrence():
    """b = 1 uncentred: each 1 × 1 block is g/|g| = ±1, a sign flip per token (parity's recurrence)."""
    cell = BlockDiagonalLRNN(d_in=3, block_size=1, center_columns=False)
    a = _transitions(cell, 32)
    np.testing.assert_allclose(np.abs(a), 1.0, rtol=1e-12)
    assert (a < 0).any() and (a > 0).any()

"""RG-LRU beyond the contract suite: the Λ init, the block-diagonal gates, the bounded √ gradient."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.rglru import MAX_SQRT_GRADIENT, RGLRU, block_diagonal_linear, sqrt_bounded_derivative


def _a_pow_c(cell, params):
    """a^c = σ(Λ)^c = exp(−c·softplus(−Λ)), in float64."""
    lam = np.asarray(params["Lambda"], np.float64)
    return np.exp(-cell.c * np.logaddexp(0.0, -lam))


@pytest.mark.parametrize("c, min_rad, max_rad", [(8.0, 0.9, 0.999), (4.0, 0.5, 0.95), (1.0, 0.99, 0.9999)])
def test_a_pow_c_is_uniform_between_the_radii(c, min_rad, max_rad):
    # Many small blocks keep the gate weights small while Λ gets 16384 samples.
    n = 16384
    cell = RGLRU(d_in=n, num_blocks=n // 2, c=c, min_rad=min_rad, max_rad=max_rad)
    samples = np.sort(_a_pow_c(cell, cell.init(jax.random.PRNGKey(0))))
    assert samples[0] >= min_rad - 1e-6 and samples[-1] <= max_rad + 1e-6
    width = max_rad - min_rad
    assert samples[0] < min_rad + 0.01 * width and samples[-1] > max_rad - 0.01 * width
    # Mean and variance of U[min_rad, max_rad], to a few standard errors.
    np.testing.assert_allclose(samples.mean(), (min_rad + max_rad) / 2, atol=4 * width / np.sqrt(12 * n))
    np.testing.assert_allclose(samples.var(), width**2 / 12, rtol=0.05)
    # Kolmogorov–Smirnov distance to the uniform CDF, below its 1% critical value.
    cdf = (samples - min_rad) / width
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert ks < 1.63 / np.sqrt(n)


def test_gate_a_of_one_recovers_a_pow_c():
    """With r_t = 1 the transition is exactly a^c; with r_t → 0 it tends to 1."""
    cell = RGLRU(d_in=4)
    params = cell.init(jax.random.PRNGKey(0))
    x = jnp.ones((1, 1, 4))
    a_open, _ = cell.elements({**params, "W_a": 0 * params["W_a"], "b_a": jnp.full((4,), 50.0)}, x)
    np.testing.assert_allclose(a_open[0, 0], _a_pow_c(cell, params), rtol=1e-6)
    a_shut, _ = cell.elements({**params, "W_a": 0 * params["W_a"], "b_a": jnp.full((4,), -50.0)}, x)
    np.testing.assert_allclose(a_shut[0, 0], 1.0, atol=1e-12)


def test_gates_are_stored_as_blocks_and_initialised_as_griffin():
    d_in, num_blocks = 4096, 64
    block = d_in // num_blocks
    cell = RGLRU(d_in=d_in, num_blocks=num_blocks)
    params = cell.init(jax.random.PRNGKey(1))
    assert {k: v.shape for k, v in params.items()} == {
        "Lambda": (d_in,), "W_a": (num_blocks, block, block), "b_a": (d_in,),
        "W_x": (num_blocks, block, block), "b_x": (d_in,)}
    for name in ("W_a", "W_x"):
        w = np.asarray(params[name], np.float64)
        np.testing.assert_allclose(w.var() * block, 1.0, rtol=0.02)
        assert abs(w.mean()) < 0.01 / np.sqrt(block)
    np.testing.assert_array_equal(params["b_a"], 0.0)
    np.testing.assert_array_equal(params["b_x"], 0.0)
    assert not np.array_equal(params["W_a"], params["W_x"])
    assert cell.param_labels(params) == {"Lambda": "recurrent", "W_a": "regular", "b_a": "regular",
                                         "W_x": "regular", "b_x": "regular"}


def test_block_diagonal_linear_is_the_dense_block_diagonal_matrix():
    w = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 2), jnp.float64)
    b = jax.random.normal(jax.random.PRNGKey(1), (6,), jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 5, 6), jnp.float64)
    dense = np.zeros((6, 6))
    for h in range(3):
        dense[2 * h:2 * h + 2, 2 * h:2 * h + 2] = w[h]
    np.testing.assert_allclose(block_diagonal_linear(x, w, b), x @ dense + b, rtol=1e-12)


def test_channels_only_see_their_own_block():
    """Off-block couplings are absent and stay so: the Jacobian of each token's elements
    with respect to its input is block-diagonal, at init and after a gradient step."""
    cell = RGLRU(d_in=6, num_blocks=3)
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), cell.init(jax.random.PRNGKey(0)))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 6), jnp.float64)
    mask = np.kron(np.eye(3), np.ones((2, 2))).astype(bool)

    @jax.jit
    def jacobians(params):
        return jax.jacobian(lambda x_t: cell.elements(params, x_t[None, None]))(x[0, 0])

    def check(params):
        for jac in jacobians(params):
            jac = np.asarray(jac[0, 0])
            assert np.all(jac[~mask] == 0) and np.all(np.abs(jac[mask]) > 0)

    check(params)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(cell.forward(p, x, method="sequential")[0] ** 2)))(params)
    chex.assert_trees_all_equal_shapes(grads, params)
    check(jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grads))


def test_sqrt_bounded_derivative_clips_only_near_zero():
    x = jnp.array([0.0, 1e-12, 2e-7, 2.5e-7, 3e-7, 1e-4, 0.5, 1.0], jnp.float64)
    np.testing.assert_array_equal(sqrt_bounded_derivative(x), jnp.sqrt(x))
    with np.errstate(divide="ignore"):
        expected = np.minimum(0.5 / np.sqrt(np.asarray(x)), MAX_SQRT_GRADIENT)
    reverse = jax.vmap(jax.grad(sqrt_bounded_derivative))(x)
    _, forward = jax.jvp(sqrt_bounded_derivative, (x,), (jnp.ones_like(x),))
    np.testing.assert_allclose(reverse, expected, rtol=1e-12)
    np.testing.assert_allclose(forward, expected, rtol=1e-12)
    assert MAX_SQRT_GRADIENT == 1000.0
    # Second derivatives exist (the rule is itself differentiable).
    assert np.isfinite(jax.grad(jax.grad(sqrt_bounded_derivative))(0.25))


def _plain_sqrt_loss(cell, params, x):
    """The cell's own formula for one sequence with a plain √, as a loop."""
    h, total = jnp.zeros(x.shape[-1], x.dtype), 0.0
    for t in range(x.shape[0]):
        blocks = x[t].reshape(params["W_a"].shape[:2])
        r = jax.nn.sigmoid(jnp.einsum("hi,hij->hj", blocks, params["W_a"]).reshape(-1) + params["b_a"])
        i = jax.nn.sigmoid(jnp.einsum("hi,hij->hj", blocks, params["W_x"]).reshape(-1) + params["b_x"])
        log_a = -cell.c * jax.nn.softplus(-params["Lambda"]) * r
        h = jnp.exp(log_a) * h + jnp.sqrt(-jnp.expm1(2 * log_a)) * i * x[t]
        total = total + jnp.sum(h)
    return total


@pytest.mark.parametrize("dtype, name, value", [
    (jnp.float32, "Lambda", 200.0),      # softplus(−Λ) underflows: a_t = 1 exactly
    (jnp.float64, "Lambda", 800.0),
    (jnp.float32, "b_a", -200.0),        # r_t underflows to 0: a_t = 1 exactly
    (jnp.float64, "b_a", -1000.0),
])
def test_gradient_stays_finite_as_a_tends_to_one(dtype, name, value):
    cell = RGLRU(d_in=4, num_blocks=2)
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), cell.init(jax.random.PRNGKey(0)))
    params[name] = jnp.full_like(params[name], value)
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 6, 4), dtype)

    def loss(params, x):
        return jnp.sum(cell.forward(params, x, method="sequential")[0])

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(leaf)) and np.max(np.abs(leaf)) < 10 * MAX_SQRT_GRADIENT
    plain = jax.jit(jax.grad(lambda p, x: _plain_sqrt_loss(cell, p, x[0]), argnums=(0, 1)))(params, x)
    assert not all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(plain))
    # Forward mode through the elements (the scan engine itself is reverse-mode only)
    # agrees with reverse mode through the clipped derivative.
    def b_sum(params):
        return jnp.sum(cell.elements(params, x)[1])

    direction = jax.tree_util.tree_map(jnp.ones_like, params)
    _, tangent = jax.jit(lambda p, d: jax.jvp(b_sum, (p,), (d,)))(params, direction)
    assert np.isfinite(tangent)
    reverse = jax.jit(jax.grad(b_sum))(params)
    np.testing.assert_allclose(tangent, sum(jnp.sum(g) for g in jax.tree_util.tree_leaves(reverse)),
                               rtol=1e-4 if dtype == jnp.float32 else 1e-10)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=4, num_blocks=0), "num_blocks"),
    (dict(d_in=4, num_blocks=3), "num_blocks"),
    (dict(d_in=4, num_blocks=8), "num_blocks"),
    (dict(d_in=4, c=0.0), "c"),
    (dict(d_in=4, c=-8.0), "c"),
    (dict(d_in=4, min_rad=0.0), "min_rad"),
    (dict(d_in=4, min_rad=1.0, max_rad=1.0), "min_rad"),
    (dict(d_in=4, max_rad=1.0), "max_rad"),
    (dict(d_in=4, max_rad=1.2), "max_rad"),
    (dict(d_in=4, min_rad=0.95, max_rad=0.9), "min_rad"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        RGLRU(**kwargs)

"""HGRN beyond the contract suite: the layer lower bounds, the lower_bound input, the init."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.hgrn import HGRN, lower_bounds
from tests.cells.references.hgrn import hgrn as reference


def _paper_lower_bounds(logits):
    """γ^k = [Cumsum(softmax(logits))]_k − p_1 (the paper's definition, in numpy)."""
    e = np.exp(logits - logits.max(axis=0))
    p = e / e.sum(axis=0)
    return np.cumsum(p, axis=0) - p[0]


def test_lower_bounds_match_the_paper_and_rise_with_depth():
    logits = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (6, 5), jnp.float64)) * 2
    bounds = np.asarray(lower_bounds(logits))
    np.testing.assert_allclose(bounds, _paper_lower_bounds(logits), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(bounds[0], 0.0)
    assert np.all(np.diff(bounds, axis=0) > 0)
    assert np.all(bounds < 1)
    # The top layer's bound is 1 − p_0.
    p0 = np.exp(logits[0]) / np.exp(logits).sum(axis=0)
    np.testing.assert_allclose(bounds[-1], 1 - p0, rtol=1e-12)


def test_constant_logits_give_evenly_spaced_bounds():
    layers = 8
    bounds = lower_bounds(jnp.ones((layers, 3)))
    np.testing.assert_allclose(bounds, np.broadcast_to(np.arange(layers)[:, None] / layers, (layers, 3)), atol=1e-7)


def test_lower_bounds_stay_below_one_for_extreme_logits():
    logits = jnp.array([[0.0], [-30.0], [30.0]], jnp.float64)
    bounds = np.asarray(lower_bounds(logits))
    assert bounds[0, 0] == 0 and bounds[1, 0] > 0 and bounds[2, 0] < 1


def test_lower_bounds_refuse_a_scalar():
    with pytest.raises(ValueError, match="logits"):
        lower_bounds(jnp.float32(1.0))


@pytest.mark.parametrize("complex_valued", [False, True])
def test_transition_lies_between_the_lower_bound_and_one(complex_valued):
    cell = HGRN(d_in=4, width=6, complex_valued=complex_valued)
    params = cell.init(jax.random.PRNGKey(0))
    x = 3 * jax.random.normal(jax.random.PRNGKey(1), (8, 50, 4))
    bound = np.linspace(0.0, 0.95, 6)
    a, b = cell.elements(params, x, lower_bound=bound)
    chex.assert_shape((a, b), (8, 50, 6))
    radius = np.abs(np.asarray(a))
    assert np.all(radius >= bound - 1e-6) and np.all(radius < 1)
    if complex_valued:
        np.testing.assert_allclose(np.angle(np.asarray(a)), np.broadcast_to(params["theta"], a.shape), atol=1e-5)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, np.array([0.2, 1.0, 0.1]), np.array([0.2, -1e-3, 0.1])])
def test_lower_bound_outside_the_unit_interval_is_refused(bad):
    cell = HGRN(d_in=2, width=3)
    params = cell.init(jax.random.PRNGKey(0))
    x = jnp.ones((1, 4, 2))
    with pytest.raises(ValueError, match=r"lower_bound must lie in \[0, 1\)"):
        cell.forward(params, x, lower_bound=bad)
    with pytest.raises(ValueError, match=r"lower_bound must lie in \[0, 1\)"):
        cell.step(params, cell.initial_state((1,)), x[:, 0], lower_bound=bad)


@pytest.mark.parametrize("shape", [(4,), (2,), (1, 3), (3, 3)])
def test_lower_bound_of_the_wrong_shape_is_refused(shape):
    cell = HGRN(d_in=2, width=3)
    params = cell.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"lower_bound must be a scalar or have shape \(width,\) = \(3,\)"):
        cell.forward(params, jnp.ones((1, 4, 2)), lower_bound=np.full(shape, 0.5))


def test_lower_bound_may_be_traced_and_its_gradient_matches_the_reference():
    """A model computes the bounds from trainable logits inside jit: no value check then,
    and the gradient reaches the logits."""
    cell = HGRN(d_in=3, width=4, complex_valued=True)
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), cell.init(jax.random.PRNGKey(0)))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3), jnp.float64)
    logits = jax.random.normal(jax.random.PRNGKey(2), (3, 4), jnp.float64)
    h0 = jnp.zeros((2, 4), jnp.complex128)

    def loss(forward, logits):
        y, final = forward(lower_bounds(logits)[2])
        return jnp.sum(y**2) + jnp.sum(jnp.abs(final) ** 2)

    grad = jax.jit(jax.grad(lambda l: loss(lambda lb: cell.forward(params, x, lower_bound=lb), l)))(logits)
    expected = jax.jit(jax.grad(lambda l: loss(lambda lb: reference(cell, params, x, h0, lower_bound=lb), l)))(logits)
    assert np.all(np.isfinite(grad)) and np.any(np.abs(grad) > 1e-6)
    chex.assert_trees_all_close(grad, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("complex_valued", [False, True])
def test_init_follows_the_papers_code(complex_valued):
    d_in, width = 256, 512
    cell = HGRN(d_in=d_in, width=width, complex_valued=complex_valued)
    params = cell.init(jax.random.PRNGKey(0))
    features = 2 * width if complex_valued else width
    inputs = ["c_re", "c_im"] if complex_valued else ["c"]
    shapes = {"W_f": (d_in, width), "b_f": (width,), "W_g": (d_in, features), "b_g": (features,),
              "W_o": (features, d_in), "b_o": (d_in,), "norm_scale": (features,), "norm_bias": (features,)}
    shapes.update({f"W_{name}": (d_in, width) for name in inputs})
    shapes.update({f"b_{name}": (width,) for name in inputs})
    if complex_valued:
        shapes["theta"] = (width,)
    assert {k: v.shape for k, v in params.items()} == shapes
    # nn.Linear: U[−1/√fan_in, 1/√fan_in], variance 1/(3 fan_in).
    for name in ["f", "g", "o"] + inputs:
        fan_in = params[f"W_{name}"].shape[0]
        for value in (params[f"W_{name}"], params[f"b_{name}"]):
            bound = 1 / np.sqrt(fan_in)
            assert np.all(np.abs(value) <= bound)
        w = np.asarray(params[f"W_{name}"], np.float64)
        np.testing.assert_allclose(w.var() * 3 * fan_in, 1.0, rtol=0.02)
        assert abs(w.mean()) < 0.01 / np.sqrt(fan_in)
    np.testing.assert_array_equal(params["norm_scale"], 1.0)
    np.testing.assert_array_equal(params["norm_bias"], 0.0)
    if complex_valued:
        np.testing.assert_allclose(params["theta"], 10000.0 ** (-2 * np.arange(width) / width), rtol=1e-6)
        assert cell.recurrent_params == {"W_f", "b_f", "theta"}
    else:
        assert cell.recurrent_params == {"W_f", "b_f"}


@pytest.mark.parametrize("lower_bound", [0.0, 0.5, 0.875])
def test_forget_gate_at_init_is_centred_between_the_bound_and_one(lower_bound):
    """W_f, b_f are symmetric about 0 at init, so σ(W_f x + b_f) averages ½ and
    λ averages γ + (1 − γ)/2 over inputs and channels."""
    cell = HGRN(d_in=64, width=1024)
    params = cell.init(jax.random.PRNGKey(3))
    x = jax.random.normal(jax.random.PRNGKey(4), (16, 64, 64))
    lam, _ = cell.elements(params, x, lower_bound=lower_bound)
    expected = lower_bound + (1 - lower_bound) / 2
    assert abs(float(jnp.mean(lam)) - expected) < 0.01 * (1 - lower_bound)
    assert float(jnp.min(lam)) >= lower_bound


def test_width_defaults_to_d_in():
    assert HGRN(d_in=5).width == 5
    assert HGRN(d_in=5).state_shape == (5,)
    assert HGRN(d_in=5, width=7).d_out == 5


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=2.0), "d_in"),
    (dict(d_in=3, width=0), "width"),
    (dict(d_in=3, width=-2), "width"),
    (dict(d_in=3, complex_valued="yes"), "complex_valued"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        HGRN(**kwargs)

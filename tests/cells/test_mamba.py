"""Mamba (S6) specifics: the paper's init (Δ log-uniform in [dt_min, dt_max] through
softplus(b_dt), A_log = log(1..N), D = 1, W_dt ~ U[±dt_rank^−½]), hyperparameter errors,
and the transitions of both eigenvalue ranges."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.mamba import Mamba


def ks_uniform(samples, low, high):
    """Kolmogorov–Smirnov distance of samples from U[low, high]."""
    s = np.sort((np.asarray(samples, np.float64) - low) / (high - low))
    n = s.size
    return max(np.max(np.arange(1, n + 1) / n - s), np.max(s - np.arange(n) / n))


def test_step_size_at_init_is_log_uniform_in_dt_range():
    d_in, dt_min, dt_max = 8192, 1e-3, 1e-1
    params = Mamba(d_in, d_state=2, dt_min=dt_min, dt_max=dt_max).init(jax.random.PRNGKey(0))
    dt = np.asarray(jax.nn.softplus(params["b_dt"].astype(jnp.float64)))
    assert dt.min() >= dt_min * (1 - 1e-5) and dt.max() <= dt_max * (1 + 1e-5)
    assert ks_uniform(np.log(dt), np.log(dt_min), np.log(dt_max)) < 1.63 / math.sqrt(d_in)  # α = 0.01
    np.testing.assert_allclose(np.log(dt).mean(), 0.5 * (np.log(dt_min) + np.log(dt_max)), atol=0.05)


def test_step_size_floor():
    d_in, dt_min, dt_max, floor = 8192, 1e-5, 1e-1, 1e-3
    params = Mamba(d_in, d_state=2, dt_min=dt_min, dt_max=dt_max, dt_init_floor=floor).init(jax.random.PRNGKey(1))
    dt = np.asarray(jax.nn.softplus(params["b_dt"].astype(jnp.float64)))
    assert dt.min() >= floor * (1 - 1e-5)
    at_floor = np.mean(np.isclose(dt, floor, rtol=1e-4))
    expected = (np.log(floor) - np.log(dt_min)) / (np.log(dt_max) - np.log(dt_min))  # P(Δ₀ < floor) = 0.5
    np.testing.assert_allclose(at_floor, expected, atol=4 * math.sqrt(0.25 / d_in))


def test_state_matrix_skip_and_projection_init():
    d_in, n = 256, 16
    cell = Mamba(d_in, d_state=n)
    params = cell.init(jax.random.PRNGKey(2))
    assert cell.rank == 16
    np.testing.assert_allclose(params["A_log"], np.log(np.tile(np.arange(1, n + 1), (d_in, 1))), rtol=1e-7)
    np.testing.assert_array_equal(params["D"], np.ones(d_in))
    w_x = np.asarray(params["W_x"])
    assert w_x.shape == (d_in, cell.rank + 2 * n)
    assert np.abs(w_x).max() <= 1 / math.sqrt(d_in)
    np.testing.assert_allclose(w_x.var(), 1 / (3 * d_in), rtol=5 * math.sqrt(0.8 / w_x.size))
    w_dt = np.asarray(params["W_dt"])
    assert w_dt.shape == (cell.rank, d_in)
    assert np.abs(w_dt).max() <= cell.rank**-0.5
    np.testing.assert_allclose(w_dt.var(), 1 / (3 * cell.rank), rtol=5 * math.sqrt(0.8 / w_dt.size))
    assert set(params) == {"W_x", "W_dt", "b_dt", "A_log", "D"}


@pytest.mark.parametrize("d_in,rank", [(1, 1), (16, 1), (17, 2), (64, 4)])
def test_default_dt_rank(d_in, rank):
    assert Mamba(d_in).rank == rank
    assert Mamba(d_in, dt_rank=3).rank == 3


def test_recurrent_params():
    cell = Mamba(4, d_state=3)
    labels = cell.param_labels(cell.init(jax.random.PRNGKey(0)))
    assert {k for k, v in labels.items() if v == "recurrent"} == {"A_log", "b_dt", "D"}


@pytest.mark.parametrize("field,value", [
    ("d_in", 0), ("d_in", 1.5), ("d_state", 0), ("d_state", -3), ("dt_rank", 0), ("dt_rank", 2.0),
    ("dt_min", 0.0), ("dt_min", -1e-3), ("dt_max", 0.0), ("dt_max", math.inf), ("dt_min", 0.5),
    ("dt_init_floor", 0.0), ("dt_init_floor", -1e-4),
    ("eigenvalue_range", (0, 2)), ("eigenvalue_range", (-1, 0)), ("eigenvalue_range", (1, 0)),
    ("eigenvalue_range", (0, 1, 2)), ("eigenvalue_range", "(0, 1)"), ("eigenvalue_range", None),
    ("eigenvalue_range", (False, True)), ("eigenvalue_range", np.array([0, 1])),
])
def test_invalid_hyperparameters(field, value):
    with pytest.raises(ValueError, match=field):
        Mamba(**{"d_in": 4, field: value})


def test_eigenvalue_range_accepts_lists_and_floats():
    assert Mamba(2, eigenvalue_range=[-1.0, 1]).eigenvalue_range == (-1.0, 1.0)
    assert Mamba(2, eigenvalue_range=(0.0, 1.0)) == Mamba(2)
    hash(Mamba(2, eigenvalue_range=[0, 1]))


def transitions(cell, key):
    params = cell.init(jax.random.PRNGKey(3))
    x = 2 * jax.random.normal(key, (4, 64, cell.d_in), jnp.float64)
    return cell.elements(params, x)[0]


def test_transitions_lie_in_the_eigenvalue_range():
    key = jax.random.PRNGKey(4)
    positive = transitions(Mamba(8, d_state=16), key)
    negative = transitions(Mamba(8, d_state=16, eigenvalue_range=(-1, 1)), key)
    assert positive.shape == (4, 64, 8, 16)
    assert bool(jnp.all(positive > 0)) and bool(jnp.all(positive < 1))
    assert bool(jnp.all(negative > -1)) and bool(jnp.all(negative < 1))
    np.testing.assert_allclose(negative, 2 * positive - 1, rtol=1e-12)
    assert float(jnp.mean(negative < 0)) > 0.01 and float(negative.min()) < -0.2  # used, not just allowed


def test_negative_range_flips_the_sign_of_the_state():
    """One channel, one state, x ≡ 1, with Δ·A large enough that Ā ≈ −1: the state
    alternates in sign in the (−1, 1) range and never changes sign in (0, 1)."""
    for eigenvalue_range, alternates in (((0, 1), False), ((-1, 1), True)):
        cell = Mamba(1, d_state=1, dt_rank=1, eigenvalue_range=eigenvalue_range)
        params = {"W_x": jnp.array([[0.0, 1.0, 1.0]]), "W_dt": jnp.zeros((1, 1)), "b_dt": jnp.array([20.0]),
                  "A_log": jnp.zeros((1, 1)), "D": jnp.zeros((1,))}
        y, _ = cell.forward(params, jnp.ones((1, 6, 1)), jnp.full((1, 1, 1), 100.0))
        signs = np.sign(np.asarray(y[0, :, 0]))
        assert bool(np.all(signs[1:] != signs[:-1])) == alternates
        assert bool(np.all(signs > 0)) != alternates

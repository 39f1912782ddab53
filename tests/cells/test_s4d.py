"""S4D: the paper's initialisation (S4D-Lin / S4D-Inv, Δ range, B = 1, complex normal C),
hyperparameter validation, and the properties of the diagonal SSM it defines."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from lrnn.cells.s4d import S4D

RECURRENT = {"A_re_log", "A_im", "log_dt", "B_re", "B_im"}


def init(cell, seed=0):
    return {k: np.asarray(v, np.float64) for k, v in cell.init(jax.random.PRNGKey(seed)).items()}


@pytest.mark.parametrize("conj_sym, modes", [(True, 8), (False, 16)])
def test_shapes_and_modes(conj_sym, modes):
    cell = S4D(d_in=3, d_state=16, conj_sym=conj_sym)
    params = init(cell)
    assert cell.state_shape == (3, modes)
    for name in ("A_re_log", "A_im", "B_re", "B_im", "C_re", "C_im"):
        assert params[name].shape == (3, modes), name
    assert params["log_dt"].shape == (3,) and params["D"].shape == (3,)
    assert set(params) == RECURRENT | {"C_re", "C_im", "D"}
    assert {k for k, v in cell.param_labels(params).items() if v == "recurrent"} == RECURRENT


@pytest.mark.parametrize("a_init", ["lin", "inv"])
@pytest.mark.parametrize("conj_sym", [True, False])
def test_eigenvalues_follow_the_init_formula(a_init, conj_sym):
    N = 64
    cell = S4D(d_in=4, d_state=N, a_init=a_init, conj_sym=conj_sym)
    params = cell.init(jax.random.PRNGKey(0))
    A = np.asarray(cell.eigenvalues(params))
    np.testing.assert_array_equal(A.real, -0.5)  # Re A = −½ exactly, before Δ
    n = np.arange(N // 2 if conj_sym else N, dtype=np.float64)
    expected = math.pi * n if a_init == "lin" else N / math.pi * (N / (2 * n + 1) - 1)
    for channel in A.imag:
        np.testing.assert_allclose(channel, expected, rtol=1e-6)


def test_s4d_inv_first_and_last_modes():
    # (N/π)(N/(2n+1) − 1): N(N−1)/π at n = 0, and about N/π·(1/(1 − 1/N) − 1) ≈ 1/π at n = N/2 − 1.
    N = 8
    A_im = np.asarray(S4D(d_in=1, d_state=N, a_init="inv").init(jax.random.PRNGKey(0))["A_im"])[0]
    np.testing.assert_allclose(A_im[0], N * (N - 1) / math.pi, rtol=1e-6)
    np.testing.assert_allclose(A_im[-1], N / math.pi * (N / 7 - 1), rtol=1e-6)


def test_log_dt_is_log_uniform_on_the_range():
    dt_min, dt_max = 2e-3, 5e-2
    log_dt = init(S4D(d_in=20000, d_state=2, dt_min=dt_min, dt_max=dt_max))["log_dt"]
    lo, hi = math.log(dt_min), math.log(dt_max)
    assert log_dt.min() >= lo - 1e-6 and log_dt.max() <= hi + 1e-6
    assert log_dt.min() < lo + 0.01 * (hi - lo) and log_dt.max() > hi - 0.01 * (hi - lo)
    assert stats.kstest(log_dt, stats.uniform(lo, hi - lo).cdf).statistic < 0.015
    np.testing.assert_allclose(log_dt.mean(), (lo + hi) / 2, atol=0.02)


def test_B_is_one_and_C_is_complex_standard_normal():
    params = init(S4D(d_in=64, d_state=1024), seed=3)
    np.testing.assert_array_equal(params["B_re"], 1.0)
    np.testing.assert_array_equal(params["B_im"], 0.0)
    for part in ("C_re", "C_im"):  # E|C|² = 1: each part N(0, ½)
        c = params[part].ravel()
        assert abs(c.mean()) < 0.015
        np.testing.assert_allclose(c.var(), 0.5, rtol=0.03)
        assert stats.kstest(c, stats.norm(0, math.sqrt(0.5)).cdf).statistic < 0.01
    np.testing.assert_allclose(np.mean(params["C_re"] * params["C_im"]), 0.0, atol=0.01)


def test_D_is_standard_normal():
    D = init(S4D(d_in=20000, d_state=2), seed=4)["D"]
    assert abs(D.mean()) < 0.03
    np.testing.assert_allclose(D.std(), 1.0, rtol=0.03)


def test_discrete_eigenvalues_are_stable_at_init():
    cell = S4D(d_in=256, d_state=8)
    params = cell.init(jax.random.PRNGKey(0))
    a, _ = cell.elements(params, jnp.zeros((1, 1, 256)))
    # |Ā| = exp(−Δ/2) with Δ ∈ [dt_min, dt_max]
    dt = np.exp(np.asarray(params["log_dt"]))[:, None]
    np.testing.assert_allclose(np.abs(np.asarray(a[0, 0])), np.broadcast_to(np.exp(-dt / 2), (256, 4)), rtol=1e-6)


def test_impulse_response_is_the_s4d_kernel():
    # The convolution view: y = K * x + D x with K_l = 2·Re Σ_n C_n B̄_n Ā_n^l (ZOH).
    cell = S4D(d_in=2, d_state=6, a_init="inv")
    params = {k: v.astype(jnp.float64) for k, v in cell.init(jax.random.PRNGKey(5)).items()}
    T = 12
    x = jnp.zeros((1, T, 2), jnp.float64).at[0, 0].set(1.0)
    y, _ = jax.jit(lambda p, x: cell.forward(p, x, method="associative"))(params, x)
    A = -np.exp(np.asarray(params["A_re_log"])) + 1j * np.asarray(params["A_im"])
    dt = np.exp(np.asarray(params["log_dt"]))[:, None]
    B_bar = (np.exp(dt * A) - 1) / A * (np.asarray(params["B_re"]) + 1j * np.asarray(params["B_im"]))
    C = np.asarray(params["C_re"]) + 1j * np.asarray(params["C_im"])
    K = np.stack([2 * np.real(np.sum(C * B_bar * np.exp(dt * A * l), axis=-1)) for l in range(T)])
    K[0] += np.asarray(params["D"])
    np.testing.assert_allclose(np.asarray(y[0]), K, rtol=1e-10, atol=1e-12)


def test_conj_sym_equals_the_explicit_conjugate_pairs():
    half = S4D(d_in=3, d_state=8)
    full = S4D(d_in=3, d_state=8, conj_sym=False)
    p = {k: v.astype(jnp.float64) for k, v in half.init(jax.random.PRNGKey(6)).items()}
    both = lambda a, sign=1: jnp.concatenate([a, sign * a], axis=-1)  # noqa: E731
    q = {"A_re_log": both(p["A_re_log"]), "A_im": both(p["A_im"], -1), "log_dt": p["log_dt"],
         "B_re": both(p["B_re"]), "B_im": both(p["B_im"], -1),
         "C_re": both(p["C_re"]), "C_im": both(p["C_im"], -1), "D": p["D"]}
    x = jax.random.normal(jax.random.PRNGKey(7), (2, 9, 3), jnp.float64)
    y_half, y_full = jax.jit(lambda p, q, x: (half.forward(p, x)[0], full.forward(q, x)[0]))(p, q, x)
    np.testing.assert_allclose(y_half, y_full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=2.0), "d_in"),
    (dict(d_state=0), "d_state"),
    (dict(d_state=7), "d_state"),
    (dict(a_init="legs"), "a_init"),
    (dict(conj_sym="yes"), "conj_sym"),
    (dict(dt_min=0.0), "dt_min"),
    (dict(dt_min=-1e-3), "dt_min"),
    (dict(dt_max=0.0, dt_min=1e-3), "dt_max"),
    (dict(dt_min=0.1, dt_max=0.01), "dt_min"),
    (dict(dt_min="small"), "dt_min"),
])
def test_invalid_hyperparameters_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        S4D(**{"d_in": 2, **kwargs})


def test_odd_d_state_is_fine_without_conj_sym():
    cell = S4D(d_in=2, d_state=7, conj_sym=False)
    assert cell.state_shape == (2, 7)
    with pytest.raises(ValueError, match="even"):
        S4D(d_in=2, d_state=7)

"""minGRU / minLSTM specifics: PyTorch-Linear init, hyperparameter errors, the g of the
log-space model, the exact log-space gates, the state check, and the log-space scan staying
finite where the product of forget gates underflows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.min_rnn import MinGRU, MinLSTM, g, log_g
from lrnn.scan import DiagonalMonoid, LogDiagonalMonoid
from tests.cells.references.min_rnn import min_gru, min_lstm

CELLS = [MinGRU, MinLSTM]
NAMES = {MinGRU: ("z", "h"), MinLSTM: ("f", "i", "h")}


@pytest.mark.parametrize("cls", CELLS)
def test_init_is_pytorch_linear(cls):
    d_in, d_hidden = 64, 4096
    params = cls(d_in, d_hidden).init(jax.random.PRNGKey(0))
    assert set(params) == {f"{kind}_{n}" for n in NAMES[cls] for kind in "Wb"}
    bound = 1 / np.sqrt(d_in)
    for n in NAMES[cls]:
        w, b = np.asarray(params[f"W_{n}"]), np.asarray(params[f"b_{n}"])
        assert w.shape == (d_in, d_hidden) and b.shape == (d_hidden,)
        for v in (w, b):
            assert v.min() >= -bound and v.max() <= bound
            assert abs(v.mean()) < 4 * bound / np.sqrt(3 * v.size)
            np.testing.assert_allclose(v.var(), bound**2 / 3, rtol=5 * np.sqrt(0.8 / v.size))
    assert not np.allclose(params[f"W_{NAMES[cls][0]}"], params["W_h"])


@pytest.mark.parametrize("cls", CELLS)
def test_no_recurrent_params(cls):
    cell = cls(3, 4)
    assert set(cell.param_labels(cell.init(jax.random.PRNGKey(0))).values()) == {"regular"}


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("field,value", [("d_in", 0), ("d_in", -2), ("d_in", 2.5), ("d_in", True),
                                         ("d_hidden", 0), ("d_hidden", "4"),
                                         ("log_space", 1), ("log_space", "yes"), ("log_space", None)])
def test_invalid_hyperparameters(cls, field, value):
    kwargs = {"d_in": 3, "d_hidden": 4, field: value}
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)


@pytest.mark.parametrize("cls", CELLS)
def test_shapes_and_monoid(cls):
    assert cls(3, 5).d_out == 5 and cls(3, 5).state_shape == (5,)
    assert isinstance(cls(3, 5).monoid, DiagonalMonoid)
    assert isinstance(cls(3, 5, log_space=True).monoid, LogDiagonalMonoid)


def test_g_is_positive_and_continuous():
    v = jnp.linspace(-60.0, 60.0, 200_001)
    assert bool(jnp.all(g(v) > 0))
    steps = np.diff(np.asarray(g(v)))
    assert steps.min() > 0 and steps.max() <= float(v[1] - v[0]) * (1 + 1e-9)  # increasing, 1-Lipschitz: no jump
    np.testing.assert_allclose(g(jnp.array([-1e-12, 0.0, 1e-12])), 0.5, atol=1e-12)
    np.testing.assert_allclose(g(jnp.array([-2.0, 3.0])), [1 / (1 + np.exp(2.0)), 3.5])


def test_log_g_is_log_of_g_and_finite_far_below_zero():
    v = jnp.linspace(-30.0, 30.0, 10_001)
    np.testing.assert_allclose(log_g(v), jnp.log(g(v)), rtol=1e-12, atol=1e-12)
    far = jnp.array([-1e4, -1e30], jnp.float32)
    assert bool(jnp.all(jnp.log(g(far)) == -jnp.inf))  # the naive log underflows …
    np.testing.assert_allclose(log_g(far), far, rtol=1e-6)  # … log σ(v) ≈ v does not
    grads = jax.grad(lambda v: jnp.sum(log_g(v)))(jnp.array([-1e4, -1.0, 0.0, 2.0], jnp.float32))
    assert bool(jnp.all(jnp.isfinite(grads)))


@pytest.mark.parametrize("cls", CELLS)
def test_log_space_elements_are_the_logs_of_the_gates(cls):
    cell, log_cell = cls(3, 6), cls(3, 6, log_space=True)
    params = cell.init(jax.random.PRNGKey(1))
    x = 3 * jax.random.normal(jax.random.PRNGKey(2), (2, 9, 3), jnp.float64)
    a, b = cell.elements(params, x)
    log_a, log_b = log_cell.elements(params, x)
    candidate = x @ params["W_h"] + params["b_h"]
    np.testing.assert_allclose(jnp.exp(log_a), a, rtol=1e-12)
    np.testing.assert_allclose(jnp.exp(log_b), b / candidate * g(candidate), rtol=1e-12)


def test_minlstm_gates_are_the_normalised_forget_and_input_gates():
    cell = MinLSTM(3, 6)
    params = cell.init(jax.random.PRNGKey(3))
    x = 4 * jax.random.normal(jax.random.PRNGKey(4), (2, 9, 3), jnp.float64)
    f = jax.nn.sigmoid(x @ params["W_f"] + params["b_f"])
    i = jax.nn.sigmoid(x @ params["W_i"] + params["b_i"])
    a, b = cell.elements(params, x)
    np.testing.assert_allclose(a, f / (f + i), rtol=1e-12)
    np.testing.assert_allclose(b, i / (f + i) * (x @ params["W_h"] + params["b_h"]), rtol=1e-12)


@pytest.mark.parametrize("cls", CELLS)
def test_log_gates_stay_finite_for_saturated_logits(cls):
    """Unit 0 keeps almost nothing of h_{t−1}, unit 1 writes almost nothing of h̃_t."""
    cell = cls(1, 2, log_space=True)
    params = {name: jnp.zeros_like(p) for name, p in cell.init(jax.random.PRNGKey(0)).items()}
    if cls is MinGRU:
        params["W_z"] = jnp.array([[200.0, -200.0]], jnp.float32)
    else:
        params["W_f"] = jnp.array([[-200.0, 0.0]], jnp.float32)
        params["W_i"] = jnp.array([[0.0, -200.0]], jnp.float32)
    log_a, log_b = cell.elements(params, jnp.ones((1, 1, 1), jnp.float32))
    assert bool(jnp.all(jnp.isfinite(log_a))) and bool(jnp.all(jnp.isfinite(log_b)))
    np.testing.assert_allclose(log_a[0, 0, 0], -200.0, rtol=1e-2)  # log σ(−u) ≈ −u, not log 0
    np.testing.assert_allclose(log_b[0, 0, 1], -200.0 + np.log(0.5), rtol=1e-2)


@functools.cache
def _underflow_case(cls):
    """(cell, params, x, h0, float64 loop's (y, final)) for the underflow test, built once per
    cell class and shared by its three methods."""
    length, d_hidden = 4096, 3
    cell = cls(2, d_hidden, log_space=True)
    params = cell.init(jax.random.PRNGKey(5))
    name, value = {MinGRU: ("b_z", 100.0), MinLSTM: ("b_f", -100.0)}[cls]
    params[name] = jnp.full((d_hidden,), value, jnp.float32)
    x = jax.random.normal(jax.random.PRNGKey(6), (1, length, 2), jnp.float32)
    h0 = jnp.full((1, d_hidden), 2.0, jnp.float32)
    p64 = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)
    reference = {MinGRU: min_gru, MinLSTM: min_lstm}[cls]
    # Jitted, the loop runs as a lax.scan of its step (tests/cells/references.over_time): 4096
    # tokens dispatched one op at a time took ~10 s.
    expected = jax.jit(reference, static_argnums=0)(cell, p64, x.astype(jnp.float64), h0.astype(jnp.float64))
    return cell, params, x, h0, expected


@pytest.mark.parametrize("method", ["sequential", "associative", "chunked"])
@pytest.mark.parametrize("cls", CELLS)
def test_log_space_survives_underflowing_gate_products(cls, method):
    """Forget ≈ e^−100 each step: the product of gates is 0 in float32 after one step and in
    float64 after eight, so the closed form h_t = a*_t (h_0 + Σ b_k / a*_k) is 0·∞; the
    log-space scan stays finite and equals the per-step loop."""
    cell, params, x, h0, (y_ref, final_ref) = _underflow_case(cls)

    a, b = (jnp.exp(e.astype(jnp.float64)) for e in cell.elements(params, x))
    a_star = jnp.cumprod(a, axis=1)
    assert float(a_star[0, 8].max()) == 0.0
    closed_form = a_star * (h0[:, None] + jnp.cumsum(b / a_star, axis=1))
    assert not bool(jnp.all(jnp.isfinite(closed_form)))

    y, final = jax.jit(cell.forward, static_argnames="method")(params, x, h0, method=method)
    assert y.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(y > 0))
    np.testing.assert_allclose(y, y_ref, rtol=1e-5)
    np.testing.assert_allclose(final, final_ref, rtol=1e-5)


@pytest.mark.parametrize("cls", CELLS)
def test_log_space_state_must_not_be_negative(cls):
    cell = cls(2, 3, log_space=True)
    params = cell.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 2))
    bad = jnp.ones((2, 3)).at[1, 2].set(-0.1)
    with pytest.raises(ValueError, match="state must be ≥ 0"):
        cell.forward(params, x, bad)
    with pytest.raises(ValueError, match="state must be ≥ 0"):
        cell.step(params, bad, x[:, 0])
    # Zero is the empty state: the same as no state at all.
    np.testing.assert_allclose(cell.forward(params, x, jnp.zeros((2, 3)))[0], cell.forward(params, x)[0], rtol=1e-12)
    # A traced state cannot be checked (documented): no error under jit.
    jax.jit(cell.forward)(params, x, bad)
    # Linear space takes any real state.
    cls(2, 3).forward(params, x, bad)

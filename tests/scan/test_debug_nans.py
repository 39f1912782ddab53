"""`lrnn.debug_nans()`: under it a scan names the input and step where a NaN or inf first
appears (or says its states overflowed); off, which is the default, the traced program is
unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrnn
from lrnn.cells import LRU
from lrnn.debug import NonFiniteError, nans_enabled
from lrnn.scan import DiagonalMonoid, LogDiagonalMonoid, scan

METHODS = ["sequential", "associative", "chunked"]
B, T, D = 2, 24, 3


def _elements(dtype=jnp.float64):
    a = jnp.full((B, T, D), 0.5, dtype)
    b = jnp.ones((B, T, D), dtype)
    return a, b


def _message(run) -> str:
    """The error text the user gets from `run()`: the NonFiniteError itself outside jit, the
    JaxRuntimeError that carries it under jit."""
    with pytest.raises((NonFiniteError, jax.errors.JaxRuntimeError)) as caught:
        jax.block_until_ready(run())
    text = str(caught.value)
    assert "NonFiniteError" in text or isinstance(caught.value, NonFiniteError), text
    return text


def _jit_scan(method, **options):
    return jax.jit(lambda a, b, h0=None: scan(DiagonalMonoid(), (a, b), method=method, initial=h0, **options)[0])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("leaf, step, batch, value", [("a", 0, 0, jnp.nan), ("a", 13, 1, jnp.nan),
                                                      ("b", 7, 1, jnp.inf)])
def test_names_the_leaf_step_batch_monoid_and_method_under_jit(method, leaf, step, batch, value):
    a, b = _elements()
    bad = {"a": a, "b": b}
    bad[leaf] = bad[leaf].at[batch, step, 1].set(value).at[batch, step + 3, 0].set(value)
    with lrnn.debug_nans():
        text = _message(lambda: _jit_scan(method)(bad["a"], bad["b"]))
    assert (f"lrnn.scan(DiagonalMonoid, method={method!r}): elements {leaf!r} is non-finite first at "
            f"time step {step} (batch {batch})") in text


@pytest.mark.parametrize("method", METHODS)
def test_nan_in_initial_is_named_and_finite_elements_are_not(method):
    a, b = _elements()
    h0 = jnp.zeros((B, D)).at[1, 2].set(jnp.nan)
    with lrnn.debug_nans():
        text = _message(lambda: _jit_scan(method)(a, b, h0))
    assert f"lrnn.scan(DiagonalMonoid, method={method!r}): initial is non-finite (batch 1)" in text
    assert "elements" not in text.split("lrnn.scan(")[-1]


@pytest.mark.parametrize("method", METHODS)
def test_overflowing_states_with_finite_elements_are_called_an_overflow(method):
    a = jnp.full((1, 60, 2), 10.0, jnp.float32)  # h_t ~ 10^t passes float32's max near t = 38
    b = jnp.ones((1, 60, 2), jnp.float32)
    states = np.asarray(scan(DiagonalMonoid(), (a, b), method=method)[0])
    first = int(np.argmax(~np.isfinite(states).all(axis=(0, 2))))
    assert 30 < first < 45
    with lrnn.debug_nans():
        text = _message(lambda: _jit_scan(method)(a, b))
    assert (f"lrnn.scan(DiagonalMonoid, method={method!r}): states overflow first at time step {first} "
            "(batch 0) although the elements and initial are finite") in text


def test_outside_jit_the_error_is_a_non_finite_error():
    a, b = _elements()
    with lrnn.debug_nans(), pytest.raises(NonFiniteError, match="elements 'b' is non-finite first at time step 4"):
        scan(DiagonalMonoid(), (a, b.at[0, 4, 0].set(jnp.nan)), method="sequential")


def test_method_auto_shows_the_method_it_ran():
    a, b = _elements()
    with lrnn.debug_nans():
        text = _message(lambda: _jit_scan("auto")(a.at[0, 3, 0].set(jnp.nan), b))
    assert "lrnn.scan(DiagonalMonoid, method='auto' (ran '" in text


def test_reverse_scan_reports_the_first_step_it_processes():
    a, b = _elements()
    b = b.at[0, 5, 0].set(jnp.nan).at[0, 20, 0].set(jnp.nan)
    with lrnn.debug_nans():
        forward = _message(lambda: _jit_scan("associative")(a, b))
        backward = _message(lambda: _jit_scan("associative", reverse=True)(a, b))
    assert "first at time step 5 (batch 0)" in forward
    assert "first (scanning in reverse) at time step 20 (batch 0)" in backward


@pytest.mark.parametrize("method", METHODS)
def test_under_grad_the_forward_scan_is_checked(method):
    a, b = _elements()
    loss = lambda b: scan(DiagonalMonoid(), (a, b), method=method)[0].sum()  # noqa: E731
    with lrnn.debug_nans():
        text = _message(lambda: jax.jit(jax.grad(loss))(b.at[1, 9, 2].set(jnp.inf)))
    assert f"method={method!r}): elements 'b' is non-finite first at time step 9 (batch 1)" in text


def test_under_vmap_the_batch_index_is_within_the_mapped_slice():
    a, b = _elements()
    stacked = jnp.stack([b, b.at[1, 11, 0].set(jnp.nan)])  # (2 mapped, B, T, D)
    with lrnn.debug_nans():
        text = _message(lambda: jax.jit(jax.vmap(lambda b: _jit_scan("chunked")(a, b)))(stacked))
    assert "elements 'b' is non-finite first at time step 11 (batch 1)" in text


def test_several_batch_dims_are_reported_as_an_index_tuple():
    a = jnp.full((2, 3, T, D), 0.5)
    b = jnp.ones((2, 3, T, D)).at[1, 2, 6, 0].set(jnp.nan)
    with lrnn.debug_nans():
        text = _message(lambda: scan(DiagonalMonoid(), (a, b), axis=2, method="sequential"))
    assert "elements 'b' is non-finite first at time step 6 (batch (1, 2))" in text


def test_log_space_minus_inf_is_log_zero_and_not_flagged():
    log_a = jnp.full((B, T, D), -0.1)
    log_b = jnp.zeros((B, T, D)).at[:, :5].set(-jnp.inf)  # b = 0 for the first steps
    with lrnn.debug_nans():
        states, _ = scan(LogDiagonalMonoid(), (log_a, log_b), method="associative")
        assert np.isneginf(np.asarray(states[:, 0])).all()
        text = _message(lambda: scan(LogDiagonalMonoid(), (log_a, log_b.at[0, 8, 0].set(jnp.nan)),
                                     method="associative"))
    assert "lrnn.scan(LogDiagonalMonoid, method='associative'): elements 'log_b' is non-finite first at time step 8" in text


def test_a_cell_with_a_nan_param_names_its_scan():
    cell = LRU(d_in=4, d_state=5)
    params = cell.init(jax.random.PRNGKey(0))
    params["nu_log"] = params["nu_log"].at[2].set(jnp.nan)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 4))
    with lrnn.debug_nans():
        text = _message(lambda: jax.jit(lambda p, x: cell.forward(p, x, method="chunked")[0])(params, x))
    assert "lrnn.scan(DiagonalMonoid, method='chunked'): elements 'a' is non-finite first at time step 0 (batch 0)" in text


def test_off_by_default_nans_pass_through_silently():
    assert not nans_enabled()
    a, b = _elements()
    states, _ = jax.jit(lambda a, b: scan(DiagonalMonoid(), (a, b), method="sequential"))(a, b.at[0, 3, 0].set(jnp.nan))
    assert np.isnan(np.asarray(states[0, 3:, 0])).all()


@pytest.mark.parametrize("method", METHODS)
def test_free_when_off_the_traced_program_is_unchanged(method):
    a, b = _elements()
    h0 = jnp.ones((B, D))
    trace = lambda: str(jax.make_jaxpr(  # noqa: E731
        lambda a, b, h0: scan(DiagonalMonoid(), (a, b), initial=h0, method=method))(a, b, h0))
    before = trace()
    with lrnn.debug_nans():
        on = trace()
        with lrnn.debug_nans(False):
            off_inside = trace()
    assert trace() == before == off_inside
    assert "debug_callback" not in before and "is_finite" not in before
    assert "debug_callback" in on and "is_finite" in on


def test_the_previous_setting_comes_back_on_exit_and_on_exception():
    assert not nans_enabled()
    with lrnn.debug_nans():
        assert nans_enabled()
        with lrnn.debug_nans(False):
            assert not nans_enabled()
        assert nans_enabled()
    assert not nans_enabled()
    with pytest.raises(KeyError), lrnn.debug_nans():
        raise KeyError("inside")
    assert not nans_enabled()


def test_a_function_compiled_before_the_switch_picks_it_up():
    a, b = _elements()
    run = _jit_scan("sequential")
    bad = b.at[0, 2, 0].set(jnp.nan)
    jax.block_until_ready(run(a, bad))  # compiled without the checks
    with lrnn.debug_nans():
        assert "time step 2" in _message(lambda: run(a, bad))
    jax.block_until_ready(run(a, bad))  # and without them again after the block

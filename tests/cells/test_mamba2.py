"""Mamba-2 (SSD) beyond the contract suite: sizes and init from the official code, the exact
sign trick for eigenvalues in (−1, 1) against the float64 loop (many negative decays, resets,
an initial state), groups sharing B and C, the Pallas decay kernel, bad hyperparameters."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.initializers import inverse_softplus
from lrnn.cells.mamba2 import LOG_DECAY_FLOOR, Mamba2, running_sign, transition
from lrnn.scan import methods as scan_methods
from tests.cells.references.mamba2 import mamba2 as reference

TOL = dict(rtol=1e-9, atol=1e-9)


def _inputs(cell, length, seed=0, batch=2, dtype=jnp.float64):
    key_p, key_x, key_h = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), cell.init(key_p))
    x = jax.random.normal(key_x, (batch, length, cell.d_in), dtype)
    h0 = 0.5 * jax.random.normal(key_h, (batch,) + cell.state_shape, dtype)
    return params, x, h0


# ---- sizes and init ------------------------------------------------------------------------

def test_defaults_are_the_official_sizes():
    cell = Mamba2(d_in=256)
    assert (cell.n_heads, cell.head_dim, cell.d_state, cell.n_groups) == (4, 64, 128, 1)
    assert cell.state_shape == (4, 128, 64) and cell.d_out == 256
    assert cell.eigenvalue_range == (0.0, 1.0) and cell.a_init_range == (1.0, 16.0)
    assert (cell.dt_min, cell.dt_max, cell.dt_init_floor) == (1e-3, 1e-1, 1e-4)
    assert cell.recurrent_params == {"A_log", "b_dt", "D"}
    # Small widths: one head when 64 does not divide d_in; either size gives the other.
    assert (Mamba2(d_in=16).n_heads, Mamba2(d_in=16).head_dim) == (1, 16)
    assert Mamba2(d_in=16, n_heads=4).head_dim == 4
    assert Mamba2(d_in=16, head_dim=8).n_heads == 2


def test_init_follows_the_official_code():
    d_in = heads = 1024
    cell = Mamba2(d_in=d_in, head_dim=1, n_heads=heads, n_groups=2, d_state=8)
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_B": (d_in, 16), "W_C": (d_in, 16), "W_dt": (d_in, heads), "b_dt": (heads,), "A_log": (heads,),
              "D": (heads,)}
    assert {k: v.shape for k, v in params.items()} == shapes
    A = np.exp(np.asarray(params["A_log"], np.float64))  # −A, ~ U[1, 16]
    assert A.min() >= 1 and A.max() <= 16 and A.min() < 1.1 and A.max() > 15.9
    np.testing.assert_allclose(A.mean(), 8.5, atol=0.5)
    np.testing.assert_allclose(A.var(), 15**2 / 12, rtol=0.15)
    step = np.asarray(jax.nn.softplus(params["b_dt"]), np.float64)  # Δ at x = 0
    assert step.min() >= 1e-3 * (1 - 1e-5) and step.max() <= 1e-1 * (1 + 1e-5)
    np.testing.assert_allclose(np.log(step).mean(), np.log(1e-2), atol=0.2)  # log-uniform on [1e-3, 1e-1]
    np.testing.assert_array_equal(params["D"], 1)
    bound = 1 / np.sqrt(d_in)  # nn.Linear's default, no bias
    for name in ("W_B", "W_C", "W_dt"):
        w = np.asarray(params[name], np.float64)
        assert np.all(np.abs(w) <= bound) and np.abs(w).max() > 0.9 * bound, name
        np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.1, err_msg=name)


def test_step_init_is_floored():
    cell = Mamba2(d_in=256, head_dim=1, d_state=2, dt_min=1e-6, dt_max=1e-3, dt_init_floor=1e-4)
    step = np.asarray(jax.nn.softplus(cell.init(jax.random.PRNGKey(1))["b_dt"]), np.float64)
    np.testing.assert_allclose(step.min(), 1e-4, rtol=1e-4)
    assert np.mean(np.isclose(step, 1e-4, rtol=1e-4)) > 0.3 and step.max() <= 1e-3 * (1 + 1e-5)


# ---- the sign trick for (−1, 1) ------------------------------------------------------------

def test_running_sign_restarts_at_resets():
    negative = jnp.array([[1, 0, 1, 1, 0, 1, 0]], bool)[..., None]
    resets = jnp.array([[0, 0, 0, 1, 0, 1, 0]], bool)  # segments [0, 3), [3, 5), [5, 7)
    np.testing.assert_array_equal(running_sign(negative, None)[0][0, :, 0], [-1, -1, 1, -1, -1, 1, 1])
    np.testing.assert_array_equal(running_sign(negative, resets)[0][0, :, 0], [-1, -1, 1, -1, -1, -1, -1])
    resets = jnp.array([[0, 1, 0, 0, 0, 0, 0]], bool)
    signs, last = running_sign(negative, resets)
    np.testing.assert_array_equal(signs[0, :, 0], [-1, 1, -1, 1, 1, -1, -1])
    np.testing.assert_array_equal(last, signs[:, -1])


def test_transition_at_a_zero_eigenvalue_is_floored_and_finite():
    u = -jnp.log(jnp.array([2.0, 4.0, 1.0, 1e9], jnp.float64))  # ā = 0, −½, 1, −1
    assert float(2 * jnp.exp(u[0]) - 1) == 0.0
    log_abs, negative = transition(u, (-1.0, 1.0))
    np.testing.assert_allclose(log_abs, [LOG_DECAY_FLOOR, np.log(0.5), 0.0, 0.0], atol=1e-8)
    np.testing.assert_array_equal(negative, [False, True, False, True])
    grads = jax.grad(lambda u: jnp.sum(transition(u, (-1.0, 1.0))[0]))(u)
    chex.assert_tree_all_finite(grads)
    log_abs, negative = transition(u, (0.0, 1.0))
    np.testing.assert_array_equal(log_abs, u)
    assert not bool(jnp.any(negative))


NEGATIVE = Mamba2(d_in=8, n_heads=4, d_state=3, n_groups=2, eigenvalue_range=(-1, 1))


def _mostly_negative(params, x):
    """Δ ≈ 1 and A = (0.5, 1, 4, 16): ā ≈ 0.2, −0.26, −0.96, −1 per head, so most decays are
    negative and two heads keep a long memory whose sign flips nearly every token."""
    return dict(params, b_dt=jnp.full_like(params["b_dt"], float(inverse_softplus(1.0))),
                A_log=jnp.log(jnp.asarray([0.5, 1.0, 4.0, 16.0], params["A_log"].dtype)))


def test_sign_trick_is_exact_with_many_negative_decays():
    length = 300
    params, x, h0 = _inputs(NEGATIVE, length, seed=1)
    params = _mostly_negative(params, x)
    decay, _ = NEGATIVE.elements(params, x)
    assert float(jnp.mean(decay < 0)) > 0.5 and float(jnp.mean(decay < -0.9)) > 0.25
    resets = jnp.zeros((2, length), bool).at[0, 100].set(True).at[1, 37].set(True).at[1, 201].set(True)

    # The reference over the packed segments: from h0 up to the first reset, then from zeros.
    def packed_reference(row, starts):
        bounds = [0, *starts, length]
        ys, state = [], h0[row:row + 1]
        for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
            state = state if i == 0 else jnp.zeros_like(state)
            y, state = jax.jit(reference, static_argnums=0)(NEGATIVE, params, x[row:row + 1, start:stop], state)
            ys.append(y)
        return jnp.concatenate(ys, axis=1), state

    expected = [packed_reference(0, [100]), packed_reference(1, [37, 201])]
    expected = (jnp.concatenate([e[0] for e in expected]), jnp.concatenate([e[1] for e in expected]))
    forward = jax.jit(lambda p, x, h, r, *, c: NEGATIVE.forward(p, x, h, resets=r, chunk_size=c), static_argnames="c")
    for chunk in (1, 16, 64):
        chex.assert_trees_all_close(forward(params, x, h0, resets, c=chunk), expected, **TOL,
                                    custom_message=f"resets, C={chunk}")
    unpacked = jax.jit(reference, static_argnums=0)(NEGATIVE, params, x, h0)
    chex.assert_trees_all_close(forward(params, x, h0, None, c=64), unpacked, **TOL)

    # float32 through the same path stays close to the float64 loop.
    narrow = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), (params, x, h0))
    y32, final32 = forward(*narrow, None, c=64)
    assert y32.dtype == final32.dtype == jnp.float32
    for got, want in ((y32, unpacked[0]), (final32, unpacked[1])):
        np.testing.assert_allclose(np.asarray(got, np.float64), want, atol=1e-4 * float(jnp.max(jnp.abs(want))))


def test_gradients_through_the_sign_trick_match_the_loop():
    params, x, h0 = _inputs(NEGATIVE, 40, seed=2)
    params = _mostly_negative(params, x)
    weights = jax.random.normal(jax.random.PRNGKey(3), (2, 40, 8), jnp.float64)

    def loss(forward):
        def value(p, x, h):
            y, final = forward(p, x, h)
            return jnp.sum(y * weights) + jnp.sum(jnp.sin(final))
        return jax.jit(jax.grad(value, argnums=(0, 1, 2)))

    got = loss(lambda p, x, h: NEGATIVE.forward(p, x, h, chunk_size=16))(params, x, h0)
    want = loss(lambda p, x, h: reference(NEGATIVE, p, x, h))(params, x, h0)
    chex.assert_trees_all_close(got, want, rtol=1e-8, atol=1e-8)


def test_a_zero_eigenvalue_gives_finite_outputs_and_gradients():
    """Δ A = −log 2 (W_dt = 0, A = 1, Δ = log 2): ā = 2·½ − 1 vanishes (to rounding) in every head."""
    cell = Mamba2(d_in=4, n_heads=2, d_state=2, eigenvalue_range=(-1, 1))
    params, x, h0 = _inputs(cell, 20, seed=4)
    params = dict(params, W_dt=jnp.zeros_like(params["W_dt"]), A_log=jnp.zeros_like(params["A_log"]),
                  b_dt=jnp.full_like(params["b_dt"], float(inverse_softplus(jnp.log(2.0)))))
    decay, _ = cell.elements(params, x)
    assert float(jnp.max(jnp.abs(decay))) < 1e-12
    out = jax.jit(lambda p, x, h: cell.forward(p, x, h, chunk_size=8))(params, x, h0)
    chex.assert_trees_all_close(out, reference(cell, params, x, h0), **TOL)
    grads = jax.jit(jax.grad(lambda p, h: jnp.sum(cell.forward(p, x, h, chunk_size=8)[0]), argnums=(0, 1)))(params, h0)
    chex.assert_tree_all_finite(grads)


# ---- groups --------------------------------------------------------------------------------

def test_heads_of_a_group_share_B_and_C():
    cell = Mamba2(d_in=8, n_heads=4, d_state=3, n_groups=2)
    params, x, _ = _inputs(cell, 5)
    q, k, _, _ = cell.inputs(params, x)
    chex.assert_shape((q, k), (2, 5, 4, 3))
    for a in (q, k):
        np.testing.assert_array_equal(a[..., 0, :], a[..., 1, :])
        np.testing.assert_array_equal(a[..., 2, :], a[..., 3, :])
        assert not np.allclose(a[..., 0, :], a[..., 2, :])


def test_one_group_equals_groups_with_copied_projections():
    one = Mamba2(d_in=8, n_heads=4, d_state=3, n_groups=1)
    four = Mamba2(d_in=8, n_heads=4, d_state=3, n_groups=4)
    params, x, h0 = _inputs(one, 9)
    tiled = dict(params, W_B=jnp.tile(params["W_B"], (1, 4)), W_C=jnp.tile(params["W_C"], (1, 4)))
    chex.assert_trees_all_close(four.forward(tiled, x, h0, chunk_size=4), one.forward(params, x, h0, chunk_size=4),
                                **TOL)


# ---- the Pallas decay kernel ---------------------------------------------------------------

@pytest.mark.parametrize("eigenvalue_range", [(0, 1), (-1, 1)], ids=["positive", "negative"])
def test_pallas_reaches_the_kernel_and_matches_the_pure_jax_form(eigenvalue_range, monkeypatch):
    cell = Mamba2(d_in=8, n_heads=2, d_state=8, eigenvalue_range=eigenvalue_range)
    params, x, h0 = _inputs(cell, 40, seed=5, dtype=jnp.float32)
    if eigenvalue_range[0] < 0:
        params = dict(_mostly_negative(params, x), A_log=jnp.log(jnp.asarray([1.0, 16.0], jnp.float32)))
    calls = []
    key = ("decay_attention", "pallas")
    kernel = scan_methods._CHUNK_KERNELS[key]
    monkeypatch.setitem(scan_methods._CHUNK_KERNELS, key, lambda *a, **k: calls.append(1) or kernel(*a, **k))
    weights = jax.random.normal(jax.random.PRNGKey(6), (2, 40, 8), jnp.float32)

    def outputs_and_grads(method):
        def loss(p, h):
            y, final = cell.forward(p, x, h, method=method, chunk_size=16)
            return jnp.sum(y * weights) + jnp.sum(final), (y, final)
        return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(params, h0)

    with_kernel = outputs_and_grads("pallas")
    assert calls, "method='pallas' did not reach the decay_attention kernel"
    pure = outputs_and_grads("chunked")
    chex.assert_tree_all_finite(with_kernel)
    chex.assert_trees_all_equal_shapes_and_dtypes(with_kernel, pure)
    # float32 on both sides (each within ~2e-5 of the float64 loop's scale here): 1e-4 of each leaf's scale.
    for got, want in zip(jax.tree_util.tree_leaves(with_kernel), jax.tree_util.tree_leaves(pure)):
        np.testing.assert_allclose(got, want, atol=1e-4 * float(jnp.max(jnp.abs(want))))
    with pytest.raises(ValueError, match="does not take resets"):
        cell.forward(params, x, h0, method="pallas", chunk_size=16, resets=jnp.zeros((2, 40), bool))


# ---- bad hyperparameters -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(d_in=0), "d_in must"),
    (dict(d_in=8, n_heads=3, head_dim=2), "n_heads · head_dim must equal d_in = 8"),
    (dict(d_in=8, n_heads=3), "n_heads must divide d_in = 8"),
    (dict(d_in=8, head_dim=3), "head_dim must divide d_in = 8"),
    (dict(d_in=8, n_heads=0), "n_heads must"),
    (dict(d_in=8, head_dim=-2), "head_dim must"),
    (dict(d_in=8, n_heads=4, n_groups=3), "n_heads must be divisible by n_groups = 3"),
    (dict(d_in=8, n_groups=0), "n_groups must"),
    (dict(d_in=8, d_state=0), "d_state must"),
    (dict(d_in=8, eigenvalue_range=(-2, 1)), "eigenvalue_range must"),
    (dict(d_in=8, eigenvalue_range="(-1, 1)"), "eigenvalue_range must"),
    (dict(d_in=8, a_init_range=(0, 16)), "a_init_range must"),
    (dict(d_in=8, a_init_range=(16, 1)), "a_init_range must"),
    (dict(d_in=8, dt_min=0.0), "dt_min must"),
    (dict(d_in=8, dt_min=0.2, dt_max=0.1), "dt_min must not exceed dt_max"),
    (dict(d_in=8, dt_init_floor=0.0), "dt_init_floor must"),
])
def test_invalid_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}"):
        Mamba2(**kwargs)


def test_materialised_scan_with_negative_decays_matches_the_loop():
    """forward_materialised: the per-token MatrixDecayMonoid scan, one scalar decay per head."""
    params, x, h0 = _inputs(NEGATIVE, 12, seed=7)
    params = _mostly_negative(params, x)
    chex.assert_trees_all_close(NEGATIVE.forward_materialised(params, x, h0), reference(NEGATIVE, params, x, h0),
                                **TOL)

"""HGRN2 beyond the contract suite: the forget gate's log f and 1 − f stay accurate (against
50-digit decimals), the lower_bound input, heads from the expand ratio, chunk sizes, the init."""

import decimal

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.hgrn import lower_bounds
from lrnn.cells.hgrn2 import HGRN2, forget_gate
from tests.cells.references.hgrn2 import hgrn2 as reference
from tests.helpers import to64

CELL = HGRN2(d_in=8, expand_ratio=4)
BOUNDS = np.array([0.0, 0.2, 0.5, 0.9, 0.0, 0.3, 0.99, 0.7])


def _setup(cell=CELL, length=37, seed=0):
    key_p, key_x, key_h = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = to64(cell.init(key_p))
    x = jax.random.normal(key_x, (2, length, cell.d_in), jnp.float64)
    h0 = 0.5 * jax.random.normal(key_h, (2,) + cell.state_shape, jnp.float64)
    return params, x, h0


def _exact(z: float, gamma: float):
    """(log f, 1 − f) for f = γ + (1 − γ) σ(z), in 50-digit decimal arithmetic."""
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        z, gamma = decimal.Decimal(float(z)), decimal.Decimal(float(gamma))
        e = (-z).exp()
        one_minus_f = (1 - gamma) * e / (1 + e)
        return float((1 - one_minus_f).ln()), float(one_minus_f)


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.999])
def test_forget_gate_is_accurate_in_float32(gamma):
    z = np.concatenate([-np.geomspace(80, 1e-3, 30), [0.0], np.geomspace(1e-3, 60, 30)]).astype(np.float32)
    log_f, one_minus_f = jax.jit(forget_gate)(jnp.asarray(z), jnp.float32(gamma))
    exact = np.array([_exact(zi, np.float32(gamma)) for zi in z])  # γ as float32 holds it
    np.testing.assert_allclose(np.asarray(log_f, np.float64), exact[:, 0], rtol=2e-6)
    np.testing.assert_allclose(np.asarray(one_minus_f, np.float64), exact[:, 1], rtol=2e-6)
    # The naive log(γ + (1 − γ) σ(z)) loses log f entirely once f rounds to 1 (z ≳ 17 in float32).
    naive = np.log(np.float32(gamma) + np.float32(1 - gamma) / (1 + np.exp(-z)))
    assert np.max(np.abs(naive / exact[:, 0] - 1)) > 0.5


def test_forget_gate_floors_log_f_instead_of_minus_infinity():
    log_f, one_minus_f = forget_gate(jnp.array([-150.0, -1e4], jnp.float32), jnp.float32(0.0))
    np.testing.assert_allclose(log_f, np.log(np.finfo(np.float32).tiny), rtol=1e-6)
    np.testing.assert_array_equal(one_minus_f, 1.0)
    grads = jax.grad(lambda z: jnp.sum(forget_gate(z, 0.0)[0]))(jnp.array([-150.0, -30.0, 0.0, 30.0], jnp.float32))
    assert bool(jnp.all(jnp.isfinite(grads)))


def test_forget_gate_derivatives_are_the_analytic_ones_down_to_a_zero_bound():
    """d log f/dγ = (1 − σ(z))/f and d log f/dz = (1 − γ) σ(z) σ(−z)/f, finite at γ = 0 too."""
    z = jnp.array([-30.0, -5.0, -0.5, 0.0, 0.7, 4.0, 25.0], jnp.float64)
    for gamma in (0.0, 0.25, 0.95):
        d_gamma, d_z = jax.vmap(jax.grad(lambda z, g: forget_gate(z, g)[0], argnums=(1, 0)), (0, None))(z, gamma)
        s, s_minus = jax.nn.sigmoid(z), jax.nn.sigmoid(-z)  # σ(−z) = 1 − σ(z) without cancellation
        f = gamma + (1 - gamma) * s
        # atol: JAX differentiates σ as σ(1 − σ), which cancels to ~1e−18 absolute at |z| = 30.
        chex.assert_trees_all_close((d_gamma, d_z), (s_minus / f, (1 - gamma) * s * s_minus / f), rtol=1e-12,
                                    atol=1e-16)


@pytest.mark.parametrize("lower_bound", [0.0, 0.6, BOUNDS], ids=["zero", "scalar", "per-channel"])
def test_chunk_sizes_and_the_materialised_scan_match_the_reference(lower_bound):
    params, x, h0 = _setup()
    expected = reference(CELL, params, x, h0, lower_bound=lower_bound)
    for chunk_size in (1, 16, 64):
        out = jax.jit(lambda p, x, h, lb: CELL.forward(p, x, h, chunk_size=chunk_size, lower_bound=lb))(
            params, x, h0, lower_bound)
        chex.assert_trees_all_close(out, expected, rtol=1e-9, atol=1e-10)
    out = jax.jit(lambda p, x, h, lb: CELL.forward_materialised(p, x, h, lower_bound=lb))(params, x, h0, lower_bound)
    chex.assert_trees_all_close(out, expected, rtol=1e-9, atol=1e-10)


def test_strong_forgetting_stays_finite_and_exact_in_float32():
    """γ = 0 and b_f = −30: f ≈ e^(−30) per token, log f summed over a chunk of 64 ≈ −1900."""
    params, x, _ = _setup(length=100, seed=2)
    params = dict(params, b_f=jnp.full_like(params["b_f"], -30.0))
    h0 = jnp.zeros((2,) + CELL.state_shape, jnp.float64)
    y_ref, final_ref = reference(CELL, params, x, h0)
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    y, final = jax.jit(lambda p, x: CELL.forward(p, x, chunk_size=64))(params32, x.astype(jnp.float32))
    assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(final)))
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), atol=1e-4 * float(jnp.max(jnp.abs(y_ref))))
    np.testing.assert_allclose(np.asarray(final), np.asarray(final_ref), atol=1e-5)


def test_traced_lower_bounds_get_the_reference_gradient():
    """A model computes the bounds from trainable logits inside jit (values unchecked then);
    the gradient reaches the logits, also through a channel whose bound is exactly 0."""
    params, x, h0 = _setup(length=6, seed=1)
    logits = jax.random.normal(jax.random.PRNGKey(5), (3, 8), jnp.float64)

    def loss(forward, logits):
        bound = lower_bounds(logits)[2].at[0].multiply(0.0)  # channel 0 at exactly γ = 0
        y, final = forward(bound)
        return jnp.sum(y**2) + jnp.sum(final**2)

    grad = jax.jit(jax.grad(lambda l: loss(lambda lb: CELL.forward(params, x, h0, chunk_size=4, lower_bound=lb), l)))(
        logits)
    expected = jax.jit(jax.grad(lambda l: loss(lambda lb: reference(CELL, params, x, h0, lower_bound=lb), l)))(logits)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.max(jnp.abs(grad))) > 1e-6
    chex.assert_trees_all_close(grad, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("bad", [1.0, -0.1, np.array([0.2] * 7 + [1.0])])
def test_lower_bound_outside_the_unit_interval_is_refused(bad):
    params = CELL.init(jax.random.PRNGKey(0))
    x = jnp.ones((1, 3, 8))
    with pytest.raises(ValueError, match=r"lower_bound must lie in \[0, 1\)"):
        CELL.forward(params, x, lower_bound=bad)
    with pytest.raises(ValueError, match=r"lower_bound must lie in \[0, 1\)"):
        CELL.step(params, CELL.initial_state((1,)), x[:, 0], lower_bound=bad)


@pytest.mark.parametrize("shape", [(4,), (2, 8), (9,)])
def test_lower_bound_of_the_wrong_shape_is_refused(shape):
    params = CELL.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"lower_bound must be a scalar or have shape \(d_in,\) = \(8,\)"):
        CELL.forward(params, jnp.ones((1, 3, 8)), lower_bound=np.full(shape, 0.5))


def test_heads_follow_the_expand_ratio():
    assert HGRN2(d_in=512).expand_ratio == 128 and HGRN2(d_in=512).n_heads == 4
    assert HGRN2(d_in=48).expand_ratio == 48 and HGRN2(d_in=48).n_heads == 1
    cell = HGRN2(d_in=12, expand_ratio=3)
    assert cell.n_heads == 4 and cell.state_shape == (4, 3, 3) and cell.d_out == 12
    assert cell.recurrent_params == {"W_f", "b_f"} and not cell.complex_state


def test_transition_lies_between_the_lower_bound_and_one():
    params = CELL.init(jax.random.PRNGKey(1))
    x = 3 * jax.random.normal(jax.random.PRNGKey(2), (4, 30, 8))
    decay, update = CELL.elements(params, x, lower_bound=BOUNDS)
    chex.assert_shape(decay, (4, 30, 2, 4))
    chex.assert_shape(update, (4, 30, 2, 4, 4))
    bound = BOUNDS.reshape(2, 4)
    assert np.all(np.asarray(decay) >= bound - 1e-6) and np.all(np.asarray(decay) < 1)
    # The key is 1 − f: each update row is (1 − f_k) times the input.
    i = jax.nn.silu(x @ params["W_i"] + params["b_i"]).reshape(4, 30, 2, 1, 4)
    np.testing.assert_allclose(update, (1 - decay)[..., None] * i, rtol=1e-5, atol=1e-7)


def test_init_follows_the_papers_code():
    d_in = 256
    cell = HGRN2(d_in=d_in)
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {f"W_{n}": (d_in, d_in) for n in "iqfo"} | {f"b_{n}": (d_in,) for n in "iqfo"}
    shapes |= {"norm_scale": (d_in,), "norm_bias": (d_in,)}
    assert {k: v.shape for k, v in params.items()} == shapes
    bound = 1 / np.sqrt(d_in)  # nn.Linear: U[−1/√fan_in, 1/√fan_in]
    for name in "iqfo":
        for value in (params[f"W_{name}"], params[f"b_{name}"]):
            assert np.all(np.abs(value) <= bound) and np.max(np.abs(value)) > 0.9 * bound
        np.testing.assert_allclose(np.asarray(params[f"W_{name}"], np.float64).var(), bound**2 / 3, rtol=0.03)
    np.testing.assert_array_equal(params["norm_scale"], 1.0)
    np.testing.assert_array_equal(params["norm_bias"], 0.0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=8, expand_ratio=0), "expand_ratio"),
    (dict(d_in=8, expand_ratio=3), "expand_ratio"),
    (dict(d_in=8, expand_ratio=2.0), "expand_ratio"),
    (dict(d_in=200), "expand_ratio"),  # the paper's 128 does not divide 200
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        HGRN2(**kwargs)

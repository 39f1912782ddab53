"""Gated DeltaNet beyond the contract suite: the decay's init and range, the transition's
eigenvalues (negative ones for eigenvalue_range (−1, 1)), chunk sizes against the reference,
strong decays, α → 1 giving DeltaNet, the O(K·V) step, bad hyperparameters."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.deltanet import DeltaNet
from lrnn.cells.gated_deltanet import GatedDeltaNet
from tests.cells.references.deltanet import gated_deltanet as reference
from tests.cells.test_deltanet import (TOL, assert_matches_reference, builds_key_by_key, compiled_forward,
                                     setup)


@pytest.mark.parametrize("eigenvalue_range", [(0, 1), (-1, 1)], ids=["positive", "negative"])
def test_chunk_sizes_and_materialised_match_the_reference(eigenvalue_range):
    cell = GatedDeltaNet(d_in=6, n_heads=2, d_key=6, d_value=8, eigenvalue_range=eigenvalue_range,
                         initializer_range=0.5)
    assert_matches_reference(cell, reference)


@pytest.mark.parametrize("eigenvalue_range", [(0, 1), (-1, 1)], ids=["positive", "negative"])
def test_decay_and_transition_eigenvalues(eigenvalue_range):
    """log α = −exp(A_log)·softplus(x W_a + dt_bias), α ∈ (0, 1); α(I − β k kᵀ) has the
    eigenvalues α (K−1 times) and α(1 − β‖k‖²), negative ones only for (−1, 1)."""
    cell = GatedDeltaNet(d_in=8, n_heads=2, d_key=8, d_value=4, eigenvalue_range=eigenvalue_range,
                         initializer_range=1.0)
    params, x, _ = setup(cell, 64, batch=4, x_scale=2.0)
    k, _, beta, log_alpha = cell.inputs(params, x)
    expected = -np.exp(params["A_log"]) * np.logaddexp(0, np.asarray(x @ params["W_a"] + params["dt_bias"]))
    np.testing.assert_allclose(log_alpha, expected, rtol=1e-12)
    alpha = np.exp(np.asarray(log_alpha))
    assert alpha.min() > 0 and alpha.max() < 1
    transitions, _ = cell.elements(params, x)  # (B, T, H, K, K), symmetric
    eigenvalues = np.linalg.eigvalsh(np.asarray(transitions))
    np.testing.assert_allclose(eigenvalues[..., 1:], np.broadcast_to(alpha[..., None], eigenvalues[..., 1:].shape),
                               atol=1e-12)
    np.testing.assert_allclose(eigenvalues[..., 0], alpha * (1 - beta * jnp.sum(k * k, -1)), atol=1e-12)
    assert eigenvalues.min() > -1 and eigenvalues.max() < 1
    if eigenvalue_range == (-1, 1):
        assert float(beta.max()) > 1.5 and eigenvalues.min() < -0.3
    else:
        assert float(beta.max()) < 1 and eigenvalues.min() >= 0


def test_strong_decays_stay_finite_and_forget_the_past():
    """A = 10⁶ makes log α ≤ −10³ (α = 0 in float32, e^{−10³} and below inside the chunks):
    the state is then the last token's write β k vᵀ alone, and the float32 output matches the
    float64 reference."""
    cell = GatedDeltaNet(d_in=4, n_heads=2, d_key=4, d_value=6, initializer_range=0.5)
    params, x, h0 = setup(cell, 150)
    params["A_log"] = jnp.full_like(params["A_log"], np.log(1e6))
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    y, final = compiled_forward(cell, chunk_size=64)(params32, x.astype(jnp.float32), h0.astype(jnp.float32))
    assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(final)))
    k, v, beta, _ = (a[:, -1] for a in cell.inputs(params, x))
    np.testing.assert_allclose(final, (beta[..., None] * k)[..., :, None] * v[..., None, :], rtol=1e-5, atol=1e-6)
    y_ref, _ = jax.jit(reference, static_argnums=0)(cell, params, x, h0)  # jitted: a lax.scan of its step
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(y_ref))))


def test_without_decay_it_is_deltanet():
    """α → 1 (A_log → −∞) leaves the delta rule: DeltaNet with the same params."""
    gated = GatedDeltaNet(d_in=4, n_heads=2, d_key=6, d_value=4, eigenvalue_range=(-1, 1), initializer_range=0.5)
    plain = DeltaNet(d_in=4, n_heads=2, d_key=6, d_value=4, eigenvalue_range=(-1, 1), output_gate=True)
    params, x, h0 = setup(gated, 13)
    params["A_log"] = jnp.full_like(params["A_log"], -80.0)  # exp(−80)·softplus(·) ≪ 1e−17: α = 1 in float64
    shared = {name: params[name] for name in jax.eval_shape(plain.init, jax.random.PRNGKey(0))}  # no decay params
    chex.assert_trees_all_close(compiled_forward(gated, chunk_size=4)(params, x, h0),
                                compiled_forward(plain, chunk_size=4)(shared, x, h0), **TOL)


def test_step_builds_no_key_by_key_matrix():
    """step is the direct update S ← αS + βk(v − αSᵀk)ᵀ; the per-token DenseMonoid elements
    are K×K (which shows the check can fail) and the step agrees with them."""
    cell = GatedDeltaNet(d_in=4, n_heads=2, d_key=6, d_value=8, eigenvalue_range=(-1, 1), initializer_range=0.5)
    params, x, h0 = setup(cell, 1)
    assert not builds_key_by_key(lambda s, x_t: cell.step(params, s, x_t), h0, x[:, 0], k=3)
    assert builds_key_by_key(lambda x: cell.elements(params, x), x, k=3)
    transition, update = (a[:, 0] for a in cell.elements(params, x))
    chex.assert_trees_all_close(cell.step(params, h0, x[:, 0])[1], transition @ h0 + update, rtol=1e-12, atol=1e-13)


def test_init_follows_the_papers_code():
    cell = GatedDeltaNet(d_in=8, n_heads=512, d_key=512)
    assert cell.d_value == 1024 and cell.state_shape == (512, 1, 2)  # expand_v = 2
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_q": (8, 512), "W_k": (8, 512), "W_v": (8, 1024), "W_beta": (8, 512), "W_a": (8, 512),
              "A_log": (512,), "dt_bias": (512,), "W_g": (8, 1024), "W_o": (1024, 8), "norm_scale": (2,)}
    assert {name: p.shape for name, p in params.items()} == shapes
    a = np.exp(np.asarray(params["A_log"], np.float64))  # A ~ U[0, 16]
    assert a.min() > 0 and a.max() < 16 and a.min() < 0.5 and a.max() > 15.5
    np.testing.assert_allclose(a.mean(), 8.0, atol=0.6)
    dt = np.logaddexp(0, np.asarray(params["dt_bias"], np.float64))  # Δ₀ log-uniform on [1e−3, 1e−1]
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 1e-1 * (1 + 1e-5)
    np.testing.assert_allclose(np.log(dt).mean(), np.log(1e-2), atol=0.25)
    weights = np.concatenate([np.ravel(params[name]) for name in shapes if name.startswith("W_")])
    np.testing.assert_allclose(weights.std(), 0.02, rtol=0.03)
    np.testing.assert_array_equal(params["norm_scale"], 1.0)
    assert cell.recurrent_params == {"A_log", "dt_bias"}


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_heads=3), "n_heads"),  # the default d_key = d_in
    (dict(n_heads=2, eigenvalue_range=(-1, 0)), "eigenvalue_range"),
    (dict(n_heads=2, dt_min=0.0), "dt_min"),
    (dict(n_heads=2, dt_min=0.2, dt_max=0.1), "dt_min"),
    (dict(n_heads=2, dt_init_floor=-1e-4), "dt_init_floor"),
    (dict(n_heads=2, output_gate=None), "output_gate"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        GatedDeltaNet(d_in=4, **kwargs)

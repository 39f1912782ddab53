"""DeltaProduct beyond the contract suite: n_h = 1 is DeltaNet (gated: Gated DeltaNet) with the
same params, chunk sizes against the reference, products of reflections (rotations for even
n_h), resets inside the interleaved chunks, the O(n_h·K·V) step, the init, bad n_h."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.deltanet import DeltaNet
from lrnn.cells.deltaproduct import DeltaProduct
from lrnn.cells.gated_deltanet import GatedDeltaNet
from tests.cells.references.deltanet import deltaproduct as reference
from tests.cells.test_deltanet import (TOL, assert_matches_reference, builds_key_by_key, compiled_forward,
                                     setup)


@pytest.mark.parametrize("n_h, forget_gate, eigenvalue_range", [(2, False, (-1, 1)), (3, True, (0, 1))],
                         ids=["2-negative", "3-gated-positive"])
def test_chunk_sizes_and_materialised_match_the_reference(n_h, forget_gate, eigenvalue_range):
    cell = DeltaProduct(d_in=5, n_heads=2, n_h=n_h, d_key=6, d_value=8, forget_gate=forget_gate,
                        eigenvalue_range=eigenvalue_range, initializer_range=0.5)
    assert_matches_reference(cell, reference)


@pytest.mark.parametrize("forget_gate, single", [(False, DeltaNet), (True, GatedDeltaNet)], ids=["plain", "gated"])
def test_one_factor_is_deltanet(forget_gate, single):
    """n_h = 1 reduces exactly to DeltaNet (with the forget gate: Gated DeltaNet), same params."""
    sizes = dict(d_in=4, n_heads=2, d_key=6, d_value=4, eigenvalue_range=(-1, 1), output_gate=True)
    product = DeltaProduct(n_h=1, forget_gate=forget_gate, initializer_range=0.5, **sizes)
    params, x, h0 = setup(product, 9)
    assert set(params) == set(single(**sizes).init(jax.random.PRNGKey(0)))
    chex.assert_trees_all_close(compiled_forward(product, chunk_size=4)(params, x, h0),
                                compiled_forward(single(**sizes), chunk_size=4)(params, x, h0), **TOL)
    chex.assert_trees_all_close(product.step(params, h0, x[:, 0]), single(**sizes).step(params, h0, x[:, 0]), **TOL)


@pytest.mark.parametrize("n_h, determinant", [(1, -1.0), (2, 1.0), (3, -1.0)])
def test_factors_at_beta_two_compose_reflections(n_h, determinant):
    """With eigenvalue_range (−1, 1) and every β → 2 (‖k‖ = 1), each factor is a Householder
    reflection, so a token's transition is orthogonal with determinant (−1)^n_h: an even n_h
    gives rotations, which no single delta-rule step can."""
    cell = DeltaProduct(d_in=4, n_heads=2, n_h=n_h, d_key=8, d_value=4, eigenvalue_range=(-1, 1),
                        initializer_range=1.0)
    params, x, _ = setup(cell, 1, batch=1)
    params["W_beta"] = 1e3 * jnp.sign(x[0, 0])[:, None] * jnp.ones_like(params["W_beta"])  # logits 1e3·Σ|x|
    transition, _ = cell.elements(params, x)
    transition = np.asarray(transition[0, 0])  # (H, K, K)
    np.testing.assert_allclose(np.linalg.det(transition), determinant, atol=1e-4)
    np.testing.assert_allclose(transition @ np.swapaxes(transition, -1, -2),
                               np.broadcast_to(np.eye(4), transition.shape), atol=1e-4)
    if n_h == 2:  # a rotation that moves vectors: not the identity
        assert np.abs(transition - np.eye(4)).max() > 0.1


def test_transitions_have_eigenvalues_in_the_unit_disc():
    """Products of factors with eigenvalues in (−1, 1] stay contractive (spectral norm ≤ 1);
    with (0, 1) and β ≤ 1 each factor is a partial projection."""
    for eigenvalue_range in ((0, 1), (-1, 1)):
        cell = DeltaProduct(d_in=6, n_heads=2, n_h=3, d_key=8, d_value=4, eigenvalue_range=eigenvalue_range,
                            forget_gate=True, initializer_range=1.0)
        params, x, _ = setup(cell, 32, x_scale=2.0)
        transition, _ = cell.elements(params, x)
        norms = np.linalg.norm(np.asarray(transition), ord=2, axis=(-2, -1))
        assert norms.max() < 1 + 1e-12
        _, _, beta, _ = cell.inputs(params, x)
        assert (float(beta.max()) > 1.5) == (eigenvalue_range == (-1, 1))


def test_resets_inside_interleaved_chunks():
    """Resets fall on a token's first sub-step, inside chunks of chunk_size·n_h sub-steps."""
    cell = DeltaProduct(d_in=4, n_heads=2, n_h=3, d_key=4, d_value=4, forget_gate=True,
                        eigenvalue_range=(-1, 1), initializer_range=0.5)
    params, x, h0 = setup(cell, 11)
    resets = jnp.zeros((2, 11), bool).at[0, 5].set(True).at[1, 2].set(True)
    y, final = compiled_forward(cell, chunk_size=4)(params, x, h0, resets=resets)
    chex.assert_trees_all_close(y[0, :5], reference(cell, params, x[:1, :5], h0[:1])[0][0], **TOL)
    rest = reference(cell, params, x[:1, 5:], jnp.zeros_like(h0[:1]))
    chex.assert_trees_all_close((y[:1, 5:], final[:1]), rest, **TOL)


def test_step_builds_no_key_by_key_matrix():
    """step is n_h rank-one updates; the per-token DenseMonoid elements are K×K (the check can
    fail) and the step agrees with them."""
    cell = DeltaProduct(d_in=4, n_heads=2, n_h=3, d_key=6, d_value=8, forget_gate=True,
                        eigenvalue_range=(-1, 1), initializer_range=0.5)
    params, x, h0 = setup(cell, 1)
    assert not builds_key_by_key(lambda s, x_t: cell.step(params, s, x_t), h0, x[:, 0], k=3)
    assert builds_key_by_key(lambda x: cell.elements(params, x), x, k=3)
    transition, update = (a[:, 0] for a in cell.elements(params, x))
    chex.assert_trees_all_close(cell.step(params, h0, x[:, 0])[1], transition @ h0 + update, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("forget_gate", [False, True])
def test_init_shapes_and_groups(forget_gate):
    cell = DeltaProduct(d_in=8, n_heads=2, n_h=3, forget_gate=forget_gate)
    assert (cell.d_key, cell.d_value, cell.state_shape) == (8, 16, (2, 4, 8))
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_q": (8, 8), "W_k": (8, 24), "W_v": (8, 48), "W_beta": (8, 6), "W_g": (8, 16), "W_o": (16, 8),
              "norm_scale": (8,)}
    if forget_gate:
        shapes.update({"W_a": (8, 2), "A_log": (2,), "dt_bias": (2,)})
    assert {name: p.shape for name, p in params.items()} == shapes
    assert cell.recurrent_params == ({"A_log", "dt_bias"} if forget_gate else set())
    weights = np.concatenate([np.ravel(params[name]) for name in shapes if name.startswith("W_")])
    np.testing.assert_allclose(weights.std(), 0.02, rtol=0.1)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_h=0), "n_h"),
    (dict(n_h=-1), "n_h"),
    (dict(n_h=1.5), "n_h"),
    (dict(n_h=True), "n_h"),
    (dict(forget_gate="no"), "forget_gate"),
    (dict(eigenvalue_range=(-2, 1)), "eigenvalue_range"),
    (dict(d_key=3), "d_key"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        DeltaProduct(d_in=4, n_heads=2, **kwargs)

"""LRU: the ring initialisation and normalisation of Orvieto et al. (2023), and its
hyperparameter checks. (Forward, step and gradients are in the contract suite.)"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells import LRU

N = 20000  # eigenvalues drawn, for statistics to ±1%


@pytest.fixture(scope="module")
def ring():
    cell = LRU(d_in=8, d_state=N, r_min=0.4, r_max=0.9, max_phase=math.pi / 10)
    return cell, jax.tree_util.tree_map(np.asarray, cell.init(jax.random.PRNGKey(0)))


def test_eigenvalues_fill_the_ring_uniformly_by_area(ring):
    cell, p = ring
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    radius, phase = np.abs(lam), np.angle(lam)
    assert radius.min() >= cell.r_min - 1e-6 and radius.max() <= cell.r_max + 1e-6
    # Uniform on the ring's area: r² ~ U[r_min², r_max²].
    r2 = radius**2
    assert abs(r2.mean() - (cell.r_min**2 + cell.r_max**2) / 2) < 0.01
    assert abs(r2.std() - (cell.r_max**2 - cell.r_min**2) / math.sqrt(12)) < 0.01
    assert phase.min() >= 0 and phase.max() <= cell.max_phase + 1e-6
    assert abs(phase.mean() - cell.max_phase / 2) < 0.01 * cell.max_phase


def test_gamma_normalises_the_input_to_unit_gain(ring):
    _, p = ring
    lam_abs = np.exp(-np.exp(p["nu_log"]))
    np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - lam_abs**2), rtol=1e-4)


def test_input_and_output_matrices_have_the_papers_scale(ring):
    cell, p = ring
    for part in ("B_re", "B_im"):
        assert abs(p[part].std() - 1 / math.sqrt(2 * cell.d_in)) < 0.01
    for part in ("C_re", "C_im"):
        assert abs(p[part].std() * math.sqrt(N) - 1) < 0.02
    assert p["B_re"].shape == (N, cell.d_in) and p["C_re"].shape == (cell.d_in, N)
    assert p["D"].shape == (cell.d_in,)


def test_recurrent_params_are_the_papers():
    labels = LRU(d_in=2, d_state=3).param_labels(LRU(d_in=2, d_state=3).init(jax.random.PRNGKey(0)))
    assert {k for k, v in labels.items() if v == "recurrent"} == {"nu_log", "theta_log", "gamma_log", "B_re", "B_im"}


def test_states_are_complex_and_decay():
    cell = LRU(d_in=2, d_state=3, r_min=0.5, r_max=0.6)
    params = cell.init(jax.random.PRNGKey(1))
    _, final = cell.forward(params, jnp.zeros((1, 40, 2)), jnp.ones((1, 3), jnp.complex64))
    assert jnp.iscomplexobj(final) and float(jnp.max(jnp.abs(final))) <= 0.6**40 * 1.01


@pytest.mark.parametrize("kwargs, argument", [
    (dict(d_in=0, d_state=2), "d_in"),
    (dict(d_in=2, d_state=0), "d_state"),
    (dict(d_in=2, d_state=2, r_min=0.9, r_max=0.5), "r_min must not exceed r_max"),
    (dict(d_in=2, d_state=2, r_min=-0.1), "r_min"),
    (dict(d_in=2, d_state=2, r_max=1.5), "r_max"),
    (dict(d_in=2, d_state=2, max_phase=0.0), "max_phase"),
])
def test_invalid_hyperparameters_are_named(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        LRU(**kwargs)

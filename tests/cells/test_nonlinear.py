"""The nonlinear cells' Newton solves (`lrnn.cells.deer`, DEER and quasi-DEER) against the float64
loops of tests/cells/references/nonlinear_rnns.py, beyond what the contract suite checks at T ≤ 7:

  - at T = 256 both solvers agree with the loop to 1e-8, in at most T iterations, DEER in far
    fewer than quasi-DEER;
  - after i iterations the first i states are the loop's (so T iterations always suffice), for
    either solver and any damping;
  - damping keeps the iterates of an unstable linearisation (a GRU with large recurrent weights,
    float32) finite, where the undamped solve overflows, and converges in fewer iterations;
  - with resets (at t = 0, inside, twice in a row) outputs, final states and the implicit
    gradients (params, x, h0) equal those of the loop that zeroes the state before a reset;
  - bad solver options and methods are refused, naming the argument.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells import GRU, LSTM
from tests.cells.test_contract import CASES, TOL, reference, setup

tree_map = jax.tree_util.tree_map


@pytest.mark.parametrize("cell_name", ["gru", "lstm"])
def test_both_solvers_match_the_loop_at_256_steps(cell_name):
    case, params, x, h0 = setup(cell_name, 256)
    cells = {solver: type(case.cell)(d_in=case.cell.d_in, d_hidden=case.cell.d_hidden, solver=solver)
             for solver in ("deer", "quasi_deer")}
    solved = jax.jit(lambda p, x, h: {s: c.solve(p, x, h, method="associative") for s, c in cells.items()})(
        params, x, h0)
    expected = jax.jit(lambda p, x, h: reference(case, p, x, h))(params, x, h0)
    for solver, (y, final, iterations) in solved.items():
        chex.assert_trees_all_close((y, final), expected, **TOL, custom_message=solver)
        assert 1 <= int(iterations) <= 256, solver
    deer, quasi = int(solved["deer"][2]), int(solved["quasi_deer"][2])
    assert 3 * deer <= quasi, (deer, quasi)


@pytest.mark.parametrize("solver, damping", [("deer", 0.0), ("quasi_deer", 0.0), ("quasi_deer", 0.6)])
def test_after_i_iterations_the_first_i_states_are_the_loops(solver, damping):
    case, params, x, h0 = setup("gru", 12)
    (y_ref, _) = reference(case, params, x, h0)
    counts = (1, 4, 12)
    cells = [GRU(d_in=case.cell.d_in, d_hidden=case.cell.d_hidden, solver=solver, damping=damping, max_iterations=i,
                 tolerance=0.0) for i in counts]
    outputs = jax.jit(lambda p, x, h: [c.solve(p, x, h, method="sequential") for c in cells])(params, x, h0)
    for i, (y, _, iterations) in zip(counts, outputs):
        assert int(iterations) == i if i < 12 else int(iterations) <= 12  # stops early once nothing changes
        chex.assert_trees_all_close(y[:, :i], y_ref[:, :i], rtol=1e-12, atol=1e-12, custom_message=f"i={i}")
        if i == 1:
            assert float(jnp.max(jnp.abs(y[:, i:] - y_ref[:, i:]))) > 1e-6  # the rest not yet
    chex.assert_trees_all_close(outputs[-1][0], y_ref, rtol=1e-12, atol=1e-12)  # T iterations: the loop


def test_damping_keeps_an_unstable_linearisation_finite():
    """A GRU with 8× its recurrent weights: its states stay in (−1, 1), but the Jacobians along a
    far-off iterate have products that overflow float32 within 8 Newton iterations."""
    base = GRU(d_in=2, d_hidden=8, solver="deer")
    params = base.init(jax.random.PRNGKey(0))
    params = {**params, "W_h": 8.0 * params["W_h"]}
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 512, 2), jnp.float32)
    loop, _ = base.forward(params, x, method="sequential")
    cells = {f"{damping} {cap}": GRU(d_in=2, d_hidden=8, solver="deer", damping=damping, max_iterations=cap)
             for damping in (0.0, 0.5) for cap in (8, None)}
    runs = jax.jit(lambda p, x: {k: c.solve(p, x, method="sequential") for k, c in cells.items()})(params, x)
    assert not bool(jnp.all(jnp.isfinite(runs["0.0 8"][0])))  # undamped: overflowed after 8 iterations
    assert float(jnp.max(jnp.abs(runs["0.5 8"][0]))) < 1.0  # damped: finite, in the GRU's range
    undamped, damped = int(runs["0.0 None"][2]), int(runs["0.5 None"][2])
    assert damped < undamped <= 512, (damped, undamped)
    np.testing.assert_allclose(runs["0.5 None"][0], loop, atol=1e-3)


@pytest.mark.parametrize("name", ["gru", "lstm-quasi-damped"])
def test_resets_and_implicit_gradients_equal_the_loops(name):
    case, params, x, h0 = setup(name, 24)
    resets = np.zeros((2, 24), bool)
    resets[0, [0, 9, 10]] = True
    resets[1, [5, 17]] = True
    key = jax.random.PRNGKey(3)
    weights = (jax.random.normal(key, (2, 24, case.cell.d_out), jnp.float64),
               [jax.random.normal(key, h.shape, jnp.float64) for h in jax.tree_util.tree_leaves(h0)])

    def loss(outputs):
        y, final = outputs
        return jnp.sum(y * weights[0]) + sum(jnp.sum(f * w) for f, w in zip(jax.tree_util.tree_leaves(final),
                                                                         weights[1]))

    def cell_loss(p, x, h):  # the Newton path with the engine's sequential scans (compiles fastest)
        y, final, _ = case.cell.solve(p, x, h, method="sequential", resets=jnp.asarray(resets))
        return loss((y, final)), (y, final)

    def reference_loss(p, x, h):
        outputs = case.reference(case.cell, p, x, h, resets=jnp.asarray(resets))
        return loss(outputs), outputs

    (_, got), grads = jax.jit(jax.value_and_grad(cell_loss, argnums=(0, 1, 2), has_aux=True))(params, x, h0)
    (_, expected), expected_grads = jax.jit(jax.value_and_grad(reference_loss, argnums=(0, 1, 2), has_aux=True))(
        params, x, h0)
    chex.assert_trees_all_close(got, expected, **TOL)
    chex.assert_trees_all_close(grads, expected_grads, rtol=1e-7, atol=1e-7)
    assert float(jnp.max(jnp.abs(jax.tree_util.tree_leaves(grads[2])[0][0]))) == 0.0  # row 0 resets at t = 0


@pytest.mark.parametrize("options, pattern", [
    (dict(solver="newton"), r"solver must be one of 'deer', 'quasi_deer', got 'newton'"),
    (dict(damping=1.0), r"damping must lie in \[0.0, 1.0\)"),
    (dict(damping=-0.1), r"damping must lie in"),
    (dict(damping="0.5"), r"damping must be a number"),
    (dict(tolerance=-1e-6), r"tolerance must lie in \[0.0, inf\]"),
    (dict(max_iterations=0), r"max_iterations must be a positive int, got 0"),
    (dict(max_iterations=2.0), r"max_iterations must be a positive int"),
    (dict(d_hidden=0), r"d_hidden must be a positive int"),
])
@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_bad_solver_options_are_refused(cls, options, pattern):
    with pytest.raises(ValueError, match=pattern):
        cls(d_in=3, **options)


def test_bad_methods_are_refused():
    case, params, x, h0 = setup("gru-quasi", 4)
    cell = case.cell
    with pytest.raises(ValueError, match=r"method must be one of 'auto', 'sequential'.*got 'streamed'"):
        cell.forward(params, x, h0, method="streamed")
    with pytest.raises(ValueError, match=r"chunk_size must be a positive int, got 0"):
        cell.forward(params, x, h0, method="chunked", chunk_size=0)
    with pytest.raises(ValueError, match=r"method='sequential' is the step loop, which cannot split time"):
        cell.forward(params, x, h0, method="sequential", sequence_axis="seq")
    with pytest.raises(ValueError, match=r"solve needs sequence_axis 'seq' bound by an enclosing jax.shard_map"):
        cell.solve(params, x, h0, sequence_axis="seq")
    with pytest.raises(ValueError, match=r"resets must be a bool array of shape \(2, 4\)"):
        cell.solve(params, x, h0, resets=jnp.zeros((2, 3), bool))


def test_auto_is_the_step_loop_and_solve_counts_iterations():
    case, params, x, h0 = setup("lstm", 7)
    cell = case.cell
    auto = jax.make_jaxpr(lambda p, x, h: cell.forward(p, x, h))(params, x, h0)
    newton = jax.make_jaxpr(lambda p, x, h: cell.forward(p, x, h, method="sequential"))(params, x, h0)
    assert str(auto) == str(newton)  # "auto" on one device is the loop, traced alike
    assert "while" not in str(auto)
    _, _, iterations = cell.solve(params, x, h0, method="sequential")  # the Newton path, sequential scans
    assert iterations.dtype == jnp.int32 and 1 <= int(iterations) <= 7
    assert CASES["lstm"].cell.monoid is None

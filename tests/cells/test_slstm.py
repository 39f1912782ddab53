"""sLSTM beyond the contract suite: the stabiliser computes the paper's unstabilised h, stays
finite where that overflows, the Newton solves (DEER and quasi-DEER) agree with the step loop
at T = 64, the empty state's first token, the init, and bad options."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells import SLSTM
from tests.cells.references.slstm import slstm, slstm_unstabilised, valid_state
from tests.helpers import seed_of

SOLVERS = ("deer", "quasi_deer")
TOL = dict(rtol=1e-8, atol=1e-8)


def setup(cell, length, *, batch=2, dtype=jnp.float64, seed="slstm"):
    key_p, key_x = jax.random.split(jax.random.PRNGKey(seed_of(seed, length)))
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype), cell.init(key_p))
    return params, jax.random.normal(key_x, (batch, length, cell.d_in), dtype)


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exponential"])
def test_stabilised_h_equals_the_unstabilised_recurrence(forget_gate):
    # Without m, c and n grow as e^{Σ ĩ}; at these sizes that stays far from overflow in float64.
    cell = SLSTM(d_in=3, d_hidden=4, n_heads=2, forget_gate=forget_gate)
    params, x = setup(cell, 16)
    params = {**params, "b_i": params["b_i"] + jnp.array([3.0, -3.0, 1.0, 0.0])}  # i up to e^{±3}
    y_ref, (c_ref, n_ref) = slstm_unstabilised(cell, params, x)
    run = jax.jit(lambda p, x: [cell.forward(p, x, method=m) for m in ("sequential", "associative")])
    for y, (c, n, m, _) in run(params, x):
        # (c, n) carry the common factor e^{−m}; c / n and h do not see it.
        chex.assert_trees_all_close((y, c * jnp.exp(m), n * jnp.exp(m)), (y_ref, c_ref, n_ref), **TOL)


def large_gate_params(cell, params, size):
    """Input and forget gates pushed to ±size, alternating over channels (and far from 0 in x)."""
    sign = jnp.where(jnp.arange(cell.d_hidden) % 2 == 0, 1.0, -1.0).astype(params["b_i"].dtype)
    return {**params, "b_i": size * sign, "W_i": params["W_i"] * size, "b_f": -size * sign / 10,
            "W_f": params["W_f"] * size / 10}


def test_large_gate_pre_activations_stay_finite():
    # ĩ of ±500·|x| over 1024 tokens in float32 (e^{ĩ} alone overflows at 88.7), with the
    # exponential forget gate, whose m grows without bound (to ≈ 5·10⁴ here). The solve's stopping
    # rule is relative to the largest state entry, which is m, so it is given a tighter tolerance
    # than float32's default 1e-5 (with which quasi-DEER stops after 14 iterations, 0.098 from the
    # loop; with 1e-7, 24 iterations, 1e-6).
    cell = SLSTM(d_in=4, d_hidden=8, n_heads=2, forget_gate="exponential", tolerance=1e-7)
    params, x = setup(cell, 1024, dtype=jnp.float32)
    params = large_gate_params(cell, params, 500.0)
    y_naive, _ = slstm_unstabilised(cell, params, x[:, :8])
    assert not bool(jnp.all(jnp.isfinite(y_naive))), "the unstabilised recurrence should overflow here"

    def paths(p, x):
        loop, newton = cell.forward(p, x, method="sequential"), cell.forward(p, x, method="associative")
        return {"sequential": loop, "associative": newton, "step": cell.step(p, loop[1], x[:, -1])}

    runs = jax.jit(paths)(params, x)
    for method, (y, state) in runs.items():
        for name, value in zip(("y", "c", "n", "m", "h"), (y, *state)):
            assert bool(jnp.all(jnp.isfinite(value))), f"{method}: non-finite {name}"
        assert float(jnp.max(jnp.abs(y))) < 1.0, method  # |h| = σ(õ)|c/n| < 1
        assert float(jnp.min(state[1])) >= 1.0, method  # n ≥ 1 once a token is read
    np.testing.assert_allclose(runs["associative"][0], runs["sequential"][0], atol=1e-3)


def test_a_huge_negative_input_gate_on_the_first_token():
    # From the empty state m_1 = ĩ_1, so c/n = z exactly, even for ĩ far below −88 (float32),
    # where e^{ĩ − log f} (the stabiliser of m_0 = 0) would underflow to c/n = 0/0.
    cell = SLSTM(d_in=2, d_hidden=2)
    params, x = setup(cell, 1, dtype=jnp.float32)
    params = {**params, "b_i": jnp.full((2,), -200.0)}
    y, (c, n, m, h) = cell.step(params, cell.initial_state((2,)), x[:, 0])
    z = jnp.tanh(x[:, 0] @ params["W_z"] + params["b_z"])
    o = jax.nn.sigmoid(x[:, 0] @ params["W_o"] + params["b_o"])
    chex.assert_trees_all_close((y, n, m), (o * z, jnp.ones_like(n), x[:, 0] @ params["W_i"] - 200.0), rtol=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("forget_gate", ["sigmoid", "exponential"])
def test_newton_solves_match_the_loop_at_T64(solver, forget_gate):
    cell = SLSTM(d_in=3, d_hidden=6, n_heads=2, forget_gate=forget_gate, solver=solver)
    params, x = setup(cell, 64)
    h0 = valid_state(tuple(0.5 * jax.random.normal(k, (2, 6), jnp.float64)
                           for k in jax.random.split(jax.random.PRNGKey(3), 4)))
    expected = slstm(cell, params, x, h0)
    outputs = jax.jit(lambda p, x, h: [cell.solve(p, x, h, method=m, chunk_size=8)
                                       for m in ("associative", "chunked")])(params, x, h0)
    for y, final, iterations in outputs:
        chex.assert_trees_all_close((y, final), expected, **TOL)
        assert int(iterations) < 64, "converged only by the T-iteration bound"


def test_init():
    for forget_gate in ("sigmoid", "exponential"):
        cell = SLSTM(d_in=4, d_hidden=12, n_heads=3, forget_gate=forget_gate)
        params = cell.init(jax.random.PRNGKey(0))
        forget = params["b_f"].reshape(3, 4)
        per_head = 5.0 - 12.0 * (np.arange(4) / 3) ** 0.3  # the first block's power law, every head
        expected = per_head if forget_gate == "sigmoid" else np.log(1 / (1 + np.exp(-per_head)))
        np.testing.assert_allclose(forget, np.tile(expected, (3, 1)), rtol=1e-6)
        chex.assert_shape([params[f"R_{g}"] for g in "zifo"], (3, 4, 4))
        assert all(float(jnp.max(jnp.abs(params[f"R_{g}"]))) <= 1 / np.sqrt(12) for g in "zifo")
        for g in "zio":
            np.testing.assert_array_equal(params[f"b_{g}"], 0.0)


@pytest.mark.parametrize("options, match", [
    (dict(d_in=4, forget_gate="relu"), "forget_gate"),
    (dict(d_in=4, forget_gate=None), "forget_gate"),
    (dict(d_in=4, n_heads=3), "n_heads"),
    (dict(d_in=4, n_heads=0), "n_heads"),
    (dict(d_in=4, d_hidden=0), "d_hidden"),
    (dict(d_in=4, d_hidden=2.0), "d_hidden"),
    (dict(d_in=0), "d_in"),
    (dict(d_in=4, solver="newton"), "solver"),
])
def test_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        SLSTM(**options)

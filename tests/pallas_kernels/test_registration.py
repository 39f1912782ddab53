"""The kernels reached through the library: `lrnn.scan(..., method="pallas")` and the matrix cells'
`forward(..., method="pallas")`, against the float64 references (the kernels' own numerics are
tested beside each kernel; here: layouts, options, dispatch and what is refused).

Tolerances: the kernels compute in float32, so float32 results are compared with the float64
references at rtol = atol = 2e-5 (diagonal: one multiply-add per step over ≤ 9 steps) and 2e-4
(cells: chunkwise matmuls, norms and projections around them; measured errors are ~1e-6).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.chunkwise import decay_attention, delta_rule
from lrnn.scan import DiagonalMonoid, LogDiagonalMonoid, MatrixDecayMonoid, auto, scan
from lrnn.scan import methods as scan_methods
from tests.cells.references import all_cases
from tests.helpers import seed_of, to64
from tests.scan import references

SCAN_TOL = dict(rtol=2e-5, atol=2e-5)
CELL_TOL = dict(rtol=2e-4, atol=2e-4)
LEAD, T, TRAIL = (2, 3), 9, (2, 3)  # elements (2, 3, 9, 2, 3): time on axis 2, two dims after it


def _diagonal_problem(complex_: bool):
    rng = np.random.default_rng(seed_of("pallas-engine", complex_))
    shape = LEAD + (T,) + TRAIL
    a = rng.uniform(-0.95, 0.95, shape)
    b = rng.normal(size=shape)
    h0 = rng.normal(size=LEAD + TRAIL)
    if complex_:
        a = a * np.exp(1j * rng.uniform(0, 2 * np.pi, shape))
        b = b + 1j * rng.normal(size=shape)
        h0 = h0 + 1j * rng.normal(size=h0.shape)
    resets = rng.uniform(size=LEAD + (T,)) < 0.2
    weights = (rng.normal(size=shape), rng.normal(size=LEAD + TRAIL))
    return a, b, h0, jnp.asarray(resets), weights


def _loss(states, final, weights):
    return jnp.sum(jnp.real(states * weights[0])) + jnp.sum(jnp.real(final * weights[1]))


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_engine_pallas_matches_the_loop(complex_):
    """axis 2 with dims before and after time, forward and reverse, h0 and resets; the values
    and the gradients of a, b and h0 through the engine."""
    a, b, h0, resets, weights = _diagonal_problem(complex_)
    single = jnp.complex64 if complex_ else jnp.float32

    def run(a, b, h0, reverse, method):
        return scan(DiagonalMonoid(), (a, b), axis=2, initial=h0, reverse=reverse, resets=resets, method=method)

    def reference(a, b, h0, reverse):
        return references.diagonal((a, b), h0, axis=2, reverse=reverse, resets=resets)

    def values_and_grads(fn, cast):
        out = {}
        for reverse in (False, True):
            args = tuple(x.astype(cast) for x in (a, b, h0))
            value = fn(*args, reverse)
            grads = jax.grad(lambda *xs: _loss(*fn(*xs, reverse), weights), argnums=(0, 1, 2))(*args)
            out[reverse] = (value, grads)
        return out

    got = jax.jit(lambda: values_and_grads(lambda *xs: run(*xs, method="pallas"), single))()
    expected = jax.jit(lambda: values_and_grads(reference, jnp.complex128 if complex_ else jnp.float64))()
    for reverse in (False, True):
        (states, final), grads = got[reverse]
        chex.assert_shape(states, LEAD + (T,) + TRAIL)
        chex.assert_shape(final, LEAD + TRAIL)
        assert states.dtype == single and final.dtype == single
        chex.assert_trees_all_close(to64(got[reverse]), expected[reverse], **SCAN_TOL,
                                    custom_message=f"reverse={reverse}")


def test_engine_pallas_keeps_bf16():
    """bf16 elements stay bf16 through the kernel (float32 inside) and agree with the float64
    loop of the same bf16-rounded values to bf16's resolution."""
    a, b, h0, _, _ = _diagonal_problem(False)
    a16, b16 = (jnp.asarray(x, jnp.bfloat16) for x in (a, b))
    states, final = jax.jit(lambda a, b: scan(DiagonalMonoid(), (a, b), axis=2, method="pallas"))(a16, b16)
    assert states.dtype == jnp.bfloat16 and final.dtype == jnp.bfloat16
    expected = references.diagonal(to64((a16, b16)), None, axis=2)
    chex.assert_trees_all_close(to64((states, final)), expected, rtol=2e-2, atol=2e-2)


def test_kernels_under_vmap_equal_the_batched_call():
    """vmap adds a grid axis to the kernels (and batches their VJPs): the same numbers as one
    call with the vmapped axis folded into the batch."""
    a, b, _, _, _ = _diagonal_problem(False)
    a, b = (jnp.asarray(x, jnp.float32) for x in (a, b))
    diagonal = lambda a, b: scan(DiagonalMonoid(), (a, b), axis=1, method="pallas")  # noqa: E731
    rng = np.random.default_rng(2)
    q, k, log_decay = (jnp.asarray(rng.normal(size=(2, 1, 2, 20, 4)), jnp.float32) for _ in range(3))
    v = jnp.asarray(rng.normal(size=(2, 1, 2, 20, 3)), jnp.float32)
    state = jnp.zeros((2, 1, 2, 4, 3), jnp.float32)
    decay = lambda *xs: decay_attention(*xs, chunk_size=16, method="pallas")  # noqa: E731
    fold = lambda tree: jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)  # noqa: E731

    @jax.jit
    def both(a, b, q, k, v, log_decay, state):
        return ((jax.vmap(diagonal)(a, b), scan(DiagonalMonoid(), (a, b), axis=2, method="pallas")),
                (fold(jax.vmap(decay)(q, k, v, -jnp.abs(log_decay), state)),
                 decay(*fold((q, k, v, -jnp.abs(log_decay), state)))))

    for stacked, batched in both(a, b, q, k, v, log_decay, state):
        chex.assert_trees_all_close(stacked, batched, rtol=1e-6, atol=1e-6)


def test_engine_pallas_refuses_other_monoids():
    decay = jnp.full((2, 5, 3), 0.5)
    update = jnp.ones((2, 5, 3, 4))
    with pytest.raises(ValueError, match="DiagonalMonoid scans only, got MatrixDecayMonoid"):
        scan(MatrixDecayMonoid(), (decay, update), method="pallas")


def test_auto_picks_pallas_only_where_measured_and_accepted(monkeypatch):
    """Measurements with "pallas" fastest for the diagonal family send DiagonalMonoid scans to
    the kernel; LogDiagonalMonoid (same family, no kernel) still runs, on another candidate."""
    calls = []
    kernel = scan_methods.get_method("pallas")
    monkeypatch.setitem(scan_methods._REGISTRY, "pallas", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    point = {"length": 8, "lanes": 4, "dtype": "float32", "pass": "forward",
             "seconds": {"pallas": 1.0, "sequential": 2.0}}
    x = jnp.linspace(0.1, 0.9, 16, dtype=jnp.float32).reshape(2, 8, 1)
    with auto.stand_in({"diagonal": [point]}):
        scan(DiagonalMonoid(), (x, x), method="auto")
        assert calls == [1]
        states, _ = scan(LogDiagonalMonoid(), (jnp.log(x), jnp.log(x)), method="auto")
    chex.assert_tree_all_finite(states)
    assert calls == [1]


# --- the matrix cells' chunked path -----------------------------------------------------------

CELLS = ("gla", "hgrn2-lower-bound", "deltanet-negative-gate", "gated_deltanet-negative-no-gate")
CELL_T, CELL_CHUNK = 20, 16  # one whole chunk and a tail


def _cell_problem(name):
    case = all_cases()[name]
    key_p, key_x, key_h, key_w = jax.random.split(jax.random.PRNGKey(seed_of("pallas-cell", name)), 4)
    params = to64(case.cell.init(key_p))
    x = jax.random.normal(key_x, (2, CELL_T, case.cell.d_in), jnp.float64)
    h0 = 0.5 * jax.random.normal(key_h, case.cell.initial_state((2,)).shape, jnp.float64)
    weights = (jax.random.normal(key_w, (2, CELL_T, case.cell.d_out), jnp.float64),
               jax.random.normal(key_w, h0.shape, jnp.float64))
    return case, params, x, h0, weights


@pytest.mark.parametrize("name", CELLS)
def test_cell_forward_and_gradients_through_the_kernels(name):
    case, params, x, h0, weights = _cell_problem(name)
    to32 = lambda tree: jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), tree)  # noqa: E731

    def loss(outputs):
        y, final = outputs
        return jnp.sum(y * weights[0]) + jnp.sum(final * weights[1])

    def kernel(params, x, h0):
        return case.cell.forward(params, x, h0, method="pallas", chunk_size=CELL_CHUNK, **case.kwargs)

    def reference(params, x, h0):
        return case.reference(case.cell, params, x, h0, **case.kwargs)

    got = jax.jit(lambda p, x, h: (kernel(p, x, h), jax.grad(lambda *a: loss(kernel(*a)), (0, 1, 2))(p, x, h)))(
        *to32((params, x, h0)))
    expected = jax.jit(lambda p, x, h: (reference(p, x, h), jax.grad(lambda *a: loss(reference(*a)), (0, 1, 2))(
        p, x, h)))(params, x, h0)
    chex.assert_trees_all_equal_shapes(got, expected)
    chex.assert_trees_all_close(to64(got), expected, **CELL_TOL)


def test_kernel_method_refuses_what_the_kernels_do_not_take():
    rng = np.random.default_rng(0)
    q, k, log_decay = (jnp.asarray(rng.normal(size=(1, 2, 20, 4)), jnp.float32) for _ in range(3))
    v = jnp.asarray(rng.normal(size=(1, 2, 20, 3)), jnp.float32)
    state = jnp.zeros((1, 2, 4, 3), jnp.float32)
    resets = jnp.zeros((1, 20), bool).at[0, 5].set(True)
    with pytest.raises(ValueError, match="the decay_attention kernel does not take resets"):
        decay_attention(q, k, v, -jnp.abs(log_decay), state, chunk_size=16, method="pallas", resets=resets)
    with pytest.raises(ValueError, match="the delta_rule kernel does not take resets"):
        delta_rule(q, k, v, jnp.full((1, 2, 20), 0.5, jnp.float32), state, chunk_size=16, method="pallas", resets=resets)
    with pytest.raises(ValueError, match="the decay_attention kernel does not take complex inputs"):
        decay_attention(q, k, v, -jnp.abs(log_decay) + 1j * log_decay, state.astype(jnp.complex64), chunk_size=16,
                        method="pallas")
    with pytest.raises(ValueError, match="the decay_attention kernel does not take float64 inputs"):
        decay_attention(*to64((q, k, v, -jnp.abs(log_decay), state)), chunk_size=16, method="pallas")
    with pytest.raises(TypeError, match="method='pallas' computes in float32: elements must be"):
        scan(DiagonalMonoid(), to64((q, k)), method="pallas")


def test_auto_runs_the_chunk_kernel_where_measured(monkeypatch):
    """With measurements where "pallas" is faster for delta_rule, "auto" runs the registered
    kernel, and the pure-JAX form where the kernel does not apply (resets)."""
    calls = []
    kernel = scan_methods.chunk_kernel("delta_rule", "pallas")
    monkeypatch.setitem(scan_methods._CHUNK_KERNELS, ("delta_rule", "pallas"),
                        lambda *a, **k: calls.append(1) or kernel(*a, **k))
    points = [{"length": 20, "lanes": 24, "dtype": "float32", "pass": pass_, "seconds": {"pallas": 1.0, "pure_jax": 2.0}}
              for pass_ in ("forward", "forward+backward")]
    rng = np.random.default_rng(1)
    q, k = (jnp.asarray(rng.normal(size=(1, 2, 20, 4)), jnp.float32) for _ in range(2))
    k = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
    v = jnp.asarray(rng.normal(size=(1, 2, 20, 3)), jnp.float32)
    beta, state = jnp.full((1, 2, 20), 0.5, jnp.float32), jnp.zeros((1, 2, 4, 3), jnp.float32)
    with auto.stand_in({"delta_rule": points}):
        with_kernel = delta_rule(q, k, v, beta, state, chunk_size=16, method="auto")
        assert calls == [1]
        pure = delta_rule(q, k, v, beta, state, chunk_size=16, method="auto", resets=jnp.zeros((1, 20), bool))
    assert calls == [1]
    chex.assert_trees_all_close(with_kernel, pure, rtol=1e-5, atol=1e-5)

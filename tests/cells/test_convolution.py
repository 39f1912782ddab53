"""`forward(..., method="convolution")` (S4's convolution mode, `lrnn.cells.convolution`) against
the float64 per-token loops of tests/cells/references, for every case of a time-invariant cell
(LRU, S4D, S5 with its bidirectional option, RetNet):
  - outputs and the final state, from a random h0 and from zeros, at T = 1 and 7 (odd), and from
    h0 at T = 16 (a power of two), equal the loop's;
  - gradients w.r.t. the params, x and h0 equal the loop's;
  - bf16 inputs give a bf16 output close to the float32 one (computed in float32), and float32
    stays as accurate as the scan over 2^14 tokens;
and the method is refused, with an error naming what is wrong, for a cell that is not
time-invariant and with resets, sequence_axis or chunk_size.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells import GLA, Mamba, convolution
from lrnn.cells.convolution import TimeInvariant
from tests.cells.test_contract import (B, CASES, TOL, _gradient_problem, _loss, _reference_gradients, problem,
                                       setup)
from tests.helpers import seed_of

CONVOLVED = sorted(name for name, case in CASES.items() if isinstance(case.cell, TimeInvariant))
RUNS = [(1, False), (7, False), (7, True), (16, True)]  # (T, with h0)
METHOD = convolution.METHOD


def test_the_time_invariant_cells_are_covered():
    assert convolution.cells_with_it() == ["lru", "retnet", "s4d", "s5"]
    assert {"lru", "lru-ring", "s4d-lin", "s4d-no-conj", "s5-bilinear", "s5-bidirectional", "retnet"} \
        <= set(CONVOLVED)


@pytest.mark.parametrize("name", CONVOLVED)
def test_convolution_matches_reference(name):
    case = CASES[name]
    problems = [problem(name, length, with_state=with_state) for length, with_state in RUNS]

    @jax.jit  # every run in one program: one compilation
    def each(inputs):
        return [case.cell.forward(p, x, h, method=METHOD, **case.kwargs) for p, x, h in inputs]

    outputs = each([(params, x, h0) for _, params, x, h0, _ in problems])
    for (length, with_state), (y, final), (*_, expected) in zip(RUNS, outputs, problems):
        message = f"T={length}, {'with' if with_state else 'without'} h0"
        chex.assert_shape(y, (B, length, case.cell.d_out), custom_message=message)
        chex.assert_trees_all_equal_shapes(final, case.cell.initial_state((B,)), custom_message=message)
        chex.assert_trees_all_close((y, final), expected, **TOL, custom_message=message)


@pytest.mark.parametrize("name", CONVOLVED)
def test_gradients_match_reference(name):
    """Of a loss of y and the final state, w.r.t. params, x and h0 (T = 6)."""
    case, params, x, h0, weights = _gradient_problem(name)

    def loss(params, x, h0):
        return _loss(case.cell.forward(params, x, h0, method=METHOD, **case.kwargs), weights)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, x, h0)
    chex.assert_trees_all_close(grads, _reference_gradients(name), rtol=1e-7, atol=1e-7)


def _float32_params(name):
    params = CASES[name].cell.init(jax.random.PRNGKey(seed_of(name)))
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)  # also with x64 switched on


@pytest.mark.parametrize("name", CONVOLVED)
def test_bfloat16_inputs_compute_in_float32(name):
    case = CASES[name]
    params = _float32_params(name)
    x = jax.random.normal(jax.random.PRNGKey(1), (B, 64, case.cell.d_in), jnp.float32)
    forward = lambda p, x: case.cell.forward(p, x, method=METHOD, **case.kwargs)  # noqa: E731
    (y32, final32), (y16, final16) = jax.jit(lambda p, x: (forward(p, x), forward(p, x.astype(jnp.bfloat16))))(
        params, x)
    assert y16.dtype == jnp.bfloat16 and final16.dtype == jnp.complex64
    scale = float(jnp.max(jnp.abs(y32))) + 1e-6
    np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), atol=5e-2 * scale)
    np.testing.assert_allclose(final16, final32, atol=5e-2 * (float(jnp.max(jnp.abs(final32))) + 1e-6))


@pytest.mark.parametrize("name", ["lru-ring", "s4d-inv", "s5-bidirectional"])
def test_float32_over_long_sequences_is_as_accurate_as_the_scan(name):
    """T = 2^14 in float32, slow decays (|λ| up to 0.999) and fast rotations (S4D-Inv): the
    convolution's and the sequential scan's errors against the float64 scan, both within 1e-4 of
    the output's scale (the powers Ā^k = exp(k log Ā) keep their phase)."""
    case = CASES[name]
    params = _float32_params(name)
    x = jax.random.normal(jax.random.PRNGKey(2), (1, 2**14, case.cell.d_in), jnp.float32)
    h0 = case.cell.initial_state((1,)) + 0.5

    @jax.jit
    def runs(params, x, h0):
        wide = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), (params, x))
        return (case.cell.forward(*wide, h0.astype(jnp.complex128), method="sequential"),
                case.cell.forward(params, x, h0, method=METHOD), case.cell.forward(params, x, h0, method="sequential"))

    (y64, final64), *float32_runs = runs(params, x, h0)
    scale = float(jnp.max(jnp.abs(y64)))
    for y, final in float32_runs:
        np.testing.assert_allclose(y, y64, atol=1e-4 * scale)
        np.testing.assert_allclose(final, final64, atol=1e-4 * float(jnp.max(jnp.abs(final64))))


@pytest.mark.parametrize("cell", [Mamba(d_in=4, d_state=2), GLA(d_in=4, n_heads=2)], ids=["mamba", "gla"])
def test_cells_that_are_not_time_invariant_refuse(cell):
    params = cell.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"method='convolution' needs a time-invariant cell.*lru, retnet, s4d, s5"):
        cell.forward(params, jnp.ones((1, 3, 4)), method=METHOD)


@pytest.mark.parametrize("name", ["s4d-lin", "s5-bidirectional", "retnet"])
def test_resets_sequence_axis_and_chunk_size_are_refused(name):
    case, params, x, h0 = setup(name, 4)
    forward = lambda **options: case.cell.forward(params, x, h0, method=METHOD, **options)  # noqa: E731
    with pytest.raises(ValueError, match=r"resets cannot be used with method='convolution'.*restart"):
        forward(resets=jnp.zeros((B, 4), bool).at[:, 2].set(True))
    with pytest.raises(ValueError, match=r"sequence_axis cannot be used with method='convolution'"):
        forward(sequence_axis="seq")
    with pytest.raises(ValueError, match=r"chunk_size does not apply to method='convolution'"):
        forward(chunk_size=2)

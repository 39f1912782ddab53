"""The matrix-state cells' part of the contract, on top of tests/cells/test_contract.py (which
every case, diagonal or matrix, runs through).

For every reference case whose cell is a MatrixCell:
  - the chunked training path at chunk sizes {1, 16, 64} (at 16 with every engine method
    across chunks), at an odd length (37: full chunks and a tail, and shorter than 64), from a random
    h0, equals the float64 loop, outputs and final state;
  - the per-token materialised scan (`forward_materialised`) equals it too;
  - gradients, the initial state's included, match the loop's across chunks (of 4; the
    contract suite's are at chunk size 3);
  - float32 parameters and inputs stay within the threshold below of the float64 loop;
  - a chunk size that is not a positive int is refused, naming chunk_size.

Thresholds, per dtype: float64 1e-8 relative and absolute (as the contract suite);
float32 against the float64 loop 1e-3 of the output's scale (float32 projections, norms and
chunk matmuls; the measured error is 1e-6–1e-5 of the scale).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells import MatrixCell
from tests.cells.test_contract import CASES, TOL, problem, reference, setup
from tests.helpers import seed_of

MATRIX = sorted(name for name, case in CASES.items() if isinstance(case.cell, MatrixCell))
LENGTH = 37
FLOAT32_SCALE_TOL = 1e-3


def test_there_are_matrix_cases():
    assert MATRIX, "no MatrixCell among the reference cases"


# Chunk size 16 (two full chunks and a tail) with every engine method across chunks; 1 (every
# token its own chunk) and 64 (one chunk shorter than the chunk size) with the default.
CHUNK_METHODS = {1: ("auto",), 16: ("sequential", "associative", "chunked"), 64: ("auto",)}


@pytest.mark.parametrize("chunk", sorted(CHUNK_METHODS))
@pytest.mark.parametrize("name", MATRIX)
def test_chunked_matches_reference(name, chunk):
    case, params, x, h0, expected = problem(name, LENGTH)  # the reference runs once for every chunk size
    methods = CHUNK_METHODS[chunk]

    @jax.jit  # every method in one program: one compilation
    def forward_each(p, x, h):
        return [case.cell.forward(p, x, h, method=method, chunk_size=chunk, **case.kwargs) for method in methods]

    for method, got in zip(methods, forward_each(params, x, h0)):
        chex.assert_trees_all_close(got, expected, **TOL, custom_message=f"{method} C={chunk}")


@pytest.mark.parametrize("name", MATRIX)
def test_materialised_matches_reference(name):
    case, params, x, h0, expected = problem(name, 9)
    methods = ("sequential", "associative")

    @jax.jit  # both methods in one program: one compilation
    def materialised_each(p, x, h):
        return [case.cell.forward_materialised(p, x, h, method=method, **case.kwargs) for method in methods]

    for method, got in zip(methods, materialised_each(params, x, h0)):
        chex.assert_trees_all_close(got, expected, **TOL, custom_message=method)


def _loss(outputs, weights):
    y, final = outputs
    parts = jax.tree_util.tree_leaves(final)
    return jnp.sum(y * weights[0]) + sum(jnp.sum(jnp.real(f * w)) for f, w in zip(parts, weights[1]))


@pytest.mark.parametrize("name", MATRIX)
def test_gradients_with_chunks_match_reference(name):
    """Two full chunks of 4 and a tail of 3."""
    case, params, x, h0 = setup(name, 11)
    key = jax.random.PRNGKey(seed_of(name, "matrix-weights"))
    weights = (jax.random.normal(key, (x.shape[0], 11, case.cell.d_out), jnp.float64),
               [jax.random.normal(key, h.shape, jnp.float64) for h in jax.tree_util.tree_leaves(h0)])

    def cell_loss(params, x, h0):
        return _loss(case.cell.forward(params, x, h0, chunk_size=4, **case.kwargs), weights)

    def reference_loss(params, x, h0):
        return _loss(reference(case, params, x, h0), weights)

    grads = jax.jit(jax.grad(cell_loss, argnums=(0, 1, 2)))(params, x, h0)
    expected = jax.jit(jax.grad(reference_loss, argnums=(0, 1, 2)))(params, x, h0)
    chex.assert_trees_all_close(grads, expected, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", MATRIX)
def test_float32_within_the_written_threshold(name):
    case, params, x, _, (expected, _) = problem(name, LENGTH, with_state=False)
    narrow = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), (params, x))
    y, _ = jax.jit(lambda p, x: case.cell.forward(p, x, **case.kwargs))(*narrow)
    assert y.dtype == jnp.float32
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(np.asarray(y, np.float64), np.asarray(expected), atol=FLOAT32_SCALE_TOL * scale)


@pytest.mark.parametrize("name", MATRIX)
def test_bad_chunk_size_names_the_argument(name):
    case, params, x, _ = setup(name, 4)
    for bad in (0, -16, 2.5):
        with pytest.raises(ValueError, match=f"chunk_size must be a positive int, got {bad}"):
            case.cell.forward(params, x, chunk_size=bad, **case.kwargs)
    with pytest.raises(ValueError, match=r"resets must be a bool array of shape \(2, 4\)"):
        case.cell.forward(params, x, resets=jnp.zeros((2, 5), bool), **case.kwargs)

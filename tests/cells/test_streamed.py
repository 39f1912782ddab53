"""`forward(..., method="streamed")` against the float64 per-token loops of tests/cells/references.

For every reference case whose forward scans per-token elements (every cell but the matrix-state
ones, whose forward is chunkwise already):
  - streamed with several chunks (C = 4 of T = 12, the scan inside each chunk sequential; C = 3,
    associative; C = 1; C = T), from a random h0, equals the loop: outputs and final state;
  - packed sequences (resets at a chunk's first token and inside a chunk) equal the loop run on
    each sequence separately;
  - gradients, h0's included, equal the loop's (through the checkpointed chunk bodies);
and for the method itself: the compiled memory of Mamba's forward+backward does not grow with
N·T (the per-token states are never stored), "auto" streams exactly where the table says so,
and bad chunk sizes or a matrix cell are refused with errors naming the argument.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest

from lrnn import cells
from lrnn.cells import MatrixCell, streamed
from lrnn.scan import auto
from tests.cells.test_contract import B, CASES, TOL, _loss, reference, setup
from tests.helpers import seed_of

SCANNED = sorted(name for name, case in CASES.items()  # a nonlinear cell (monoid None) has no stream
                 if not isinstance(case.cell, MatrixCell) and case.cell.monoid is not None)
LENGTH = 12
RUNS = [(4, "sequential"), (3, "associative"), (1, "sequential"), (LENGTH, "auto")]  # (chunk size, inner method)


def _streamed(case, params, x, h0, chunk_size, inner="auto", resets=None):
    initial = None if h0 is None else case.cell.to_scan_state(h0)
    y, final = streamed.streamed_forward(case.cell, params, x, initial, chunk_size=chunk_size, method=inner,
                                         resets=resets, **case.kwargs)
    return y, case.cell.from_scan_state(final)


def test_there_are_scanned_cases():
    assert {"mamba", "s4d-lin", "s5-bidirectional", "minlstm-log", "aaren"} <= set(SCANNED)


@pytest.mark.parametrize("name", SCANNED)
def test_streamed_matches_reference(name):
    case, params, x, h0 = setup(name, LENGTH)
    expected = reference(case, params, x, h0)

    @jax.jit  # every chunking in one program: one compilation
    def each_chunking(params, x, h0):
        return [_streamed(case, params, x, h0, c, inner) for c, inner in RUNS]

    for (chunk_size, inner), got in zip(RUNS, each_chunking(params, x, h0)):
        chex.assert_trees_all_close(got, expected, **TOL, custom_message=f"C={chunk_size}, inner {inner}")


@pytest.mark.parametrize("name", ["mamba-negative", "s5-bidirectional", "minlstm-log", "aaren", "hgrn-lower-bound"])
def test_streamed_through_forward_matches_reference(name):
    """`cell.forward(method="streamed")`, the public path, eagerly (no jit around the stream),
    for a real, a bidirectional complex, a log-space, a softmax and an extra-input cell."""
    case, params, x, h0 = setup(name, LENGTH)
    got = case.cell.forward(params, x, h0, method="streamed", chunk_size=6, **case.kwargs)
    chex.assert_trees_all_close(got, reference(case, params, x, h0), **TOL)


@pytest.mark.parametrize("name", SCANNED)
def test_streamed_packed_sequences_equal_separate_references(name):
    case, params, x, h0 = setup(name, LENGTH)
    # row 0: sequences [0, 4) [4, 12) (a reset at a chunk's first token); row 1: [0, 6) [6, 12)
    resets = jnp.zeros((B, LENGTH), bool).at[0, 4].set(True).at[1, 6].set(True)
    y, final = jax.jit(lambda p, x, h: _streamed(case, p, x, h, 4, resets=resets))(params, x, h0)
    rows = lambda tree, r: jax.tree_util.tree_map(lambda a: a[r:r + 1], tree)  # noqa: E731
    for row, start in ((0, 4), (1, 6)):
        first, _ = reference(case, params, x[row:row + 1, :start], rows(h0, row))
        rest, rest_final = reference(case, params, x[row:row + 1, start:], None)
        chex.assert_trees_all_close(y[row:row + 1, :start], first, **TOL)
        chex.assert_trees_all_close((y[row:row + 1, start:], rows(final, row)), (rest, rest_final), **TOL)


@pytest.mark.parametrize("name", SCANNED)
def test_streamed_gradients_match_reference(name):
    case, params, x, h0 = setup(name, LENGTH)
    key = jax.random.PRNGKey(seed_of(name, "streamed weights"))
    weights = (jax.random.normal(key, (B, LENGTH, case.cell.d_out), jnp.float64),
               [jax.random.normal(key, h.shape, jnp.float64) for h in jax.tree_util.tree_leaves(h0)])

    def streamed_loss(params, x, h0):
        return _loss(_streamed(case, params, x, h0, 4, "associative"), weights)

    def reference_loss(params, x, h0):
        return _loss(reference(case, params, x, h0), weights)

    got, expected = jax.jit(lambda *a: (jax.grad(streamed_loss, argnums=(0, 1, 2))(*a),
                                        jax.grad(reference_loss, argnums=(0, 1, 2))(*a)))(params, x, h0)
    chex.assert_trees_all_close(got, expected, rtol=1e-7, atol=1e-7)


def _training_temp_bytes(cell, length, method, chunk_size=None):
    """Compiled temp memory of the gradient of Σ y w.r.t. params and x, float32, B = 2."""
    params = cell.init(jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((2, length, cell.d_in), jnp.float32)

    def loss(params, x):
        return jnp.sum(cell.forward(params, x, method=method, chunk_size=chunk_size)[0])

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_streamed_training_memory_does_not_grow_with_state_times_length():
    """Mamba, d_in = 16, N = 64: a per-token state is 64× the per-token output. From T to 4T the
    whole-sequence scan's temp memory grows by ≈ 3·(4 B·T·d_in·N·4 bytes) (elements and states);
    the stream's by the O(B·T·d_in) terms and T/C carried states only (C = 64)."""
    cell = cells.Mamba(d_in=16, d_state=64)
    short, long = 512, 2048
    whole = [_training_temp_bytes(cell, t, "sequential") for t in (short, long)]
    stream = [_training_temp_bytes(cell, t, "streamed", 64) for t in (short, long)]
    per_token_state = 2 * cell.d_in * cell.d_state * 4  # bytes of one token's states, B = 2, float32
    assert whole[1] - whole[0] > (long - short) * per_token_state, whole  # it does store them
    assert stream[1] - stream[0] < 0.1 * (long - short) * per_token_state, (stream, whole)
    assert stream[1] < whole[1] / 8, (stream, whole)


def _measured(lanes):
    """Mamba measured at T = 64 (a stream of 16 fastest) and 4096 (the whole scan fastest),
    forward and forward+backward."""
    def point(length, pass_, whole, stream):
        return {"length": length, "lanes": lanes, "dtype": "float32", "pass": pass_,
                "seconds": {"whole": whole, "streamed_16": stream}}
    return {"cell:mamba": [point(64, "forward", 2.0, 1.0), point(64, "forward+backward", 4.0, 3.0),
                           point(4096, "forward", 10.0, 12.0), point(4096, "forward+backward", 40.0, 60.0)]}


def test_auto_streams_where_measured_faster():
    cell = cells.Mamba(d_in=8, d_state=4)
    with auto.stand_in(_measured(streamed.lanes(cell, 2))):
        assert streamed.choose(cell, (2, 64), "auto", None) == ("streamed", 16)
        assert streamed.choose(cell, (2, 4096), "auto", None) == ("auto", None)
        assert streamed.choose(cell, (2, 60), "auto", None) == ("streamed", 15)  # the divisor of 60 nearest 16
        assert streamed.choose(cell, (2, 61), "auto", None) == ("auto", None)  # none within a factor 2 of 16
        assert streamed.choose(cell, (2, 61), "streamed", None) == ("streamed", 61)  # largest divisor ≤ 64
        assert streamed.choose(cell, (2, 100), "streamed", None) == ("streamed", 20)  # nearest 16: 20 (1.25×) vs 10
        assert streamed.choose(cell, (2, 64), "streamed", None) == ("streamed", 16)  # the measured one
        assert streamed.choose(cell, (2, 64), "streamed", 8) == ("streamed", 8)
        # and the forward it picks computes the same function as the whole-sequence scan
        params = cell.init(jax.random.PRNGKey(0))
        x = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 8), jnp.float64)
        chex.assert_trees_all_close(cell.forward(params, x), cell.forward(params, x, method="sequential"), **TOL)


def test_auto_without_measurements_uses_the_engine():
    with auto.stand_in({"cell:s4d": []}):
        assert streamed.choose(cells.S4D(d_in=8), (2, 1024), "auto", None) == ("auto", None)
        assert streamed.choose(cells.S4D(d_in=8), (2, 1024), "streamed", None) == ("streamed", 64)


def test_family_names_the_registered_cell():
    assert streamed.family(cells.Mamba(d_in=4)) == "cell:mamba"
    assert streamed.family(cells.S5(d_in=4, d_state=4, bidirectional=True)) == "cell:s5"


@pytest.mark.parametrize("chunk_size, message", [
    (5, r"chunk_size must divide the sequence length T=12 for method='streamed', got 5"),
    (0, r"chunk_size must be a positive int, got 0"),
    (-4, r"chunk_size must be a positive int, got -4"),
    (2.0, r"chunk_size must be a positive int, got 2.0"),
])
def test_bad_chunk_sizes_name_the_argument(chunk_size, message):
    case, params, x, _ = setup("mamba", LENGTH)
    with pytest.raises((ValueError, TypeError), match=message):
        case.cell.forward(params, x, method="streamed", chunk_size=chunk_size)


def test_a_matrix_cell_refuses_streamed():
    cell = cells.GLA(d_in=8, n_heads=2)
    x = jnp.zeros((1, 8, 8))
    with pytest.raises(ValueError, match=r"method='streamed' is for cells whose forward scans per-token elements; "
                                         r"GLA's forward is chunkwise"):
        cell.forward(cell.init(jax.random.PRNGKey(0)), x, method="streamed")

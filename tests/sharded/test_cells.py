"""Every registered cell's `forward(..., sequence_axis=)` with time split over 2, 4 and 8 forced CPU
devices equals its single-device forward (float64): outputs, final state and the gradients w.r.t.
params, inputs and h0, with resets at and between shard boundaries. Also the self-wrapping path
(under `jax.set_mesh`, outside shard_map) and the bad input of a sharded forward.

One jitted value_and_grad per cell and split (jax 0.12's XLA aborts on shard_maps over meshes of
different shapes in one program). Runs under 8 forced CPU devices only (tests/test_sharded_suite.py).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec

from lrnn.cells import registered_cells
from tests.cells.references import all_cases
from tests.cells.test_contract import random_state
from tests.helpers import seed_of

CASES = all_cases()
B, T = 2, 16
DEVICES = (2, 4, 8)
TOL = dict(rtol=1e-10, atol=1e-10)
CHUNK = 2  # divides every shard (T / 8 = 2 tokens per device at most split)
# One case of every registered cell (the variants with the most to get wrong across devices), and
# the streamed forward of the diagonal, log-space, softmax (Segmented resets) and bidirectional scans.
RUNS = {
    "lru": ("lru", {}),
    "s4d-streamed": ("s4d-lin", {"method": "streamed", "chunk_size": CHUNK}),
    "s5-bidirectional": ("s5-bidirectional", {}),
    "s5-bidirectional-streamed": ("s5-bidirectional", {"method": "streamed", "chunk_size": CHUNK}),
    "hgrn-complex": ("hgrn-complex", {}),
    "mingru-log-streamed": ("mingru-log", {"method": "streamed", "chunk_size": CHUNK}),
    "minlstm": ("minlstm", {}),
    "mamba-negative": ("mamba-negative", {}),
    "rglru": ("rglru-blocks", {}),
    "retnet": ("retnet", {"chunk_size": CHUNK}),
    "gla": ("gla", {"chunk_size": CHUNK}),
    "hgrn2": ("hgrn2-lower-bound", {"chunk_size": CHUNK}),
    "gateloop": ("gateloop-head-norm", {"chunk_size": CHUNK}),
    "mlstm": ("mlstm", {"chunk_size": CHUNK}),
    "mamba2-negative": ("mamba2-negative-groups", {"chunk_size": CHUNK}),
    "deltanet": ("deltanet-negative-gate", {"chunk_size": CHUNK}),
    "gated_deltanet": ("gated_deltanet-negative-no-gate", {"chunk_size": CHUNK}),
    "deltaproduct": ("deltaproduct-gated-negative", {"chunk_size": CHUNK}),
    "aaren-streamed": ("aaren", {"method": "streamed", "chunk_size": CHUNK}),
    "rwkv6": ("rwkv6-keys-values", {"chunk_size": CHUNK}),
    "block_diagonal-streamed": ("block_diagonal-b3-p1", {"method": "streamed", "chunk_size": CHUNK}),
    "gru-deer": ("gru", {"method": "associative"}),  # the Newton solves across devices
    "lstm-quasi-deer": ("lstm-quasi-damped", {"method": "chunked", "chunk_size": CHUNK}),
    "slstm-deer": ("slstm-deer-exponential-forget", {"method": "associative"}),
}
# Resets on a shard boundary for every split (t = 8), on some (4, 12), inside shards (3, 7, 11), at 0.
RESETS = np.zeros((B, T), bool)
RESETS[0, [4, 7, 8]] = True
RESETS[1, [0, 3, 11, 12]] = True


def seq_mesh(devices: int):
    """A one-axis mesh "seq" over the first `devices` CPU devices."""
    return jax.make_mesh((devices,), ("seq",), axis_types=(AxisType.Auto,), devices=jax.devices()[:devices])


def problem(run: str):
    """(case, options, params, x, h0, cotangents of (y, final))."""
    case_name, options = RUNS[run]
    case = CASES[case_name]
    rng = np.random.default_rng(seed_of(run, "sharded cells"))
    key_p, key_h = jax.random.split(jax.random.PRNGKey(seed_of(run)))
    params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), case.cell.init(key_p))
    x = jnp.asarray(rng.normal(size=(B, T, case.cell.d_in)))
    h0 = random_state(case, key_h, B)
    outputs = jax.eval_shape(lambda: case.cell.forward(params, x, h0, resets=RESETS, **options, **case.kwargs))
    cotangents = jax.tree_util.tree_map(lambda o: jnp.asarray(rng.normal(size=o.shape)), outputs)
    return case, options, params, x, h0, cotangents


def loss_of(forward, cotangents):
    """⟨(y, final), cotangents⟩ over real and imaginary parts: one scalar that every output reaches."""
    def loss(params, x, h0):
        outputs = forward(params, x, h0)
        terms = jax.tree_util.tree_map(lambda o, c: jnp.sum((jnp.real(o) + jnp.imag(o)) * c), outputs, cotangents)
        return sum(jax.tree_util.tree_leaves(terms)), outputs
    return jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)


@functools.cache
def results(run: str):
    """{0: the single-device (loss, outputs) and gradients, P: the same with time over P devices}."""
    case, options, params, x, h0, cotangents = problem(run)
    forward = functools.partial(case.cell.forward, resets=RESETS, **options, **case.kwargs)

    def sharded(devices):
        time_split, replicated = PartitionSpec(None, "seq"), PartitionSpec()
        local = jax.shard_map(lambda p, x, h, r: case.cell.forward(p, x, h, resets=r, sequence_axis="seq", **options,
                                                                   **case.kwargs),
                              mesh=seq_mesh(devices), in_specs=(replicated, time_split, replicated, time_split),
                              out_specs=(time_split, replicated), check_vma=False)
        return loss_of(lambda p, x, h: local(p, x, h, RESETS), cotangents)

    runs = {0: loss_of(forward, cotangents), **{devices: sharded(devices) for devices in DEVICES}}
    return {devices: jax.jit(run)(params, x, h0) for devices, run in runs.items()}


def test_every_registered_cell_runs():
    covered = {type(CASES[case_name].cell) for case_name, _ in RUNS.values()}
    missing = [name for name, cls in registered_cells().items() if cls not in covered]
    assert not missing, f"registered cells without a sharded run: {missing}"


@pytest.mark.parametrize("run", list(RUNS))
def test_sharded_forward_and_gradients_equal_one_device(run):
    outcome = results(run)
    (loss, (y, final)), grads = outcome[0]
    case = CASES[RUNS[run][0]]
    chex.assert_shape(y, (B, T, case.cell.d_out))
    chex.assert_trees_all_equal_shapes(final, case.cell.initial_state((B,)))
    assert all(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(grads[1:])), "a vanishing gradient"
    for devices in DEVICES:
        message = f"{run}, time over {devices} devices"
        chex.assert_trees_all_equal_shapes(outcome[devices], outcome[0], custom_message=message)
        chex.assert_trees_all_close(outcome[devices], outcome[0], **TOL, custom_message=message)


@pytest.mark.parametrize("run", ["lru", "gla"])
def test_forward_under_a_mesh_wraps_itself(run):
    """Outside shard_map, under jax.set_mesh, forward splits the whole sequence itself."""
    case, options, params, x, h0, _ = problem(run)
    expected = case.cell.forward(params, x, h0, resets=RESETS, **options)
    with jax.set_mesh(seq_mesh(4)):
        got = jax.jit(lambda p, x, h: case.cell.forward(p, x, h, resets=RESETS, sequence_axis="seq", **options))(
            params, x, h0)
    chex.assert_trees_all_close(got, expected, **TOL)


def _forward(run, length=T, **options):
    case, base, params, _, _, _ = problem(run)
    x = jnp.zeros((B, length, case.cell.d_in))
    return lambda: case.cell.forward(params, x, **{**base, **options})


@pytest.mark.parametrize("run", ["lru", "gla"])
def test_bad_sequence_axis_fails_clearly(run):
    with pytest.raises(ValueError, match="sequence_axis 'seq' is not a mesh axis: there is no mesh"):
        _forward(run, sequence_axis="seq")()
    with jax.set_mesh(seq_mesh(4)):
        with pytest.raises(ValueError, match=r"sequence_axis 'time' is not a mesh axis: the current mesh has axes "
                                             r"\('seq',\)"):
            _forward(run, sequence_axis="time")()
        with pytest.raises(ValueError, match="time length 18 must be divisible by the 4 devices of mesh axis 'seq'"):
            _forward(run, length=18, sequence_axis="seq")()
    with pytest.raises(TypeError, match="sequence_axis must be None or the name of a mesh axis"):
        _forward(run, sequence_axis=1)()


def test_streamed_chunks_must_divide_each_shard():
    with jax.set_mesh(seq_mesh(8)), pytest.raises(ValueError, match="chunk_size must divide the sequence length T=2"):
        _forward("s4d-streamed", chunk_size=4, sequence_axis="seq")()


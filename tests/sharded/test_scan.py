"""`scan(..., sequence_axis=)` with the time axis split over 2, 4 and 8 forced CPU devices, for every
monoid, in float64: states, final state and the gradient (w.r.t. every leaf and the initial state)
equal the independent per-step reference loop of tests/scan/references.py — with an initial state,
resets and reversed, through each scan method; inside the caller's own shard_map and under
`jax.set_mesh`; and the bad input of a sharded scan fails with a clear error.

Runs under 8 forced CPU devices only (tests/test_sharded_suite.py).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec

import pallas_kernels  # noqa: F401 - registers method="pallas"
from lrnn.scan import DiagonalMonoid, scan, sequence_parallel
from tests.helpers import seed_of
from tests.scan import monoid_for
from tests.scan.test_gradients import gradient, random_like
from tests.scan.references import CASES, draw

B, T = 2, 16
TOL = dict(rtol=1e-10, atol=1e-10)
OPTIONS = {"plain": (False, False, False), "h0-resets": (True, False, True), "h0-rev-resets": (True, True, True)}


def seq_mesh(devices: int, *, data: int = 1):
    """A (data, seq) mesh over the first data·devices CPU devices."""
    return jax.make_mesh((data, devices), ("data", "seq"), axis_types=(AxisType.Auto,) * 2,
                         devices=jax.devices()[: data * devices])


@functools.lru_cache(maxsize=None)
def problem(case_name, option, length=T):
    """(leaves, h0, resets, cotangents, reference (states, final), reference gradient)."""
    initial, reverse, resets = OPTIONS[option]
    case = CASES[case_name]
    leaves, h0, flags = draw(case, (B, length), seed=seed_of(case_name, option, "sharded"), initial=initial,
                             resets=resets)
    reference = functools.partial(case.reference, axis=1, reverse=reverse, resets=flags)
    outputs = reference(leaves, h0)
    cotangents = random_like(np.random.default_rng(seed_of("cotangents")), outputs)
    expected = gradient(reference, jax.tree_util.tree_map(jnp.asarray, leaves), h0, cotangents)
    return leaves, h0, flags, cotangents, outputs, expected


def sharded_values_and_gradient(case_name, option, devices, method="auto", length=T):
    leaves, h0, flags, cotangents, *_ = problem(case_name, option, length)
    monoid = monoid_for(CASES[case_name])

    def forward(leaves, h0):
        return scan(monoid, leaves, initial=h0, resets=flags, reverse=OPTIONS[option][1], method=method,
                    sequence_axis="seq")

    with jax.set_mesh(seq_mesh(devices)):
        return jax.jit(lambda leaves, h0: (forward(leaves, h0), gradient(forward, leaves, h0, cotangents)))(leaves, h0)


@pytest.mark.parametrize("devices", [2, 4, 8])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("case_name", list(CASES))
def test_sharded_scan_and_gradient_equal_the_reference(case_name, option, devices):
    *_, expected_outputs, expected_gradient = problem(case_name, option)
    outputs, grads = sharded_values_and_gradient(case_name, option, devices)
    chex.assert_trees_all_equal_shapes(outputs, expected_outputs)
    chex.assert_trees_all_close(outputs, expected_outputs, **TOL)
    chex.assert_trees_all_close(grads, expected_gradient, **TOL)


@pytest.mark.parametrize("method", ["sequential", "associative", "chunked"])
@pytest.mark.parametrize("case_name", ["diagonal", "dense"])
def test_every_method_scans_its_shard(case_name, method):
    *_, expected_outputs, expected_gradient = problem(case_name, "h0-rev-resets")
    outputs, grads = sharded_values_and_gradient(case_name, "h0-rev-resets", 4, method=method)
    chex.assert_trees_all_close((outputs, grads), (expected_outputs, expected_gradient), **TOL)


def test_pallas_kernel_scans_its_shard_in_float32():
    """method="pallas" (the diagonal kernel, interpret mode on CPU) computes in float32."""
    leaves, h0, flags, cotangents, expected_outputs, expected_gradient = problem("diagonal", "h0-rev-resets")
    leaves, h0 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), (leaves, h0))

    def forward(leaves, h0):
        return scan(DiagonalMonoid(), leaves, initial=h0, resets=flags, reverse=True, method="pallas",
                    sequence_axis="seq")

    with jax.set_mesh(seq_mesh(4)):
        outputs, grads = jax.jit(lambda l, h: (forward(l, h), gradient(forward, l, h, cotangents)))(leaves, h0)
    chex.assert_trees_all_close((outputs, grads), (expected_outputs, expected_gradient), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("option", ["h0-resets", "h0-rev-resets"])
def test_expanding_elements_are_composed_block_by_block(option):
    """Identity-minus-rank-one leaves expand to K×K transitions: a shard longer than
    sequence_parallel.EXPAND_BLOCK composes them a block at a time (whole blocks and a remainder)."""
    length = 2 * (2 * sequence_parallel.EXPAND_BLOCK + 5)
    *_, expected_outputs, expected_gradient = problem("rank_one", option, length)
    outputs, grads = sharded_values_and_gradient("rank_one", option, 2, length=length)
    chex.assert_trees_all_close((outputs, grads), (expected_outputs, expected_gradient), **TOL)


def test_one_step_per_device():
    """T = P: every shard is a single step (the engine's length-1 path)."""
    *_, expected_outputs, expected_gradient = problem("diagonal", "h0-resets", 8)
    outputs, grads = sharded_values_and_gradient("diagonal", "h0-resets", 8, length=8)
    chex.assert_trees_all_close((outputs, grads), (expected_outputs, expected_gradient), **TOL)


def test_inside_the_callers_shard_map_with_batch_over_data():
    """Inside the caller's shard_map (batch over "data", time over "seq"), each device gets its
    shard of states and the whole sequence's final state."""
    leaves, h0, flags, _, (states, final), _ = problem("diagonal", "h0-resets")
    time, batch = PartitionSpec("data", "seq"), PartitionSpec("data")

    def local(a, b, h0, resets):
        chex.assert_shape(a, (B // 2, T // 4, a.shape[-1]))
        return scan(DiagonalMonoid(), (a, b), initial=h0, resets=resets, sequence_axis="seq")

    sharded = jax.shard_map(local, mesh=seq_mesh(4, data=2), in_specs=(time, time, batch, time),
                            out_specs=(time, batch), check_vma=False)
    chex.assert_trees_all_close(jax.jit(sharded)(*leaves, h0, flags), (states, final), **TOL)


def test_time_not_divisible_by_the_axis():
    a = jnp.ones((B, 12, 3))
    with jax.set_mesh(seq_mesh(8)), pytest.raises(ValueError, match=r"time length 12 must be divisible by the 8 "
                                                                    r"devices of mesh axis 'seq'"):
        scan(DiagonalMonoid(), (a, a), sequence_axis="seq")


def test_unknown_mesh_axis():
    a = jnp.ones((B, 8, 3))
    with jax.set_mesh(seq_mesh(2)), pytest.raises(ValueError, match=r"'time' is not a mesh axis.*\('data', 'seq'\)"):
        scan(DiagonalMonoid(), (a, a), sequence_axis="time")
    with pytest.raises(ValueError, match="there is no mesh"):
        scan(DiagonalMonoid(), (a, a), sequence_axis="seq")


def test_resets_of_the_wrong_shape():
    a = jnp.ones((B, 8, 3))
    with jax.set_mesh(seq_mesh(2)), pytest.raises(ValueError, match=r"resets must have shape \(2, 8\)"):
        scan(DiagonalMonoid(), (a, a), resets=jnp.zeros((B, 4), bool), sequence_axis="seq")
    # Inside shard_map the check is against this device's shard, and says so.
    time = PartitionSpec(None, "seq")
    local = jax.shard_map(lambda a, r: scan(DiagonalMonoid(), (a, a), resets=r[:, :3], sequence_axis="seq")[0],
                          mesh=seq_mesh(2), in_specs=(time, time), out_specs=time, check_vma=False)
    with pytest.raises(ValueError, match=r"shape \(2, 4\).*this device: its shard of the time axis split over 'seq'"):
        local(a, jnp.zeros((B, 8), bool))

"""Per-device memory of a sequence-parallel layer falls ~1/M with the M devices time is split over:
XLA's `memory_analysis()` of the compiled forward+backward (nothing runs) for a diagonal cell per
token, GLA chunkwise and DeltaNet chunkwise, at M ∈ {1, 2, 4, 8}. The measured table at T = 2^16
is experiments/bench_sequence_parallel.py's (BENCHMARKS.md); runs under tests/test_sharded_suite.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AxisType, PartitionSpec

from lrnn.cells import GLA, LRU, DeltaNet

T = 4096
# A layer's temp memory at M devices is at most SLACK·temp(1)/M plus a fixed part (the shard
# summaries, replicated params and their gradients), measured well under FIXED at these sizes.
SLACK, FIXED = 1.15, 256 * 1024
CELLS = {
    "lru": (LRU(d_in=16, d_state=16), {"method": "sequential"}),
    "gla": (GLA(d_in=16, n_heads=2), {"chunk_size": 64}),
    "deltanet": (DeltaNet(d_in=16, n_heads=2), {"chunk_size": 64}),
}


def temp_bytes(name: str, devices: int) -> int:
    """Temp bytes per device of value_and_grad(Σ forward(x)·c) w.r.t. params and x, time over `devices`."""
    cell, options = CELLS[name]
    params = cell.init(jax.random.key(0))
    x = jax.ShapeDtypeStruct((1, T, cell.d_in), jnp.float32)

    def loss(params, x, c):
        if devices == 1:
            y, _ = cell.forward(params, x, **options)
        else:
            time = PartitionSpec(None, "seq")
            mesh = jax.make_mesh((devices,), ("seq",), axis_types=(AxisType.Auto,), devices=jax.devices()[:devices])
            local = lambda params, x: cell.forward(params, x, sequence_axis="seq", **options)[0]  # noqa: E731
            y = jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), time), out_specs=time,
                              check_vma=False)(params, x)
        return jnp.sum(y * c)

    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(params, x, x).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("name", list(CELLS))
def test_per_device_temp_memory_falls_as_one_over_the_devices(name):
    one = temp_bytes(name, 1)
    assert one > 8 * FIXED, f"{name}: temp(M=1) = {one} B is too small to tell 1/M from the fixed part"
    for devices in (2, 4, 8):
        got = temp_bytes(name, devices)
        assert got <= SLACK * one / devices + FIXED, (
            f"{name}: temp at M = {devices} is {got} B, above {SLACK}·temp(1)/M + {FIXED} B "
            f"(temp(1) = {one} B, ratio {got / one:.3f})")

"""The sequence-parallel benchmark runs end to end at a toy size on forced CPU devices (in a
subprocess: it forces 8 CPU devices before JAX starts), and what it reports holds up: per-device
memory from the partitioned program, the summaries' exchange in the HLO equal to the analytic
count, nothing exchanged at M = 1. The HLO collective parser is checked on handwritten text."""

import json
import math
import os
import pathlib
import subprocess
import sys

import jax  # noqa: F401 - before the benchmark module, so importing it never forces devices here
import pytest

from experiments import bench_sequence_parallel as bench

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKLOADS = ("lru", "gla", "deltanet")
DEVICES = (1, 4)  # M = 2 too would add 6 compiles (the test must stay under 40 s on 2 cores)
LENGTH = 128


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequence_parallel") / "results.json"
    command = [sys.executable, str(ROOT / "experiments" / "bench_sequence_parallel.py"), "--quick",
               "--length", str(LENGTH), "--devices", *map(str, DEVICES), "--workloads", *WORKLOADS,
               "--rounds", "1", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the script forces its 8 devices
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    assert "| workload | M | temp MiB |" in run.stdout
    return json.loads(out.read_text())


def test_results_hold_one_record_per_workload_devices_and_pass(results):
    assert results["settings"]["length"] == LENGTH and results["settings"]["devices"] == list(DEVICES)
    assert "--xla_force_host_platform_device_count=8" in results["environment"]["xla_flags"]
    assert len(results["environment"]["devices"]) == 8
    records = results["records"]
    assert [(r["workload"], r["devices"], r["pass"]) for r in records] == [
        (w, m, p) for w in WORKLOADS for m in DEVICES for p in bench.PASSES]
    for r in records:
        assert {"temp", "argument", "output"} <= set(r["memory_bytes"])
        assert all(isinstance(v, int) and v >= 0 for v in r["memory_bytes"].values())
        assert r["memory_bytes"]["temp"] > 0
        assert r["wall_median_s"] > 0
        ratio = r["memory_ratio_to_one_device"]
        if r["devices"] == 1:
            assert ratio == {"temp": 1.0, "argument": 1.0, "output": 1.0}


def test_memory_is_per_device(results):
    """The arguments each device holds: the replicated params and its 1/M of x (and of the
    cotangent, for forward+backward); the forward's output is its 1/M of y."""
    for r in results["records"]:
        per_sequence = r["batch"] * r["length"] // r["devices"] * results["settings"]["width"] * 4
        inputs = 1 if r["pass"] == bench.FORWARD else 2  # the forward drops the unused cotangent
        assert r["memory_bytes"]["argument"] == r["param_bytes"] + inputs * per_sequence, r
        if r["pass"] == bench.FORWARD:
            assert r["memory_bytes"]["output"] == per_sequence, r


def test_temp_memory_falls_with_the_devices(results):
    """The per-token scans keep every token's state: temp memory falls as the shards shrink."""
    for workload in WORKLOADS:
        for pass_ in bench.PASSES:
            temps = [r["memory_bytes"]["temp"] for r in results["records"]
                     if r["workload"] == workload and r["pass"] == pass_]
            assert temps == sorted(temps, reverse=True) and temps[-1] < 0.5 * temps[0], (workload, pass_, temps)


def test_the_hlo_exchange_is_the_analytic_one(results):
    for r in results["records"]:
        m, summary = r["devices"], r["summary_element"]
        ops = [c["op"] for c in r["collectives"]]
        assert r["exchange_hlo_bytes"]["summary"] == r["exchange_analytic_bytes"]["summary"], r
        if m == 1:
            assert ops == [] and r["exchange_analytic_bytes"] == {"summary": 0, "other": 0}
            continue
        assert r["exchange_analytic_bytes"]["summary"] == (m - 1) * summary["bytes"] * (
            1 if r["pass"] == bench.FORWARD else 2)
        gathers = sorted(c["result_bytes"] for c in r["collectives"] if c["op"] == "all-gather")
        leaves = sorted(m * math.prod(shape) * (8 if dtype.startswith("complex") else 4)
                        for dtype, shape in summary["leaves"])
        assert gathers == leaves, r  # one all-gather of M summaries per leaf of the element
        assert all(c["group"] == m and c["in_entry"] for c in r["collectives"])
        if r["pass"] == bench.FORWARD:
            assert set(ops) == {"all-gather"}
        else:  # the transposed gather, and one all-reduce of the params' gradients and the loss
            assert ops.count("reduce-scatter") == ops.count("all-gather")
            assert r["exchange_hlo_bytes"]["other"] == r["exchange_analytic_bytes"]["other"], r


HLO = """HloModule jit_f, num_partitions=4

%region_0.1 (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add.1 = f32[] add(%a, %b)
}

ENTRY %main.9 (param.1: f32[1,16], param.2: c64[3]) -> (f32[4,1,16], f32[], c64[3]) {
  %param.1 = f32[1,16]{1,0} parameter(0)
  %param.2 = c64[3]{0} parameter(1)
  %fusion.1 = f32[8]{0} fusion(%param.1), kind=kLoop, calls=%fused
  %all-gather.1 = f32[4,1,16]{2,1,0} all-gather(%param.1), channel_id=1, replica_groups={{0,1,2,3}}, \
dimensions={0}
  %reduce-scatter.2 = f32[2]{0} reduce-scatter(%fusion.1), channel_id=2, replica_groups=[1,4]<=[4], dimensions={0}, \
to_apply=%region_0.1
  %all-reduce.3 = (f32[], /*index=1*/c64[3]{0}) all-reduce(f32[] %constant, /*index=1*/%param.2), channel_id=3, \
replica_groups=mesh['x'=2,'seq'=2] {'seq'}, to_apply=%region_0.1
  %all-gather-start.4 = (f32[1,16]{1,0}, f32[4,1,16]{2,1,0}) all-gather-start(%param.1), channel_id=4, \
replica_groups={{0,1,2,3}}, dimensions={0}
  %all-gather-done.5 = f32[4,1,16]{2,1,0} all-gather-done(%all-gather-start.4)
  ROOT %tuple.6 = (f32[4,1,16]{2,1,0}, f32[], c64[3]{0}) tuple(%all-gather.1, %all-reduce.3, %param.2)
}
"""


def test_collectives_parser_reads_sizes_groups_and_async_pairs():
    found = bench.collectives(HLO, devices=4)
    assert [(c["op"], c["operand_bytes"], c["result_bytes"], c["group"]) for c in found] == [
        ("all-gather", 64, 256, 4),
        ("reduce-scatter", 32, 8, 4),
        ("all-reduce", 4 + 24, 4 + 24, 2),  # a typed operand, a commented index, a mesh group
        ("all-gather", 64, 256, 4),  # the async start counts once; its done not at all
    ]
    assert [c["moved_bytes"] for c in found] == [192, 24, 2 * 1 / 2 * 28, 192]
    assert all(c["in_entry"] and c["computation"] == "main.9" for c in found)
    assert bench.measured_exchange(found) == {"summary": 192 + 24 + 192, "other": 28}


def test_analytic_exchange_counts_gather_and_its_transpose():
    assert bench.analytic_exchange(100, 40, 1, bench.TRAIN) == {"summary": 0, "other": 0}
    assert bench.analytic_exchange(100, 40, 4, bench.FORWARD) == {"summary": 300, "other": 0}
    assert bench.analytic_exchange(100, 40, 4, bench.TRAIN) == {"summary": 600, "other": round(1.5 * 44)}

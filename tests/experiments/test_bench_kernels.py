"""The kernel benchmark's bookkeeping: it refuses to time interpret mode, its tables report the
ratios it claims, and --write-auto records its timings without losing other measurements.
(Timing itself needs a GPU; `python experiments/bench_kernels.py --quick` runs the whole script
at tiny sizes, about a minute on CPU, and is not part of the suite.)"""

import json

import jax
import pytest

from experiments import bench_kernels
from lrnn.scan import auto

FORWARD, TRAIN = bench_kernels.FORWARD, bench_kernels.TRAIN


def _results(kernel_s, pure_s, fla_s):
    """Results shaped like a run's, with the given medians for every chunk record."""
    chunk = [{"op": op, "length": length, "pass": pass_, "fla": "measured",
              "median_s": {bench_kernels.KERNEL: kernel_s, bench_kernels.PURE: pure_s, bench_kernels.FLA: fla_s}}
             for op in ("decay_attention", "delta_rule", "gated_delta_rule") for length in (2048, 8192)
             for pass_ in (FORWARD, TRAIN)]
    diagonal = [{"dtype": "float32", "pass": FORWARD, "shape": [8, 8192, 4096], "floor_s": 0.8,
                 "median_s": {bench_kernels.KERNEL: 1.0, "engine_pallas": 1.1, "engine_associative": 3.0,
                              "engine_sequential": 2.0}}]
    return {"chunk": chunk, "diagonal": diagonal, "chunk_shape": dict(batch=8, heads=16, key=128, value=128)}


def test_refuses_to_time_interpret_mode_on_cpu():
    assert jax.default_backend() == "cpu"
    with pytest.raises(SystemExit, match="interpret mode"):
        bench_kernels.main([])


def test_tables_give_the_ratios():
    results = _results(kernel_s=2e-3, pure_s=4e-3, fla_s=1e-3)
    chunk = bench_kernels.chunk_table(results["chunk"])
    assert "| decay_attention | 2048 | forward | 2 | 4 | 1 | 0.50 | 2.00 |" in chunk
    diagonal = bench_kernels.diagonal_table(results["diagonal"])
    assert "| float32 | forward | 1e+03 | 800 | 0.80 | 1.10 | 3.00 | 2.00 |" in diagonal


@pytest.mark.parametrize("kernel_s, expected", [(1.0, "pallas"), (3.0, "pure_jax")])
def test_write_auto_records_the_timings_and_keeps_other_points(tmp_path, monkeypatch, kernel_s, expected):
    table_path = tmp_path / "auto_methods.json"
    backend = jax.default_backend()
    lanes = 8 * 16 * 128 * 128
    kept = {"length": 256, "lanes": 4, "dtype": "bfloat16", "pass": FORWARD, "seconds": {"sequential": 1.0}}
    replaced = {"length": 2048, "lanes": lanes, "dtype": "bfloat16", "pass": FORWARD, "seconds": {"stale": 1.0}}
    table_path.write_text(json.dumps({"tpu": {"delta_rule": [kept]}, backend: {"delta_rule": [kept, replaced]}}))
    monkeypatch.setattr(auto, "TABLE", table_path)
    auto._table.cache_clear()
    try:
        auto.merge_points(bench_kernels.auto_points(_results(kernel_s=kernel_s, pure_s=2.0, fla_s=1.0)))
        table = json.loads(table_path.read_text())
        assert table["tpu"] == {"delta_rule": [kept]}
        points = table[backend]["delta_rule"]
        assert points[0] == kept and [(p["length"], p["pass"]) for p in points[1:]] == [
            (2048, FORWARD), (2048, TRAIN), (8192, FORWARD), (8192, TRAIN)]
        assert all(p["seconds"] == {"pallas": kernel_s, "pure_jax": 2.0} for p in points[1:])
        assert table[backend]["diagonal"] == [{"length": 8192, "lanes": 8 * 4096, "dtype": "float32", "pass": FORWARD,
                                               "seconds": {"pallas": 1.1, "associative": 3.0, "sequential": 2.0}}]
        for form in ("delta_rule", "decay_attention"):
            assert auto.choose_total(form, 4096, lanes, dtype="bfloat16")[0] == expected
        assert auto.choose("diagonal", 8192, 8 * 4096)[0] == "pallas"
    finally:
        auto._table.cache_clear()


def test_a_kernel_that_does_not_compile_is_reported_and_never_recorded_for_auto():
    """A kernel over the device's limits (seen on an H200: decay_attention at K = V = 128 asked for
    482 KB of shared memory) leaves its row in the table, saying why, and no "pallas" point."""
    results = _results(kernel_s=1.0, pure_s=2.0, fla_s=1.5)
    reason = bench_kernels.compile_failure(RuntimeError("RESOURCE_EXHAUSTED: Shared memory size limit exceeded\nmore"))
    assert reason == "RuntimeError: RESOURCE_EXHAUSTED: Shared memory size limit exceeded"
    for record in results["chunk"]:
        if record["op"] == "decay_attention":
            del record["median_s"][bench_kernels.KERNEL]
            record["does_not_compile"] = {bench_kernels.KERNEL: reason}
    table = bench_kernels.chunk_table(results["chunk"])
    assert f"| decay_attention | 2048 | forward | does not compile ({reason}) | 2e+03 | 1.5e+03 | – | – |" in table
    assert "| delta_rule | 2048 | forward | 1e+03 | 2e+03 | 1.5e+03 | 0.50 | 0.67 |" in table
    points = bench_kernels.auto_points(results)
    assert all(p["seconds"] == {"pure_jax": 2.0} for p in points["decay_attention"])
    assert all(p["seconds"] == {"pallas": 1.0, "pure_jax": 2.0} for p in points["delta_rule"])


def test_a_run_stopped_midway_keeps_its_tables(tmp_path, monkeypatch):
    """device_check stops a step at its budget (the first H200 run lost every table that way):
    the rows measured before the stop are on disk, marked unfinished."""
    out, markdown = tmp_path / "bench_kernels.json", tmp_path / "BENCHMARKS.md"
    peers = []

    def stop_at_the_second_row(op, arrays, pass_):
        peers.append(op.name)
        if len(peers) == 2:
            raise KeyboardInterrupt("the step's budget ran out")
        return "not available (test)"
    monkeypatch.setattr(bench_kernels, "fla_runner", stop_at_the_second_row)
    with pytest.raises(KeyboardInterrupt):
        bench_kernels.main(["--quick", "--rounds", "1", "--out", str(out), "--markdown", str(markdown)])
    written = json.loads(out.read_text())
    assert len(written["chunk"]) == 1 and written["diagonal"]
    assert written["unfinished"] == "measured 1 of the chunk kernels' 6 rows"
    text = markdown.read_text()
    assert "**Unfinished run**" in text and "| decay_attention | 64 | forward |" in text

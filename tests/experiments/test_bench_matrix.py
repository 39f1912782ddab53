"""The matrix-state benchmark runs end to end at a toy size, compares like with like, and skips
what does not fit its memory budget."""

import json

import chex
import jax
import jax.numpy as jnp
import pytest

from experiments import bench_matrix

SHAPE = bench_matrix.Shape(batch=1, heads=2, key=4, value=3)


@pytest.mark.parametrize("op", sorted(bench_matrix.OPS))
def test_the_three_candidates_compute_the_same_outputs(op):
    """The benchmark times three ways to one result: o and the final state agree (float32)."""
    q, k, v, gate, initial, _ = bench_matrix.arguments(bench_matrix.OPS[op], SHAPE, 19, seed=1)
    initial = jax.random.normal(jax.random.PRNGKey(2), initial.shape, jnp.float32)  # a non-zero start
    results = {name: jax.jit(fn)(q, k, v, gate, initial)
               for name, fn in bench_matrix.OPS[op].candidates(chunk_size=8).items()}
    for name in (bench_matrix.MATERIALISED, bench_matrix.LOOP):
        chex.assert_trees_all_close(results[name], results[bench_matrix.CHUNKED], rtol=1e-4, atol=1e-4)


def test_quick_run_writes_tables_and_results(tmp_path):
    out = tmp_path / "matrix.json"
    markdown = tmp_path / "BENCHMARKS.md"
    results = bench_matrix.main(["--quick", "--sizes", "32", "--chunk-size", "8", "--rounds", "1",
                                 "--out", str(out), "--markdown", str(markdown)])
    saved = json.loads(out.read_text())
    assert [(r["op"], r["length"], r["pass"]) for r in saved["records"]] == [
        (op, 32, pass_) for op in bench_matrix.OPS for pass_ in bench_matrix.PASSES]
    for record in results["records"]:
        assert record["not_run"] == []
        assert set(record["median_s"]) == set(bench_matrix.CANDIDATES)
        assert all(seconds > 0 for seconds in record["median_s"].values())
        assert all(temp > 0 for temp in record["temp_bytes"].values())
    text = markdown.read_text()
    assert bench_matrix.SECTION in text and "| delta_rule | 32 |" in text and "not run: needs" not in text
    assert "Compiled temporary memory" in text


def test_a_candidate_over_the_budget_is_compiled_but_not_run():
    op = bench_matrix.OPS["decay_attention"]
    timing = bench_matrix.benchlib.Timing(rounds=1, min_seconds=0.0, max_calls=1, max_call_seconds=5.0)
    record = bench_matrix.measure(op, SHAPE, 16, bench_matrix.FORWARD, 8, budget_bytes=0, timing=timing, seed=0)
    assert record["not_run"] == list(bench_matrix.CANDIDATES) and record["median_s"] == {}
    assert all(record["temp_bytes"][name] > 0 for name in bench_matrix.CANDIDATES)
    row = bench_matrix.time_table([record])
    assert row.count("not run: needs") == 3 and "| – | – |" in row

"""The cells benchmark runs end to end at a toy size and reports what it measured."""

import json

from experiments import bench_cells


def test_quick_run_writes_a_table_and_results(tmp_path):
    out = tmp_path / "cells.json"
    markdown = tmp_path / "BENCHMARKS.md"
    results = bench_cells.main(["--quick", "--cells", "lru", "--sizes", "16", "--rounds", "1",
                                "--out", str(out), "--markdown", str(markdown)])
    saved = json.loads(out.read_text())
    assert [(r["cell"], r["length"], r["pass"]) for r in saved["records"]] == [
        ("lru", 16, bench_cells.FORWARD), ("lru", 16, bench_cells.TRAIN)]
    for record in results["records"]:
        assert set(record["median_s"]) == {*bench_cells.METHODS, bench_cells.LOOP}
        assert all(seconds > 0 for seconds in record["median_s"].values())
    text = markdown.read_text()
    assert bench_cells.SECTION in text and "| lru | 16 |" in text

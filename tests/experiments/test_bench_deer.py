"""The DEER benchmark runs end to end at a toy size and reports what it measured: a record per
solver with its iteration counts (at most T), a float64 error at rounding level and positive
times, as a table and a results file."""

import json

from experiments import bench_deer
from lrnn.cells.deer import SOLVERS

LENGTH = 8


def test_quick_run_writes_a_table_and_results(tmp_path):
    out, markdown = tmp_path / "deer.json", tmp_path / "BENCHMARKS.md"
    results = bench_deer.main(["--quick", "--cells", "gru", "--lengths", str(LENGTH), "--scan-method", "sequential",
                               "--rounds", "1", "--out", str(out), "--markdown", str(markdown)])
    saved = json.loads(out.read_text())
    assert saved["records"] == results["records"]
    assert [(r["cell"], r["length"], r["solver"]) for r in saved["records"]] == [("gru", LENGTH, s) for s in SOLVERS]
    for record in saved["records"]:
        assert 1 <= record["iterations_float64"] <= LENGTH and 1 <= record["iterations_float32"] <= LENGTH
        assert record["max_abs_error_float64"] < 1e-10
        assert record["solve_s"] > 0 and record["loop_s"] > 0
    text = markdown.read_text()
    assert bench_deer.SECTION in text and "| gru | 8 | deer |" in text and "| gru | 8 | quasi_deer |" in text

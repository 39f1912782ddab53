"""The convolution-mode benchmark runs end to end at a toy size and reports what it measured (and
its MIMO kernel comparison); its table reads ratios to the convolution and marks what was not run."""

import json

from experiments import bench_convolution


def test_quick_run_writes_a_table_and_results(tmp_path):
    out = tmp_path / "convolution.json"
    markdown = tmp_path / "BENCHMARKS.md"
    results = bench_convolution.main(["--quick", "--cells", "s4d", "retnet", "--sizes", "16", "--rounds", "1",
                                      "--out", str(out), "--markdown", str(markdown)])
    saved = json.loads(out.read_text())
    assert [(r["cell"], r["length"], r["pass"]) for r in saved["records"]] == [
        (cell, 16, pass_) for cell in ("s4d", "retnet") for pass_ in (bench_convolution.FORWARD, bench_convolution.TRAIN)]
    for record in results["records"]:
        expected = set(bench_convolution.CANDIDATES) - ({"streamed"} if record["cell"] == "retnet" else set())
        assert set(record["median_s"]) == expected and not record["not_run"]
        assert all(seconds > 0 for seconds in record["median_s"].values())
        if record["pass"] == bench_convolution.FORWARD:
            assert record["relative_difference"] < 1e-5  # the convolution computes the scan's y
    # the MIMO kernel choice: LRU's full kernel against the state channels, the same y
    assert [(r["width"], r["pass"]) for r in results["kernel_choice"]] == [
        (8, bench_convolution.FORWARD), (8, bench_convolution.TRAIN)]
    for record in results["kernel_choice"]:
        assert set(record["median_s"]) == {bench_convolution.FULL, bench_convolution.STATES}
        assert record["relative_difference"] < 1e-5
    text = markdown.read_text()
    assert bench_convolution.SECTION in text and "| s4d | 16 |" in text and "| retnet | 16 |" in text
    assert "| 8 | 64 | forward |" in text


def _record(not_run=(), **seconds):
    record = {"cell": "s4d", "config": "S4D()", "length": 1024, "pass": bench_convolution.FORWARD,
              "median_s": seconds, "timed_once": [], "not_run": list(not_run),
              "temp_bytes": {m: 2 * bench_convolution.GIB for m in not_run}}
    return record if not_run else {**record, "relative_difference": 1e-7}


def test_table_gives_ratios_to_the_convolution_and_what_was_not_run():
    fast = _record(convolution=0.01, associative=0.04, chunked=0.02, sequential=0.03, streamed=0.05, auto=0.02)
    assert bench_convolution.ratios(fast) == {"associative": 4.0, "chunked": 2.0, "sequential": 3.0,
                                              "streamed": 5.0, "auto": 2.0}
    assert bench_convolution.fastest_scan(fast) == "chunked"
    too_big = _record(["convolution"], associative=0.04, chunked=0.02, sequential=0.03, auto=0.02)
    assert set(bench_convolution.ratios(too_big).values()) == {None}
    results = {"environment": {"cpu": "cpu", "cores": 2, "jax": "0", "backend": "cpu", "date": "today"},
               "command": "python experiments/bench_convolution.py", "results_file": "convolution.json",
               "settings": {"batch": 1, "width": 8, "rounds": 5, "budget_gib": 1.0, "max_call_seconds": 5.0},
               "records": [fast, too_big]}
    text = bench_convolution.report(results)
    assert "| s4d | 1024 | 10 | 4.00 | 2.00 | 3.00 | 5.00 | 2.00 | chunked | 1.0e-07 |" in text
    assert "| s4d | 1024 | – (2 GiB) | – | – | – | – | – | chunked |  |" in text

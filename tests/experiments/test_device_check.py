"""experiments/device_check.py on CPU: its --quick mode end to end into a temporary directory, the
refusal of the full mode, a step stopped at its budget, and the BENCHMARKS.md section it owns.

The whole --quick run (both benchmarks at tiny sizes, about 2.5 minutes on 2 cores) is marked
slow; the fast end-to-end test gives the benchmarks a 1-second budget, so they are recorded as
timed out and everything else still runs and is written."""

import json
import sys

import pytest

from experiments import benchlib, device_check
from lrnn.scan import auto

ROOT = device_check.ROOT
STATUSES = {device_check.PASSED, device_check.FAILED, device_check.TIMED_OUT, device_check.NOT_RUN}
STEPS = ["environment", "kernel_tests", "bench_scan", "bench_kernels"]


def _repository_files():
    return {path: path.read_bytes() for path in (ROOT / "BENCHMARKS.md", auto.TABLE)}


def _results(out):
    (path,) = out.glob("device_check_*.json")
    return json.loads(path.read_text())


def _section(markdown):
    text = markdown.read_text()
    return text[text.index(device_check.BEGIN):text.index(device_check.END)]


def test_marked_section_is_appended_then_replaced_keeping_the_rest(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    original = benchlib.BENCHMARKS_PREAMBLE + "\n## A (a.py)\n\nnumbers of A\n\n## B (b.py)\n\nnumbers of B\n"
    path.write_text(original)

    device_check.replace_marked_section(path, "first run\n\n### tables\n")
    appended = path.read_text()
    assert appended.startswith(original.rstrip("\n"))
    assert appended.endswith(f"{device_check.HEADING}\n\n{device_check.BEGIN}\nfirst run\n\n### tables\n"
                             f"{device_check.END}\n")

    path.write_text(appended + "\n## C (c.py)\n\nnumbers of C\n")  # a section after ours
    before, after = path.read_text().split(device_check.BEGIN)[0], path.read_text().split(device_check.END)[1]
    device_check.replace_marked_section(path, "second run")
    once = path.read_text()
    device_check.replace_marked_section(path, "second run")
    assert path.read_text() == once  # idempotent
    assert once == f"{before}{device_check.BEGIN}\nsecond run\n{device_check.END}{after}"
    assert once.count(device_check.HEADING) == 1

    benchlib.replace_section(path, "## B (b.py)", "new numbers of B")  # a benchmark rewriting its section
    assert "second run" in _section(path) and "new numbers of B" in path.read_text()


def test_a_marker_without_its_pair_is_an_error(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\n{device_check.BEGIN}\nhalf a section\n")
    with pytest.raises(ValueError, match="must both be there"):
        device_check.replace_marked_section(path, "body")


def test_bench_tables_read_a_benchmarks_section_and_demote_its_headings(tmp_path):
    markdown = tmp_path / "bench_scan.md"
    benchlib.replace_section(markdown, "## Scan engine (experiments/bench_scan.py)", "Run line.\n\n### diagonal\n\n| a |")
    tables = device_check.bench_tables(markdown)
    assert tables == "Run line.\n\n### diagonal\n\n| a |"
    assert device_check.demoted(tables) == "Run line.\n\n#### diagonal\n\n| a |"
    assert device_check.bench_tables(tmp_path / "missing.md") is None


def test_a_step_is_stopped_at_its_budget_and_a_failure_reported(tmp_path):
    sleeper = device_check.Step("sleeper", "sleeps", (sys.executable, "-c", "import time; print('up', flush=True); "
                                                                           "time.sleep(60)"), budget_s=1)
    record = device_check.run_step(sleeper, tmp_path / "sleeper.log")
    assert record["status"] == device_check.TIMED_OUT and record["returncode"] is None
    assert record["wall_s"] < 15 and "up" in record["output_tail"]

    failing = device_check.Step("failing", "exits 3", (sys.executable, "-c", "raise SystemExit(3)"), budget_s=30)
    record = device_check.run_step(failing, tmp_path / "failing.log")
    assert record["status"] == device_check.FAILED and record["returncode"] == 3


def test_full_mode_refuses_cpu(tmp_path):
    with pytest.raises(SystemExit, match="no GPU or TPU here"):
        device_check.main(["--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_quick_mode_never_writes_the_repositorys_benchmarks(tmp_path):
    with pytest.raises(SystemExit, match="does not write the repository's BENCHMARKS.md"):
        device_check.main(["--quick", "--out", str(tmp_path), "--markdown", str(ROOT / "BENCHMARKS.md")])


def test_quick_run_records_every_step_when_benchmarks_time_out(tmp_path):
    before = _repository_files()
    code = device_check.main(["--quick", "--out", str(tmp_path), "--budget", "bench_scan=1",
                              "--budget", "bench_kernels=1"])
    assert code == 1  # the benchmarks ran out of time
    results = _results(tmp_path)
    assert [step["name"] for step in results["steps"]] == STEPS
    assert all(step["status"] in STATUSES and step["wall_s"] >= 0 for step in results["steps"])
    environment, tests, scan, kernels = results["steps"]
    assert environment["status"] == tests["status"] == device_check.PASSED
    assert tests["summary"]["passed"] > 0 and tests["summary"]["failed"] == 0 and tests["mode"] == "interpret"
    assert scan["status"] == kernels["status"] == device_check.TIMED_OUT and scan["tables"] is None
    assert results["environment"]["backend"] == "cpu" and "jaxlib" in results["environment"]
    assert {"torch", "triton", "fla"} <= set(results["environment"])
    section = _section(tmp_path / "BENCHMARKS.md")
    assert "| bench_kernels | timed out |" in section and "No tables: the step timed out" in section
    assert _repository_files() == before


def test_default_budgets_fit_nine_minutes():
    assert sum(device_check.BUDGETS.values()) <= 9 * 60


def test_later_steps_are_not_run_when_the_environment_cannot_be_read(tmp_path, monkeypatch):
    broken = device_check.Step("environment", "fails", (sys.executable, "-c", "raise SystemExit(1)"), budget_s=30)
    monkeypatch.setattr(device_check, "environment_step", lambda path, budget: broken)
    assert device_check.main(["--quick", "--out", str(tmp_path)]) == 1
    results = json.loads((tmp_path / "device_check_unknown.json").read_text())
    assert [step["status"] for step in results["steps"]] == [device_check.FAILED] + [device_check.NOT_RUN] * 3
    assert "Environment unknown" in _section(tmp_path / "BENCHMARKS.md")


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    before = _repository_files()
    assert device_check.main(["--quick", "--out", str(tmp_path)]) == 0
    results = _results(tmp_path)
    assert results["ok"] and [step["status"] for step in results["steps"]] == [device_check.PASSED] * 4
    steps = {step["name"]: step for step in results["steps"]}
    assert "#### Grid: diagonal, float32, forward" in device_check.demoted(steps["bench_scan"]["tables"])
    assert "Copy bandwidth" in steps["bench_kernels"]["tables"]
    run_dir = tmp_path / "device_check_cpu_cpu"
    for name in ("bench_scan.json", "bench_kernels.json", "pytest.xml", "environment.json"):
        assert (run_dir / name).exists(), name
    section = _section(tmp_path / "BENCHMARKS.md")
    assert "#### Diagonal scan" in section and "#### Grid: diagonal, float32, forward" in section
    assert "\n## " not in section
    assert _repository_files() == before

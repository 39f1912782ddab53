"""The scan benchmark's bookkeeping: its validation shapes are off the fit grid, the shapes it
builds have the lanes it claims, its verdict is the issue's targets, and a quick run fits,
validates and reports without touching the auto table (timings themselves are not asserted)."""

from __future__ import annotations

import json

import jax
import pytest

from experiments import bench_scan
from lrnn.scan import auto


def test_validation_shapes_are_off_the_grid_and_cover_every_family_and_dtype():
    shapes = bench_scan.validation_shapes(bench_scan.VALIDATION_SHAPES)
    assert shapes == bench_scan.validation_shapes(bench_scan.VALIDATION_SHAPES)  # seeded
    assert len(shapes) >= 30 + len(bench_scan.ISSUE_SHAPES)
    grid = {(s.family.name, s.dtype, s.length, s.lanes) for s in bench_scan.grid_shapes("full")}
    assert not grid & {(s.family.name, s.dtype, s.length, s.lanes) for s in shapes}
    assert {s.family.name for s in shapes} == {f.name for f in bench_scan.FAMILIES}
    assert {s.dtype for s in shapes} == {"float32", "bfloat16"}
    assert all(s.length * s.lanes <= 2 * bench_scan.MAX_ELEMENTS for s in shapes)  # B rounds L / width
    issue = [(s.batch, s.length, s.dims[0]) for s in shapes[-2:]]
    assert issue == list(bench_scan.ISSUE_SHAPES)


@pytest.mark.parametrize("family", [f.name for f in bench_scan.FAMILIES])
def test_grid_shapes_have_the_lanes_they_are_named_for(family):
    for shape in bench_scan.grid_shapes("full", (bench_scan.FAMILY[family],)):
        leaves = jax.eval_shape(lambda s=shape: s.inputs()[0])
        assert auto.lanes_of(leaves, shape.length) == shape.lanes
        assert shape.length * shape.lanes <= bench_scan.MAX_ELEMENTS


def test_verdict_is_the_issues_targets():
    def record(forward, train):
        return {bench_scan.FORWARD: {"ratio": forward}, bench_scan.TRAIN: {"ratio": train}}
    good = [record(1.0, 1.1)] * 18 + [record(1.2, 1.0), record(1.4, 0.9)]  # 90% within 1.15, worst 1.4
    forward, train = bench_scan.verdict(good)
    assert forward["within"] == pytest.approx(0.9) and forward["worst"] == 1.4 and forward["met"]
    assert train["met"] and train["within"] == 1.0
    forward, _ = bench_scan.verdict(good[:-1] + [record(1.6, 1.0)])
    assert not forward["met"]  # one shape beyond 1.5×
    forward, _ = bench_scan.verdict(good[1:] + [record(1.2, 1.0)])
    assert not forward["met"]  # 85% within


def test_quick_run_fits_validates_and_keeps_the_table(tmp_path):
    before = auto.TABLE.read_bytes()
    out = tmp_path / "bench_scan.json"
    results = bench_scan.main(["--quick", "--families", "diagonal", "matrix", "--validate", "2", "--no-memory",
                               "--out", str(out)])
    assert auto.TABLE.read_bytes() == before
    assert json.loads(out.read_text())["settings"]["grid"] == "quick"
    fitted = {(f["family"], f["pass"], f["candidate"]) for f in results["fits"]}
    assert ("diagonal", bench_scan.BACKWARD, "chunked16") in fitted
    assert ("matrix", bench_scan.TRAIN, "sequential") in fitted
    for record in results["validation"]:
        for pass_ in (bench_scan.FORWARD, bench_scan.TRAIN):
            times = record[pass_]["median_s"]
            assert record[pass_]["ratio"] == pytest.approx(times["auto"] / times[record[pass_]["best"]])
    assert len(results["verdict"]) == 2 and results["layout"]


def test_a_run_stopped_after_the_grid_keeps_its_tables(tmp_path, monkeypatch):
    """device_check stops a step at its budget; what the step measured before that is on disk."""
    out, markdown = tmp_path / "bench_scan.json", tmp_path / "BENCHMARKS.md"

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("the step's budget ran out")
    monkeypatch.setattr(bench_scan, "validate", stopped)
    with pytest.raises(KeyboardInterrupt):
        bench_scan.main(["--quick", "--families", "diagonal", "--validate", "1", "--no-memory", "--no-layout",
                         "--out", str(out), "--markdown", str(markdown)])
    written = json.loads(out.read_text())
    assert {r["family"] for r in written["grid"]} == {"diagonal"} and written["fits"]
    assert written["unfinished"] == "measured the grid of diagonal so far"
    text = markdown.read_text()
    assert "**Unfinished run**" in text and "### Grid: diagonal, float32, forward" in text


def test_write_auto_refuses_quick(capsys):
    with pytest.raises(SystemExit):
        bench_scan.parse(["--quick", "--write-auto"])
    assert "cannot be combined with --quick" in capsys.readouterr().err

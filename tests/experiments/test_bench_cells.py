"""The cells benchmark runs end to end at a toy size and reports what it measured; its
--write-auto rows stream exactly where streaming measured faster."""

import json

import pytest

from experiments import bench_cells
from lrnn.scan import auto


def test_quick_run_writes_a_table_and_results(tmp_path):
    out = tmp_path / "cells.json"
    markdown = tmp_path / "BENCHMARKS.md"
    results = bench_cells.main(["--quick", "--cells", "lru", "--sizes", "64", "--rounds", "1", "--no-memory",
                                "--out", str(out), "--markdown", str(markdown)])
    saved = json.loads(out.read_text())
    assert [(r["cell"], r["length"], r["pass"]) for r in saved["records"]] == [
        ("lru", 64, bench_cells.FORWARD), ("lru", 64, bench_cells.TRAIN)]
    for record in results["records"]:
        # streamed at the chunk sizes that divide T = 64 (32 and 64), not 128
        expected = {*bench_cells.METHODS, bench_cells.LOOP} - {"streamed_128"}
        assert set(record["median_s"]) == expected
        assert all(seconds > 0 for seconds in record["median_s"].values())
        assert record["median_s"]["auto"] == record["median_s"][record["auto_picks"]]
    text = markdown.read_text()
    assert bench_cells.SECTION in text and "| lru | 64 |" in text


def test_memory_table_shows_the_stream_not_growing(tmp_path):
    rows = bench_cells.training_memory("mamba", 16, 2, (256, 1024))
    by = {(r["length"], r["method"]): r["temp_bytes"] for r in rows}
    whole_growth = by[(1024, "whole")] - by[(256, "whole")]
    stream_growth = by[(1024, "streamed_64")] - by[(256, "streamed_64")]
    assert whole_growth > 768 * rows[0]["per_token_state_bytes"]  # the whole scan stores every token's state
    assert stream_growth < 0.1 * whole_growth


def _record(cell, length, pass_, **seconds):
    return {"cell": cell, "length": length, "lanes": 8, "pass": pass_, "median_s": seconds}


def test_stream_points_stream_where_forward_plus_training_is_faster():
    records = [
        _record("mamba", 1024, "forward", whole=2.0, streamed_32=1.5, streamed_64=1.0, step_loop=3.0),
        _record("mamba", 1024, "forward+backward", whole=9.0, streamed_32=4.0, streamed_64=5.0, step_loop=9.0),
        _record("lru", 1024, "forward", whole=1.0, streamed_32=1.5, step_loop=3.0),
        _record("lru", 1024, "forward+backward", whole=2.0, streamed_32=1.6, step_loop=3.0),
        _record("mamba2", 1024, "forward", whole=1.0, step_loop=3.0),  # a matrix cell: no points
    ]
    points = bench_cells.stream_points(records)
    assert set(points) == {"cell:mamba", "cell:lru"}
    assert points["cell:lru"][1] == {"length": 1024, "lanes": 8, "dtype": "float32", "pass": "forward+backward",
                                     "seconds": {"whole": 2.0, "streamed_32": 1.6}}
    with auto.stand_in(points):
        assert auto.choose_total("cell:mamba", 1024, 8) == ("streamed", 32)  # 5.5 < 6.0 < 11
        assert auto.choose_total("cell:lru", 1024, 8)[0] == "whole"  # 3.0 < 3.1


def test_default_cells_are_the_diagonal_ones_and_mamba2():
    names = bench_cells.default_cells()
    assert {"lru", "s4d", "s5", "mamba", "hgrn", "mingru", "minlstm", "rglru"} <= set(names)
    assert names[-1] == "mamba2"
    assert not {"gla", "deltanet", "aaren"} & set(names)


def test_write_auto_refuses_quick(capsys):
    with pytest.raises(SystemExit):
        bench_cells.parse(["--quick", "--write-auto"])
    assert "--write-auto records measurements at the real sizes" in capsys.readouterr().err

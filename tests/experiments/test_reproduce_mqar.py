"""The MQAR reproduction at a toy size: its table (models × widths), its RESULTS.md section beside
another one, and each score the recall accuracy the run itself reported."""

import json

import pytest

from experiments import reproduce_mqar


def test_a_toy_run_writes_its_section_with_each_runs_recall_accuracy(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## State tracking: kept as it is\n\ntable\n")
    code = reproduce_mqar.main(["--models", "GLA", "--widths", "8", "16", "--out", str(tmp_path / "runs"),
                                "--results", str(results), "--json", str(tmp_path / "raw.json"),
                                "--set", "train.steps=2", "optim.warmup_steps=1", "train.batch_size=2",
                                "task.eval_batches=1"])
    assert code == 0
    text = results.read_text()
    assert text.startswith("# Results\n\n## State tracking: kept as it is\n\ntable\n\n## MQAR: ")
    assert "| model | d_model=8 | d_model=16 |" in text and "python experiments/reproduce_mqar.py --models GLA" in text
    scores = json.loads((tmp_path / "raw.json").read_text())
    for width in (8, 16):
        rows = json.loads((tmp_path / "runs" / "cpu" / f"d_model_{width}-GLA-seed0" / "results.json").read_text())["rows"]
        assert [row["length"] for row in rows] == [64]
        assert scores[f"d_model={width} | GLA"]["0"] == pytest.approx(rows[0]["accuracy"])
        assert f"{rows[0]['accuracy']:.3f}" in text

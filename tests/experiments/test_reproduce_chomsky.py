"""The Chomsky-hierarchy reproduction at a toy size: one model on a single-answer task and an
answer-tape task, a few steps; its table, its RESULTS.md section beside another one, and scores
that are the paper's metric of each task read back from the runs' own results."""

import contextlib
import io
import json

import pytest

from experiments import reproduce_chomsky

TOY = ["--models", "mlstm", "--tasks", "parity_check", "reverse_string", "--test-lengths", "41",
       "--set", "train.steps=3", "optim.warmup_steps=1", "train.batch_size=4", "task.eval_batches=1"]


def test_a_toy_run_writes_its_section_and_scores_each_task_by_the_papers_metric(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## State tracking: kept as it is\n\ntable\n")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = reproduce_chomsky.main([*TOY, "--out", str(tmp_path / "runs"), "--results", str(results),
                                       "--json", str(tmp_path / "raw.json")])
    assert code == 0
    text = results.read_text()
    assert text.startswith("# Results\n\n## State tracking: kept as it is\n\ntable\n\n## Chomsky hierarchy: ")
    assert "| model | Parity Check (R) | Reverse String (DCF) |" in text
    assert "| Transformer (paper) | 52.0 | 62.3 |" in text and "| LSTM (paper) | 100.0 | 60.9 |" in text
    assert "python experiments/reproduce_chomsky.py --models mlstm" in text
    assert "Test lengths: 41, not every input length" in text
    assert "| model | Parity Check (R) |" in stdout.getvalue()

    raw = json.loads((tmp_path / "raw.json").read_text())
    assert set(raw) == {"Parity Check (R) | mLSTM", "Reverse String (DCF) | mLSTM"}
    runs = tmp_path / "runs" / "cpu"
    parity = json.loads((runs / "Parity_Check_R_-mLSTM-seed0" / "results.json").read_text())["rows"]
    reverse = json.loads((runs / "Reverse_String_DCF_-mLSTM-seed0" / "results.json").read_text())["rows"]
    assert [row["length"] for row in parity] == [41] and [row["length"] for row in reverse] == [82]
    assert raw["Parity Check (R) | mLSTM"]["0"] == pytest.approx(parity[0]["final_accuracy"])
    assert raw["Reverse String (DCF) | mLSTM"]["0"] == pytest.approx(reverse[0]["accuracy"])
    row = next(line for line in text.splitlines() if line.startswith("| mLSTM |"))
    assert row == (f"| mLSTM | {100 * parity[0]['final_accuracy']:.1f} | "
                   f"{100 * reverse[0]['accuracy']:.1f} |")


def test_paper_lengths_become_sequence_lengths_per_task():
    overrides = dict(item.split("=", 1) for item in reproduce_chomsky.task_overrides("stack_manipulation", [41, 256]))
    assert (overrides["task.train_length"], overrides["task.min_train_length"]) == ("81", "3")
    assert overrides["task.eval_lengths"] == "[83, 513]"
    overrides = dict(item.split("=", 1)
                     for item in reproduce_chomsky.task_overrides("modular_arithmetic_brackets", [41]))
    assert overrides["task.options"] == "{brackets=true}" and overrides["task.eval_lengths"] == "[41]"


def test_test_lengths_must_be_beyond_training(capsys):
    with pytest.raises(SystemExit):
        reproduce_chomsky.parse_args(["--test-lengths", "40", "64"])
    assert "above the longest training length 40, got 40" in capsys.readouterr().err

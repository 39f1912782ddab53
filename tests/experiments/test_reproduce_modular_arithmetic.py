"""The modular-arithmetic reproduction at a toy size: its section, each score the run's own mean
scaled accuracy beyond the training length, and the target judged from those scores."""

import json

import pytest

from experiments import reproduce_modular_arithmetic as script
from experiments import reproduction


def test_a_toy_run_writes_its_section_and_judges_the_target_from_the_runs(tmp_path):
    results = tmp_path / "RESULTS.md"
    code = script.main(["--seeds", "0", "--out", str(tmp_path / "runs"), "--results", str(results),
                        "--json", str(tmp_path / "raw.json"), "--set",
                        "train.steps=3", "optim.warmup_steps=1", "train.batch_size=4", "task.eval_batches=1"])
    assert code == 0
    text = results.read_text()
    assert text.startswith("# Results\n\n" + script.SECTION_KEY)
    scores = {}
    for model in script.DELTANETS:
        run = tmp_path / "runs" / reproduction.slug(f"{script.TASK}-{model}-seed0")
        result = json.loads((run / "results.json").read_text())
        scores[model] = result["mean_scaled_accuracy_beyond_training"]
        assert f"| {model} | {scores[model]:.3f} |" in text
        assert json.loads((run / "config.json").read_text())["task"]["options"]["every_prefix"] is True
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert {key: value["0"] for key, value in raw.items()} == pytest.approx(
        {f"{script.TASK} | {model}": score for model, score in scores.items()})
    difference = scores["DeltaNet [−1, 1]"] - scores["DeltaNet [0, 1]"]
    verdict = "met" if difference > script.TARGET_GAP else "missed"
    assert f"{difference:+.3f}, {verdict}." in text
    assert pytest.approx(script.gap({(script.TASK, m): {0: s} for m, s in scores.items()})) == difference

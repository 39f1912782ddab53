"""The state-tracking reproduction's report, with training replaced by fixed scores: the table,
the targets, its RESULTS.md section beside another one, and the raw JSON."""

import contextlib
import io
import json
from types import SimpleNamespace

from experiments import reproduce_state_tracking as script


def test_the_report_holds_the_best_seeds_and_the_targets(tmp_path, monkeypatch):
    def fake_train(config, resume):
        good = "minus1" in config.train.out_dir and "parity" in config.train.out_dir
        return SimpleNamespace(mean_scaled_accuracy=(0.99 if good else 0.02) - 0.01 * config.train.seed,
                               seconds=60.0)

    monkeypatch.setattr("experiments.training.loop.train", fake_train)
    monkeypatch.setattr("experiments.training.checkpoint.has_run", lambda out_dir: False)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Chomsky hierarchy: another section\n\nkept\n")
    with contextlib.redirect_stdout(io.StringIO()):
        assert script.main(["--out", str(tmp_path / "runs"), "--results", str(results)]) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\n## Chomsky hierarchy: another section\n\nkept\n\n"
                           "## State tracking: Grazzi et al. (ICLR 2025), Table 3 protocol, cpu-sized\n")
    assert "| DeltaNet [−1, 1] | 0.990 | 0.020 | 0.020 |" in text
    assert "| parity | Mamba [−1, 1] | 0.990 | 0.980 |" in text
    assert "| parity, Mamba [−1, 1] ≥ 0.95 | 0.990 | met |" in text
    assert ("| mod. arithmetic w/o brackets, DeltaNet [−1, 1] clearly (> 0.1) above DeltaNet [0, 1] "
            "| 0.000 | missed |") in text
    assert "in\n24 minutes of training and evaluation." in text  # 24 runs of 60 s
    raw = json.loads((tmp_path / "experiments" / "results" / "state_tracking_cpu.json").read_text())
    assert raw["parity | DeltaNet [−1, 1]"] == {"0": 0.99, "1": 0.98}

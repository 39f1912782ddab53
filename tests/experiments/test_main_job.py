"""The main job (README command 1) at a toy size: both DeltaNets train, the table prints, the
plot and the summary are written; and every shipped config file loads and validates."""

import contextlib
import io
import json

import pytest

from experiments import main as main_job
from experiments.training import config as run_config
from tests.experiments.training_helpers import ROOT


def test_main_job_trains_both_eigenvalue_ranges_and_reports(tmp_path):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main_job.main(["--out", str(tmp_path), "train.steps=3", "optim.warmup_steps=1", "model.d_model=8",
                              "model.n_layers=1", "train.batch_size=4", "task.eval_lengths=[40]",
                              "task.eval_batches=1", "train.progress=false"])
    assert code == 0
    text = stdout.getvalue()
    assert "| DeltaNet, eigenvalues in (−1, 1) |" in text and "| DeltaNet, eigenvalues in (0, 1) |" in text, text
    assert "L=40" in text
    assert (tmp_path / "parity.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == set(main_job.MODELS)
    saved = [json.loads((tmp_path / slug / "config.json").read_text())["model"]["cell_options"]["eigenvalue_range"]
             for slug in ("negative", "positive")]
    assert saved == [[-1, 1], [0, 1]]


@pytest.mark.parametrize("path", sorted((ROOT / "experiments" / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_configs_load_and_validate(path):
    config = run_config.load(path)
    assert config.train.out_dir.startswith("runs/")

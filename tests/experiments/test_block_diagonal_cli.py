"""The shipped modular-arithmetic config of the block-diagonal LRNN, through the CLI at a toy size:
it trains (the loss falls), and reports the accuracy-vs-length table and its result files."""

import contextlib
import io
import json
import math

from experiments import train as train_cli
from experiments.training.metrics import read
from tests.experiments.training_helpers import ROOT

CONFIG = ROOT / "experiments" / "configs" / "modular_arithmetic_block_diagonal.toml"


def test_modular_arithmetic_config_trains_and_reports(tmp_path):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = train_cli.main(["--config", str(CONFIG), f"train.out_dir={tmp_path}", "train.steps=40",
                               "train.batch_size=16", "train.log_every=1", "train.checkpoint_every=0",
                               "train.progress=false", "optim.warmup_steps=1", "optim.learning_rate=1e-2",
                               "model.d_model=16", "model.n_layers=1", "model.cell_options={block_size=4}",
                               "task.train_length=9", "task.eval_lengths=[9, 21]", "task.eval_batches=1"])
    assert code == 0
    text = stdout.getvalue()
    assert "| block_diagonal {'block_size': 4} |" in text and "L=21" in text, text
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert saved["cell"] == "block_diagonal" and saved["n_layers"] == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert [row["length"] for row in results["rows"]] == [9, 21]
    losses = [r["loss"] for r in read(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert len(losses) == 40 and all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-10:]) < 0.95 * sum(losses[:10]), losses  # from about log 5 (chance) at the start

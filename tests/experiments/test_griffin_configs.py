"""The shipped Hawk and Griffin configs: each is the model its Python preset builds, and trains two
steps from the CLI at a toy size (in this process, as test_train_config.py runs the CLI)."""

import contextlib
import io
import json
import math

import pytest

from experiments import train as train_cli
from experiments.training import config as run_config
from lrnn.models import griffin, hawk
from tests.experiments.training_helpers import ROOT

CONFIGS = ROOT / "experiments" / "configs"
PRESETS = {"hawk_char_lm": lambda: hawk(96, 4), "griffin_char_lm": lambda: griffin(96, 6, n_heads=2, window=64)}
TOY = {"hawk_char_lm": ["model.d_model=16", "model.d_inner=16", "model.n_layers=1"],
       "griffin_char_lm": ["model.d_model=16", "model.d_inner=16", "model.n_layers=3", "model.attention_window=4"]}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_config_is_the_preset(name):
    assert run_config.load(CONFIGS / f"{name}.toml").model == PRESETS[name]()


@pytest.mark.parametrize("name", sorted(TOY))
def test_the_config_trains_from_the_cli(tmp_path, name):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = train_cli.main(["--config", str(CONFIGS / f"{name}.toml"), *TOY[name],
                               f"task.options={{path={json.dumps(str(ROOT / 'README.md'))}}}",
                               "task.train_length=12", "task.eval_lengths=[12]", "task.eval_batches=1",
                               "train.steps=2", "optim.warmup_steps=1", "train.batch_size=2", "train.progress=false",
                               f"train.out_dir={tmp_path}"])
    assert code == 0, stdout.getvalue()
    assert "| rglru" in stdout.getvalue() and "L=12" in stdout.getvalue(), stdout.getvalue()
    results = json.loads((tmp_path / "results.json").read_text())
    assert [row["length"] for row in results["rows"]] == [12]
    assert math.isfinite(results["final_train"]["loss"]) and math.isfinite(results["rows"][0]["loss"]), results

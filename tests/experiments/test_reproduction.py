"""The reproduction scripts' shared pieces: the grid of configs, running it, best of seeds,
tables, the run line and the RESULTS.md section that replaces its own and keeps the others."""

import contextlib
import io
import pathlib
from types import SimpleNamespace

import pytest

from experiments import reproduction
from experiments.training.config import ConfigError

TASKS = {"parity": ["task.name=parity"], "mod. arithmetic": ["task.name=modular_arithmetic"]}
MODELS = {"DeltaNet [−1, 1]": ["model.cell=deltanet", "model.cell_options={n_heads=2}"],
          "LRU": ["model.cell=lru", "model.cell_options={d_state=4}"]}
SHARED = ["model.d_model=8", "train.steps=5", "optim.warmup_steps=1"]


def test_the_grid_is_every_task_model_and_seed_in_order(tmp_path):
    runs = reproduction.grid(TASKS, MODELS, [0, 3], SHARED, tmp_path)
    assert [(run.task, run.model, run.seed) for run in runs] == [
        (task, model, seed) for task in TASKS for model in MODELS for seed in (0, 3)]
    first, last = runs[0].config, runs[-1].config
    assert (first.task.name, first.model.cell, first.train.seed) == ("parity", "deltanet", 0)
    assert (last.task.name, last.model.cell, last.train.seed) == ("modular_arithmetic", "lru", 3)
    assert first.model.d_model == 8 and not first.train.progress
    assert pathlib.Path(first.train.out_dir) == tmp_path / "parity-DeltaNet_minus1_1_-seed0"
    assert len({run.config.train.out_dir for run in runs}) == len(runs)


def test_a_bad_override_fails_before_any_training(tmp_path):
    with pytest.raises(ConfigError, match="train.steps"):
        reproduction.grid(TASKS, MODELS, [0], [*SHARED, "train.steps=0"], tmp_path)


def test_run_grid_trains_every_run_continuing_those_with_a_checkpoint(tmp_path, monkeypatch):
    runs = reproduction.grid(TASKS, {"LRU": MODELS["LRU"]}, [0, 1], SHARED, tmp_path)
    resumed = {runs[1].config.train.out_dir}
    calls = []

    def fake_train(config, resume):
        calls.append((config.train.out_dir, resume))
        return SimpleNamespace(value=config.train.seed / 10 + len(calls), seconds=30.0)

    monkeypatch.setattr("experiments.training.loop.train", fake_train)
    monkeypatch.setattr("experiments.training.checkpoint.has_run", lambda out_dir: out_dir in resumed)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        scores, seconds = reproduction.run_grid(runs, lambda run, result: result.value, "accuracy")
    assert calls == [(run.config.train.out_dir, run.config.train.out_dir in resumed) for run in runs]
    assert scores == {("parity", "LRU"): {0: 1.0, 1: 2.1}, ("mod. arithmetic", "LRU"): {0: 3.0, 1: 4.1}}
    assert seconds == 120.0
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 4 and lines[1].startswith("parity") and lines[1].endswith("seed 1: accuracy 2.100 (30 s)")
    assert reproduction.best_of_seeds(scores) == {("parity", "LRU"): 2.1, ("mod. arithmetic", "LRU"): 4.1}


def test_tables():
    table = reproduction.markdown_table(["a", "b"], ["x", "y"], lambda row, column: row + column)
    assert table == "| model | x | y |\n|---|---:|---:|\n| a | ax | ay |\n| b | bx | by |"
    lines = reproduction.per_seed_lines({("t", "m"): {2: 0.5, 0: 0.25}}, [0, 2], lambda v: f"{v:.2f}")
    assert lines == ["| task | model | seed 0 | seed 2 |", "|---|---|---:|---:|", "| t | m | 0.25 | 0.50 |"]


def test_the_run_line_names_the_command_and_the_minutes():
    command = reproduction.command_line("experiments/x.py", ["--size", "paper", "--out", "a b"])
    assert command == "python experiments/x.py --size paper --out 'a b'"
    assert reproduction.command_line("experiments/x.py", []) == "python experiments/x.py"
    text = reproduction.made_by(command, 150.0)
    assert text.startswith(f"Made by\n\n    {command}\n\non ")
    assert text.endswith("in\n2 minutes of training and evaluation.")


def test_a_section_replaces_its_own_and_keeps_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    reproduction.write_section(path, "## A: first\n\nold a\n", key="## A:")
    assert path.read_text() == "# Results\n\n## A: first\n\nold a\n"
    reproduction.write_section(path, "## B: second\n\nb\n", key="## B:")
    reproduction.write_section(path, "## A: first, again\n\nnew a\n", key="## A:")
    assert path.read_text() == "# Results\n\n## A: first, again\n\nnew a\n\n## B: second\n\nb\n"
    reproduction.write_section(path, "## B: third\n\nb2", key="## B:")
    assert path.read_text() == "# Results\n\n## A: first, again\n\nnew a\n\n## B: third\n\nb2\n"


def test_a_section_keeps_a_file_s_own_title(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Our numbers\nintro\n")
    reproduction.write_section(path, "## A: x\n", key="## A:")
    assert path.read_text() == "# Our numbers\nintro\n\n## A: x\n"


def test_a_section_must_start_with_its_key(tmp_path):
    with pytest.raises(ValueError, match="must start with its key"):
        reproduction.write_section(tmp_path / "R.md", "## B: x\n", key="## A:")
    with pytest.raises(ValueError, match="'## ' heading"):
        reproduction.write_section(tmp_path / "R.md", "A: x\n", key="A:")
    assert not (tmp_path / "R.md").exists()

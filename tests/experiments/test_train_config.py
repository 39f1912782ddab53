"""Bad configurations fail with a message naming the key, before anything is compiled."""

import contextlib
import io

import jax
import pytest

from experiments import train as train_cli
from experiments.training import config as run_config
from tests.experiments.training_helpers import write_tiny


@contextlib.contextmanager
def no_compilation():
    compiled = []
    listener = lambda event, *args, **kwargs: compiled.append(event) if "compil" in event else None  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiled
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def cli_error(*args) -> str:
    stderr = io.StringIO()
    with no_compilation() as compiled, contextlib.redirect_stderr(stderr):
        code = train_cli.main(list(args))
    assert code == 2
    assert compiled == [], f"compiled before failing: {compiled}"
    return stderr.getvalue()


@pytest.mark.parametrize("override, expected", [
    ("model.cell=transformer", "cell must be one of"),
    ("task.name=sorting", "sorting"),
    ("model.d_model=-8", "d_model"),
    ("model.n_layers=0", "n_layers"),
    ("train.batch_size=-1", "train.batch_size"),
    ("train.steps=0", "train.steps"),
    ("task.eval_lengths=[6, 24]", "task.eval_lengths start at 6"),
    ("task.min_train_length=20", "task.min_train_length (20) must be ≤ task.train_length (12)"),
    ("optim.warmup_steps=5000", "optim.warmup_steps"),
    ("train.stepz=3", "unknown key train.stepz"),
    ("model.cell_options={d_state=8, colour=1}", "colour"),
    ("widget.size=3", "unknown section [widget]"),
    ("steps=3", "section.key=value"),
    ("train.out_dir=runs/a[0,1]", "train.out_dir must not contain"),
])
def test_a_bad_override_fails_with_a_clear_message_before_compiling(tmp_path, override, expected):
    message = cli_error("--config", str(write_tiny(tmp_path)), override)
    assert expected in message, message


def test_a_task_length_the_task_cannot_make_is_refused(tmp_path):
    message = cli_error("--config", str(write_tiny(tmp_path)), "task.name=digits", "task.train_length=64",
                        "task.eval_lengths=[64, 128]")
    assert "128" in message and "digits" in message, message


def test_resume_without_a_checkpoint_directory_is_refused(tmp_path):
    message = cli_error("--config", str(write_tiny(tmp_path)), f"train.out_dir={tmp_path / 'nowhere'}", "--resume")
    assert "does not exist" in message and "nowhere" in message, message


def test_a_missing_or_broken_config_file_is_named(tmp_path):
    assert "does not exist" in cli_error("--config", str(tmp_path / "absent.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\ncell = 1")
    assert "not valid TOML" in cli_error("--config", str(broken))


def test_overrides_parse_as_toml_values_and_apply_in_order(tmp_path):
    config = run_config.load(write_tiny(tmp_path), [
        "train.steps=7", "model.cell=mamba", "model.cell_options={eigenvalue_range=[-1, 1]}",
        "task.eval_lengths=[12, 48]", "model.ffn=none", "train.steps=9"])
    assert config.train.steps == 9
    assert config.model.cell == "mamba" and config.model.cell_options == {"eigenvalue_range": (-1, 1)}
    assert config.task.eval_lengths == (12, 48)
    assert config.model.ffn is None


def test_changing_the_cell_drops_the_default_cells_options():
    default = run_config.load()
    assert default.model.cell == "deltanet" and "n_heads" in default.model.cell_options
    assert run_config.load(None, ["model.cell=lru", "model.cell_options={d_state=4}"]).model.cell_options == {"d_state": 4}
    assert run_config.load(None, ["model.cell=hgrn"]).model.cell_options == {}


def test_a_fresh_run_refuses_an_out_dir_holding_another_runs_checkpoints(tmp_path):
    (tmp_path / "run" / "checkpoints" / "30").mkdir(parents=True)
    message = cli_error("--config", str(write_tiny(tmp_path)), f"train.out_dir={tmp_path / 'run'}")
    assert "already holds checkpoints" in message and "step 30" in message and "--resume" in message, message

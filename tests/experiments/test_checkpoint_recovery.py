"""What --resume does with checkpoints it cannot use, and what the trainer says when a run
cannot go on.

A tiny run leaves checkpoints 40, 60 and 80; each test damages a copy of it and resumes through
the CLI, as a user would. A damaged newest checkpoint must cost one warning line and a fallback
to 60 that then continues exactly as the original run did; no restorable checkpoint, or one of
another model config, must be a one-line error (no traceback) naming the directory or the
parameter. The last tests check the non-finite-loss message and train.check_finite.
"""

import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.training import config as run_config
from experiments.training import data
from experiments.training.loop import Trainer, _check_finite
from experiments.training.metrics import read
from tests.experiments.training_helpers import run, write_tiny

COMMON = ["train.steps=80", "train.checkpoint_every=20", "train.keep_checkpoints=3", "task.eval_lengths=[12]"]


def train_losses(out_dir):
    return {record["step"]: record["loss"] for record in read(out_dir / "metrics.jsonl") if record["split"] == "train"}


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(config path, the finished run's directory) with checkpoints 40, 60 and 80."""
    directory = tmp_path_factory.mktemp("recovery")
    config = write_tiny(directory)
    out_dir = directory / "original"
    finished = run("--config", str(config), *COMMON, f"train.out_dir={out_dir}")
    assert finished.returncode == 0, finished.stderr
    assert sorted(p.name for p in (out_dir / "checkpoints").iterdir()) == ["40", "60", "80"]
    return config, out_dir


def copy_run(original, tmp_path):
    config, source = original
    out_dir = tmp_path / "run"
    shutil.copytree(source, out_dir)
    saved = json.loads((out_dir / "config.json").read_text())
    saved["train"]["out_dir"] = str(out_dir)  # the copy is the same run, moved
    (out_dir / "config.json").write_text(json.dumps(saved))
    return config, out_dir


def data_files(step_dir):
    files = [path for path in step_dir.rglob("*") if path.is_file() and path.parent.name == "d"]
    assert files, f"no data files under {step_dir}"
    return files


def truncate(step_dir):
    for path in data_files(step_dir):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete(step_dir):
    for path in data_files(step_dir):
        path.unlink()


def garble_metadata(step_dir):
    (step_dir / "default" / "_METADATA").write_text("{not json")


def empty(step_dir):
    shutil.rmtree(step_dir)
    step_dir.mkdir()


def remove_commit_marker(step_dir):
    (step_dir / "commit_success.txt").unlink()


def unfinished(step_dir):
    """What a save killed before orbax's final rename leaves: the temporary directory."""
    step_dir.rename(step_dir.with_name(f"{step_dir.name}.orbax-checkpoint-tmp-1764800000"))


DAMAGE = {  # how to damage step 80, and a word the warning must give as the reason
    "truncated data file": (truncate, "OUT_OF_RANGE: Error reading"),
    "deleted data file": (delete, "NOT_FOUND: Error reading"),
    "garbage metadata": (garble_metadata, "metadata"),
    "empty step directory": (empty, "commit marker"),
    "no commit marker": (remove_commit_marker, "commit marker"),
    "unfinished save": (unfinished, "unfinished save"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before_and_continues_exactly(original, tmp_path, damage):
    config, out_dir = copy_run(original, tmp_path)
    damage_step, reason = DAMAGE[damage]
    damage_step(out_dir / "checkpoints" / "80")

    resumed = run("--config", str(config), *COMMON, f"train.out_dir={out_dir}", "--resume")

    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warnings) == 1, resumed.stderr
    assert warnings[0].startswith(f"warning: checkpoint 80 in {str(out_dir / 'checkpoints')!r}") and reason in warnings[0], \
        warnings[0]
    assert "Traceback" not in resumed.stderr, resumed.stderr
    expected, got = train_losses(original[1]), train_losses(out_dir)
    assert sorted(got) == list(range(1, 81))
    np.testing.assert_array_equal([got[s] for s in range(61, 81)], [expected[s] for s in range(61, 81)])
    assert list((out_dir / "damaged_checkpoints").iterdir()), "the damaged checkpoint was not set aside"
    assert (out_dir / "checkpoints" / "80" / "commit_success.txt").is_file(), "step 80 was not saved again"


def test_no_restorable_checkpoint_is_a_one_line_error_naming_the_directory(original, tmp_path):
    config, out_dir = copy_run(original, tmp_path)
    for step in ("40", "60", "80"):
        truncate(out_dir / "checkpoints" / step)

    resumed = run("--config", str(config), *COMMON, f"train.out_dir={out_dir}", "--resume")

    assert resumed.returncode == 2, resumed.stderr
    assert "Traceback" not in resumed.stderr, resumed.stderr
    lines = resumed.stderr.strip().splitlines()
    assert [line.split(" in ")[0] for line in lines if line.startswith("warning:")] == [
        "warning: checkpoint 80", "warning: checkpoint 60", "warning: checkpoint 40"]
    assert lines[-1].startswith(f"error: --resume: no checkpoint in {str(out_dir / 'checkpoints')!r} can be restored"), \
        lines[-1]
    assert not (out_dir / "damaged_checkpoints").exists(), "nothing restored, so nothing should be moved"


@pytest.mark.parametrize("override, parameter", [("model.d_model=16", "params/"),
                                                 ("model.cell_options={d_state=4}", "params/")])
def test_a_checkpoint_of_another_model_config_names_the_first_mismatching_parameter(original, tmp_path, override,
                                                                                    parameter):
    config, out_dir = copy_run(original, tmp_path)
    (out_dir / "config.json").unlink()  # otherwise the config check stops it first, by config key

    resumed = run("--config", str(config), *COMMON, override, f"train.out_dir={out_dir}", "--resume")

    assert resumed.returncode == 2, resumed.stderr
    assert "Traceback" not in resumed.stderr, resumed.stderr
    error = resumed.stderr.strip().splitlines()[-1]
    assert error.startswith("error: --resume: the checkpoint was written by another model config: " + parameter), error
    saved, expected = error.split("saved shape ")[1].split(", this config expects ")
    assert saved != expected and saved.startswith("(") and expected.startswith("("), error
    assert not (out_dir / "damaged_checkpoints").exists(), "a mismatch is not damage"


def test_the_non_finite_loss_error_names_the_step_and_the_debugging_option():
    with pytest.raises(FloatingPointError) as raised:
        _check_finite({"loss": math.nan}, 37)
    assert "at step 37" in str(raised.value)
    assert "train.check_finite=true" in str(raised.value) and "lrnn.debug_nans" in str(raised.value)
    with pytest.raises(FloatingPointError, match="in steps 31-40"):
        _check_finite({"loss": math.inf}, 40, first=31)
    _check_finite({"loss": 0.5}, 40)


def test_check_finite_makes_the_step_raise_at_the_first_nan(tmp_path):
    config = run_config.load(write_tiny(tmp_path), ["train.check_finite=true", f"train.out_dir={tmp_path / 'run'}"])
    assert config.train.check_finite and not run_config.load(write_tiny(tmp_path)).train.check_finite
    trainer = Trainer(config)
    host = data.training_batch(trainer.task, 0, 1, config.train.batch_size, config.task.train_length)
    state = trainer.initial_state
    poisoned = state._replace(params=_fill_nan(state.params))
    with pytest.raises(FloatingPointError, match="(?i)nan"):
        trainer.train_step(poisoned, trainer.batch(host))


def _fill_nan(tree):
    return jax.tree.map(lambda x: jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)

"""`train.mesh` on one device: its keys set one at a time from a file and the command line,
bad values and meshes the devices cannot hold refused in one line (exit 2) before compiling,
and a run that may resume on another mesh."""

import json

import pytest

from experiments.training import config as run_config
from experiments.training.loop import check_same_run
from tests.experiments.test_train_config import cli_error
from tests.experiments.training_helpers import write_tiny


def test_the_default_mesh_is_every_device_along_data():
    assert run_config.load().train.mesh == {"data": None, "seq": 1}


def test_mesh_keys_merge_from_the_file_and_the_overrides(tmp_path):
    config_file = write_tiny(tmp_path, "mesh = {data = 2}\n")  # TINY ends inside [train]
    assert run_config.load(config_file).train.mesh == {"data": 2, "seq": 1}
    assert run_config.load(config_file, ["train.mesh.seq=4"]).train.mesh == {"data": 2, "seq": 4}
    assert run_config.load(None, ["train.mesh={seq=2}"]).train.mesh == {"data": None, "seq": 2}
    assert run_config.load(None, ["train.mesh.data=2", "train.mesh.data=none"]).train.mesh == {"data": None, "seq": 1}


@pytest.mark.parametrize("override, expected", [
    ("train.mesh.data=2", "train.mesh.data × train.mesh.seq = 2 × 1 = 2 must equal the device count 1"),
    ("train.mesh.seq=2", "train.mesh.seq=2 does not divide the device count 1"),
    ("train.mesh.seq=0", "train.mesh.seq must be a positive int, got 0"),
    ("train.mesh.data=1.5", "train.mesh.data must be a positive int or none, got 1.5"),
    ("train.mesh.tensor=2", "unknown key train.mesh.tensor; train.mesh takes data, seq"),
    ("train.mesh=4", "train.mesh must be a table with keys data and seq"),
])
def test_a_bad_mesh_fails_in_one_line_before_compiling(tmp_path, override, expected):
    message = cli_error("--config", str(write_tiny(tmp_path)), override, f"train.out_dir={tmp_path / 'run'}")
    assert expected in message and message.count("\n") == 1, message


def test_a_run_may_resume_on_another_mesh_but_not_another_model(tmp_path):
    saved = run_config.load(write_tiny(tmp_path), ["train.mesh.data=2"])
    (tmp_path / "config.json").write_text(json.dumps(run_config.as_dict(saved)))
    check_same_run(tmp_path, run_config.load(write_tiny(tmp_path), ["train.mesh.seq=1"]))
    with pytest.raises(run_config.ConfigError, match="model.d_model"):
        check_same_run(tmp_path, run_config.load(write_tiny(tmp_path), ["model.d_model=16"]))

"""The training loop end to end: the CLI's outputs, exact resume after SIGKILL, data parallelism
over forced host devices equal to one device, and a loss that falls on an easy task."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import chex
import numpy as np

from experiments.training import config as run_config
from experiments.training.loop import train
from experiments.training.metrics import read
from tests.experiments.training_helpers import ROOT, environment, run, train_command, write_tiny


def train_losses(out_dir):
    return {record["step"]: record["loss"] for record in read(out_dir / "metrics.jsonl") if record["split"] == "train"}


def test_cli_end_to_end_and_resume_after_sigkill_continue_exactly(tmp_path):
    config = write_tiny(tmp_path, "")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    common = ["--config", str(config), "train.steps=200", "train.checkpoint_every=20"]
    uninterrupted = subprocess.Popen(train_command(*common, f"train.out_dir={whole}"), cwd=ROOT,
                                     env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(train_command(*common, f"train.out_dir={killed}"), cwd=ROOT, env=environment(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (killed / "checkpoints" / "40").is_dir() and victim.poll() is None:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stdout, stderr = uninterrupted.communicate(timeout=300)

    assert uninterrupted.returncode == 0, stderr
    assert "| lru" in stdout and "L=24" in stdout, stdout
    for name in ("config.json", "results.json", "metrics.jsonl", "accuracy_vs_length.png"):
        assert (whole / name).is_file(), name
    assert list((whole / "tensorboard").glob("events.out.tfevents.*"))
    assert (whole / "checkpoints" / "200").is_dir()
    results = json.loads((whole / "results.json").read_text())
    assert [row["length"] for row in results["rows"]] == [12, 24]

    assert victim.returncode == -signal.SIGKILL and not (killed / "results.json").exists(), "killed too late"
    resumed = run(*common, f"train.out_dir={killed}", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected, got = train_losses(whole), train_losses(killed)
    assert sorted(got) == sorted(expected) == list(range(1, 201))
    np.testing.assert_array_equal([got[s] for s in range(1, 201)], [expected[s] for s in range(1, 201)])
    assert json.loads((killed / "results.json").read_text())["rows"] == results["rows"]


DATA_PARALLEL = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from experiments.training import config as run_config, data
    from experiments.training.loop import Trainer
    config = run_config.load(sys.argv[1], ["train.steps=10", "model.dropout=0.1"])
    assert jax.device_count() == 4
    finals = []
    for devices in (jax.devices(), jax.devices()[:1]):
        trainer = Trainer(config, devices=devices)
        state = trainer.initial_state
        for step in (1, 2, 3):
            host = data.training_batch(trainer.task, 0, step, config.train.batch_size, config.task.train_length)
            batch = trainer.batch(host)
            assert len(batch["inputs"].sharding.device_set) == len(devices)
            state, _ = trainer.train_step(state, batch)
        finals.append(jax.tree.map(np.asarray, state.params))
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12)), *finals))
    print(json.dumps({"max_relative_difference": max(diffs), "leaves": len(diffs)}))
""")


def test_a_data_parallel_step_on_four_devices_equals_the_single_device_step(tmp_path):
    script = tmp_path / "data_parallel.py"
    script.write_text(DATA_PARALLEL)
    result = subprocess.run([sys.executable, str(script), str(write_tiny(tmp_path))], capture_output=True, text=True,
                            env=environment(devices=4), cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["leaves"] > 10
    assert report["max_relative_difference"] < 1e-5, report


def test_training_lowers_the_loss_on_an_easy_task(tmp_path):
    """Prefix parity of 6 bits: a small recurrent model can fit it in a hundred steps."""
    config = run_config.load(write_tiny(tmp_path), [
        "task.train_length=6", "task.eval_lengths=[6]", "train.steps=200", "train.batch_size=32",
        "optim.learning_rate=1e-2", f"train.out_dir={tmp_path / 'run'}"])
    result = train(config)
    losses = train_losses(tmp_path / "run")
    first, last = np.mean([losses[s] for s in range(1, 6)]), np.mean([losses[s] for s in range(196, 201)])
    assert last < 0.6 * first and last < 0.6 * np.log(2), (first, last)  # ln 2: the loss at chance
    chex.assert_tree_all_finite(result.final_train)
    assert result.rows[0]["length"] == 6

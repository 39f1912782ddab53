"""What a cluster's preemption does to a run: SIGTERM (or SIGINT) at a random step makes the CLI
finish that step, save a checkpoint, flush the metrics, say where it stopped and how to go on,
and exit with 75 (EX_TEMPFAIL); the printed command then continues it to the same losses as an
uninterrupted run."""

import random
import signal
import subprocess
import time

import numpy as np
import pytest

from experiments.train import EXIT_PREEMPTED
from experiments.training.metrics import read
from tests.experiments.training_helpers import (
    ROOT,
    environment,
    train_command,
    write_tiny,
)

STEPS = 120


def train_losses(out_dir):
    return {record["step"]: record["loss"] for record in read(out_dir / "metrics.jsonl") if record["split"] == "train"}


def logged_steps(out_dir) -> int:
    try:
        return len((out_dir / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_after_a_step_with_a_checkpoint_and_the_printed_resume_continues_exactly(tmp_path,
                                                                                              signal_number):
    seed = random.randrange(10**6)
    after = random.Random(seed).randint(5, 60)  # the logged steps to wait for before signalling
    config = write_tiny(tmp_path)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    common = ["--config", str(config), f"train.steps={STEPS}", "train.checkpoint_every=50", "task.eval_lengths=[12]"]
    uninterrupted = subprocess.Popen(train_command(*common, f"train.out_dir={whole}"), cwd=ROOT, env=environment(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(train_command(*common, f"train.out_dir={stopped}"), cwd=ROOT, env=environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while logged_steps(stopped) < after and victim.poll() is None:
        time.sleep(0.005)
    victim.send_signal(signal_number)
    _, stderr = victim.communicate(timeout=300)
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()

    assert victim.returncode == EXIT_PREEMPTED == 75, (seed, victim.returncode, stderr)
    assert not (stopped / "results.json").exists(), "it evaluated instead of stopping"
    last = max(train_losses(stopped))
    assert after <= last < STEPS, (seed, after, last)
    lines = stderr.strip().splitlines()
    name = signal.Signals(signal_number).name
    assert f"stopped by {name} after step {last}; checkpoint saved in {str(stopped / 'checkpoints')!r}" in lines, stderr
    assert (stopped / "checkpoints" / str(last) / "commit_success.txt").is_file(), "no checkpoint at the stop step"
    assert lines[-1].startswith("to continue: cd ") and lines[-1].endswith(" --resume"), lines[-1]
    assert sorted(train_losses(stopped)) == list(range(1, last + 1)), "metrics.jsonl was not flushed to the stop step"

    resumed = subprocess.run(lines[-1].removeprefix("to continue: "), shell=True, check=False, capture_output=True,
                             text=True, env=environment(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = train_losses(whole), train_losses(stopped)
    assert sorted(got) == sorted(expected) == list(range(1, STEPS + 1))
    np.testing.assert_array_equal([got[s] for s in range(1, STEPS + 1)], [expected[s] for s in range(1, STEPS + 1)],
                                  err_msg=f"seed {seed}, stopped after step {last}")

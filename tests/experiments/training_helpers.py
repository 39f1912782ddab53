"""What the training tests share: a tiny config as TOML, and running the CLI in a subprocess
(a fresh JAX without the test session's float64 switch, as a user runs it)."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

TINY = """
[model]
cell = "lru"
cell_options = {d_state = 8}
d_model = 8
n_layers = 1
conv_size = 2
ffn = "mlp"
ffn_ratio = 1

[task]
name = "parity"
train_length = 12
eval_lengths = [12, 24]
eval_batches = 1

[optim]
learning_rate = 3e-3
warmup_steps = 2

[train]
batch_size = 8
log_every = 1
progress = false
"""


def write_tiny(directory: pathlib.Path, extra: str = "") -> pathlib.Path:
    path = directory / "tiny.toml"
    path.write_text(TINY + extra)
    return path


def environment(devices: int = 1) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["JAX_PLATFORMS"] = "cpu"
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def train_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "experiments" / "train.py"), *args]


def run(*args: str, devices: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(*args), capture_output=True, text=True, env=environment(devices),
                          timeout=timeout, cwd=ROOT)

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training from a config
#
# `experiments/train.py` trains any model on any task from a TOML file plus `section.key=value`
# overrides:
#
# ```bash
# python experiments/train.py --config experiments/configs/digits_lru.toml train.steps=500
# ```
#
# The same entry point is a Python function, `experiments.train.main(argv)`, which returns the
# exit code. This notebook runs it on a shipped config for a few dozen steps, into a temporary
# directory, and reads back what the run wrote.

# %%
import json
import pathlib
import sys
import tempfile
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

# The training loop imports tqdm.auto, which warns in a notebook without ipywidgets (the
# progress bar is off here anyway).
warnings.filterwarnings("ignore", message="IProgress not found")


def repository_root(start: pathlib.Path) -> pathlib.Path:
    """The nearest directory at or above `start` holding setup.cfg (the lrnn checkout)."""
    for directory in (start, *start.parents):
        if (directory / "setup.cfg").is_file():
            return directory
    raise FileNotFoundError(f"no setup.cfg at or above {start}")


ROOT = repository_root(pathlib.Path.cwd().resolve())
sys.path.insert(0, str(ROOT))  # for `experiments`, which is not an installed package

from experiments import train as train_cli  # noqa: E402
from experiments.training import config as run_config  # noqa: E402
from experiments.training import metrics  # noqa: E402

# %% [markdown]
# ## The config
#
# Four tables: `[model]` (an `lrnn.models.ModelConfig`: the cell, its options, width, depth, conv,
# FFN, pooling), `[task]` (which generator from `experiments/tasks`, lengths), `[optim]` (AdamW with
# warmup and cosine decay; the cells' recurrent parameters in their own group) and `[train]`.
# Here: scikit-learn's 8×8 digits read pixel by pixel, 64 steps, classified by a 2-layer LRU.

# %%
CONFIG = ROOT / "experiments" / "configs" / "digits_lru.toml"
print(CONFIG.read_text())

# %% [markdown]
# Overrides take TOML values and win over the file. For a short demonstration: 60 steps with a
# 10-step warmup, a log record every 5 steps, no progress bar, and an output directory outside
# the repository. `run_config.load` resolves and validates a config exactly as the CLI does,
# before anything is built:

# %%
workspace = tempfile.TemporaryDirectory(prefix="lrnn_notebook_")
out_dir = pathlib.Path(workspace.name) / "digits_lru"
overrides = ["train.steps=60", "optim.warmup_steps=10", "train.log_every=5", "train.progress=false",
             f"train.out_dir={out_dir}"]
resolved = run_config.load(CONFIG, overrides)
print(resolved.model)
print(resolved.train)
assert resolved.train.steps == 60 and resolved.model.cell == "lru"

# %% [markdown]
# ## The run
#
# `main` trains (data-parallel over every local device; here one CPU), saves an orbax checkpoint
# at the end, evaluates at `task.eval_lengths`, prints the accuracy table and draws its
# accuracy-vs-length plot into a file (on a bare matplotlib Figure, leaving this notebook's
# inline backend alone).

# %%
started = time.perf_counter()
exit_code = train_cli.main(["--config", str(CONFIG), *overrides])
print(f"exit code {exit_code}, {time.perf_counter() - started:.0f} s")
assert exit_code == 0

# %% [markdown]
# ## What the run wrote
#
# Everything lives in `train.out_dir`: the resolved `config.json`, `checkpoints/` (for
# `--resume`), `metrics.jsonl` (one JSON record per log step: `{"step", "split", ...}`),
# `tensorboard/`, `results.json` and `accuracy_vs_length.png`.

# %%
print(sorted(path.name for path in out_dir.iterdir()))
records = metrics.read(out_dir / "metrics.jsonl")
train_records = [r for r in records if r["split"] == "train"]
eval_records = [r for r in records if r["split"].startswith("eval_")]
print(json.dumps(train_records[0]))
print(json.dumps(eval_records[-1]))
results = json.loads((out_dir / "results.json").read_text())
print("parameters:", results["n_params"], " final accuracy:", [row["accuracy"] for row in results["rows"]])

# %% [markdown]
# ## The loss went down
#
# The training loss starts near $\ln 10 \approx 2.30$ (ten classes, uniform guesses). After 60
# steps it must be well below that, and the held-out accuracy well above chance ($0.1$).

# %%
steps = np.array([r["step"] for r in train_records])
loss = np.array([r["loss"] for r in train_records])
accuracy = np.array([r["accuracy"] for r in train_records])
assert steps[-1] == 60 and len(train_records) == 12
assert loss[-3:].mean() < 0.75 * loss[:2].mean(), loss
assert eval_records[-1]["accuracy"] > 0.3, eval_records[-1]

figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 3.6))
loss_axes.plot(steps, loss, marker=".")
loss_axes.axhline(np.log(10), color="grey", linestyle=":", linewidth=1, label="ln 10 (chance)")
loss_axes.set(xlabel="step", ylabel="training loss", title="LRU on sequential digits")
loss_axes.legend()
accuracy_axes.plot(steps, accuracy, marker=".", label="training batches")
accuracy_axes.axhline(eval_records[-1]["accuracy"], color="tab:green", linestyle="--", label="held out, final")
accuracy_axes.axhline(0.1, color="grey", linestyle=":", linewidth=1, label="chance")
accuracy_axes.set(xlabel="step", ylabel="accuracy", ylim=(0, 1))
accuracy_axes.legend(fontsize=8)
figure.tight_layout()
plt.show()

# %% [markdown]
# Rerunning the same command with `--resume` and a larger `train.steps` would continue from the
# checkpoint. The temporary directory goes away with the notebook:

# %%
workspace.cleanup()
assert not out_dir.exists()

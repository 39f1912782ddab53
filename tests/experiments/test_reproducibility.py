"""The same command gives the same numbers: the embedded default run (the main job's model) at
toy size in two fresh processes with different XLA thread settings and core counts agrees to
the last bit once `train.cpu_threads` pins the CPU numerics (experiments/training/cpu_numerics.py).
What pinning removes is checked too: unpinned, a float32 matrix product's bits differ between
one core and two."""

import json
import os
import subprocess
import sys

import pytest

from tests.experiments.training_helpers import ROOT

TOY = ["train.steps=30", "train.log_every=1", "optim.warmup_steps=5", "train.progress=false", "task.eval_lengths=[40]",
       "task.eval_batches=1"]
CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")


def run(tmp_path, name, overrides, xla_flags, cores=None) -> dict:
    """Trains the embedded default in a fresh process; its losses, gradient norms and results."""
    out = tmp_path / name
    env = {**os.environ, "XLA_FLAGS": xla_flags}
    env.pop("JAX_PLATFORMS", None)
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "train.py"), *TOY, *overrides,
                           f"train.out_dir={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    return {"train": [(r["loss"], r["grad_norm"]) for r in steps if r["split"] == "train"],
            "rows": results["rows"], "log": done.stderr}


def test_the_default_run_is_bit_identical_under_other_xla_thread_flags(tmp_path):
    first = run(tmp_path, "a", [], "")
    second = run(tmp_path, "b", [], "--xla_cpu_multi_thread_eigen=false --xla_cpu_max_isa=AVX512")
    assert "CPU numerics pinned" in first["log"] or "only 1 core" in first["log"], first["log"]
    assert first["train"] == second["train"] and first["rows"] == second["rows"]


GRAM = """
import hashlib, jax, numpy as np
x = np.random.default_rng(0).normal(size=(1 << 16, 64)).astype(np.float32)
print(hashlib.sha1(np.asarray(jax.jit(lambda a: a.T @ a)(x)).tobytes()).hexdigest())
"""


def gram_bits(cores) -> str:
    """The bits of xᵀx (x: 65 536 × 64, float32) computed by a fresh, unpinned process on `cores`."""
    env = {key: value for key, value in os.environ.items() if key not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    done = subprocess.run([sys.executable, "-c", GRAM], env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.skipif(len(CORES) < 2, reason="needs two cores to compare one with two")
def test_unpinned_numbers_depend_on_the_core_count_and_pinned_runs_do_not(tmp_path):
    assert gram_bits(CORES[:2]) != gram_bits(CORES[:1])
    pinned_all = run(tmp_path, "pinned_all", ["train.cpu_threads=1"], "")
    pinned_one = run(tmp_path, "pinned_one", ["train.cpu_threads=1"], "--xla_cpu_multi_thread_eigen=false",
                     cores=CORES[-1:])
    assert "CPU numerics pinned: 1 core(s) (of 1)" in pinned_one["log"], pinned_one["log"]
    assert pinned_all["train"] == pinned_one["train"] and pinned_all["rows"] == pinned_one["rows"]

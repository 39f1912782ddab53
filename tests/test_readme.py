"""The README's promises: its test command is the one CI runs, and its example runs."""

import pathlib
import re

import chex

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _quick_start_commands():
    block = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci_lines, f"{commands[1]!r} not in .ci/run"
    assert "pytest" in commands[1]


def _example(heading: str) -> str:
    """The first python block of the README section under `heading` (a whole heading line)."""
    section = README.split(f"\n{heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run_example(heading: str) -> dict:
    code = _example(heading)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_readme_engine_example_runs_and_its_shapes_hold():
    namespace = _run_example("## The engine")
    chex.assert_shape(namespace["states"], (2, 100, 8))
    chex.assert_shape(namespace["final"], (2, 8))
    chex.assert_shape(namespace["S"], (2, 100, 4, 6))
    chex.assert_shape(namespace["S_final"], (2, 4, 6))


def test_readme_cells_example_runs_and_its_shapes_hold():
    namespace = _run_example("## Cells")
    chex.assert_shape(namespace["y"], (4, 256, 16))
    chex.assert_shape(namespace["h"], (4, 32))
    chex.assert_shape(namespace["y_next"], (4, 16))
    chex.assert_shape(namespace["y_mamba"], (4, 256, 16))


def test_readme_matrix_cells_example_runs_and_its_shapes_hold():
    namespace = _run_example("### Matrix-state cells")
    chex.assert_shape(namespace["y"], (2, 300, 64))
    chex.assert_shape(namespace["S"], (2, 4, 16, 16))
    chex.assert_shape(namespace["y_next"], (2, 64))
    chex.assert_shape(namespace["y_small"], (2, 20, 64))
    chex.assert_shape(namespace["y_gla"], (2, 300, 64))
    chex.assert_shape(namespace["y_rwkv"], (2, 300, 64))
    chex.assert_shape(namespace["S_rwkv"], (2, 2, 32, 32))
    chex.assert_shape(namespace["x_last"], (2, 64))


def test_readme_convolution_example_runs_and_equals_the_scan():
    namespace = _run_example("### Convolution mode")
    chex.assert_shape((namespace["y"], namespace["y_scan"], namespace["y_next"], namespace["y_s5"]), (2, 2048, 16))
    chex.assert_trees_all_close((namespace["y"], namespace["h"]), (namespace["y_scan"], namespace["h_scan"]),
                                atol=1e-4, rtol=1e-4)


def test_readme_block_diagonal_example_runs_and_its_shapes_hold():
    namespace = _run_example("### Block-diagonal transitions")
    chex.assert_shape(namespace["y"], (2, 128, 32))
    chex.assert_shape(namespace["h"], (2, 4, 8))
    chex.assert_shape(namespace["A"], (2, 128, 4, 8, 8))
    chex.assert_shape(namespace["y_next"], (2, 32))


def test_readme_nonlinear_example_runs_and_the_newton_solve_equals_the_loop():
    namespace = _run_example("### Nonlinear cells")
    chex.assert_shape((namespace["y"], namespace["y_newton"]), (2, 128, 16))
    chex.assert_trees_all_close(namespace["y_newton"], namespace["y"], atol=1e-4)
    assert 1 <= int(namespace["iterations"]) <= 128
    chex.assert_shape(namespace["y_lstm"], (2, 128, 8))
    chex.assert_shape(namespace["y_slstm"], (2, 128, 8))
    chex.assert_shape(namespace["m"], (2, 8))


def test_readme_hawk_griffin_example_runs_and_generate_extends_the_prompt():
    namespace = _run_example("### Hawk and Griffin")
    chex.assert_shape(namespace["logits"], (2, 12, 50))
    chex.assert_shape(namespace["tokens"], (2, 22))
    assert (namespace["tokens"][:, :12] == namespace["prompt"]).all()


def test_readme_models_example_runs_and_generate_extends_the_prompt():
    namespace = _run_example("## Models and training")
    chex.assert_shape(namespace["logits"], (2, 5, 50))
    tokens = namespace["tokens"]
    chex.assert_shape(tokens, (2, 15))
    assert (tokens[:, :5] == namespace["prompt"]).all()
    assert ((0 <= tokens) & (tokens < 50)).all()


def test_quick_start_main_job_is_the_parity_comparison():
    assert _quick_start_commands()[0].endswith("python experiments/main.py")
    assert (ROOT / "experiments" / "main.py").is_file()


def test_readme_kernels_example_runs_and_its_shapes_hold():
    namespace = _run_example("## Pallas kernels")
    assert namespace["states"].dtype == namespace["jnp"].bfloat16
    chex.assert_shape((namespace["states"], namespace["grads"]), (2, 64, 8))
    chex.assert_shape(namespace["final"], (2, 8))
    chex.assert_shape(namespace["y"], (2, 40, 16))
    chex.assert_shape(namespace["S"], (2, 2, 8, 8))


def test_readme_own_task_example_trains_through_the_cli(tmp_path):
    """The README's task file, saved as it says, and its train.py command (fewer steps here)."""
    import json
    import shlex
    import subprocess
    import sys

    (tmp_path / "my_tasks.py").write_text(_example("### Your own task and data"))
    command = next(line for line in README.splitlines() if "task.module=my_tasks.py" in line and "train.py" in line)
    argv = shlex.split(command)
    assert argv[:2] == ["python", "experiments/train.py"]
    argv = [sys.executable, str(ROOT / "experiments" / "train.py"), *argv[2:], "train.steps=20",
            "optim.warmup_steps=5", "train.progress=false", f"train.out_dir={tmp_path / 'run'}"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "first_equals_last: trained on lengths ≤ 16" in done.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [row["length"] for row in results["rows"]] == [16, 64]

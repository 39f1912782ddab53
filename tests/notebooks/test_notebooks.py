"""The notebooks run top to bottom, and each .ipynb is its .py pair with the outputs stripped.

The jupytext percent scripts `notebooks/NN_name.py` are the sources; the `.ipynb` beside each is
generated from it (`jupytext --sync notebooks/NN_name.py`, or `jupytext --to ipynb`), never
edited by hand. Every notebook asserts its own results, so executing it is the test.

Execution: the .py is read with jupytext and run by nbclient in a fresh ipykernel started on
this interpreter (`sys.executable -m ipykernel_launcher`), not on whatever kernelspec named
"python3" is installed, so it runs in the environment under test without a registered kernel.
The kernel's cwd is notebooks/ (as in Jupyter), and its environment is this process's, which
holds tests/conftest.py's XLA_FLAGS, with JAX on CPU and no JAX_* switches, so that each
notebook's own `jax.config` settings (float64 or not) are what it runs with. Nothing is written
into the repository: no executed notebook is saved, and the kernel writes no bytecode.
"""

from __future__ import annotations

import os
import pathlib
import sys

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ("01_one_engine", "02_cells_tour", "03_negative_eigenvalues", "04_chunkwise_and_kernels",
            "05_training_cli")
CELL_TIMEOUT_S = 300
JUPYTEXT_FORMATS = "ipynb,py:percent"


class ThisInterpreterKernel(AsyncKernelManager):
    """A kernel manager whose kernel is ipykernel on the interpreter running the tests."""

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name=f"Python ({sys.executable})", language="python")


def kernel_environment() -> dict:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("JAX_") and name != "MPLBACKEND"}
    env.update(JAX_PLATFORMS="cpu", PYTHONDONTWRITEBYTECODE="1")
    return env


def source(name: str) -> pathlib.Path:
    return NOTEBOOKS / f"{name}.py"


def paired(name: str) -> pathlib.Path:
    return NOTEBOOKS / f"{name}.ipynb"


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_the_notebooks_are_the_expected_five():
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.py")) == list(EXPECTED)
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")) == list(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_ipynb_is_the_py_without_outputs(name):
    script = jupytext.read(source(name))
    notebook = nbformat.read(paired(name), as_version=4)
    nbformat.validate(notebook)
    assert script.metadata["jupytext"]["formats"] == JUPYTEXT_FORMATS, "the .py must declare its pairing"
    assert notebook.metadata.get("jupytext", {}).get("formats") == JUPYTEXT_FORMATS
    assert cells(notebook) == cells(script), (
        f"{paired(name).name} has drifted from {source(name).name}: run `jupytext --sync {source(name)}`")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{paired(name).name} holds outputs: regenerate it with `jupytext --to ipynb {source(name)}`")


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom(name):
    notebook = jupytext.read(source(name))
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            kernel_manager_class=ThisInterpreterKernel,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    before = sorted(NOTEBOOKS.iterdir())
    client.execute(env=kernel_environment())  # raises CellExecutionError at the first failing cell
    assert sorted(NOTEBOOKS.iterdir()) == before, "the notebook wrote files next to itself"
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]

"""Runs each file of tests/sharded in a subprocess with 8 forced CPU devices (see tests/conftest.py):
the sequence-parallel suite, kept out of this process so every other test keeps one device."""

import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import SHARDED_SUITE

HERE = pathlib.Path(__file__).parent
FILES = sorted(path.name for path in (HERE / "sharded").glob("test_*.py"))


@pytest.mark.parametrize("name", FILES)
def test_sharded_file(name, request):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
               str(HERE / "sharded" / name)]
    cases = request.config.getoption("--cases-per-test")
    if cases is not None:
        command += ["--cases-per-test", str(cases)]
    env = {**os.environ, SHARDED_SUITE: "1"}
    run = subprocess.run(command, cwd=HERE.parent, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{name} on 8 forced CPU devices:\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"

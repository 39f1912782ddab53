"""Runs each file of tests/sharded in a subprocess with 8 forced CPU devices (see tests/conftest.py):
the sequence-parallel suite, kept out of this process so every other test keeps one device.

One test function per file (not one parametrised test): `--cases-per-test` thins the cases of a
test function, and it must reach every file, thinning the cases inside each instead.
"""

import os
import pathlib
import subprocess
import sys

from tests.conftest import SHARDED_SUITE

HERE = pathlib.Path(__file__).parent


def _run_file(name: str, config) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
               str(HERE / "sharded" / name)]
    cases = config.getoption("--cases-per-test")
    if cases is not None:
        command += ["--cases-per-test", str(cases)]
    env = {**os.environ, SHARDED_SUITE: "1"}
    run = subprocess.run(command, cwd=HERE.parent, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{name} on 8 forced CPU devices:\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"


def _test_of(name: str):
    def test(request):
        _run_file(name, request.config)
    test.__name__ = f"test_sharded_{pathlib.Path(name).stem.removeprefix('test_')}"
    test.__doc__ = f"tests/sharded/{name} passes on 8 forced CPU devices."
    return test


for _path in sorted((HERE / "sharded").glob("test_*.py")):
    _test = _test_of(_path.name)
    globals()[_test.__name__] = _test

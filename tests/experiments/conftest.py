"""The experiments tests' one shared rule: a script's `main()` run inside a test process never
pins that process's cores or XLA flags.

`train.cpu_threads` pinning (experiments/training/cpu_numerics.py) is for a fresh process
before JAX starts. A reproduction script's `main()` called here as the first JAX user of a
pytest worker would otherwise restrict the worker and change the flags of every later test in
it. The pinning itself is checked in fresh processes (test_reproducibility.py), which this does
not touch.
"""

import pytest

from experiments.training import cpu_numerics


@pytest.fixture(autouse=True)
def no_pinning_in_this_process(monkeypatch):
    monkeypatch.setattr(cpu_numerics, "pin_if_asked", lambda threads: None)

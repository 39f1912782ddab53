"""Test-wide configuration.

float64 is switched on before any test builds an array: the engine is checked in float64
against float64 references, so a mismatch is a bug and not rounding. Tests that are about
lower precision (tests/scan/test_dtypes.py) ask for their dtypes explicitly.
"""

import os

import jax
import jaxlib
from hypothesis import Phase, settings

# XLA's CPU fusion emitters (jaxlib 0.10's default) spend most of a small test program's
# compile time; the older loop emitters compile the same ops about a third faster (measured on
# this suite's contract and kernel tests). Set before the CPU backend starts, and only for the
# jaxlib it was measured on: an unknown flag aborts XLA at start-up.
if jaxlib.__version__.startswith("0.10."):
    os.environ["XLA_FLAGS"] = " ".join(
        filter(None, [os.environ.get("XLA_FLAGS"), "--xla_cpu_use_fusion_emitters=false"]))

jax.config.update("jax_enable_x64", True)

# Each hypothesis example compiles small JAX programs: no deadline, a modest example count,
# reproducible draws, and no shrinking (examples are seeds and a few shapes: nothing to
# simplify, and shrinking a failure would recompile for tens of seconds).
settings.register_profile("lrnn", deadline=None, max_examples=8, derandomize=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("lrnn")

# The scan tests compile many small programs; XLA's optimisation passes cost far more than
# running them does. The ops and their precision are the same; fusion and scheduling differ.
jax.config.update("jax_disable_most_optimizations", True)


def pytest_addoption(parser):
    parser.addoption(
        "--cases-per-test", type=int, default=None, metavar="K",
        help="run at most K parametrised cases of each test function, evenly spaced over its "
             "parameter list (the first and last included): every test function, fewer cases. "
             "The second CI leg (newest JAX) runs the suite this way.")


def _evenly_spaced(count: int, keep: int) -> set[int]:
    if keep == 1:
        return {0}
    return {round(i * (count - 1) / (keep - 1)) for i in range(min(keep, count))}


def pytest_collection_modifyitems(config, items):
    keep = config.getoption("--cases-per-test")
    if keep is None:
        return
    if keep < 1:
        raise ValueError(f"--cases-per-test must be ≥ 1, got {keep}")
    cases: dict[str, list] = {}
    for item in items:
        cases.setdefault(item.nodeid.split("[", 1)[0], []).append(item)
    selected, deselected = [], []
    for function_items in cases.values():
        chosen = _evenly_spaced(len(function_items), keep)
        for index, item in enumerate(function_items):
            (selected if index in chosen else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


# tests/sharded holds the sequence-parallel tests: they need 8 forced CPU devices, which must be
# set before JAX's CPU backend starts and would turn every other test's training multi-device.
# tests/test_sharded_suite.py runs each of its files in a subprocess with SHARDED_SUITE set.
SHARDED_SUITE = "LRNN_SHARDED_SUITE"
SHARDED_DEVICES = 8
if os.environ.get(SHARDED_SUITE):
    # The forced devices share two cores with the other test worker: a collective may wait on a
    # device that is starved for minutes, which XLA's CPU runtime would otherwise abort.
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [
        os.environ.get("XLA_FLAGS"), f"--xla_force_host_platform_device_count={SHARDED_DEVICES}",
        "--xla_cpu_collective_call_terminate_timeout_seconds=1200"]))
else:
    collect_ignore = ["sharded"]

"""The kernel tests' one switch: Pallas interpret mode (the default) or compiled kernels.

    python -m pytest tests/pallas_kernels                            # interpret mode, any machine
    LRNN_PALLAS_INTERPRET=0 python -m pytest tests/pallas_kernels    # compiled, on a GPU or TPU

Every test that runs a kernel with an explicit `interpret` takes the `interpret` fixture and
passes it on. LRNN_PALLAS_INTERPRET unset or "1": True, the kernel body evaluated as ordinary
JAX, which is how a CPU checks the kernels. "0": False, the kernels lowered and compiled for the
backend (Triton on a GPU, Mosaic on a TPU); refused on CPU, where Pallas cannot compile. Tests
that pass no `interpret` (argument errors, the CPU default, the engine and the cells, which use
interpret=None: compiled wherever the backend can compile) run the same either way.

Compiled mode runs what the backend can compile and names what it leaves out. The rule
(pallas_kernels/platform.py): a kernel's variant picks its lowering, "gpu" Triton and "tpu"
Mosaic, and only that accelerator compiles it. So on a GPU the tests of the "tpu" variant are
skipped, on a TPU those of the "gpu" variant, each with that reason in pytest's summary (-rs).
A test's variant is its `variant` parameter, or its `pallas_variant(name)` marker where the
variant is fixed or part of a case tuple. Nothing else is left out: the cases' dtypes
(float32, bfloat16, complex64 on planes; the kernels take no float64, only the references
use it), block sizes (powers of two on GPU, whole (8, 128) tiles on TPU) and padded shapes are
what both lowerings take. Every case's forward+VJP lowers for its variant's platform with x64 on
as here (checked on CPU with `jax.jit(f).trace(...).lower(lowering_platforms=("cuda",))`, resp.
("tpu",)); compiling the lowered kernels needs the device.
"""

from __future__ import annotations

import os
import pathlib

import jax
import pytest

from pallas_kernels.platform import kernel_variant

SWITCH = "LRNN_PALLAS_INTERPRET"
HERE = pathlib.Path(__file__).parent


def compiled_mode() -> bool:
    """True when LRNN_PALLAS_INTERPRET=0 asks for compiled kernels."""
    value = os.environ.get(SWITCH, "1")
    if value not in ("0", "1"):
        raise pytest.UsageError(f"{SWITCH} must be 0 (compiled kernels) or 1 (interpret mode, the default), "
                                f"got {value!r}")
    return value == "0"


if compiled_mode():
    # Test processes (pytest -n) share one device: each takes GPU memory as it needs it instead of
    # the 75% JAX preallocates by default. Set before any test starts the backend.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # XLA computes float32 dots on a GPU in TF32 by default (10-bit mantissa: ~3e-4 relative, seen
    # on an H200 as 2e-4 to 5e-3 against the float64 loops), while the kernels always multiply in
    # full float32 (pallas_kernels/matmul.py). The references these tests hold the kernels to, the
    # pure-JAX chunkwise forms and the cells' projections, are therefore run at full float32 too.
    jax.config.update("jax_default_matmul_precision", "highest")


def compiled_skip_reason(variant: str | None, native: str) -> str | None:
    """Why a test of `variant` cannot run compiled where the backend's variant is `native`, or None."""
    if variant is None or variant == native:
        return None
    lowering = {"gpu": "Triton, which only a GPU compiles", "tpu": "Mosaic, which only a TPU compiles"}[variant]
    return (f"compiled mode ({SWITCH}=0) on {native}: the {variant!r} variant lowers through {lowering} "
            f"(it runs in interpret mode, the default)")


def _variant_of(item) -> str | None:
    marker = item.get_closest_marker("pallas_variant")
    if marker is not None:
        return marker.args[0]
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("variant") if callspec is not None else None


def pytest_configure(config):
    """Register the marker; in compiled mode, refuse a backend Pallas cannot compile for."""
    config.addinivalue_line("markers", "pallas_variant(name): the kernel variant ('gpu' or 'tpu') a test runs, "
                                       "where it is not the test's `variant` parameter")
    if compiled_mode() and jax.default_backend() not in ("gpu", "tpu"):
        raise pytest.UsageError(f"{SWITCH}=0 compiles the Pallas kernels, which needs a GPU or TPU; jax's backend "
                                f"here is {jax.default_backend()!r}. Unset it to run the kernels in interpret mode.")


def pytest_report_header(config):
    mode = "compiled" if compiled_mode() else "interpret mode"
    return f"pallas kernels: {mode} ({SWITCH}={os.environ.get(SWITCH, 'unset')})"


def pytest_collection_modifyitems(config, items):
    """In compiled mode, skip (with the reason) the kernel tests of the variant this backend cannot compile."""
    if not compiled_mode():
        return
    native = kernel_variant(None)
    for item in items:
        if "interpret" not in item.fixturenames or not item.path.is_relative_to(HERE):
            continue
        reason = compiled_skip_reason(_variant_of(item), native)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def interpret() -> bool:
    """The kernels' `interpret`: True (interpret mode) unless LRNN_PALLAS_INTERPRET=0."""
    return not compiled_mode()

"""Backward memory of the diagonal scan, measured from XLA's compiled buffer assignment.

The reverse-scan VJP keeps O(T·D) residuals; these tests read the compiled temp bytes of
the gradient (deterministic, unlike timings) and compare them with autodiff baselines
written here with plain JAX.
"""

import functools

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from lrnn.scan import DiagonalMonoid, scan

B, D = 2, 128


@pytest.fixture(autouse=True, scope="module")
def optimised_compiles():
    """Buffer assignment as users get it, whatever the suite sets for speed (conftest.py)."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def _temp_bytes(grad_fn, length):
    a = jnp.full((B, length, D), 0.9, jnp.float32)
    b = jnp.ones((B, length, D), jnp.float32)
    return jax.jit(grad_fn).lower(a, b).compile().memory_analysis().temp_size_in_bytes


@functools.cache
def temp_bytes(program: str, length: int) -> int:
    """Compiled temp bytes of one gradient program ("sequential" / "chunked": the engine's;
    "step_loop" / "associative": the autodiff baselines), compiled once per session, so the
    tests that compare the same program at the same length share the compilation."""
    baselines = {"step_loop": _autodiff_step_loop, "associative": _autodiff_associative}
    grad_fn = _grad_of(baselines[program]) if program in baselines else _engine(program)
    return _temp_bytes(grad_fn, length)


def _grad_of(states_fn):
    return jax.grad(lambda a, b: jnp.sum(states_fn(a, b) ** 2), argnums=(0, 1))


def _engine(method):
    return _grad_of(lambda a, b: scan(DiagonalMonoid(), (a, b), method=method, chunk_size=64)[0])


def _autodiff_step_loop(a, b):
    def step(h, t):
        h = a[:, t] * h + b[:, t]
        return h, h
    _, states = lax.scan(step, jnp.zeros((B, D), a.dtype), jnp.arange(a.shape[1]))
    return states


def _autodiff_associative(a, b):
    combine = lambda x, y: (x[0] * y[0], y[0] * x[1] + y[1])  # noqa: E731
    return lax.associative_scan(combine, (a, b), axis=1)[1]


SHORT, LONG = 1024, 4096


@pytest.mark.parametrize("method", ["sequential", "chunked"])
def test_reverse_scan_vjp_memory_grows_linearly_in_length(method):
    short, long = temp_bytes(method, SHORT), temp_bytes(method, LONG)
    assert 3.6 <= long / short <= 4.4, (short, long)
    floats = B * LONG * D * 4
    assert long <= 3.5 * floats, f"{long / floats:.2f} floats of B·T·D kept for the backward"


@pytest.mark.parametrize("method", ["sequential", "chunked"])
def test_reverse_scan_vjp_needs_less_memory_than_autodiff(method):
    """At the long length of the test above (its engine programs are reused; the baselines are
    shared by both methods)."""
    engine = temp_bytes(method, LONG)
    assert engine < temp_bytes("step_loop", LONG)
    assert engine < temp_bytes("associative", LONG)

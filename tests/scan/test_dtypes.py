"""Precision: outputs come back in the elements' dtype, accumulated in at least float32.

- bf16 in → bf16 out, equal to the float32 scan of the same values up to bf16's rounding
  of the output (so the accumulation itself did not run in bf16);
- float32 / complex64 in → float32 / complex64 out, close to the float64 reference;
- long sequences (T = 4096, |a| < 1) stay finite and correct;
- the log-space diagonal stays finite and exact where the linear-space product underflows.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.scan import DiagonalMonoid, LogDiagonalMonoid, scan
from tests.scan import monoid_for
from tests.scan.references import CASES, diagonal, draw, log_diagonal

B, T = 2, 37
METHODS = [("sequential", None), ("associative", None), ("chunked", 3)]
METHOD_IDS = ["sequential", "associative", "chunked3"]
every_method = pytest.mark.parametrize("method,chunk_size", METHODS, ids=METHOD_IDS)

# bf16 keeps 8 significant bits: rounding a float32 value to bf16 moves it by at most 2^-9
# of its magnitude. The bf16 scan and the float32 scan of the same values both accumulate
# in float32, so they may differ by that rounding alone; rtol = 2^-8 allows one bf16 ulp.
# An accumulation in bf16 over 37 steps is off by several ulps and fails (checked by hand:
# 31 of 222 diagonal states). atol covers outputs that round to ~0.
BF16_TOL = dict(rtol=2.0**-8, atol=1e-6)
# float32 against the float64 reference over 37 steps.
F32_TOL = dict(rtol=1e-4, atol=1e-5)


def cast(tree, dtype):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x).astype(dtype), tree)


def dtypes_of(tree):
    return {x.dtype for x in jax.tree_util.tree_leaves(tree)}


@functools.lru_cache(maxsize=None)
def scan_fn(case_name, method, chunk_size):
    monoid = monoid_for(CASES[case_name])
    return jax.jit(lambda leaves, h0, flags: scan(monoid, leaves, initial=h0, resets=flags, method=method,
                                                  chunk_size=chunk_size))


@pytest.mark.parametrize("case_name", list(CASES))
@every_method
def test_single_and_half_precision(case_name, method, chunk_size):
    """float32 (complex64) in → float32 (complex64) out, close to the float64 reference; and,
    for real monoids, bf16 in → bf16 out, finite and equal to the float32 scan of the same
    bf16 values up to bf16 rounding of the output."""
    case = CASES[case_name]
    single = jnp.complex64 if case_name == "diagonal_complex" else jnp.float32
    leaves, h0, flags = draw(case, (B, T), seed=7, initial=True, resets=True)
    run = scan_fn(case_name, method, chunk_size)
    half = case_name != "diagonal_complex"  # bf16 has no complex type

    @jax.jit
    def in_each_precision(leaves, h0):
        out = {"single": run(cast(leaves, single), cast(h0, single), flags)}
        if half:  # and the float32 scan of exactly the values bf16 holds
            leaves16, h016 = cast(leaves, jnp.bfloat16), cast(h0, jnp.bfloat16)
            out["half"] = run(leaves16, h016, flags)
            out["half_in_single"] = run(cast(leaves16, single), cast(h016, single), flags)
        return out

    out = in_each_precision(leaves, h0)
    assert dtypes_of(out["single"]) == {jnp.dtype(single)}
    expected = case.reference(cast(leaves, single), cast(h0, single), axis=1, resets=flags)
    chex.assert_trees_all_close(cast(out["single"], jnp.complex128), cast(expected, jnp.complex128), **F32_TOL)
    if half:
        assert dtypes_of(out["half"]) == {jnp.dtype(jnp.bfloat16)}
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(out["half"]))
        chex.assert_trees_all_close(cast(out["half"], jnp.float32), out["half_in_single"], **BF16_TOL)


@pytest.mark.parametrize("a_dtype,b_dtype,out_dtype", [
    (jnp.float32, jnp.complex64, jnp.complex64),
    (jnp.bfloat16, jnp.float32, jnp.float32),
    (jnp.float32, jnp.float64, jnp.float64),
])
def test_mixed_dtypes_give_the_result_type(a_dtype, b_dtype, out_dtype):
    (a, b), h0, _ = draw(CASES["diagonal"], (B, 7), seed=9, initial=True, resets=False)
    states, final = scan(DiagonalMonoid(), (cast(a, a_dtype), cast(b, b_dtype)), initial=h0, method="sequential")
    assert states.dtype == final.dtype == jnp.dtype(out_dtype)
    expected = diagonal((cast(a, a_dtype), cast(b, b_dtype)), h0)
    chex.assert_trees_all_close(cast((states, final), jnp.complex128), cast(expected, jnp.complex128),
                                rtol=1e-2 if a_dtype == jnp.bfloat16 else 1e-5, atol=1e-5)


@functools.lru_cache(maxsize=None)
def long_sequence():
    """T = 4096 steps of h_t = a_t h_{t-1} + b_t with |a| ≤ 0.999, and the reference."""
    rng = np.random.default_rng(10)
    a = rng.uniform(0.9, 0.999, (1, 4096, 2)) * rng.choice([-1.0, 1.0], (1, 4096, 2))
    b = rng.normal(size=(1, 4096, 2))
    return (a, b), diagonal((a, b))


@pytest.mark.parametrize("method,chunk_size", METHODS + [("chunked", 64), ("auto", None)],
                         ids=METHOD_IDS + ["chunked64", "auto"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_long_sequence_stays_finite(method, chunk_size, dtype):
    leaves, expected = long_sequence()
    run = jax.jit(lambda leaves: scan(DiagonalMonoid(), leaves, method=method, chunk_size=chunk_size))
    states, final = run(cast(leaves, dtype))
    assert states.dtype == final.dtype == jnp.dtype(dtype)
    assert bool(jnp.all(jnp.isfinite(states))) and bool(jnp.all(jnp.isfinite(final)))
    if dtype == jnp.float32:  # bf16 inputs are different numbers: only finiteness applies
        chex.assert_trees_all_close((states, final), expected, rtol=1e-3, atol=1e-3)


@every_method
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_log_diagonal_survives_underflow(method, chunk_size, reverse):
    """log_a ≈ −50 per step (the product of 37 gates is e^−1850) and log_b ≈ −1000: every
    linear-space quantity underflows even in float64, yet the log-space states are finite.
    Expected values use log h's equivariance: shifting every log_b and log h0 by c shifts
    every log h_t by c, so the reference runs at c = +1000 and is shifted back."""
    (_, log_b), log_h0, flags = draw(CASES["log_diagonal"], (B, T), seed=11, initial=True, resets=True)
    log_a = -50.0 + np.random.default_rng(12).uniform(-1, 1, log_b.shape)
    shift = 1000.0
    leaves = (jnp.asarray(log_a, jnp.float32), jnp.asarray(log_b - shift, jnp.float32))
    h0 = jnp.asarray(log_h0 - shift, jnp.float32)
    assert float(jnp.exp(jnp.float64(-shift))) == 0.0  # linear space cannot represent these

    def run(leaves, h0):
        return scan(LogDiagonalMonoid(), leaves, initial=h0, resets=flags, reverse=reverse, method=method,
                    chunk_size=chunk_size)

    states, final = jax.jit(run)(leaves, h0)
    expected_states, expected_final = log_diagonal((log_a, log_b), log_h0, reverse=reverse, resets=flags)
    chex.assert_trees_all_close((states, final), (expected_states - shift, expected_final - shift),
                                rtol=1e-6, atol=1e-3)
    grads = jax.jit(jax.grad(lambda leaves, h0: jnp.sum(run(leaves, h0)[0]), argnums=(0, 1)))(leaves, h0)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))

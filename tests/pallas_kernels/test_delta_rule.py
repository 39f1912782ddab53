"""The Pallas chunked delta-rule kernel (interpret mode on CPU; compiled with LRNN_PALLAS_INTERPRET=0
on a GPU or TPU: tests/pallas_kernels/conftest.py) against the float64 per-token
loop `delta_loop`: outputs, final state and every gradient (q, k, v, β, log_decay, initial)
under random cotangents for o and the final state, for both kernel variants, DeltaNet and
gated DeltaNet, β in (0, 1) and in (0, 2), an odd length (37 = two chunks of 16 and a tail)
and one shorter than a chunk (5), with and without an initial state. K = 8 and V = 6 are
padded by both variants (GPU to 16, TPU to 128), so zero key/value dimensions are checked to
be neutral. The gated inputs include one strong decay (log α = −60) to check that underflowing
exponents stay finite.

Tolerances (elementwise, |x − ref| ≤ atol + rtol |ref|, values and gradients are O(1–10)):
- float32: rtol = atol = 1e-4. Float32 matmuls over ≤ 16 terms and a 16-step substitution,
  compared with a float64 loop; the measured error is ~1e-6 of the scale.
- bfloat16 inputs: rtol = atol = 3e-2 against the loop run on the same bf16-rounded inputs
  (in float64). The kernel computes in float32; the error is the rounding of o and of the
  gradients to bfloat16 (relative 2⁻⁸ ≈ 4e-3) on values up to ~5.
- against lrnn.cells.chunkwise.delta_rule (float32, same chunk size): 1e-4, two float32
  evaluations of the same closed form.

Each configuration is compiled once (functools.cache of a jitted forward+vjp) and reused for
both β ranges.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.chunkwise import delta_rule as delta_rule_chunkwise
from pallas_kernels.delta_rule import delta_rule
from tests.chunkwise_loops import delta_loop

B, H, K, V, C = 1, 2, 8, 6, 16
TOL32 = dict(rtol=1e-4, atol=1e-4)
TOL_BF16 = dict(rtol=3e-2, atol=3e-2)
NAMES = ("q", "k", "v", "beta", "log_decay", "initial")


def make_inputs(seed, length, beta_max, dtype=jnp.float32):
    """Float64 inputs (rounded through `dtype`), unit-norm keys, and cotangents."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(size=shape)  # noqa: E731
    k = normal(B, H, length, K)
    log_decay = -rng.uniform(0.0, 0.5, size=(B, H, length))
    log_decay[:, :, length // 2] = -60.0
    x = dict(q=normal(B, H, length, K), k=k / np.linalg.norm(k, axis=-1, keepdims=True),
             v=normal(B, H, length, V), beta=rng.uniform(0.05, beta_max - 0.05, size=(B, H, length)),
             log_decay=log_decay, initial=normal(B, H, K, V),
             d_o=normal(B, H, length, V), d_final=normal(B, H, K, V))
    rounded = {name: jnp.asarray(a, dtype).astype(jnp.float64) for name, a in x.items()}
    rounded["initial"] = jnp.asarray(x["initial"], jnp.float32).astype(jnp.float64)
    return rounded


@functools.cache
def kernel_vjp(variant, gated, with_initial, dtype, interpret):
    """jit(inputs, cotangents -> (o, final, grads by name)) for one kernel configuration."""
    def run(x):
        names = [n for n in NAMES if (n != "log_decay" or gated) and (n != "initial" or with_initial)]
        cast = {n: x[n].astype(jnp.float32 if n == "initial" else dtype) for n in names}

        def f(*args):
            a = dict(zip(names, args))
            return delta_rule(a["q"], a["k"], a["v"], a["beta"], a.get("initial"), log_decay=a.get("log_decay"),
                              chunk_size=C, variant=variant, interpret=interpret)

        (o, final), pullback = jax.vjp(f, *(cast[n] for n in names))
        grads = pullback((x["d_o"].astype(o.dtype), x["d_final"].astype(jnp.float32)))
        return o, final, dict(zip(names, grads))
    return jax.jit(run)


@functools.cache
def reference_vjp(gated):
    """jit(inputs, cotangents -> (o, final, grads by name)) of the float64 loop."""
    def run(x):
        names = NAMES if gated else tuple(n for n in NAMES if n != "log_decay")

        def f(*args):
            a = dict(zip(names, args))
            return delta_loop(a["q"], a["k"], a["v"], a["beta"], a["initial"], a.get("log_decay"))

        (o, final), pullback = jax.vjp(f, *(x[n] for n in names))
        return o, final, dict(zip(names, pullback((x["d_o"], x["d_final"]))))
    return jax.jit(run)


def assert_matches(got, expected, tol):
    o, final, grads = got
    o_ref, final_ref, grads_ref = expected
    chex.assert_shape(o, o_ref.shape)
    chex.assert_shape(final, final_ref.shape)
    assert final.dtype == jnp.float32
    chex.assert_tree_all_finite((o, final, grads))
    as64 = lambda tree: jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)  # noqa: E731
    chex.assert_trees_all_close(as64((o, final)), as64((o_ref, final_ref)), **tol)
    assert set(grads) <= set(grads_ref)
    for name, grad in grads.items():
        chex.assert_shape(grad, grads_ref[name].shape)
        chex.assert_trees_all_close(as64(grad), as64(grads_ref[name]), **tol, custom_message=name)


@pytest.mark.parametrize("gated", (False, True), ids=("deltanet", "gated"))
@pytest.mark.parametrize("variant", ("gpu", "tpu"))
def test_matches_loop_float32(variant, gated, interpret):
    for seed, beta_max in ((0, 1.0), (1, 2.0)):
        x = make_inputs(seed, 37, beta_max)
        got = kernel_vjp(variant, gated, True, jnp.float32, interpret)(x)
        assert got[0].dtype == jnp.float32
        assert_matches(got, reference_vjp(gated)(x), TOL32)


@pytest.mark.pallas_variant("tpu")
def test_shorter_than_a_chunk_without_initial(interpret):
    x = make_inputs(2, 5, 2.0)
    got = kernel_vjp("tpu", True, False, jnp.float32, interpret)(x)
    expected = reference_vjp(True)(dict(x, initial=jnp.zeros_like(x["initial"])))
    assert set(got[2]) == {"q", "k", "v", "beta", "log_decay"}
    assert_matches(got, expected, TOL32)


@pytest.mark.pallas_variant("gpu")
def test_bfloat16_inputs(interpret):
    x = make_inputs(3, 37, 2.0, jnp.bfloat16)
    got = kernel_vjp("gpu", True, True, jnp.bfloat16, interpret)(x)
    assert got[0].dtype == jnp.bfloat16
    assert all(g.dtype == (jnp.float32 if n == "initial" else jnp.bfloat16) for n, g in got[2].items())
    assert_matches(got, reference_vjp(True)(x), TOL_BF16)


@pytest.mark.pallas_variant("gpu")
def test_agrees_with_pure_jax_chunkwise_form(interpret):
    x = {n: a.astype(jnp.float32) for n, a in make_inputs(4, 37, 2.0).items()}
    o, final, _ = kernel_vjp("gpu", True, True, jnp.float32, interpret)(x)
    o_ref, final_ref = jax.jit(lambda x: delta_rule_chunkwise(
        x["q"], x["k"], x["v"], x["beta"], x["initial"], log_decay=x["log_decay"], chunk_size=C,
        method="chunked"))(x)
    chex.assert_trees_all_close((o, final), (o_ref, final_ref), rtol=1e-4, atol=1e-4)


def _valid(length=5):
    q = jnp.zeros((B, H, length, K), jnp.float32)
    return dict(q=q, k=q, v=jnp.zeros((B, H, length, V), jnp.float32), beta=jnp.zeros((B, H, length), jnp.float32))


@pytest.mark.parametrize("change, error, message", [
    (dict(chunk_size=24), ValueError, r"chunk_size must be a power of two ≥ 16 .* got 24"),
    (dict(chunk_size=8), ValueError, r"chunk_size must be a power of two ≥ 16 .* got 8"),
    (dict(chunk_size=True), ValueError, r"chunk_size .* got True"),
    (dict(q=jnp.zeros((B, 5, K))), ValueError, r"q must have shape \(B, H, T, K\), got \(1, 5, 8\)"),
    (dict(k=jnp.zeros((B, H, 5, K + 1), jnp.float32)), ValueError, r"k must have shape .* = \(1, 2, 5, 8\), got \(1, 2, 5, 9\)"),
    (dict(v=jnp.zeros((B, H, 4, V), jnp.float32)), ValueError, r"v must have shape .* got \(1, 2, 4, 6\)"),
    (dict(beta=jnp.zeros((B, H, 5, K), jnp.float32)), ValueError, r"beta must have shape \(B, H, T\)"),
    (dict(log_decay=jnp.zeros((B, H, 5, K), jnp.float32)), ValueError, r"log_decay must have shape \(B, H, T\)"),
    (dict(initial=jnp.zeros((B, H, V, K), jnp.float32)), ValueError, r"initial must have shape \(B, H, K, V\) = \(1, 2, 8, 6\)"),
    (dict(initial=jnp.zeros((B, H, K, V), jnp.int32)), TypeError, r"initial must be a real floating array, got dtype int32"),
    (dict(q=jnp.zeros((B, H, 5, K), jnp.float64), k=jnp.zeros((B, H, 5, K), jnp.float64)), TypeError,
     r"q must be float32 or bfloat16, got dtype float64"),
    (dict(k=jnp.zeros((B, H, 5, K), jnp.bfloat16)), TypeError, r"q, k and v must share one dtype, got float32, bfloat16, float32"),
    (dict(beta=jnp.zeros((B, H, 5), jnp.int32)), TypeError, r"beta must be a real floating array, got dtype int32"),
    (_valid(length=0), ValueError, r"at least one token\), got q \(1, 2, 0, 8\)"),
    (dict(variant="cuda"), ValueError, r"variant must be one of \('gpu', 'tpu'\)"),
])
def test_bad_input_is_named(change, error, message):
    args = dict(_valid(), chunk_size=16)
    args.update(change)
    with pytest.raises(error, match=message):
        delta_rule(args.pop("q"), args.pop("k"), args.pop("v"), args.pop("beta"), **args)

"""The Pallas decay-attention kernels (interpret mode; compiled with LRNN_PALLAS_INTERPRET=0 on a GPU
or TPU: tests/pallas_kernels/conftest.py) against a float64 per-token loop.

Checked for both grid variants ("gpu": chunks looped in one program; "tpu": chunks as the last
grid axis): o, the final state and the gradients of q, k, v, log_decay and the initial state
under random cotangents for o and the final state (jax.vjp), at T = 37 with C = 16 (two full
chunks and a tail), C = 32 (sub-block pairs across a chunk) and C = 64 > T; K = 5, V = 3 (not
multiples of any block: both padded); with and without an initial state; float32 and bfloat16;
log_decay = −20 per token (strong decay: finite and matching); the float32 pure-JAX chunkwise
form (consistency); and the argument errors.

Tolerances, as a fraction of the largest |reference| entry of each array:
- float32: 2e-5. The kernels compute in float32 from float32 inputs (f32 matmuls over at most
  C + K terms, exponentials ≤ 1); the measured error is 1e-7 to 1e-6 of scale.
- bfloat16: 1e-2 (measured up to 3e-3). The reference is the float64 loop on the bf16-ROUNDED inputs, so what remains
  is the kernels' float32 arithmetic plus the single rounding of o, dq, dk, dv to bf16 on store
  (relative 2^-8 ≈ 4e-3 of each entry) and of the bf16 cotangent do; the final state,
  d log_decay and d initial are float32.
- strong decay (float32): 2e-5, as float32 (measured ~3e-7); also every output and gradient must be finite.

One jitted program per configuration computes the outputs and all gradients; the float64
reference is compiled once per shape and shared between variants and dtypes.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.chunkwise import decay_attention as chunkwise_decay_attention
from pallas_kernels.decay_attention import decay_attention
from tests.chunkwise_loops import decay_loop
from tests.helpers import seed_of

B, H, T, K, V = 2, 1, 37, 5, 3
VARIANTS = ("gpu", "tpu")
TOL = {jnp.float32: 2e-5, jnp.bfloat16: 1e-2}


def make_inputs(name, length=T, strong=False):
    """float64 inputs and cotangents: q, k, v, log_decay, initial, do, dfinal."""
    rng = np.random.default_rng(seed_of("decay-kernel", name))
    normal = lambda *shape: rng.normal(size=shape)  # noqa: E731
    log_decay = -np.abs(normal(B, H, length, K))
    if strong:  # −20 per token on every key but one slow key
        log_decay = np.full((B, H, length, K), -20.0)
        log_decay[..., 0] = -1e-3
    return [jnp.asarray(x) for x in (normal(B, H, length, K), normal(B, H, length, K), normal(B, H, length, V),
                                     log_decay, normal(B, H, K, V), normal(B, H, length, V), normal(B, H, K, V))]


def outputs_and_gradients(fn, q, k, v, log_decay, initial, do, dfinal, *, with_initial):
    """(o, final, (dq, dk, dv, dlog_decay[, dinitial])) of fn under the cotangents (do, dfinal)."""
    if with_initial:
        (o, final), vjp = jax.vjp(fn, q, k, v, log_decay, initial)
    else:
        (o, final), vjp = jax.vjp(lambda *a: fn(*a, None), q, k, v, log_decay)
    return o, final, vjp((do.astype(o.dtype), dfinal.astype(final.dtype)))


@functools.cache
def reference():
    """The float64 loop's outputs and gradients, jitted once (per shape)."""
    def loop(q, k, v, log_decay, initial):
        if initial is None:
            initial = jnp.zeros(q.shape[:2] + (q.shape[-1], v.shape[-1]), q.dtype)
        return decay_loop(q, k, v, log_decay, initial)
    return jax.jit(functools.partial(outputs_and_gradients, loop), static_argnames="with_initial")


@functools.cache
def kernel(chunk, variant, interpret):
    """The kernels' outputs and gradients, jitted once per (chunk, variant, interpret)."""
    fn = functools.partial(decay_attention, chunk_size=chunk, variant=variant, interpret=interpret)
    return jax.jit(functools.partial(outputs_and_gradients, fn), static_argnames="with_initial")


def assert_close_to_scale(got, expected, tol, name):
    """|got − expected| ≤ tol · max|expected|, array by array."""
    for i, (g, e) in enumerate(zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected))):
        scale = max(float(jnp.max(jnp.abs(e))), 1e-30)
        chex.assert_trees_all_close(jnp.asarray(g, jnp.float64) / scale, e / scale, atol=tol, rtol=0,
                                    custom_message=f"{name}, leaf {i}")


def check(chunk, variant, dtype, with_initial, interpret, length=T, strong=False, name="case"):
    x = make_inputs(name, length, strong)
    narrow = [a.astype(dtype) for a in x[:4]] + [a.astype(jnp.float32) for a in x[4:]]
    # The reference sees exactly the (rounded) inputs the kernel sees.
    expected = reference()(*[a.astype(jnp.float64) for a in narrow], with_initial=with_initial)
    got = kernel(chunk, variant, interpret)(*narrow, with_initial=with_initial)
    o, final, grads = got
    chex.assert_shape(o, (B, H, length, V))
    chex.assert_shape(final, (B, H, K, V))
    chex.assert_type([o, final], [dtype, jnp.float32])
    chex.assert_type(list(grads), [dtype] * 4 + [jnp.float32] * with_initial)
    chex.assert_tree_all_finite(got)
    for part, g, e in zip(("o", "final", "gradients"), got, expected):
        assert_close_to_scale(g, e, TOL[dtype], f"{part} ({variant}, C={chunk}, {jnp.dtype(dtype).name})")
    return got


CASES = [  # (chunk, with_initial): T = 37 throughout
    (16, True),    # two full chunks and a tail of 5, one sub-block per chunk
    (32, False),   # a full chunk (two sub-blocks) and a tail; zero initial state
    (64, True),    # T < C: one padded chunk of four sub-blocks
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chunk, with_initial", CASES)
def test_float32_matches_the_loop(chunk, with_initial, variant, interpret):
    check(chunk, variant, jnp.float32, with_initial, interpret, name=f"f32-{chunk}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_bfloat16_matches_the_loop(variant, interpret):
    check(32, variant, jnp.bfloat16, True, interpret, name="bf16")


@pytest.mark.parametrize("variant", VARIANTS)
def test_strong_decay_is_finite_and_exact(variant, interpret):
    """log_decay = −20 per token at C = 64, two chunks: Σ over a chunk is −1280, so any e^{−b}
    would overflow float32; the kernels only form exponentials ≤ 1."""
    check(64, variant, jnp.float32, True, interpret, length=70, strong=True, name="strong")


@pytest.mark.pallas_variant("gpu")
def test_agrees_with_the_pure_jax_chunkwise_form(interpret):
    """float32, C = 16, with an initial state: the same numbers as lrnn's chunkwise op."""
    q, k, v, log_decay, initial = (a.astype(jnp.float32) for a in make_inputs("consistency")[:5])
    got = jax.jit(lambda *a: decay_attention(*a, chunk_size=16, variant="gpu", interpret=interpret))(
        q, k, v, log_decay, initial)
    expected = jax.jit(lambda *a: chunkwise_decay_attention(*a, chunk_size=16, method="sequential"))(
        q, k, v, log_decay, initial)
    assert_close_to_scale(got, expected, 1e-5, "kernel vs chunkwise")


def zeros(*shape, dtype=jnp.float32):
    return jnp.zeros(shape, dtype)


GOOD = dict(q=zeros(B, H, T, K), k=zeros(B, H, T, K), v=zeros(B, H, T, V), log_decay=zeros(B, H, T, K),
            initial=zeros(B, H, K, V))
BAD = [
    ("complex-decay", dict(log_decay=zeros(B, H, T, K, dtype=jnp.complex64)), TypeError,
     r"log_decay is complex .*takes real inputs.*lrnn\.cells\.chunkwise\.decay_attention"),
    ("complex-q", dict(q=zeros(B, H, T, K, dtype=jnp.complex64)), TypeError, r"q is complex"),
    ("integer-v", dict(v=zeros(B, H, T, V, dtype=jnp.int32)), TypeError, r"v must be a real floating array, got dtype int32"),
    ("float64-k", dict(k=zeros(B, H, T, K, dtype=jnp.float64)), TypeError, r"k must be float32 or bfloat16, got dtype float64"),
    ("mixed-dtypes", dict(v=zeros(B, H, T, V, dtype=jnp.bfloat16)), TypeError, r"q, k and v must share one dtype"),
    ("q-rank", dict(q=zeros(B, T, K)), ValueError, r"q must have shape \(B, H, T, K\), got \(2, 37, 5\)"),
    ("k-width", dict(k=zeros(B, H, T, K + 1)), ValueError,
     r"k must have shape \(B, H, T, K\) like q = \(2, 1, 37, 5\), got \(2, 1, 37, 6\)"),
    ("decay-per-head", dict(log_decay=zeros(B, H, T, 1)), ValueError, r"log_decay must have shape \(B, H, T, K\)"),
    ("v-length", dict(v=zeros(B, H, T + 1, V)), ValueError, r"v must have shape \(B, H, T, V\) with q's B, H, T"),
    ("initial-transposed", dict(initial=zeros(B, H, V, K)), ValueError,
     r"initial must have shape \(B, H, K, V\) = \(2, 1, 5, 3\), got \(2, 1, 3, 5\)"),
    ("chunk-not-power", dict(chunk_size=24), ValueError, r"chunk_size must be a power of two 16 … 128 .*got 24"),
    ("chunk-small", dict(chunk_size=8), ValueError, r"chunk_size must be a power of two .*got 8"),
    ("chunk-large", dict(chunk_size=256), ValueError, r"chunk_size must be a power of two 16 … 128 .*got 256"),
    ("chunk-float", dict(chunk_size=16.0), ValueError, r"chunk_size must be a power of two .*got 16.0"),
    ("variant", dict(variant="cpu"), ValueError, r"variant must be one of \('gpu', 'tpu'\)"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_inputs_name_the_argument(case):
    _, change, error, message = case
    with pytest.raises(error, match=message):
        decay_attention(**dict(GOOD, **change))

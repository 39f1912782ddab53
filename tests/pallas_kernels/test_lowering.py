"""Every kernel lowered for a real GPU (Pallas → Triton) and TPU (Pallas → Mosaic), on CPU.

`pallas_kernels.lowering.export_for` runs the platform's full lowering through `jax.export`
(no device needed). For each kernel, forward and gradient, float32 and bfloat16, at the
benchmark's shapes (experiments/bench_kernels.py) and at odd ones — T not a multiple of the
chunk or of the time block, D not a multiple of 128, K and V not powers of two — we assert the
export succeeds, embeds the platform's kernel custom call, and has the output shapes and dtypes
of the un-lowered function (`jax.eval_shape`); with jax_enable_x64 (as the suite runs) and, at the
odd shapes, without. A kernel that cannot lower fails here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest

from pallas_kernels import decay_attention, delta_rule, diagonal_scan
from pallas_kernels.lowering import KERNEL_CALL, KERNEL_VARIANT, PLATFORMS, export_for

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# (B, T, D) for the diagonal scan; (B, H, T, K, V) for the chunk kernels (chunk 64)
DIAGONAL_SHAPES = {"benchmark": (8, 8192, 4096), "odd": (3, 100, 200)}
CHUNK_SHAPES = {"benchmark_2048": (8, 16, 2048, 128, 128), "benchmark_8192": (8, 16, 8192, 128, 128),
                "odd_t_128": (2, 3, 100, 128, 128), "odd_t_narrow": (2, 3, 200, 48, 80)}


def _spec(shape, dtype):
    return jax.ShapeDtypeStruct(shape, dtype)


def _diagonal(variant, shape, dtype, *, odd):
    """diagonal_scan's (fn, args); the odd shape also takes h0 and runs in reverse."""
    a = _spec(shape, dtype)
    if odd:
        h0 = _spec((shape[0], shape[2]), dtype)
        fn = functools.partial(diagonal_scan, reverse=True, variant=variant, interpret=False)
        return (lambda a, b, h0: fn(a, b, h0)[0]), (a, a, h0)
    fn = functools.partial(diagonal_scan, variant=variant, interpret=False)
    return (lambda a, b: fn(a, b)[0]), (a, a)


def _decay_attention(variant, shape, dtype, *, odd):
    """decay_attention's (fn, args): per-key log decay; the odd shapes also take a float32 state."""
    batch, heads, length, key_dim, value_dim = shape
    qk = _spec((batch, heads, length, key_dim), dtype)
    v = _spec((batch, heads, length, value_dim), dtype)
    fn = functools.partial(decay_attention, chunk_size=64, variant=variant, interpret=False)
    if odd:
        initial = _spec((batch, heads, key_dim, value_dim), jnp.float32)
        return (lambda q, k, v, g, s: fn(q, k, v, g, s)[0]), (qk, qk, v, qk, initial)
    return (lambda q, k, v, g: fn(q, k, v, g)[0]), (qk, qk, v, qk)


def _delta_rule(variant, shape, dtype, *, odd, gated=False):
    """delta_rule's (fn, args), with a scalar log decay per token when gated."""
    batch, heads, length, key_dim, value_dim = shape
    qk = _spec((batch, heads, length, key_dim), dtype)
    v = _spec((batch, heads, length, value_dim), dtype)
    per_token = _spec((batch, heads, length), dtype)
    fn = functools.partial(delta_rule, chunk_size=64, variant=variant, interpret=False)
    args = (qk, qk, v, per_token) + ((per_token,) if gated else ())
    if odd:
        args += (_spec((batch, heads, key_dim, value_dim), jnp.float32),)

    def run(q, k, v, beta, *rest):
        log_decay = rest[0] if gated else None
        initial = rest[-1] if odd else None
        return fn(q, k, v, beta, initial, log_decay=log_decay)[0]

    return run, args


KERNELS = {
    "diagonal_scan": (_diagonal, DIAGONAL_SHAPES),
    "decay_attention": (_decay_attention, CHUNK_SHAPES),
    "delta_rule": (_delta_rule, CHUNK_SHAPES),
    "gated_delta_rule": (functools.partial(_delta_rule, gated=True), CHUNK_SHAPES),
}
CASES = [(kernel, shape) for kernel, (_, shapes) in KERNELS.items() for shape in shapes]


def _gradient(fn):
    """∇ of Σ fn(...)·1 (in float32) with respect to every argument."""
    def loss(*args):
        return jnp.sum(fn(*args).astype(jnp.float32))
    return lambda *args: jax.grad(loss, argnums=tuple(range(len(args))))(*args)


def _assert_lowered(platform, fn, args):
    exported = export_for(platform, fn, *args)
    assert exported.platforms == (platform,)
    module = exported.mlir_module()
    assert KERNEL_CALL[platform] in module, f"no {KERNEL_CALL[platform]} in the {platform} module"
    expected = jax.tree.leaves(jax.eval_shape(fn, *args))
    got = [(aval.shape, aval.dtype) for aval in exported.out_avals]
    assert got == [(leaf.shape, leaf.dtype) for leaf in expected]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,shape", CASES)
@pytest.mark.parametrize("pass_", ["forward", "gradient"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_kernel_lowers(platform, pass_, kernel, shape, dtype):
    build, shapes = KERNELS[kernel]
    fn, args = build(KERNEL_VARIANT[platform], shapes[shape], DTYPES[dtype], odd=shape.startswith("odd"))
    _assert_lowered(platform, _gradient(fn) if pass_ == "gradient" else fn, args)


@pytest.mark.parametrize("kernel,shape", [case for case in CASES if case[1].startswith("odd")])
@pytest.mark.parametrize("pass_", ["forward", "gradient"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_kernel_lowers_without_x64(platform, pass_, kernel, shape):
    """The suite runs with jax_enable_x64 (int64 loop indices and iotas); users mostly do not."""
    build, shapes = KERNELS[kernel]
    with jax.enable_x64(False):
        fn, args = build(KERNEL_VARIANT[platform], shapes[shape], jnp.float32, odd=True)
        _assert_lowered(platform, _gradient(fn) if pass_ == "gradient" else fn, args)


@pytest.mark.parametrize("pass_", ["forward", "gradient"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_complex_diagonal_scan_lowers(platform, pass_):
    """Complex states run as two real planes through the same kernels."""
    a = _spec((2, 100, 200), jnp.complex64)
    scan = functools.partial(diagonal_scan, variant=KERNEL_VARIANT[platform], interpret=False)

    def fn(a, b):
        return scan(a, b)[0]

    def gradient(a, b):
        return jax.grad(lambda a, b: jnp.sum(jnp.abs(fn(a, b)) ** 2), argnums=(0, 1))(a, b)

    _assert_lowered(platform, gradient if pass_ == "gradient" else fn, (a, a))


def test_export_for_rejects_unknown_platform():
    with pytest.raises(ValueError, match=r"platform must be one of \('cuda', 'tpu'\), got 'rocm'"):
        export_for("rocm", jnp.sin, jnp.ones(3))

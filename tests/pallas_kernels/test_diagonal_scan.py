"""pallas_kernels.diagonal_scan against a float64 per-step loop, in Pallas interpret mode (compiled
with LRNN_PALLAS_INTERPRET=0 on a GPU or TPU: tests/pallas_kernels/conftest.py).

The reference is h_t = a_t h_{t−1} + b_t run one step at a time (a lax.scan of that step) in
float64 / complex128 on the kernel's inputs widened; its gradients come from jax.vjp of that
loop under the same random cotangents for the states and the final state.

Tolerances (atol = rtol, after dividing each array by max(1, its largest magnitude), on the
states, the final state and the gradients in a, b, h0):
- float32, complex64: 2e-6. The kernel accumulates in float32; values here are O(1–20)
  (|a| < 0.95), and float32 rounding over ≤ 37 steps leaves ~1e-7 (measured ≤ 1.2e-7).
- bfloat16: 1e-2, against the float64 loop of the bf16-rounded inputs and cotangents. The
  kernel accumulates in float32 but stores states, ā and b̄ in bfloat16 (relative rounding
  ≤ 2^-9 ≈ 2e-3 per store), and ā is formed from the stored, rounded states, so it carries two
  roundings (measured ≤ 3.2e-3). The final state and h̄0 stay float32 (measured ≤ 1e-7).

Cost: one compiled forward+VJP per case (kernels are jitted once per configuration and the
reference once per shape); small shapes and block_t 4–16 keep the unrolled interpret-mode
kernels cheap to compile.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.scan import DiagonalMonoid, scan
from pallas_kernels.diagonal_scan import diagonal_scan
from tests.helpers import seed_of, to64

F32, BF16, C64 = jnp.float32, jnp.bfloat16, jnp.complex64
TOLERANCE = {F32: 2e-6, C64: 2e-6, BF16: 1e-2}

# (variant, dtype, reverse, (B, T, D), h0 given, block_t, block_d): every variant × dtype ×
# direction once; odd T (1, 7, 37: whole tiles, a remainder, a single step), D below and
# above a block (5; 130 with block_d 128), h0 given and None.
CASES = [
    ("gpu", F32, False, (2, 7, 5), True, 4, None),
    ("gpu", F32, True, (1, 37, 130), False, 4, 128),
    ("gpu", C64, False, (1, 37, 130), True, 8, 128),
    ("gpu", C64, True, (2, 7, 5), True, 4, None),
    ("gpu", BF16, False, (3, 1, 4), False, None, None),
    ("gpu", BF16, True, (2, 7, 5), True, 4, None),
    ("tpu", F32, False, (1, 37, 130), True, 8, 128),
    ("tpu", F32, True, (2, 7, 5), False, 8, 128),
    ("tpu", C64, False, (2, 7, 5), False, 8, 128),
    ("tpu", C64, True, (1, 37, 130), True, 8, 128),
    ("tpu", BF16, False, (2, 7, 5), True, 16, 128),
    ("tpu", BF16, True, (3, 1, 4), True, 16, 128),
]


def _case_id(case):
    variant, dtype, reverse, shape, has_h0, _, _ = case
    direction = "reverse" if reverse else "forward"
    h0 = "h0" if has_h0 else "no_h0"
    return f"{variant}-{jnp.dtype(dtype).name}-{direction}-{'x'.join(map(str, shape))}-{h0}"


def _random(rng, shape, dtype, low=None, high=None):
    """Normal (or uniform in [low, high)) values of `dtype`; complex: random phases too."""
    draw = (lambda: rng.normal(size=shape)) if low is None else (lambda: rng.uniform(low, high, shape))
    x = draw()
    if jnp.issubdtype(dtype, jnp.complexfloating):
        x = x * np.exp(1j * rng.uniform(0, 2 * np.pi, shape)) if low is not None else x + 1j * draw()
    return jnp.asarray(x, dtype)


def _inputs(dtype, shape, has_h0, seed):
    """a (|a| < 0.95), b, h0 or None, and random cotangents for the states and final state."""
    rng = np.random.default_rng(seed)
    batch, _, width = shape
    state_dtype = C64 if dtype == C64 else F32
    a = _random(rng, shape, dtype, 0.0, 0.95) if dtype == C64 else _random(rng, shape, dtype, -0.95, 0.95)
    b = _random(rng, shape, dtype)
    h0 = _random(rng, (batch, width), state_dtype) if has_h0 else None
    states_bar = _random(rng, shape, dtype)
    final_bar = _random(rng, (batch, width), state_dtype)
    return a, b, h0, states_bar, final_bar


# --- the float64 reference: one step at a time ------------------------------------------


def _loop(a, b, h0, reverse):
    """h_t = a_t h_{t−1} + b_t over t (batch-first (B, T, D)), stepping one t at a time."""
    def step(h, ab):
        h = ab[0] * h + ab[1]
        return h, h
    final, states = jax.lax.scan(step, h0, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)), reverse=reverse)
    return jnp.swapaxes(states, 0, 1), final


@functools.partial(jax.jit, static_argnames="reverse")
def _reference(a, b, h0, states_bar, final_bar, *, reverse):
    """(states, final, ā, b̄, h̄0) of the float64/complex128 loop."""
    a, b, h0, states_bar, final_bar = to64((a, b, h0, states_bar, final_bar))
    outputs, vjp = jax.vjp(functools.partial(_loop, reverse=reverse), a, b, h0)
    return (*outputs, *vjp((states_bar, final_bar)))


@functools.cache
def _kernel(variant, reverse, block_t, block_d, has_h0, interpret):
    """The kernel's (states, final, ā, b̄, h̄0), jitted once per configuration."""
    def run(a, b, h0, states_bar, final_bar):
        def scan_fn(a, b, h0):
            return diagonal_scan(a, b, h0 if has_h0 else None, reverse=reverse, variant=variant,
                                 interpret=interpret, block_t=block_t, block_d=block_d)
        outputs, vjp = jax.vjp(scan_fn, a, b, h0)
        return (*outputs, *vjp((states_bar, final_bar)))
    return jax.jit(run)


def _assert_close(actual, expected, dtype):
    """Close within TOLERANCE[dtype], relative to each array's largest magnitude."""
    tol = TOLERANCE[dtype]
    for name, x, y in zip(("states", "final", "a_bar", "b_bar", "h0_bar"), actual, expected):
        scale = max(1.0, float(jnp.max(jnp.abs(y))))
        chex.assert_tree_all_finite(x)
        chex.assert_trees_all_close(to64(x) / scale, y / scale, atol=tol, rtol=tol,
                                    custom_message=f"{name} differs from the float64 loop")


@pytest.mark.parametrize("case", [pytest.param(case, id=_case_id(case), marks=pytest.mark.pallas_variant(case[0]))
                                  for case in CASES])
def test_matches_float64_loop_with_gradients(case, interpret):
    variant, dtype, reverse, shape, has_h0, block_t, block_d = case
    a, b, h0, states_bar, final_bar = _inputs(dtype, shape, has_h0, seed_of(_case_id(case)))
    h0_arg = h0 if has_h0 else jnp.zeros_like(final_bar)
    actual = _kernel(variant, reverse, block_t, block_d, has_h0, interpret)(a, b, h0_arg, states_bar, final_bar)
    expected = _reference(a, b, h0_arg, states_bar, final_bar, reverse=reverse)

    batch, _, width = shape
    state_dtype = C64 if dtype == C64 else F32
    chex.assert_shape(actual, [shape, (batch, width), shape, shape, (batch, width)])
    assert [x.dtype for x in actual] == [jnp.dtype(d) for d in (dtype, state_dtype, dtype, dtype, state_dtype)]
    if not has_h0:  # h0=None: the zeros passed to the reference are not the kernel's input
        actual, expected = actual[:4], expected[:4]
    _assert_close(actual, expected, dtype)


@pytest.mark.pallas_variant("gpu")
def test_agrees_with_the_engines_sequential_method(interpret):
    a, b, h0, _, _ = _inputs(F32, (2, 7, 5), True, seed_of("sequential"))
    for reverse in (False, True):
        kernel = diagonal_scan(a, b, h0, reverse=reverse, variant="gpu", interpret=interpret, block_t=4)
        engine = scan(DiagonalMonoid(), (a, b), initial=h0, reverse=reverse, method="sequential")
        chex.assert_trees_all_close(kernel, engine, atol=1e-6, rtol=1e-6)


def test_default_blocks_and_interpret():
    """None for block_t/block_d/interpret: the variant's defaults, interpret on CPU."""
    a, b, _, _, _ = _inputs(F32, (1, 37, 5), False, seed_of("defaults"))
    states, final = diagonal_scan(a, b, variant="gpu")
    expected_states, expected_final = _loop(to64(a), to64(b), jnp.zeros((1, 5), jnp.float64), False)
    chex.assert_trees_all_close((states, final), (expected_states, expected_final), atol=2e-6, rtol=2e-6)


# --- errors -------------------------------------------------------------------------------

_A = jnp.ones((2, 3, 4), F32)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((_A.tolist(), _A), {}, TypeError, r"a must be a JAX or NumPy array"),
    ((_A[0], _A[0]), {}, ValueError, r"a must have shape \(B, T, D\).*\(3, 4\)"),
    ((_A, _A[:, :2]), {}, ValueError, r"same shape.*\(2, 3, 4\).*\(2, 2, 4\)"),
    ((_A, _A.astype(BF16)), {}, TypeError, r"same dtype.*float32.*bfloat16"),
    ((_A.astype(jnp.int32), _A.astype(jnp.int32)), {}, TypeError, r"a must be float32.*got int32"),
    ((_A.astype(jnp.float64), _A.astype(jnp.float64)), {}, TypeError, r"complex64, got float64"),
    ((_A[:, :0], _A[:, :0]), {}, ValueError, r"B, T, D ≥ 1.*\(2, 0, 4\)"),
    ((_A, _A, jnp.ones((2, 3))), {}, ValueError, r"h0 must have shape \(B, D\) = \(2, 4\), got \(2, 3\)"),
    ((_A, _A, jnp.ones((2, 4), jnp.int32)), {}, TypeError, r"h0 must have a floating.*int32"),
    ((_A, _A, jnp.ones((2, 4), C64)), {}, TypeError, r"h0 is complex.*real"),
    ((_A, _A), {"variant": "cuda"}, ValueError, r"variant must be one of.*'cuda'"),
    ((_A, _A), {"interpret": 1}, TypeError, r"interpret must be True, False or None"),
    ((_A, _A), {"reverse": "yes"}, TypeError, r"reverse must be a bool"),
    ((_A, _A), {"variant": "gpu", "block_d": 96}, ValueError, r"block_d must be a power of two.*96"),
    ((_A, _A), {"variant": "gpu", "block_t": 0}, ValueError, r"block_t must be a positive integer.*0"),
    ((_A, _A), {"variant": "gpu", "block_t": 2.0}, ValueError, r"block_t must be a positive integer.*2\.0"),
    ((_A, _A), {"variant": "tpu", "block_d": 64}, ValueError, r"block_d must be a multiple of 128.*64"),
    ((_A, _A), {"variant": "tpu", "block_t": 12}, ValueError, r"block_t must be a multiple of 8.*12"),
    ((_A.astype(BF16), _A.astype(BF16)), {"variant": "tpu", "block_t": 8}, ValueError,
     r"block_t must be a multiple of 16.*bfloat16.*got 8"),
])
def test_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        diagonal_scan(*args, **kwargs)

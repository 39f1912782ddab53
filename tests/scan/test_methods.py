"""Every scan method against the reference loops, in float64.

The grid: every monoid × method (sequential, associative, chunked with C = 1, 3, 16 and
C > T) × initial state (none / given) × direction × resets (none / random), on odd lengths
including T = 1; states and final state both checked. Then the properties a caller relies
on: a packed batch with resets equals its sequences scanned one by one; time may sit on any
axis; "auto" is correct; vmap equals the batched call; jit and no-jit agree.
"""

from __future__ import annotations

import functools
import itertools
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lrnn.scan import SoftmaxMonoid, scan
from tests.scan import monoid_for
from tests.scan.references import CASES, draw, softmax_attention

TOL = dict(rtol=1e-9, atol=1e-9)
B = 2

# (method, chunk_size); 64 is larger than every length used here.
METHODS = [("sequential", None), ("associative", None), ("chunked", 1), ("chunked", 3),
           ("chunked", 16), ("chunked", 64)]
METHOD_IDS = [m if c is None else f"{m}{c}" for m, c in METHODS]
# A representative subset for the tests of other properties: one of each code path.
CORE_METHODS = [("sequential", None), ("associative", None), ("chunked", 3)]
CORE_IDS = ["sequential", "associative", "chunked3"]

# (initial given, reverse, resets given)
OPTIONS = list(itertools.product([False, True], repeat=3))
OPTION_IDS = ["-".join(name for name, on in zip(("h0", "rev", "resets"), o) if on) or "plain" for o in OPTIONS]

every_case = pytest.mark.parametrize("case_name", list(CASES))
every_method = pytest.mark.parametrize("method,chunk_size", METHODS, ids=METHOD_IDS)
core_methods = pytest.mark.parametrize("method,chunk_size", CORE_METHODS, ids=CORE_IDS)
every_option = pytest.mark.parametrize("initial,reverse,resets", OPTIONS, ids=OPTION_IDS)


def seed_of(*key) -> int:
    return zlib.crc32(repr(key).encode())


@functools.lru_cache(maxsize=None)
def problem(case_name, lead, initial, reverse, resets):
    """Random inputs for a case and the reference's (states, final) on them (cached: every
    method is checked against the same reference run)."""
    case = CASES[case_name]
    leaves, h0, flags = draw(case, lead, seed=seed_of(case_name, lead), initial=initial, resets=resets)
    expected = case.reference(leaves, h0, axis=len(lead) - 1, reverse=reverse, resets=flags)
    return leaves, h0, flags, expected


def run(case_name, leaves, h0, flags, *, jit=True, **options):
    """scan(...) of the case's monoid; leaves, initial and resets are traced when jitted."""
    monoid = monoid_for(CASES[case_name])

    def go(leaves, h0, flags):
        return scan(monoid, leaves, initial=h0, resets=flags, **options)

    return (jax.jit(go) if jit else go)(leaves, h0, flags)


def assert_matches(actual, expected):
    chex.assert_trees_all_equal_shapes(actual, expected)
    chex.assert_trees_all_close(actual, expected, **TOL)


@every_case
@every_method
@every_option
@pytest.mark.parametrize("length", [1, 7, 37])
def test_matches_reference(case_name, method, chunk_size, initial, reverse, resets, length):
    leaves, h0, flags, expected = problem(case_name, (B, length), initial, reverse, resets)
    actual = run(case_name, leaves, h0, flags, method=method, chunk_size=chunk_size, reverse=reverse,
                 jit=length > 1)
    assert_matches(actual, expected)


@every_case
@pytest.mark.parametrize("initial,reverse,resets", [(False, False, False), (True, True, True)],
                         ids=["plain", "h0-rev-resets"])
def test_auto_matches_reference(case_name, initial, reverse, resets):
    leaves, h0, flags, expected = problem(case_name, (B, 37), initial, reverse, resets)
    assert_matches(run(case_name, leaves, h0, flags, method="auto", reverse=reverse), expected)


def segment_bounds(lengths):
    ends = np.cumsum(lengths)
    return list(zip(ends - np.asarray(lengths), ends))


@every_case
@core_methods
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_packed_batch_equals_separate_sequences(case_name, method, chunk_size, reverse):
    """Sequences of lengths 4, 1, 5 packed into one row with resets at their first processed
    step (their start, or their end when reversed) scan as if each were alone."""
    case = CASES[case_name]
    lengths = [4, 1, 5]
    bounds = segment_bounds(lengths)
    leaves, _, _ = draw(case, (B, sum(lengths)), seed=seed_of(case_name, "packed"), initial=False, resets=False)
    flags = np.zeros((B, sum(lengths)), bool)
    for start, stop in bounds:
        flags[:, stop - 1 if reverse else start] = True
    options = dict(method=method, chunk_size=chunk_size, reverse=reverse)
    packed_states, packed_final = run(case_name, leaves, None, flags, **options)
    finals = []
    for start, stop in bounds:
        alone_states, alone_final = run(case_name, tuple(x[:, start:stop] for x in leaves), None, None, **options)
        chex.assert_trees_all_close(
            jax.tree_util.tree_map(lambda x: x[:, start:stop], packed_states), alone_states, **TOL)
        finals.append(alone_final)
    chex.assert_trees_all_close(packed_final, finals[0 if reverse else -1], **TOL)


@every_case
@core_methods
@pytest.mark.parametrize("lead", [(7,), (B, 2, 7)], ids=["axis0", "axis2"])
def test_time_on_another_axis(case_name, method, chunk_size, lead):
    """Time at axis 0 (no batch) or axis 2 (two batch dims), all options on."""
    leaves, h0, flags, expected = problem(case_name, lead, True, True, True)
    actual = run(case_name, leaves, h0, flags, axis=len(lead) - 1, method=method, chunk_size=chunk_size,
                 reverse=True)
    assert_matches(actual, expected)


@every_case
@core_methods
def test_vmap_equals_the_batched_call(case_name, method, chunk_size):
    """vmap over an extra leading dim N of (elements, initial, resets) equals one call with
    time at axis 2 of (N, B, T, ...) elements."""
    case = CASES[case_name]
    leaves, h0, flags = draw(case, (3, B, 7), seed=seed_of(case_name, "vmap"), initial=True, resets=True)
    monoid = monoid_for(case)
    options = dict(method=method, chunk_size=chunk_size, reverse=True)
    mapped = jax.vmap(lambda l, h, r: scan(monoid, l, initial=h, resets=r, axis=1, **options))(leaves, h0, flags)
    batched = scan(monoid, leaves, initial=h0, resets=flags, axis=2, **options)
    assert_matches(mapped, batched)


@pytest.mark.parametrize("method,chunk_size", METHODS, ids=METHOD_IDS)
def test_softmax_normalised_state_is_attention(method, chunk_size):
    """With leaves (s_i, 1, v_i), normalised(state_t) = Σ_{i≤t} softmax(s)_i v_i."""
    rng = np.random.default_rng(seed_of("attention"))
    scores, values = 3 * rng.normal(size=(B, 37)), rng.normal(size=(B, 37, 3))
    states, final = scan(SoftmaxMonoid(), (scores, jnp.ones_like(scores), values), method=method,
                         chunk_size=chunk_size)
    attention = softmax_attention(scores, values)
    chex.assert_trees_all_close(SoftmaxMonoid.normalised(states), attention, **TOL)
    chex.assert_trees_all_close(SoftmaxMonoid.normalised(final), attention[:, -1], **TOL)


class JitAndNoJitTest(chex.TestCase):
    """The same call jitted and not jitted, all options on, against the reference."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(case_name=list(CASES), method=CORE_METHODS)
    def test_matches_reference(self, case_name, method):
        method, chunk_size = method
        leaves, h0, flags, expected = problem(case_name, (B, 7), True, True, True)
        monoid = monoid_for(CASES[case_name])

        @self.variant
        def go(leaves, h0, flags):
            return scan(monoid, leaves, initial=h0, resets=flags, reverse=True, method=method,
                        chunk_size=chunk_size)

        assert_matches(go(leaves, h0, flags), expected)

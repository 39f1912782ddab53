"""Every scan method against the reference loops, in float64.

The grid: every monoid × method (sequential, associative, chunked with C = 1, 3, 16 and
C > T) × initial state (none / given) × direction × resets (none / random), at T = 1 and
T = 25 (odd: chunks of 3 and of 16 leave a padded last chunk); states and final state
both checked. Then the properties a caller relies on, at T = 7 or 10: a packed batch with
resets equals its sequences scanned one by one; time may sit on any axis; "auto" is
correct; vmap equals the batched call; jit and no-jit agree.
"""

from __future__ import annotations

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lrnn.scan import DiagonalMonoid, SoftmaxMonoid, scan
from tests.helpers import seed_of
from tests.scan import monoid_for
from tests.scan.references import CASES, diagonal, draw, softmax_attention

TOL = dict(rtol=1e-9, atol=1e-9)
B = 2
T = 25  # the grid's long sequence

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


@functools.lru_cache(maxsize=None)
def problem(case_name, lead, initial, reverse, resets):
    """Random inputs for a case and the reference's (states, final) on them. The leaves
    depend only on (case, lead), so every option scans the same elements."""
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


@functools.lru_cache(maxsize=None)
def grid_outcomes(case_name, lead):
    """{(method, chunk_size, option): (states, final) or the exception raised} for every
    method of METHODS and option of OPTIONS.

    All of them are compiled as one jitted program (compiling is what these tests spend
    their time on, and one program costs far less than fifty); if that program fails, each
    scan is run on its own so that a failure is reported only where it happens.
    """
    inputs = {option: problem(case_name, lead, *option)[:3] for option in OPTIONS}
    keys = [(method, chunk_size, option) for method, chunk_size in METHODS for option in OPTIONS]

    def one(key):
        method, chunk_size, option = key
        return lambda leaves, h0, flags: run(case_name, leaves, h0, flags, jit=False, method=method,
                                             chunk_size=chunk_size, reverse=option[1])

    try:
        results = jax.jit(lambda inputs: [one(key)(*inputs[key[2]]) for key in keys])(inputs)
        return dict(zip(keys, results))
    except Exception:  # noqa: BLE001 - re-raised per scan below
        outcomes = {}
        for key in keys:
            try:
                outcomes[key] = jax.jit(one(key))(*inputs[key[2]])
            except Exception as error:  # noqa: BLE001 - re-raised by the test of this scan
                outcomes[key] = error
        return outcomes


def assert_matches(actual, expected, axis=1):
    """(states, final) equal the reference's, and final is one state: states without time."""
    chex.assert_trees_all_equal_shapes(actual, expected)
    chex.assert_trees_all_close(actual, expected, **TOL)
    states, final = actual
    for s, f in zip(jax.tree_util.tree_leaves(states), jax.tree_util.tree_leaves(final)):
        chex.assert_shape(f, s.shape[:axis] + s.shape[axis + 1:])


@every_method
@every_option
@pytest.mark.parametrize("length", [1, T])
@every_case  # varies slowest, so the tests sharing one compiled grid run together (also under xdist)
def test_matches_reference(case_name, method, chunk_size, initial, reverse, resets, length):
    option = (initial, reverse, resets)
    actual = grid_outcomes(case_name, (B, length))[method, chunk_size, option]
    if isinstance(actual, Exception):
        raise actual
    assert_matches(actual, problem(case_name, (B, length), *option)[3])


@every_case
@pytest.mark.parametrize("method", ["auto", "chunked"], ids=["auto", "chunked-default-size"])
@pytest.mark.parametrize("initial,reverse,resets", [(False, False, False), (True, True, True)],
                         ids=["plain", "h0-rev-resets"])
def test_default_choices_match_reference(case_name, method, initial, reverse, resets):
    """method="auto", and "chunked" without a chunk size, pick what they run themselves."""
    leaves, h0, flags, expected = problem(case_name, (B, T), initial, reverse, resets)
    assert_matches(run(case_name, leaves, h0, flags, method=method, reverse=reverse), expected)


@pytest.mark.parametrize("shape", [(T,), (1, T)], ids=["time-only", "batch-of-one"])
def test_resets_broadcast_over_the_batch(shape):
    """resets broadcastable to (B, T) act as the broadcast array."""
    leaves, _, flags, _ = problem("diagonal", (B, T), False, False, True)
    row = flags[0]
    broadcast = scan(DiagonalMonoid(), leaves, resets=row.reshape(shape), method="sequential")
    explicit = scan(DiagonalMonoid(), leaves, resets=np.broadcast_to(row, (B, T)), method="sequential")
    chex.assert_trees_all_close(broadcast, explicit, **TOL)
    chex.assert_trees_all_close(broadcast, diagonal(leaves, resets=np.broadcast_to(row, (B, T))), **TOL)


@every_case
@core_methods
def test_packed_batch_equals_separate_sequences(case_name, method, chunk_size):
    """Sequences of lengths 4, 1, 5 packed into one row with resets at their first processed
    step (their start, or their end when reversed) scan as if each were alone."""
    case = CASES[case_name]
    bounds = [(0, 4), (4, 5), (5, 10)]
    leaves, _, _ = draw(case, (B, 10), seed=seed_of(case_name, "packed"), initial=False, resets=False)
    flags = {reverse: np.zeros((B, 10), bool) for reverse in (False, True)}
    for start, stop in bounds:
        flags[False][:, start] = flags[True][:, stop - 1] = True
    monoid = monoid_for(case)

    @jax.jit
    def packed_and_alone(leaves, flags):
        out = {}
        for reverse in (False, True):
            options = dict(method=method, chunk_size=chunk_size, reverse=reverse)
            packed = scan(monoid, leaves, resets=flags[reverse], **options)
            alone = [scan(monoid, tuple(x[:, start:stop] for x in leaves), **options) for start, stop in bounds]
            out[reverse] = packed, alone
        return out

    for reverse, ((packed_states, packed_final), alone) in packed_and_alone(leaves, flags).items():
        for (start, stop), (alone_states, _) in zip(bounds, alone):
            chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[:, start:stop], packed_states),
                                        alone_states, **TOL, custom_message=f"reverse={reverse}")
        chex.assert_trees_all_close(packed_final, alone[0 if reverse else -1][1], **TOL,
                                    custom_message=f"reverse={reverse}")


@every_case
@core_methods
def test_time_on_another_axis(case_name, method, chunk_size):
    """Time at axis 0 (no batch) and at axis 2 (two batch dims), all options on."""
    leads = [(7,), (B, 2, 7)]
    problems = [problem(case_name, lead, True, True, True) for lead in leads]

    @jax.jit
    def on_both_axes(inputs):
        return [run(case_name, *args, jit=False, axis=len(lead) - 1, method=method, chunk_size=chunk_size,
                    reverse=True) for lead, args in zip(leads, inputs)]

    for lead, actual, (*_, expected) in zip(leads, on_both_axes([p[:3] for p in problems]), problems):
        assert_matches(actual, expected, axis=len(lead) - 1)


@every_case
@core_methods
def test_vmap_equals_the_batched_call(case_name, method, chunk_size):
    """vmap over an extra leading dim N of (elements, initial, resets) equals one call with
    time at axis 2 of (N, B, T, ...) elements."""
    case = CASES[case_name]
    leaves, h0, flags = draw(case, (3, B, 7), seed=seed_of(case_name, "vmap"), initial=True, resets=True)
    monoid = monoid_for(case)
    options = dict(method=method, chunk_size=chunk_size, reverse=True)

    @jax.jit
    def mapped_and_batched(leaves, h0, flags):
        mapped = jax.vmap(lambda l, h, r: scan(monoid, l, initial=h, resets=r, axis=1, **options))(leaves, h0, flags)
        return mapped, scan(monoid, leaves, initial=h0, resets=flags, axis=2, **options)

    mapped, batched = mapped_and_batched(leaves, h0, flags)
    assert_matches(mapped, batched, axis=2)


def test_softmax_normalised_state_is_attention():
    """With leaves (s_i, 1, v_i), normalised(state_t) = Σ_{i≤t} softmax(s)_i v_i, every method."""
    rng = np.random.default_rng(seed_of("attention"))
    scores, values = 3 * rng.normal(size=(B, T)), rng.normal(size=(B, T, 3))
    attention = softmax_attention(scores, values)

    @jax.jit
    def all_methods(scores, values):
        leaves = (scores, jnp.ones_like(scores), values)
        return [scan(SoftmaxMonoid(), leaves, method=m, chunk_size=c) for m, c in METHODS]

    for method, (states, final) in zip(METHOD_IDS, all_methods(scores, values)):
        chex.assert_trees_all_close(SoftmaxMonoid.normalised(states), attention, **TOL, custom_message=method)
        chex.assert_trees_all_close(SoftmaxMonoid.normalised(final), attention[:, -1], **TOL,
                                    custom_message=method)


class JitAndNoJitTest(chex.TestCase):
    """The same call jitted and not jitted, all options on, against the reference."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(case_name=list(CASES), method=CORE_METHODS)
    def test_agrees_with_reference(self, case_name, method):
        method, chunk_size = method
        leaves, h0, flags, expected = problem(case_name, (B, 7), True, True, True)
        monoid = monoid_for(CASES[case_name])

        @self.variant
        def go(leaves, h0, flags):
            return scan(monoid, leaves, initial=h0, resets=flags, reverse=True, method=method,
                        chunk_size=chunk_size)

        assert_matches(go(leaves, h0, flags), expected)

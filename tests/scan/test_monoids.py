"""The monoid laws, checked on random float64 elements of every monoid (and `Segmented`).

Every scan method is only correct if `combine` is associative with `expand(identity(·))`
as its identity, and if `apply` (one step) is the same map as composing with the state
lifted to an element. Hypothesis draws the seed and the batch shape; the elements are
random, never special values.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrnn.scan import Segmented
from tests.scan import monoid_for
from tests.scan.references import CASES

TOL = dict(rtol=1e-10, atol=1e-12)

seeds = st.integers(0, 2**32 - 1)
# A few batch shapes (none, one and two dims) so eager ops compile once per shape.
batch_shapes = st.sampled_from([(), (3,), (2, 3)])


def build(case_name: str, segmented: bool, seed: int):
    """(case, its monoid — wrapped in `Segmented` if asked — and a generator seeded by `seed`)."""
    case = CASES[case_name]
    inner = monoid_for(case)
    return case, (Segmented(inner=inner) if segmented else inner), np.random.default_rng(seed)


def random_leaf(case, monoid, rng, batch):
    """A random leaf for batch dims `batch`; for `Segmented`, paired with random flags."""
    leaf = tuple(jnp.asarray(x) for x in case.leaves(rng, batch))
    if isinstance(monoid, Segmented):
        return jnp.asarray(rng.uniform(size=batch) < 0.5), leaf
    return leaf


both = pytest.mark.parametrize("segmented", [False, True], ids=["plain", "segmented"])
every_case = pytest.mark.parametrize("case_name", list(CASES))


@every_case
@both
@given(seed=seeds, batch=batch_shapes)
def test_combine_is_associative(case_name, segmented, seed, batch):
    case, monoid, rng = build(case_name, segmented, seed)
    x, y, z = (monoid.expand(random_leaf(case, monoid, rng, batch)) for _ in range(3))
    left = monoid.combine(monoid.combine(x, y), z)
    right = monoid.combine(x, monoid.combine(y, z))
    chex.assert_trees_all_equal_shapes(left, right, x)
    chex.assert_trees_all_close(left, right, **TOL)


@every_case
@both
@given(seed=seeds, batch=batch_shapes)
def test_identity_is_neutral_on_both_sides(case_name, segmented, seed, batch):
    case, monoid, rng = build(case_name, segmented, seed)
    leaf = random_leaf(case, monoid, rng, batch)
    element = monoid.expand(leaf)
    identity = monoid.expand(monoid.identity(leaf))
    chex.assert_trees_all_close(monoid.combine(identity, element), element, **TOL)
    chex.assert_trees_all_close(monoid.combine(element, identity), element, **TOL)


@every_case
@both
@given(seed=seeds, batch=batch_shapes)
def test_apply_is_composition_with_the_lifted_state(case_name, segmented, seed, batch):
    case, monoid, rng = build(case_name, segmented, seed)
    leaf = random_leaf(case, monoid, rng, batch)
    state = case.initial(rng, batch)
    stepped = monoid.apply(leaf, state)
    composed = monoid.state_of(monoid.combine(monoid.lift(state), monoid.expand(leaf)))
    chex.assert_trees_all_equal_shapes(stepped, state)
    chex.assert_trees_all_close(stepped, composed, **TOL)


@every_case
@given(seed=seeds, batch=batch_shapes)
def test_identity_leaf_leaves_every_state_unchanged(case_name, seed, batch):
    case, monoid, rng = build(case_name, segmented=False, seed=seed)
    leaf = random_leaf(case, monoid, rng, batch)
    state = case.initial(rng, batch)
    chex.assert_trees_all_close(monoid.apply(monoid.identity(leaf), state), state, **TOL)


@every_case
@given(seed=seeds, batch=batch_shapes)
def test_apply_matches_one_step_of_the_reference(case_name, seed, batch):
    """apply(leaf, s) is the recurrence's own equation (the reference over one step)."""
    case, monoid, rng = build(case_name, segmented=False, seed=seed)
    leaf = case.leaves(rng, batch + (1,))
    state = case.initial(rng, batch)
    _, expected = case.reference(leaf, state, axis=len(batch))
    at_zero = tuple(jnp.asarray(x)[(slice(None),) * len(batch) + (0,)] for x in leaf)
    chex.assert_trees_all_close(monoid.apply(at_zero, state), expected, **TOL)


@every_case
@given(seed=seeds, batch=batch_shapes)
def test_segmented_flag_starts_from_the_empty_state(case_name, seed, batch):
    """A set flag drops the earlier element: (True, e) after anything is e's own prefix."""
    case, monoid, rng = build(case_name, segmented=True, seed=seed)
    earlier = monoid.expand(random_leaf(case, monoid, rng, batch))
    _, leaf = random_leaf(case, monoid, rng, batch)
    flagged = monoid.expand((jnp.ones(batch, bool), leaf))
    combined_flag, combined = monoid.combine(earlier, flagged)
    np.testing.assert_array_equal(combined_flag, np.ones(batch, bool))
    chex.assert_trees_all_close(combined, monoid.inner.expand(leaf), **TOL)

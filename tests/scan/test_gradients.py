"""Gradients of `scan`, in float64.

1. The diagonal monoid's gradient (a hand-written reverse-scan VJP, except through the
   associative method) against finite differences with `jax.test_util.check_grads`, real
   and complex, for every method, with an initial state, reversed and with resets.
2. For every monoid and method (the sequential method has its own reverse-loop VJP),
   `jax.grad` of a random linear functional of (states, final) with respect to every leaf
   and the initial state equals `jax.grad` through the reference loop. JAX's convention for
   complex inputs holds on both sides, so they are compared as they are.
3. Those custom VJPs under vmap equal the batched gradient.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from lrnn.scan import DiagonalMonoid, scan
from tests.helpers import seed_of
from tests.scan import monoid_for
from tests.scan.references import CASES, draw

B, T = 2, 11  # odd: chunks of 3 pad the last of four
TOL = dict(rtol=1e-8, atol=1e-10)

# (method, chunk_size): chunk size 3 pads the last of several chunks, the hardest case.
METHODS = [("sequential", None), ("associative", None), ("chunked", 3)]
METHOD_IDS = ["sequential", "associative", "chunked3"]
# (initial given, reverse, resets given)
PLAIN, H0, REV, RESETS, ALL = (False, False, False), (True, False, False), (False, True, False), \
    (False, False, True), (True, True, True)

every_method = pytest.mark.parametrize("method,chunk_size", METHODS, ids=METHOD_IDS)
# Against finite differences: each option on its own.
each_option_alone = pytest.mark.parametrize("initial,reverse,resets", [PLAIN, H0, REV, RESETS],
                                            ids=["plain", "h0", "rev", "resets"])
# Against the reference: none, the initial state, and all together (each option is
# checked on its own in the forward tests).
SOME_OPTIONS = [PLAIN, H0, ALL]
some_options = pytest.mark.parametrize("initial,reverse,resets", SOME_OPTIONS, ids=["plain", "h0", "h0-rev-resets"])


# --- 1. the diagonal VJP against finite differences --------------------------------------


@pytest.mark.parametrize("case_name", ["diagonal", "diagonal_complex"])
@every_method
@each_option_alone
def test_diagonal_vjp_matches_finite_differences(case_name, method, chunk_size, initial, reverse, resets):
    leaves, h0, flags = draw(CASES[case_name], (B, 7), seed=seed_of(case_name), initial=initial, resets=resets)
    options = dict(method=method, chunk_size=chunk_size, reverse=reverse, resets=flags)

    if initial:
        f = jax.jit(lambda a, b, h0: scan(DiagonalMonoid(), (a, b), initial=h0, **options))
        args = (*leaves, h0)
    else:
        f = jax.jit(lambda a, b: scan(DiagonalMonoid(), (a, b), **options))
        args = leaves
    check_grads(f, args, order=1, modes=["rev"])


# --- 2. every monoid against the reference's gradient ------------------------------------


def linear_functional(outputs, cotangents):
    """Re Σ outputs · cotangents over every array of (states, final): a real scalar."""
    pairs = zip(jax.tree_util.tree_leaves(outputs), jax.tree_util.tree_leaves(cotangents))
    return sum(jnp.real(jnp.sum(x * c)) for x, c in pairs)


def random_like(rng, tree):
    def one(x):
        x = np.asarray(x)
        noise = rng.normal(size=x.shape)
        return noise + 1j * rng.normal(size=x.shape) if np.iscomplexobj(x) else noise
    return jax.tree_util.tree_map(one, tree)


def gradient(forward, leaves, h0, cotangents):
    """d functional / d(leaves[, h0]) for forward(leaves, h0) -> (states, final)."""
    loss = lambda leaves, h0: linear_functional(forward(leaves, h0), cotangents)  # noqa: E731
    return jax.grad(loss, argnums=(0, 1) if h0 is not None else 0)(leaves, h0)


@functools.lru_cache(maxsize=None)
def problem(case_name, option):
    """(leaves, h0, resets, cotangents, reference gradient) for a case and option."""
    initial, reverse, resets = option
    case = CASES[case_name]
    leaves, h0, flags = draw(case, (B, T), seed=seed_of(case_name, option), initial=initial, resets=resets)
    reference = functools.partial(case.reference, axis=1, reverse=reverse, resets=flags)
    cotangents = random_like(np.random.default_rng(seed_of("cotangents")), reference(leaves, h0))
    expected = gradient(reference, jax.tree_util.tree_map(jnp.asarray, leaves), h0, cotangents)
    return leaves, h0, flags, cotangents, expected


def engine_gradient(case_name, method, chunk_size, option):
    """(leaves, h0, resets, cotangents) -> the engine's gradient for one method and option."""
    monoid = monoid_for(CASES[case_name])

    def of(leaves, h0, flags, cotangents):
        def forward(leaves, h0):
            return scan(monoid, leaves, initial=h0, resets=flags, reverse=option[1], method=method,
                        chunk_size=chunk_size)
        return gradient(forward, leaves, h0, cotangents)
    return of


@functools.lru_cache(maxsize=None)
def engine_gradients(case_name):
    """{(method, chunk_size, option): gradient or the exception raised} for every method of
    METHODS and option of SOME_OPTIONS.

    All of them are compiled as one jitted program (one program compiles in far less time than
    nine); if that program fails, each gradient is compiled on its own so that a failure is
    reported only where it happens.
    """
    keys = [(method, chunk_size, option) for method, chunk_size in METHODS for option in SOME_OPTIONS]
    inputs = {option: problem(case_name, option)[:4] for option in SOME_OPTIONS}
    try:
        results = jax.jit(lambda inputs: [engine_gradient(case_name, *key)(*inputs[key[2]]) for key in keys])(inputs)
        return dict(zip(keys, results))
    except Exception:  # noqa: BLE001 - re-raised per gradient below
        outcomes = {}
        for key in keys:
            try:
                outcomes[key] = jax.jit(engine_gradient(case_name, *key))(*inputs[key[2]])
            except Exception as error:  # noqa: BLE001 - re-raised by the test of this gradient
                outcomes[key] = error
        return outcomes


@every_method
@some_options
@pytest.mark.parametrize("case_name", list(CASES))  # varies slowest: the tests sharing a program run together
def test_gradient_matches_reference(case_name, method, chunk_size, initial, reverse, resets):
    *_, expected = problem(case_name, (initial, reverse, resets))
    actual = engine_gradients(case_name)[method, chunk_size, (initial, reverse, resets)]
    if isinstance(actual, Exception):
        raise actual
    chex.assert_trees_all_equal_shapes(actual, expected)
    chex.assert_trees_all_close(actual, expected, **TOL)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(actual))


@pytest.mark.parametrize("case_name", ["diagonal", "softmax"])
@pytest.mark.parametrize("method,chunk_size", [("sequential", None), ("chunked", 3)], ids=["sequential", "chunked3"])
def test_gradient_under_vmap_equals_the_batched_gradient(case_name, method, chunk_size):
    """The custom VJPs (diagonal reverse scan, sequential reverse loop) batch correctly:
    vmap over a leading dim of the per-example gradient equals the gradient of the scan
    over all examples at once (time at axis 2)."""
    case = CASES[case_name]
    monoid = monoid_for(case)
    leaves, h0, flags = draw(case, (3, B, 7), seed=seed_of(case_name, "vmap"), initial=True, resets=True)
    cotangents = random_like(np.random.default_rng(seed_of("vmap cotangents")),
                             case.reference(leaves, h0, axis=2, resets=flags))

    def per_example(leaves, h0, flags, cotangents, axis=1):
        def forward(leaves, h0):
            return scan(monoid, leaves, initial=h0, resets=flags, axis=axis, method=method, chunk_size=chunk_size)
        return gradient(forward, leaves, h0, cotangents)

    mapped = jax.jit(jax.vmap(per_example))(leaves, h0, flags, cotangents)
    batched = jax.jit(functools.partial(per_example, axis=2))(leaves, h0, flags, cotangents)
    chex.assert_trees_all_close(mapped, batched, **TOL)

"""`scan(..., method="auto")` runs what auto chose for each pass, and stays exact.

With synthetic measurements (`auto.stand_in`) that make one method fastest forward and
another fastest backward or in training, the methods the engine calls are recorded (a spy
wraps each registered method): evaluated, only the forward's runs; differentiated, a
DiagonalMonoid's reverse scan runs the backward's method, and another monoid is
differentiated through the train method alone. Values and gradients, with an initial state,
reversed and with resets, equal the float64 reference loops of `tests/scan/references.py`.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.scan import auto, methods, scan
from tests.scan import monoid_for
from tests.scan.references import CASES, draw

B, T = 2, 8  # chunked4 divides T: auto takes only chunk sizes that do
TOL = dict(rtol=1e-8, atol=1e-10)
SIZES = [(t, n) for t in (4, 64, 4096) for n in (4, 64, 4096)]


def _points(seconds: dict, pass_: str) -> list[dict]:
    return [{"length": t, "lanes": n, "dtype": "float32", "pass": pass_, "seconds": seconds} for t, n in SIZES]


def _measured(forward: str, gradient: str, gradient_pass: str) -> list[dict]:
    """Points where `forward` is fastest forward and `gradient` fastest in `gradient_pass`."""
    def times(fastest):
        return {c: (1.0 if c == fastest else 3.0) for c in ("sequential", "associative", "chunked4")}
    return _points(times(forward), auto.FORWARD) + _points(times(gradient), gradient_pass)


@pytest.fixture
def calls(monkeypatch):
    """The (method, reverse) of every engine method call, recorded while tracing."""
    log = []
    for name in ("sequential", "associative", "chunked"):
        inner = methods.get_method(name)

        def spy(monoid, leaves, initial, *, axis, reverse, chunk_size, name=name, inner=inner):
            log.append((name, reverse))
            return inner(monoid, leaves, initial, axis=axis, reverse=reverse, chunk_size=chunk_size)
        monkeypatch.setitem(methods._REGISTRY, name, spy)
    return log


def _problem(case_name, initial, reverse, resets, seed=0):
    case = CASES[case_name]
    leaves, h0, flags = draw(case, (B, T), seed=seed, initial=initial, resets=resets)
    return case, monoid_for(case), tuple(jnp.asarray(x) for x in leaves), h0, flags


def _loss(run, leaves, h0, weights):
    states, final = run(leaves, h0)
    return sum(jnp.sum(jnp.real(s * w)) for s, w in zip(jax.tree_util.tree_leaves((states, final)), weights))


def _weights(case, leaves, h0, flags, reverse):
    out = jax.eval_shape(lambda: case.reference(leaves, h0, reverse=reverse, resets=flags))
    rng = np.random.default_rng(1)
    return [jnp.asarray(rng.normal(size=x.shape)) for x in jax.tree_util.tree_leaves(out)]


OPTIONS = pytest.mark.parametrize("initial,reverse,resets", [(False, False, False), (True, True, True)],
                                  ids=["plain", "h0-rev-resets"])


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
@OPTIONS
def test_diagonal_forward_and_backward_methods_apart(calls, jit, initial, reverse, resets):
    case, monoid, leaves, h0, flags = _problem("diagonal", initial, reverse, resets)
    maybe_jit = jax.jit if jit else (lambda f: f)
    with auto.stand_in({"diagonal": _measured("associative", "chunked4", auto.BACKWARD)}):
        run = maybe_jit(lambda l, h: scan(monoid, l, initial=h, reverse=reverse, resets=flags))
        chex.assert_trees_all_close(run(leaves, h0), case.reference(leaves, h0, reverse=reverse, resets=flags),
                                    **TOL)
        assert calls == [("associative", reverse)]
        calls.clear()
        weights = _weights(case, leaves, h0, flags, reverse)
        argnums = (0, 1) if initial else 0
        grad = jax.grad(lambda l, h: _loss(lambda a, b: scan(monoid, a, initial=b, reverse=reverse, resets=flags),
                                           l, h, weights), argnums=argnums)
        expected = jax.grad(lambda l, h: _loss(lambda a, b: case.reference(a, b, reverse=reverse, resets=flags),
                                               l, h, weights), argnums=argnums)
        chex.assert_trees_all_close(maybe_jit(grad)(leaves, h0), expected(leaves, h0), **TOL)
    assert calls == [("associative", reverse), ("chunked", not reverse)]


@pytest.mark.parametrize("case_name", ["matrix_decay_rows", "dense", "rank_one"])
@OPTIONS
def test_other_monoids_train_through_the_train_method(calls, case_name, initial, reverse, resets):
    case, monoid, leaves, h0, flags = _problem(case_name, initial, reverse, resets)
    family = monoid.family
    with auto.stand_in({family: _measured("chunked4", "sequential", auto.TRAIN)}):
        run = jax.jit(lambda l, h: scan(monoid, l, initial=h, reverse=reverse, resets=flags))
        chex.assert_trees_all_close(run(leaves, h0), case.reference(leaves, h0, reverse=reverse, resets=flags),
                                    **TOL)
        assert calls == [("chunked", reverse)]
        calls.clear()
        weights = _weights(case, leaves, h0, flags, reverse)
        argnums = (0, 1) if initial else 0
        grad = jax.jit(jax.grad(lambda l, h: _loss(
            lambda a, b: scan(monoid, a, initial=b, reverse=reverse, resets=flags), l, h, weights), argnums=argnums))
        expected = jax.grad(lambda l, h: _loss(
            lambda a, b: case.reference(a, b, reverse=reverse, resets=flags), l, h, weights), argnums=argnums)
        chex.assert_trees_all_close(grad(leaves, h0), expected(leaves, h0), **TOL)
    assert calls == [("sequential", reverse)]


def test_one_method_for_both_passes_is_called_directly(calls):
    case, monoid, leaves, h0, flags = _problem("matrix_decay_rows", False, False, False)
    with auto.stand_in({"matrix": _measured("associative", "associative", auto.TRAIN)}):
        jax.grad(lambda l: jnp.sum(scan(monoid, l)[0]))(leaves)
        # no custom VJP around it: forward-mode differentiation works as through the method
        jax.jvp(lambda l: scan(monoid, l)[0], (leaves,), (leaves,))
    assert {name for name, _ in calls} == {"associative"}


def test_a_named_method_runs_both_passes(calls):
    case, monoid, leaves, h0, flags = _problem("diagonal", False, False, False)
    with auto.stand_in({"diagonal": _measured("associative", "sequential", auto.BACKWARD)}):
        jax.grad(lambda l: jnp.sum(scan(monoid, l, method="chunked", chunk_size=4)[0]))(leaves)
    assert calls == [("chunked", False), ("chunked", True)]


def test_chunked_without_a_size_takes_the_fastest_measured_chunk(calls, monkeypatch):
    seen = []
    inner = methods.get_method("chunked")
    monkeypatch.setitem(methods._REGISTRY, "chunked",
                        lambda *a, chunk_size, **k: seen.append(chunk_size) or inner(*a, chunk_size=chunk_size, **k))
    case, monoid, leaves, h0, flags = _problem("diagonal", False, False, False)
    seconds = {"sequential": 1.0, "chunked2": 3.0, "chunked3": 2.0, "chunked8": 4.0}
    with auto.stand_in({"diagonal": _points(seconds, auto.FORWARD)}):
        chex.assert_trees_all_close(scan(monoid, leaves, method="chunked")[0], case.reference(leaves)[0], **TOL)
    assert seen == [3]


@pytest.mark.parametrize("length,expected", [(9, ("chunked", 3)), (10, ("chunked", 2)), (11, ("sequential", None))])
def test_auto_takes_only_chunk_sizes_that_divide_the_length(calls, monkeypatch, length, expected):
    """A chunk size that does not divide T pads the elements, a cost the measurements (taken at
    multiples of the chunk) do not show: auto passes over it."""
    seen = []
    inner = methods.get_method("chunked")
    monkeypatch.setitem(methods._REGISTRY, "chunked",
                        lambda *a, chunk_size, **k: seen.append(chunk_size) or inner(*a, chunk_size=chunk_size, **k))
    leaves = tuple(jnp.asarray(x) for x in draw(CASES["diagonal"], (B, length), seed=3, initial=False,
                                                 resets=False)[0])
    seconds = {"sequential": 3.0, "chunked3": 1.0, "chunked2": 2.0}
    with auto.stand_in({"diagonal": _points(seconds, auto.FORWARD)}):
        states = scan(monoid_for(CASES["diagonal"]), leaves)[0]
    chex.assert_trees_all_close(states, CASES["diagonal"].reference(leaves)[0], **TOL)
    method, chunk = expected
    assert calls[0][0] == method and seen == ([chunk] if chunk else [])

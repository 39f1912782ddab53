"""A scan that runs one method when evaluated and another when differentiated.

For a monoid without the diagonal reverse-scan VJP, JAX differentiates the method itself,
and the method fastest for the forward pass need not be the one whose forward+backward is
fastest (measured: `experiments/bench_scan.py`). `scan_by_pass` is a `jax.custom_vjp` whose
primal (what runs when nothing differentiates it) is the `forward` method and whose forward
rule is `jax.vjp` of the `train` method, so under `jax.grad` the whole forward and backward
is the train method's, with its own residuals:

    value:      states = forward_method(elements, initial)
    gradient:   (states, pullback) = vjp(train_method, elements, initial);  cotangents ↦ pullback

Reverse mode only, like every custom VJP (no `jax.jvp` through it).
"""

from __future__ import annotations

import functools

import jax

from lrnn.scan.methods import get_method


def _run(monoid, spec, leaves, initial, axis, reverse):
    method, chunk_size = spec
    return get_method(method)(monoid, leaves, initial, axis=axis, reverse=reverse, chunk_size=chunk_size)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4, 5, 6))
def scan_by_pass(monoid, leaves, initial, forward, train, axis, reverse):
    """(states, final) by `forward` = (method, chunk_size); differentiated through `train`."""
    return _run(monoid, forward, leaves, initial, axis, reverse)


def _forward(monoid, leaves, initial, forward, train, axis, reverse):
    return jax.vjp(lambda l, h: _run(monoid, train, l, h, axis, reverse), leaves, initial)


def _backward(monoid, forward, train, axis, reverse, pullback, cotangents):
    return pullback(cotangents)


scan_by_pass.defvjp(_forward, _backward)

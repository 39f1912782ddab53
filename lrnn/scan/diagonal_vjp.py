"""The diagonal scan with a custom VJP that is itself a reverse scan.

Forward (any method), in processing order t = 0 … T−1 with h_{−1} = h0:

    h_t = a_t ⊙ h_{t-1} + b_t

Backward, with ȳ_t the cotangent of h_t (the final state's cotangent added at t = T−1):

    g_t  = ȳ_t + a_{t+1} ⊙ g_{t+1}        (g_T = 0: a diagonal scan run the other way)
    ā_t  = g_t ⊙ h_{t-1}
    b̄_t  = g_t
    h̄0   = a_0 ⊙ g_0

JAX's VJP is the transpose of the linear map, not its adjoint, so for complex values none
of these carry a conjugate (they coincide with the textbook adjoint A* for real values).
The residuals are a, the states and h0. Measured (compiled temp bytes of the gradient,
per float of B·T·D, tests/scan/test_memory.py): this VJP needs 3.0 with the sequential and
chunked methods, autodiff through the same sequential loop 4.0, autodiff through
lax.associative_scan 5.3 (its levels shrink geometrically, so it is O(T·D) too, not
O(T·D·log T)). Wrapped around the associative method this VJP needs 7.4, more than
autodiff's 5.3, so `uses_reverse_scan_vjp("associative")` is False and the engine lets
JAX differentiate that method when it is asked for by name.

The forward and the backward scan each run their own method, `forward` and `backward`
((method, chunk size) pairs): `method="auto"` picks each from its own pass's measurements.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lrnn.scan import timeaxis
from lrnn.scan.diagonal import DiagonalMonoid
from lrnn.scan.methods import get_method

DIAGONAL = DiagonalMonoid()
_AUTODIFF_CHEAPER = frozenset({"associative"})


def uses_reverse_scan_vjp(method: str) -> bool:
    """Whether the diagonal scan through `method` is differentiated by the reverse scan."""
    return method not in _AUTODIFF_CHEAPER


def _run(spec, a, b, h0, axis, reverse):
    method, chunk_size = spec
    return get_method(method)(DIAGONAL, (a, b), h0, axis=axis, reverse=reverse, chunk_size=chunk_size)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def diagonal_scan(a, b, h0, forward, backward, axis, reverse):
    """States (time at `axis`) and final state of h_t = a_t h_{t-1} + b_t from h0, the forward
    scan by `forward` = (method, chunk_size), the reverse scan of the gradient by `backward`."""
    return _run(forward, a, b, h0, axis, reverse)


def _forward(a, b, h0, forward, backward, axis, reverse):
    states, final = _run(forward, a, b, h0, axis, reverse)
    return (states, final), (a, states, h0)


def gradient(backward, a, states, h0, states_bar, final_bar, axis, reverse):
    """(ā, b̄, h̄0) from the residuals and the cotangents of the states and final state, the
    reverse scan run by `backward` = (method, chunk_size)."""
    last = 0 if reverse else a.shape[axis] - 1
    states_bar = timeaxis.put(states_bar, timeaxis.at(states_bar, last, axis) + final_bar, last, axis)
    a_next = timeaxis.shift(a, jnp.zeros_like(h0), axis, not reverse)
    g, _ = _run(backward, a_next, states_bar, None, axis, not reverse)
    h_prev = timeaxis.shift(states, h0, axis, reverse)
    first = a.shape[axis] - 1 if reverse else 0
    h0_bar = timeaxis.at(a, first, axis) * timeaxis.at(g, first, axis)
    return g * h_prev, g, h0_bar


def _backward(forward, backward, axis, reverse, residuals, cotangents):
    a, states, h0 = residuals
    return gradient(backward, a, states, h0, *cotangents, axis, reverse)


diagonal_scan.defvjp(_forward, _backward)

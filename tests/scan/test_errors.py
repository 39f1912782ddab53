"""Bad input to `scan` fails before anything is traced, with an error naming the argument.

Each row of `BAD_CALLS` is one mistake a caller can make: the call, the exception type and
a pattern the message must match (the argument's name and, where it has one, what was
expected and what was given).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.scan import (
    DenseMonoid,
    DiagonalMonoid,
    IdentityMinusRankOneMonoid,
    LogDiagonalMonoid,
    MatrixDecayMonoid,
    SoftmaxMonoid,
    scan,
)
from lrnn.scan import methods as scan_methods

B, T, D, K, V = 2, 5, 3, 3, 2


def arr(*shape, dtype=jnp.float32):
    return jnp.ones(shape, dtype)


DIAG = (arr(B, T, D), arr(B, T, D))

# (id, monoid, elements, keyword arguments, exception, message pattern)
BAD_CALLS = [
    # elements
    ("a-b-shapes", DiagonalMonoid(), (arr(B, T, D), arr(B, T, 4)), {}, ValueError,
     r"elements\[0\] \(a\) of DiagonalMonoid must have shape \(2, 5, 4\).*got \(2, 5, 3\)"),
    ("time-lengths-differ", DiagonalMonoid(), (arr(B, T, D), arr(B, T + 1, D)), {}, ValueError,
     r"elements\[1\] \(b\) has leading shape \(2, 6\) but elements\[0\] \(a\) has \(2, 5\)"),
    ("batch-sizes-differ", SoftmaxMonoid(), (arr(B, T), arr(B + 1, T), arr(B, T, V)), {}, ValueError,
     r"elements\[1\] \(u\) has leading shape \(3, 5\) but elements\[0\] \(m\) has \(2, 5\)"),
    ("empty-time-axis", DiagonalMonoid(), (arr(B, 0, D), arr(B, 0, D)), {}, ValueError,
     r"scan axis 1 must have length ≥ 1, got 0"),
    ("integer-elements", DiagonalMonoid(), (arr(B, T, D, dtype=jnp.int32), arr(B, T, D)), {}, TypeError,
     r"elements\[0\] \(a\) must be a floating or complex array, got dtype int32"),
    ("bool-elements", DiagonalMonoid(), (arr(B, T, D), arr(B, T, D, dtype=bool)), {}, TypeError,
     r"elements\[1\] \(b\) must be a floating or complex array, got dtype bool"),
    ("too-many-leaves", DiagonalMonoid(), DIAG + (arr(B, T, D),), {}, ValueError,
     r"elements: DiagonalMonoid takes 2 arrays \(a, b\), got 3"),
    ("too-few-leaves", SoftmaxMonoid(), (arr(B, T), arr(B, T)), {}, ValueError,
     r"elements: SoftmaxMonoid takes 3 arrays \(m, u, w\), got 2"),
    ("elements-not-a-tuple", DiagonalMonoid(), arr(B, T, D), {}, TypeError,
     r"elements must be a tuple of arrays \(a, b\) for DiagonalMonoid, got ArrayImpl"),
    # monoid-specific shapes
    ("matrix-decay-shape", MatrixDecayMonoid(), (arr(B, T, 4), arr(B, T, K, V)), {}, ValueError,
     r"elements\[0\] \(decay\) of MatrixDecayMonoid must have shape \(2, 5, 3\) .*or \(2, 5\) .*got \(2, 5, 4\)"),
    ("matrix-decay-update-not-a-matrix", MatrixDecayMonoid(), (arr(T), arr(T)), dict(axis=0), ValueError,
     r"elements\[1\] \(update\) of MatrixDecayMonoid must have shape \(batch\.\.\., T, \.\.\., K, V\).*got \(5,\)"),
    ("matrix-decay-batched-update-not-a-matrix", MatrixDecayMonoid(), (arr(B, T), arr(B, T)), {}, ValueError,
     r"elements\[1\] \(update\) of MatrixDecayMonoid"),
    ("dense-transition-shape", DenseMonoid(), (arr(B, T, K, 4), arr(B, T, K, V)), {}, ValueError,
     r"elements\[0\] \(transition\) of DenseMonoid must have shape \(2, 5, 3, 3\).*got \(2, 5, 3, 4\)"),
    ("rank-one-u-shape", IdentityMinusRankOneMonoid(), (arr(B, T, 4), arr(B, T, K), arr(B, T, K, V)), {},
     ValueError, r"elements\[0\] \(u\) of IdentityMinusRankOneMonoid must have shape \(2, 5, 3\).*got \(2, 5, 4\)"),
    ("rank-one-w-shape", IdentityMinusRankOneMonoid(), (arr(B, T, K), arr(B, T, 4), arr(B, T, K, V)), {},
     ValueError, r"elements\[1\] \(w\) of IdentityMinusRankOneMonoid must have shape \(2, 5, 3\).*got \(2, 5, 4\)"),
    ("softmax-w-shape", SoftmaxMonoid(), (arr(B, T), arr(B, T), arr(B, T, 4, V)), {}, ValueError,
     r"elements\[2\] \(w\) of SoftmaxMonoid must have shape \(2, 5\) \+ \(V,\), got \(2, 5, 4, 2\)"),
    ("softmax-u-shape", SoftmaxMonoid(), (arr(B, T), arr(B, T, 4), arr(B, T, V)), {}, ValueError,
     r"elements\[1\] \(u\) of SoftmaxMonoid must have shape \(2, 5\).*got \(2, 5, 4\)"),
    # real-only monoids
    ("log-diagonal-complex", LogDiagonalMonoid(), (arr(B, T, D, dtype=jnp.complex64), arr(B, T, D)), {},
     ValueError, r"elements\[0\] \(log_a\) of LogDiagonalMonoid must be real, got dtype complex64"),
    ("softmax-complex", SoftmaxMonoid(), (arr(B, T), arr(B, T), arr(B, T, V, dtype=jnp.complex64)), {},
     ValueError, r"elements\[2\] \(w\) of SoftmaxMonoid must be real, got dtype complex64"),
    # options
    ("chunk-size-zero", DiagonalMonoid(), DIAG, dict(method="chunked", chunk_size=0), ValueError,
     r"chunk_size must be a positive int or None, got 0"),
    ("chunk-size-negative", DiagonalMonoid(), DIAG, dict(method="chunked", chunk_size=-3), ValueError,
     r"chunk_size must be a positive int or None, got -3"),
    ("chunk-size-float", DiagonalMonoid(), DIAG, dict(method="chunked", chunk_size=2.5), ValueError,
     r"chunk_size must be a positive int or None, got 2.5"),
    ("unknown-method", DiagonalMonoid(), DIAG, dict(method="fastest"), ValueError,
     r"method must be one of \('auto', 'sequential', 'associative', 'chunked'.*\), got 'fastest'"),
    ("axis-negative", DiagonalMonoid(), DIAG, dict(axis=-1), ValueError,
     r"axis must be a non-negative int counted from the front .*got -1"),
    ("axis-bool", DiagonalMonoid(), DIAG, dict(axis=True), ValueError,
     r"axis must be a non-negative int .*got True"),
    ("axis-out-of-range", DiagonalMonoid(), DIAG, dict(axis=3), ValueError,
     r"axis=3 is out of range for elements\[0\] \(a\) with shape \(2, 5, 3\)"),
    ("resets-shape", DiagonalMonoid(), DIAG, dict(resets=arr(B, T + 1, dtype=bool)), ValueError,
     r"resets must have shape \(2, 5\) .*got \(2, 6\)"),
    ("resets-dtype", DiagonalMonoid(), DIAG, dict(resets=arr(B, T, dtype=jnp.int32)), TypeError,
     r"resets must be a bool array of shape \(2, 5\) .*got dtype int32"),
    ("initial-shape", DiagonalMonoid(), DIAG, dict(initial=arr(B, 4)), ValueError,
     r"initial must have shape \(2, 3\) .*got \(2, 4\)"),
    ("initial-with-time-axis", DiagonalMonoid(), DIAG, dict(initial=arr(B, T, D)), ValueError,
     r"initial must have shape \(2, 3\) .*got \(2, 5, 3\)"),
    ("initial-complex-for-real", DiagonalMonoid(), DIAG, dict(initial=arr(B, D, dtype=jnp.complex64)), TypeError,
     r"initial is complex \(complex64\) but the monoid's state is real \(float32\)"),
    ("initial-integer", DiagonalMonoid(), DIAG, dict(initial=arr(B, D, dtype=jnp.int32)), TypeError,
     r"initial must be floating or complex, got dtype int32"),
    ("initial-structure", SoftmaxMonoid(), (arr(B, T), arr(B, T), arr(B, T, V)), dict(initial=arr(B)), ValueError,
     r"initial must be structured like the state"),
    ("monoid-not-a-monoid", "diagonal", DIAG, {}, TypeError,
     r"monoid must be an lrnn.scan Monoid \(e.g. DiagonalMonoid\(\)\), got str"),
]


@pytest.mark.parametrize("monoid,elements,kwargs,error,pattern", [row[1:] for row in BAD_CALLS],
                         ids=[row[0] for row in BAD_CALLS])
def test_bad_call_names_the_argument(monoid, elements, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        scan(monoid, elements, **kwargs)


@pytest.mark.parametrize("monoid,elements,kwargs,error,pattern", [row[1:] for row in BAD_CALLS[:3]],
                         ids=[row[0] for row in BAD_CALLS[:3]])
def test_bad_call_fails_the_same_under_jit(monoid, elements, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        jax.jit(lambda elements: scan(monoid, elements, **kwargs))(elements)


def test_pallas_not_registered_says_so(monkeypatch):
    """Until a Pallas kernel registers itself, method="pallas" says how it gets registered."""
    monkeypatch.delitem(scan_methods._REGISTRY, "pallas", raising=False)
    with pytest.raises(ValueError, match=re.escape("got 'pallas' (the Pallas kernels register it")):
        scan(DiagonalMonoid(), DIAG, method="pallas")


def test_valid_call_passes_validation():
    """The baseline every bad call above differs from by one argument: it runs."""
    states, final = scan(DiagonalMonoid(), DIAG, initial=arr(B, D), resets=np.zeros((B, T), bool),
                         method="chunked", chunk_size=2)
    assert states.shape == (B, T, D) and final.shape == (B, D)

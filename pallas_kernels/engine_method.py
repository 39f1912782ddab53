"""The "pallas" method of `lrnn.scan`: the engine's layout in, the diagonal kernel's out.

The engine hands a method leaves with time at `axis` and any dims before and after it, e.g.
(B, T, D) or (B, T, H, N). The diagonal kernel takes (B, T, D), so the dims before the time axis
are merged into one batch dim and the dims after it into one channel dim — reshapes of
contiguous arrays, no copies — and the results are shaped back.

Only `DiagonalMonoid` has a kernel. The matrix-state cells reach their chunk kernels through
the chunkwise forms (`register_chunk_kernel`), not through a monoid scan, so any other monoid
given "pallas" fails here with a message that says what to use instead.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from lrnn.scan import DiagonalMonoid
from pallas_kernels.diagonal_scan import INPUT_DTYPES, diagonal_scan


def has_kernel(monoid, dtype=None) -> bool:
    """Whether a scan of `monoid` (with elements of `dtype`) has a Pallas kernel: DiagonalMonoid
    itself, not its relatives, in 32 bits or fewer (the kernel computes in float32)."""
    return type(monoid) is DiagonalMonoid and (dtype is None or jnp.dtype(dtype) in INPUT_DTYPES)


def pallas_method(monoid, leaves, initial, *, axis, reverse, chunk_size=None):
    """(states, final state) of a DiagonalMonoid scan by the Pallas diagonal kernel."""
    if not has_kernel(monoid):
        raise ValueError(
            f"method='pallas' has a kernel for DiagonalMonoid scans only, got {type(monoid).__name__}; "
            "matrix-state cells (GLA, HGRN2, DeltaNet, gated DeltaNet) reach their Pallas chunk kernels "
            "through the cell's forward(method='pallas'). Use method 'sequential', 'associative' or "
            "'chunked' for this monoid.")
    a, b = leaves
    if not has_kernel(monoid, a.dtype):
        raise TypeError(f"method='pallas' computes in float32: elements must be float32, bfloat16, float16 or "
                        f"complex64, got {a.dtype}; use a pure-JAX method for 64-bit scans")
    shape = a.shape
    lead, length, trail = shape[:axis], shape[axis], shape[axis + 1:]
    flat = (math.prod(lead), length, math.prod(trail))
    h0 = None if initial is None else jnp.reshape(initial, (flat[0], flat[2]))
    states, final = diagonal_scan(a.reshape(flat), b.reshape(flat), h0, reverse=reverse)
    return states.reshape(shape), final.reshape(lead + trail)

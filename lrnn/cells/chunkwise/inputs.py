"""Argument checks of the chunkwise ops: a mismatch fails here, naming the argument, the
shape expected and the shape given, before anything is traced into a matmul."""

from __future__ import annotations

import jax.numpy as jnp

from lrnn.cells import checks


def _text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def require(name: str, x, expected: tuple, layout: str) -> None:
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {layout} = {_text(expected)}, got {_text(x.shape)}")


def attention(q, k, v, initial, chunk_size, **gates) -> None:
    """q, k (B, H, T, K), v (B, H, T, V), initial (B, H, K, V) (or a tuple whose last part is),
    each gate (B, H, T) or (B, H, T, K) as its layout says, chunk_size a positive int.

    `gates` maps a name to (array, layout), layout "(B, H, T)" or "(B, H, T, K)"."""
    checks.positive_int("chunk_size", chunk_size)
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.ndim != 4:
            raise ValueError(f"{name} must have shape (B, H, T, {'V' if name == 'v' else 'K'}), got {_text(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            raise TypeError(f"{name} must be a floating array, got dtype {x.dtype}")
    b, h, t, width = q.shape
    require("k", k, (b, h, t, width), "(B, H, T, K) like q")
    require("v", v, (b, h, t, v.shape[-1]), "(B, H, T, V) with q's B, H, T")
    state = initial[-1] if isinstance(initial, tuple) else initial
    require("initial", state, (b, h, width, v.shape[-1]), "(B, H, K, V)")
    for name, (x, layout) in gates.items():
        if x is not None:
            require(name, x, (b, h, t, width) if layout.endswith("K)") else (b, h, t), layout)

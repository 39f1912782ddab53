"""What the chunk kernels (`decay_attention`, `delta_rule`) check and lay out alike.

Checks run before anything is traced; a failure names the argument, the layout and shape
expected and what was given. Layout at the boundary: q, k (B, H, T, K), v (B, H, T, V), gates
(B, H, T) or (B, H, T, K), initial (B, H, K, V). Inside, batch and heads are one axis G = B·H,
T is padded to whole chunks and K, V to the widths the blocks hold: a power of two ≥ 16 on
GPU (Triton's tile sizes), a multiple of 128 lanes on TPU.
"""

from __future__ import annotations

import jax.numpy as jnp

from pallas_kernels.platform import TPU_LANES, pad_axis, round_up

CHUNK_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
MIN_CHUNK = 16


def shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_chunk_size(chunk_size, largest: int | None = None) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < MIN_CHUNK \
            or chunk_size & (chunk_size - 1) or (largest is not None and chunk_size > largest):
        sizes = f"{MIN_CHUNK} … {largest}" if largest else f"≥ {MIN_CHUNK}"
        raise ValueError(f"chunk_size must be a power of two {sizes} (16, 32, 64, …: the matmul tiles), "
                         f"got {chunk_size!r}")


def _check_dtype(form: str, name: str, x) -> None:
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{name} is complex ({x.dtype}): the Pallas {form} kernel takes real inputs; the "
                        f"pure-JAX lrnn.cells.chunkwise.{form} takes complex ones (rotating decays)")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a real floating array, got dtype {x.dtype}")
    if name != "initial" and jnp.dtype(x.dtype) not in CHUNK_DTYPES:
        raise TypeError(f"{name} must be float32 or bfloat16, got dtype {x.dtype}")


def check_attention(form: str, q, k, v, initial, chunk_size, largest_chunk=None, **gates) -> None:
    """q, k (B, H, T, K) and v (B, H, T, V) of one dtype (float32 or bfloat16), T ≥ 1; each
    gate float32 or bfloat16 shaped as its layout says; initial (B, H, K, V) real floating or
    None; chunk_size a power of two ≥ 16 (and ≤ largest_chunk). `gates` maps a name to (array or None, layout),
    layout "(B, H, T)" or "(B, H, T, K)"."""
    check_chunk_size(chunk_size, largest_chunk)
    arrays = {"q": q, "k": k, "v": v, **{name: x for name, (x, _) in gates.items() if x is not None}}
    if initial is not None:
        arrays["initial"] = initial
    for name, x in arrays.items():
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    for name in ("q", "k", "v"):
        if arrays[name].ndim != 4:
            layout = "(B, H, T, V)" if name == "v" else "(B, H, T, K)"
            raise ValueError(f"{name} must have shape {layout}, got {shape_text(arrays[name].shape)}")
    for name, x in arrays.items():
        _check_dtype(form, name, x)
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    batch, heads, length, width = q.shape
    values = v.shape[-1]
    expected = {"k": ((batch, heads, length, width), "(B, H, T, K) like q"),
                "v": ((batch, heads, length, values), "(B, H, T, V) with q's B, H, T"),
                "initial": ((batch, heads, width, values), "(B, H, K, V)")}
    for name, (_, layout) in gates.items():
        expected[name] = ((batch, heads, length, width) if layout.endswith("K)") else (batch, heads, length), layout)
    for name, (shape, layout) in expected.items():
        if name in arrays and tuple(arrays[name].shape) != shape:
            raise ValueError(f"{name} must have shape {layout} = {shape_text(shape)}, "
                             f"got {shape_text(arrays[name].shape)}")
    if min(q.shape) == 0 or values == 0:
        raise ValueError(f"q and v must have no empty axis (at least one token), got q {shape_text(q.shape)}, "
                         f"v {shape_text(v.shape)}")


def block_width(n: int, variant: str) -> int:
    """K or V as the kernels' blocks hold it."""
    if variant == "gpu":
        return max(MIN_CHUNK, 1 << (n - 1).bit_length())
    return round_up(n, TPU_LANES)


def heads_flat(x, length: int, width: int | None = None):
    """(B, H, T[, D]) -> (B·H, length[, width]), zero-padded at the ends."""
    x = pad_axis(x.reshape((-1,) + x.shape[2:]), 1, length)
    return x if width is None else pad_axis(x, 2, width)

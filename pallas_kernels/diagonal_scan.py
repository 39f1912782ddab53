"""The diagonal linear recurrence as Pallas kernels: a forward scan and a fused reverse-scan VJP.

Equations (elementwise over channels, processing order t = 0 … T−1, or T−1 … 0 when
`reverse`, with h_{−1} = h0, or h_T = h0 when `reverse`):

    forward     h_t = a_t ⊙ h_{t−1} + b_t

    backward    g_t = ȳ_t + a_{t+1} ⊙ g_{t+1}       (the final state's cotangent enters at the
                                                     last processed step; "t+1" = next processed)
                ā_t = g_t ⊙ h_{t−1},   b̄_t = g_t,   h̄0 = a_first ⊙ g_first

For complex values JAX's VJP is the transpose of the linear map, with no conjugation (as in
lrnn/scan/diagonal_vjp.py). TPUs have no complex dtypes, so a complex scan runs on real and
imaginary planes (separate float32 arrays; one kernel body generic over 1 or 2 planes):

    h_re' = a_re h_re − a_im h_im + b_re,    h_im' = a_re h_im + a_im h_re + b_im.

The custom VJP is defined on the planes, where the backward is the real transpose
(c = Aᵀg, ā = g·hᵀ per channel: in complex notation conj(a)·g and conj(h)·g on the planes);
JAX's own transposes of `real`, `imag` and `lax.complex` around it turn that into the
unconjugated complex VJP above.

Design
- One row (time step) of a block of channels at a time: load a_t, b_t (any float dtype), cast
  to float32, one multiply-add, store h_t in the input dtype. The carry is float32 (two planes
  for complex). bf16 stays bf16 in memory: the floor is memory traffic, 12 B/element forward
  (read a, b; write h) and 20 B/element backward (read a, h, ȳ; write ā, b̄) in float32.
- Backward: ONE kernel, rows in the opposite order. The carry c = a_t ⊙ g_t (float32) flows to
  the previous step; h_{t−1} for ā_t is read from the saved states (h0 at the first forward
  step). Residuals: a, the states and h0 (not b). The backward's carry starts as the final
  state's cotangent and ends as h̄0.
- "gpu" variant (Triton lowering; programs run in parallel): grid (B, D/block_d); each program
  holds the whole time axis of its channel block in global memory (block (1, T, block_d)) and
  loops over time inside: a fori_loop over whole tiles of block_t rows, the rows of a tile
  unrolled, then the remaining T mod block_t rows unrolled (so time is never padded). The carry
  lives in registers. Every load/store is one (1, block_d) row, so block_d must be a power of
  two (Triton's tensor sizes); block_t (the unroll) may be any positive integer.
- "tpu" variant (Mosaic; the grid runs in order): grid (B, D/block_d, T/block_t) with time last;
  blocks (1, block_t, block_d), multiples of (8, 128) ((16, 128) for 2-byte dtypes). The carry is
  the resident (1, 1, block_d) block of the float32 final-state output (index map ignores the
  time index), initialised from h0 at the first time step. `reverse` reverses the time index
  map and the in-tile row order. In the backward, the first row of a tile needs h_{t−1} from the
  neighbouring tile, which is read as one extra small block (8 or 16 rows) of the states (a
  block_t/8-th more reads of h); at the first forward tile it is h0 instead.
- Padding (a copy of the inputs, and of the outputs when cropped; the padded states are also
  what the backward keeps): channels are padded with zeros to a multiple of block_d (both
  variants), time with identity steps a = 1, b = 0 at the end to a multiple of block_t ("tpu"
  only). Identity steps leave the state unchanged in either direction: processed after the last
  real step (forward) or before the first (reverse), where the state is h0. No copy is made
  when D is a multiple of block_d and (tpu) T a multiple of block_t.
- Lowering status: on CPU both variants run with interpret=True (tested). Compiled lowering on
  GPU (Triton) and TPU (Mosaic) follows the documented Pallas rules but is not verified here.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels.platform import (TPU_LANES, TPU_SUBLANES, compiler_params, interpret_mode, kernel_variant,
                                     pad_axis, round_up)

INPUT_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64)
_GPU_BLOCK_D, _GPU_BLOCK_T = 128, 16
_TPU_BLOCK_D, _TPU_BLOCK_T = 512, 64


@dataclasses.dataclass(frozen=True)
class _Config:
    """Everything static about one kernel call (hashable: a nondiff argument of the VJP)."""
    variant: str
    reverse: bool
    block_t: int
    block_d: int
    interpret: bool


# --- arithmetic on tuples of planes: (x,) real, (x_re, x_im) complex ----------------------


def _add(x, y):
    return tuple(u + v for u, v in zip(x, y))


def _mul(x, y):
    """x ⊙ y."""
    if len(x) == 1:
        return (x[0] * y[0],)
    (xr, xi), (yr, yi) = x, y
    return (xr * yr - xi * yi, xr * yi + xi * yr)


def _mul_transposed(x, y):
    """xᵀ ⊙ y for x acting as the real 2×2 matrix of a complex number: conj(x) ⊙ y on planes."""
    if len(x) == 1:
        return (x[0] * y[0],)
    (xr, xi), (yr, yi) = x, y
    return (xr * yr + xi * yi, xr * yi - xi * yr)


# --- row access: refs are (1, rows, block_d) blocks; a row is a (1, block_d) float32 value ---


def _load(refs, t):
    return tuple(ref[0, pl.ds(t, 1), :].astype(jnp.float32) for ref in refs)


def _store(refs, t, values):
    for ref, value in zip(refs, values):
        ref[0, pl.ds(t, 1), :] = value.astype(ref.dtype)


def _time_index(position, length, reverse):
    """The row processed at `position` (0 = first processed) of a block of `length` rows."""
    return length - 1 - position if reverse else position


def _forward_rows(a, b, states, h, base, count, length, reverse):
    """Run positions base … base+count−1 forward from carry h; store each state."""
    for offset in range(count):
        t = _time_index(base + offset, length, reverse)
        h = _add(_mul(_load(a, t), h), _load(b, t))
        _store(states, t, h)
    return h


def _backward_rows(a, states, ys, a_bar, b_bar, c, base, count, length, reverse, prev_first):
    """Positions base+count−1 … base backward from carry c = a ⊙ g of the next position.

    h_{t−1} at position base is `prev_first` when given (h0, or a row of a neighbouring tile),
    otherwise it is read from `states` like every other row's."""
    for offset in reversed(range(count)):
        position = base + offset
        t = _time_index(position, length, reverse)
        g = _add(_load(ys, t), c)
        if offset == 0 and prev_first is not None:
            h_prev = prev_first
        else:
            h_prev = _load(states, _time_index(position - 1, length, reverse))
        _store(a_bar, t, _mul_transposed(h_prev, g))
        _store(b_bar, t, g)
        c = _mul_transposed(_load(a, t), g)
    return c


# --- kernels -------------------------------------------------------------------------------


# Each argument is a tuple of refs, one per plane (the in/out specs' tree structure).


def _gpu_forward_kernel(a, b, h0, states, final, *, reverse, block_t):
    length = a[0].shape[1]
    whole = length // block_t

    def tile(k, h):
        return _forward_rows(a, b, states, h, k * block_t, block_t, length, reverse)

    h = lax.fori_loop(0, whole, tile, _load(h0, 0))
    h = _forward_rows(a, b, states, h, whole * block_t, length - whole * block_t, length, reverse)
    _store(final, 0, h)


def _gpu_backward_kernel(a, states, ys, final_bar, h0, a_bar, b_bar, h0_bar, *, reverse, block_t):
    length = a[0].shape[1]
    whole = length // block_t
    rows = functools.partial(_backward_rows, a, states, ys, a_bar, b_bar, length=length, reverse=reverse)
    first = _load(h0, 0)

    c = rows(_load(final_bar, 0), whole * block_t, length - whole * block_t,
             prev_first=first if whole == 0 else None)

    def tile(i, c):
        return rows(c, (whole - 1 - i) * block_t, block_t, prev_first=None)

    if whole >= 2:
        c = lax.fori_loop(0, whole - 1, tile, c)
    if whole >= 1:
        c = rows(c, 0, block_t, prev_first=first)
    _store(h0_bar, 0, c)


def _tpu_forward_kernel(a, b, h0, states, final, *, reverse):

    @pl.when(pl.program_id(2) == 0)
    def _start():
        _store(final, 0, _load(h0, 0))

    length = a[0].shape[1]
    h = _forward_rows(a, b, states, _load(final, 0), 0, length, length, reverse)
    _store(final, 0, h)


def _tpu_backward_kernel(a, states, neighbour, ys, final_bar, h0, a_bar, b_bar, h0_bar, *, reverse):
    step = pl.program_id(2)

    @pl.when(step == 0)
    def _start():
        _store(h0_bar, 0, _load(final_bar, 0))

    # The forward's first tile is the backward's last: its first row's h_{t−1} is h0.
    at_start = step == pl.num_programs(2) - 1
    edge = _load(neighbour, 0 if reverse else neighbour[0].shape[1] - 1)
    prev_first = tuple(jnp.where(at_start, h, n) for h, n in zip(_load(h0, 0), edge))
    length = a[0].shape[1]
    c = _backward_rows(a, states, ys, a_bar, b_bar, _load(h0_bar, 0), 0, length, length, reverse, prev_first)
    _store(h0_bar, 0, c)


# --- pallas_call builders (arrays: tuples of planes, already padded to whole blocks) --------


def _out_like(arrays, dtype=None):
    return tuple(jax.ShapeDtypeStruct(x.shape, dtype or x.dtype) for x in arrays)


def _compiler_params(cfg, grid_rank):
    """The lowering's parameters; on TPU the time axis (last, when present) carries the scan."""
    return compiler_params(cfg.variant, cfg.interpret, ("parallel",) * 2 + ("arbitrary",) * (grid_rank - 2))


def _forward(cfg, a, b, h0):
    planes = len(a)
    batch, length, width = a[0].shape
    carry = _out_like(h0, jnp.float32)
    if cfg.variant == "gpu":
        grid = (batch, width // cfg.block_d)
        seq = pl.BlockSpec((1, length, cfg.block_d), lambda i, j: (i, 0, j))
        vec = pl.BlockSpec((1, 1, cfg.block_d), lambda i, j: (i, 0, j))
        kernel = functools.partial(_gpu_forward_kernel, reverse=cfg.reverse, block_t=cfg.block_t)
    else:
        tiles = length // cfg.block_t
        grid = (batch, width // cfg.block_d, tiles)
        seq = pl.BlockSpec((1, cfg.block_t, cfg.block_d),
                           lambda i, j, k: (i, tiles - 1 - k if cfg.reverse else k, j))
        vec = pl.BlockSpec((1, 1, cfg.block_d), lambda i, j, k: (i, 0, j))
        kernel = functools.partial(_tpu_forward_kernel, reverse=cfg.reverse)
    states, final = pl.pallas_call(
        kernel, grid=grid, **_compiler_params(cfg, len(grid)),
        in_specs=((seq,) * planes, (seq,) * planes, (vec,) * planes),
        out_specs=((seq,) * planes, (vec,) * planes),
        out_shape=(_out_like(a), carry),
        interpret=cfg.interpret, name="diagonal_scan_forward",
    )(a, b, h0)
    return states, final


def _neighbour_spec(cfg, length, rows):
    """The `rows`-row block of the states just before (in processing order) each tile."""
    tiles, per_tile, last = length // cfg.block_t, cfg.block_t // rows, length // rows - 1
    if cfg.reverse:
        return pl.BlockSpec((1, rows, cfg.block_d),
                            lambda i, j, k: (i, jnp.minimum((k + 1) * per_tile, last), j))
    return pl.BlockSpec((1, rows, cfg.block_d),
                        lambda i, j, k: (i, jnp.maximum((tiles - 1 - k) * per_tile - 1, 0), j))


def _backward(cfg, a, states, ys, final_bar, h0):
    planes = len(a)
    batch, length, width = a[0].shape
    if cfg.variant == "gpu":
        grid = (batch, width // cfg.block_d)
        seq = pl.BlockSpec((1, length, cfg.block_d), lambda i, j: (i, 0, j))
        vec = pl.BlockSpec((1, 1, cfg.block_d), lambda i, j: (i, 0, j))
        kernel = functools.partial(_gpu_backward_kernel, reverse=cfg.reverse, block_t=cfg.block_t)
        in_specs = ((seq,) * planes, (seq,) * planes, (seq,) * planes, (vec,) * planes, (vec,) * planes)
        inputs = (a, states, ys, final_bar, h0)
    else:
        tiles = length // cfg.block_t
        grid = (batch, width // cfg.block_d, tiles)
        # Tiles in the opposite order to the forward's.
        seq = pl.BlockSpec((1, cfg.block_t, cfg.block_d),
                           lambda i, j, k: (i, k if cfg.reverse else tiles - 1 - k, j))
        vec = pl.BlockSpec((1, 1, cfg.block_d), lambda i, j, k: (i, 0, j))
        nbr = _neighbour_spec(cfg, length, _sublanes(states[0].dtype))
        kernel = functools.partial(_tpu_backward_kernel, reverse=cfg.reverse)
        in_specs = ((seq,) * planes, (seq,) * planes, (nbr,) * planes, (seq,) * planes,
                    (vec,) * planes, (vec,) * planes)
        inputs = (a, states, states, ys, final_bar, h0)
    a_bar, b_bar, h0_bar = pl.pallas_call(
        kernel, grid=grid, in_specs=in_specs, **_compiler_params(cfg, len(grid)),
        out_specs=((seq,) * planes, (seq,) * planes, (vec,) * planes),
        out_shape=(_out_like(a), _out_like(a), _out_like(h0, jnp.float32)),
        interpret=cfg.interpret, name="diagonal_scan_backward",
    )(*inputs)
    return a_bar, b_bar, h0_bar


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _scan_planes(a, b, h0, cfg):
    return _forward(cfg, a, b, h0)


def _scan_planes_forward(a, b, h0, cfg):
    states, final = _forward(cfg, a, b, h0)
    return (states, final), (a, states, h0)


def _scan_planes_backward(cfg, residuals, cotangents):
    a, states, h0 = residuals
    states_bar, final_bar = cotangents
    states_bar = tuple(y.astype(s.dtype) for y, s in zip(states_bar, states))
    final_bar = tuple(f.astype(jnp.float32) for f in final_bar)
    return _backward(cfg, a, states, states_bar, final_bar, h0)


_scan_planes.defvjp(_scan_planes_forward, _scan_planes_backward)


# --- validation and the public function ---------------------------------------------------


def _sublanes(dtype) -> int:
    """TPU rows per (sublane) tile: 8 for 4-byte dtypes, 16 for packed 2-byte ones."""
    return TPU_SUBLANES * max(1, 4 // jnp.dtype(dtype).itemsize)


def _check_inputs(a, b, h0):
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, (jax.Array, np.ndarray)):
            raise TypeError(f"{name} must be a JAX or NumPy array of shape (B, T, D), got {type(x).__name__}")
        if x.ndim != 3:
            raise ValueError(f"{name} must have shape (B, T, D) (3 dimensions), got shape {x.shape}")
        if x.dtype not in [jnp.dtype(d) for d in INPUT_DTYPES]:
            raise TypeError(f"{name} must be float32, bfloat16, float16 or complex64, got {x.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (B, T, D), got a {a.shape} and b {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same dtype, got a {a.dtype} and b {b.dtype}")
    if min(a.shape) < 1:
        raise ValueError(f"a and b must have B, T, D ≥ 1, got shape {a.shape}")
    if h0 is None:
        return
    if not isinstance(h0, (jax.Array, np.ndarray)):
        raise TypeError(f"h0 must be None or an array of shape (B, D), got {type(h0).__name__}")
    batch, _, width = a.shape
    if h0.shape != (batch, width):
        raise ValueError(f"h0 must have shape (B, D) = {(batch, width)}, got {h0.shape}")
    complex_h0 = jnp.issubdtype(h0.dtype, jnp.complexfloating)
    if not (jnp.issubdtype(h0.dtype, jnp.floating) or complex_h0):
        raise TypeError(f"h0 must have a floating or complex dtype, got {h0.dtype}")
    if complex_h0 and not jnp.iscomplexobj(a):
        raise TypeError(f"h0 is complex ({h0.dtype}) but a and b are real ({a.dtype})")


def _check_block(name, value, variant, dtype):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    if variant == "gpu" and name == "block_d" and value & (value - 1):
        raise ValueError(f"block_d must be a power of two on the gpu variant (Triton tensor sizes), got {value}")
    if variant == "tpu":
        multiple = TPU_LANES if name == "block_d" else _sublanes(dtype)
        if value % multiple:
            raise ValueError(f"{name} must be a multiple of {multiple} on the tpu variant "
                             f"(({_sublanes(dtype)}, {TPU_LANES}) tiles for {jnp.dtype(dtype).name}), got {value}")


def _blocks(variant, length, width, dtype, block_t, block_d):
    """Validated (block_t, block_d), defaults filled in for the variant."""
    if variant == "gpu":
        default_d = min(_GPU_BLOCK_D, pl.next_power_of_2(width))
        default_t = _GPU_BLOCK_T
    else:
        default_d = min(_TPU_BLOCK_D, round_up(width, TPU_LANES))
        default_t = min(_TPU_BLOCK_T, round_up(length, _sublanes(dtype)))
    block_t = default_t if block_t is None else block_t
    block_d = default_d if block_d is None else block_d
    _check_block("block_t", block_t, variant, dtype)
    _check_block("block_d", block_d, variant, dtype)
    return int(block_t), int(block_d)


def _planes(x):
    return (jnp.real(x), jnp.imag(x)) if jnp.iscomplexobj(x) else (x,)


def diagonal_scan(a, b, h0=None, *, reverse=False, variant=None, interpret=None, block_d=None, block_t=None):
    """All states of h_t = a_t ⊙ h_{t−1} + b_t (t = 0 … T−1, or T−1 … 0 if `reverse`) from h0.

    Args:
      a: (B, T, D) float32, bfloat16, float16 or complex64: the per-channel transitions.
      b: (B, T, D), the same dtype as `a`: the inputs.
      h0: (B, D) any floating dtype (complex too when a is complex), or None (zeros): the state
        before the first processed step; used in float32 (complex64).
      reverse: process t = T−1 … 0 (the state "before" is then h_T = h0).
      variant: "gpu" | "tpu" | None (the default backend's); see the module docstring.
      interpret: run the kernel in Pallas interpret mode; None: only where Pallas cannot
        compile (CPU).
      block_d: channels per program. gpu: a power of two (default min(128, next power of two
        ≥ D)); tpu: a multiple of 128 (default min(512, D rounded up to 128)).
      block_t: time rows per tile. gpu: any positive integer, the unroll of the time loop
        (default 16); tpu: a multiple of 8 (16 for 2-byte dtypes; default min(64, T rounded up)).
        D not a multiple of block_d (and, on tpu, T not a multiple of block_t) costs a padded copy.

    Returns:
      states: (B, T, D) in a's dtype; states[:, t] = h_t.
      final: (B, D) float32 (complex64 for complex a): the state after the last processed step.

    Differentiable (reverse mode) in a, b and h0 through one fused reverse-scan kernel.
    """
    _check_inputs(a, b, h0)
    if not isinstance(reverse, (bool, np.bool_)):
        raise TypeError(f"reverse must be a bool, got {reverse!r}")
    variant = kernel_variant(variant)
    interpret = interpret_mode(interpret)
    batch, length, width = a.shape
    is_complex = jnp.iscomplexobj(a)
    plane_dtype = jnp.float32 if is_complex else a.dtype
    block_t, block_d = _blocks(variant, length, width, plane_dtype, block_t, block_d)
    cfg = _Config(variant, bool(reverse), block_t, block_d, interpret)

    state_dtype = jnp.complex64 if is_complex else jnp.float32
    h0 = jnp.zeros((batch, width), state_dtype) if h0 is None else jnp.asarray(h0).astype(state_dtype)
    padded_d = round_up(width, block_d)
    padded_t = round_up(length, block_t) if variant == "tpu" else length

    def pad_sequence(x, identity):
        return pad_axis(pad_axis(x, 2, padded_d), 1, padded_t, identity)

    a_planes = tuple(pad_sequence(x, 1.0 if i == 0 else 0.0) for i, x in enumerate(_planes(a)))
    b_planes = tuple(pad_sequence(x, 0.0) for x in _planes(b))
    h0_planes = tuple(pad_axis(x[:, None, :], 2, padded_d) for x in _planes(h0))

    states, final = _scan_planes(a_planes, b_planes, h0_planes, cfg)

    states = tuple(x[:, :length, :width] for x in states)
    final = tuple(x[:, 0, :width] for x in final)
    if is_complex:
        return lax.complex(*states), lax.complex(*final)
    return states[0], final[0]

"""The scan methods and their registry.

Every method has the signature

    method(monoid, leaves, initial, *, axis, reverse, chunk_size) -> (states, final_state)

with `leaves` already validated and in the accumulation dtype, `initial` a state or None (the
empty state), and time at `axis` of every leaf. Methods:

  sequential   one step at a time, h ← apply(leaf_t, h): O(T) depth, no extra memory; its own
               reverse-loop VJP (sequential.py) keeps the backward O(T) as well.
  associative  lax.associative_scan over expanded elements: O(log T) depth, O(T log T) work.
  chunked      time split into n chunks of C steps: (1) fold each chunk into its summary
               element, sequentially over C with all n chunks side by side; (2) an associative
               scan over the n summaries gives the state entering each chunk; (3) each chunk is
               re-run from that state. Any C ≥ 1 and any T (the tail is padded with identity
               leaves, which change no state).
  pallas       (registered by `pallas_kernels`, which `import lrnn` imports) the Pallas
               diagonal-scan kernel with its fused reverse-scan VJP; DiagonalMonoid only.

`register_method(name, fn)` adds a method (the Pallas kernels register "pallas"); callers
never change. A method registered `native=True` takes the elements in their own dtype (bf16
stays bf16 in memory), accumulates in float32 itself and carries its own VJP, so the engine
neither upcasts its inputs nor wraps it in the diagonal reverse-scan VJP. A method registered
with `accepts` runs only the monoids it accepts; "auto" never picks it for others.

Chunk kernels: the chunkwise closed forms of the matrix-state cells (`decay_attention`,
`delta_rule` in `lrnn.cells.chunkwise`) are whole computations, not scans of a monoid, so a
kernel for one registers under the form's name and a method (`register_chunk_kernel(
"delta_rule", "pallas", fn)`); the form asks `chunk_kernel(name, method)` and runs the kernel
when there is one. This keeps `lrnn.scan` below both the cells and the kernels.
"""

from __future__ import annotations

import math
from typing import Callable

from jax import lax

from lrnn.scan import timeaxis
from lrnn.scan.sequential import sequential, start_state

_REGISTRY: dict[str, Callable] = {}
_NATIVE: set[str] = set()
_ACCEPTS: dict[str, Callable] = {}
_CHUNK_KERNELS: dict[tuple[str, str], Callable] = {}


def register_method(name: str, fn: Callable, *, native: bool = False, accepts: Callable | None = None) -> None:
    """Add method `name`; `accepts(monoid, dtype) -> bool` says which scans it runs (default: all)."""
    _REGISTRY[name] = fn
    if native:
        _NATIVE.add(name)
    if accepts is not None:
        _ACCEPTS[name] = accepts


def accepts(name: str, monoid, dtype) -> bool:
    """Whether method `name` runs scans of `monoid` with elements of `dtype` (so "auto" may pick
    it for them)."""
    return _ACCEPTS.get(name, lambda *_: True)(monoid, dtype)


def is_native(name: str) -> bool:
    """Whether method `name` takes its inputs' own dtypes and differentiates itself."""
    return name in _NATIVE


def register_chunk_kernel(form: str, method: str, fn: Callable) -> None:
    _CHUNK_KERNELS[(form, method)] = fn


def chunk_kernel(form: str, method: str) -> Callable | None:
    """The kernel registered for the chunkwise form `form` under `method`, or None."""
    return _CHUNK_KERNELS.get((form, method))


def registered_methods() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_method(name: str) -> Callable:
    return _REGISTRY[name]


def associative(monoid, leaves, initial, *, axis, reverse, chunk_size=None):
    elements = monoid.expand(leaves)
    if initial is not None:
        first = timeaxis.length(leaves, axis) - 1 if reverse else 0
        entry = monoid.combine(monoid.lift(initial), timeaxis.at(elements, first, axis))
        elements = timeaxis.put(elements, entry, first, axis)
    prefixes = lax.associative_scan(monoid.combine, elements, reverse=reverse, axis=axis)
    states = monoid.state_of(prefixes)
    return states, timeaxis.at(states, 0 if reverse else timeaxis.length(leaves, axis) - 1, axis)


def chunked(monoid, leaves, initial, *, axis, reverse, chunk_size):
    length = timeaxis.length(leaves, axis)
    size = min(chunk_size, length)
    n = math.ceil(length / size)
    padding = n * size - length
    if padding:
        identity = monoid.identity(timeaxis.at(leaves, 0, axis))
        leaves = timeaxis.concat(leaves, timeaxis.repeat(identity, padding, axis), axis)
    blocks = timeaxis.split(leaves, size, axis)
    inner = axis + 1

    def fold(i, summary):
        c = size - 1 - i if reverse else i
        return monoid.combine(summary, monoid.expand(timeaxis.at(blocks, c, inner)))

    empty = monoid.expand(monoid.identity(timeaxis.at(blocks, 0, inner)))
    summaries = lax.fori_loop(0, size, fold, empty)
    prefixes = lax.associative_scan(monoid.combine, summaries, reverse=reverse, axis=axis)
    start = start_state(monoid, leaves, initial, axis)
    if initial is not None:
        prefixes = monoid.combine(monoid.lift(timeaxis.expand(start, axis)), prefixes)
    after = monoid.state_of(prefixes)
    entering = timeaxis.shift(after, start, axis, reverse)
    states, _ = sequential(monoid, blocks, entering, axis=inner, reverse=reverse)
    states = timeaxis.merge(states, axis)
    if padding:
        states = timeaxis.take(states, 0, length, axis)
    return states, timeaxis.at(states, 0 if reverse else length - 1, axis)


register_method("sequential", sequential)
register_method("associative", associative)
register_method("chunked", chunked)

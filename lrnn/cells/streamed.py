"""The streamed forward of a scan-defined cell: elements, scan and readout chunk by chunk, so no
per-token state is ever stored.

`Cell.forward` builds every token's elements, scans them all and reads out, which keeps a state
per token: B·T·d_in·N numbers for S4D or Mamba, whose state is N times wider than their output.
Streamed, time is cut into T/C chunks of C tokens and carried through a `lax.scan` over chunks:

    h_0 = state (or empty)
    for n = 0 … T/C − 1:
        e_n        = elements(params, x[nC : (n+1)C])                  (B, C, …)
        H_n, h_n+1 = lrnn.scan(monoid, e_n, initial=h_n, method=…)    (B, C, *state)
        y[nC : (n+1)C] = readout(params, H_n, x[nC : (n+1)C])

so only one chunk's elements and states are live, O(B·C·state). The chunk body is rematerialised
in the backward (`jax.checkpoint`): training stores the T/C carried states and the body's inputs,
O(B·T·(d_in + d_out) + (T/C)·B·state), and each chunk's elements and states are recomputed while
its gradient is taken. Resets are sliced with their chunk (a reset at a chunk's first token
discards the carry); complex and log-space states are carried in the monoid's space
(`to_scan_state`).

A bidirectional cell (`bidirectional = True`, e.g. S5) reads at every token the state of a
forward scan and of a reverse one. Streamed, the reverse stream runs first and keeps only the
state entering each chunk from its right (T/C states; every chunk's elements are built, scanned
and dropped); then the forward stream scans each chunk both ways, from its carry and from that
stored state, and reads out. The reverse chunk is scanned twice, so the scan work is 1.5× the
whole-sequence forward's; the memory is that of the causal stream.

C must divide T (`chunk_size`); the scan inside a chunk runs with any engine method.

Sequence parallelism (`sequence_axis`, time split over devices): a device's stream must start
from the state entering its shard. A first pass over the shard's chunks composes each chunk's
elements into one summary (O(state) kept per chunk), the devices exchange their shards'
summaries as the engine does (`lrnn.scan.sequence_parallel.exchange`), and the stream
above runs from the state that gives (a bidirectional cell does the same for its reverse stream,
from the right). The extra pass builds every chunk's elements once more per direction; the
memory stays that of the stream.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from lrnn.cells import checks
from lrnn.cells.registry import registered_cells
from lrnn.scan import auto, scan, sequence_parallel
from lrnn.scan.segmented import resettable, with_resets

METHOD = "streamed"
DEFAULT_CHUNK_SIZE = 64
# auto_methods.json family of a registered cell's measurements: points whose candidates are
# "whole" (the engine over all tokens at once) and "streamed_<C>"
FAMILY_PREFIX = "cell:"
WHOLE = "whole"


def family(cell) -> str | None:
    """The auto-table family of `cell`'s class: "cell:<registered name>", None if unregistered."""
    names = [name for name, cls in registered_cells().items() if cls is type(cell)]
    return FAMILY_PREFIX + names[0] if names else None


def lanes(cell, batch: int) -> int:
    """Scalar recurrences a scan of `cell` advances per step: state entries × batch."""
    template = jax.eval_shape(lambda: cell.initial_state((batch,)))
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(template))


def default_chunk_size(length: int, target: int = DEFAULT_CHUNK_SIZE) -> int:
    """The largest divisor of `length` that is at most `target`."""
    return max(c for c in range(1, min(target, length) + 1) if length % c == 0)


def divisor_near(length: int, target: int) -> int | None:
    """The divisor of `length` nearest `target` (in ratio) within a factor 2 of it, or None."""
    near = [c for c in range(max(1, target // 2), min(2 * target, length) + 1) if length % c == 0]
    return min(near, key=lambda c: max(c / target, target / c)) if near else None


def measured_stream(cell, batch: int, length: int) -> int | None:
    """The chunk size of the stream predicted fastest for `cell` at (batch, length), counting its
    forward and its forward+backward time (`lrnn.scan.auto`'s model of the benchmark's
    measurements), or None where the whole-sequence scan is predicted faster or nothing was
    measured."""
    name = family(cell)
    if name is None:
        return None
    method, chunk_size = auto.choose_total(name, length, lanes(cell, batch))
    return chunk_size if method == METHOD else None


def choose(cell, lead_shape: tuple, method: str, chunk_size) -> tuple[str, int | None]:
    """(method, chunk_size) for `cell.forward` on inputs of lead shape (B, T) asked for `method`
    "auto" or "streamed": "auto" streams where the benchmark's measurements predict streaming
    faster, with the divisor of T nearest the predicted best chunk size (within a factor 2; none:
    no stream), and otherwise hands "auto" on to the engine; "streamed" without a chunk size
    takes that divisor, or the largest divisor of T up to 64 (measured fastest on CPU for Mamba
    and S4D at D = 256)."""
    batch, length = lead_shape
    best = measured_stream(cell, batch, length)
    near = best and divisor_near(length, best)
    if method == "auto":
        return (METHOD, near) if near else ("auto", chunk_size)
    if chunk_size is not None:
        return METHOD, chunk_size
    return METHOD, near or default_chunk_size(length)


def check_chunk_size(chunk_size, length: int) -> int:
    """`chunk_size` for a stream over `length` tokens: a positive int dividing the length."""
    checks.positive_int("chunk_size", chunk_size)
    if length % chunk_size:
        raise ValueError(f"chunk_size must divide the sequence length T={length} for method='streamed', "
                         f"got {chunk_size} (T % chunk_size = {length % chunk_size})")
    return chunk_size


def _by_chunk(x, size):
    """(B, T, …) → (T/size, B, size, …): the chunk index leading, for lax.scan (None stays None)."""
    if x is None:
        return None
    return jnp.moveaxis(x.reshape(x.shape[0], -1, size, *x.shape[2:]), 1, 0)


def _from_chunks(y):
    """Inverse of `_by_chunk`."""
    y = jnp.moveaxis(y, 0, 1)
    return y.reshape(y.shape[0], -1, *y.shape[3:])


def _entering(cell, params, chunks, resets_key: str, start, *, reverse: bool, sequence_axis: str, inputs: dict):
    """(the state entering this device's shard, the state after the whole sequence), in the scan's
    processing order (`reverse`: from the right), from `start`: the shard's summary is built chunk
    by chunk (each chunk's elements composed and dropped), then the engine's exchange of summaries
    (`lrnn.scan.sequence_parallel.exchange`). Resets enter the elements as in the engine:
    `lrnn.scan.segmented.with_resets`."""
    summarised = cell.monoid if chunks[resets_key] is None else resettable(cell.monoid)

    @jax.checkpoint
    def summarise(_, chunk):
        _, leaves = with_resets(cell.monoid, cell.elements(params, chunk["x"], **inputs), chunk[resets_key])
        return None, sequence_parallel.product(summarised, leaves, 1, reverse)

    _, parts = lax.scan(summarise, None, chunks)  # one summary per chunk, chunks leading
    summary = sequence_parallel.compose_all(summarised, parts, 0, reverse)
    return sequence_parallel.exchange(summarised, summary, start, reverse=reverse, sequence_axis=sequence_axis)


def streamed_forward(cell, params: dict, xc, initial, *, chunk_size: int, method: str = "auto", resets=None,
                     sequence_axis: str | None = None, **inputs):
    """(y (B, T, d_out) in xc's dtype, final scan state) of `cell`, streamed over chunks.

    Args:
      cell: a scan-defined `Cell` (its `elements`, `monoid`, `readout`).
      params: the cell's params.
      xc: (B, T, d_in) checked inputs in the compute dtype.
      initial: the state before the first token in the monoid's space, or None (empty).
      chunk_size: tokens per chunk, dividing T.
      method: the engine's method for the scan inside each chunk.
      resets: (B, T) bool or None.
      sequence_axis: a mesh axis bound by an enclosing shard_map, time split over it (xc and
        resets are this device's shard); the final state is the whole sequence's.
      **inputs: the cell's per-call inputs (not per token), passed to every chunk.
    """
    size = check_chunk_size(chunk_size, xc.shape[1])
    first_token = jax.tree_util.tree_map(lambda e: e[:, 0], cell.elements(params, xc[:, :1], **inputs))
    empty = cell.monoid.empty_state(first_token)  # carried in the elements' dtype, as the engine returns it
    start = empty if initial is None else jax.tree_util.tree_map(lambda h, e: h.astype(e.dtype), initial, empty)
    chunks = {"x": _by_chunk(xc, size), "resets": _by_chunk(resets, size)}
    bidirectional = cell.bidirectional

    sharded = dict(params=params, chunks=chunks, sequence_axis=sequence_axis, inputs=inputs)
    if sequence_axis is not None:
        start, whole_final = _entering(cell, resets_key="resets", start=start, reverse=False, **sharded)

    if bidirectional:
        ends = None if resets is None else cell.reverse_resets(resets, sequence_axis=sequence_axis)
        chunks["ends"] = _by_chunk(ends, size)
        from_right = empty
        if sequence_axis is not None:
            from_right, _ = _entering(cell, resets_key="ends", start=empty, reverse=True, **sharded)

        @jax.checkpoint
        def fold_back(entering, chunk):
            elements = cell.elements(params, chunk["x"], **inputs)
            _, leaving = scan(cell.monoid, elements, axis=1, initial=entering, reverse=True, method=method,
                              resets=chunk["ends"])
            return leaving, entering

        _, chunks["from_right"] = lax.scan(fold_back, from_right, chunks, reverse=True)

    @jax.checkpoint
    def read_chunk(entering, chunk):
        both_ways = dict(backward_initial=chunk["from_right"], backward_resets=chunk["ends"]) if bidirectional else {}
        elements = cell.elements(params, chunk["x"], **inputs)
        states, leaving = cell.scan(elements, entering, method=method, resets=chunk["resets"], **both_ways)
        return leaving, cell.readout(params, cell.from_scan_state(states), chunk["x"], **inputs)

    final, ys = lax.scan(read_chunk, start, chunks)
    return _from_chunks(ys), (final if sequence_axis is None else whole_final)

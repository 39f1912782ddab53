"""`scan`: the one entry point every recurrence in lrnn runs through.

    states, final_state = scan(monoid, elements, axis=1, initial=None, reverse=False,
                               resets=None, method="auto", chunk_size=None)

computes, in processing order (t = 0 … T−1, or T−1 … 0 with `reverse`), the state after
every step of the recurrence the monoid defines, starting from `initial` (the monoid's
empty state, e.g. h = 0, when None). A True in `resets` at step t starts a fresh (empty)
state there, so a packed batch scans exactly as its separate sequences.

Layout: every array of `elements` is batch-first with time at `axis`; states come back in
the same layout, the final state without the time axis. The engine never transposes.

Precision: elements and `initial` are promoted to at least float32 (complex64) for the
scan; states come back in the elements' own result dtype (bf16 in, bf16 out). A native method
(the Pallas kernels) gets the elements in that dtype and accumulates in float32 itself.

Gradients: a DiagonalMonoid scan has a custom VJP that is a reverse diagonal scan (see
`diagonal_vjp`, which records where that measured cheaper than autodiff), through the same
method as the forward when a method is named. Other monoids are differentiated by JAX
through the method's loop or tree.

`method="auto"` chooses for what runs (`lrnn.scan.auto`, from fitted measurements): the
forward's method from forward timings; for a DiagonalMonoid the VJP's reverse scan from
backward timings, independently; for other monoids, when the scan is differentiated, the
method whose autodiff forward+backward is predicted fastest (`by_pass.scan_by_pass`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn import debug
from lrnn.scan import auto, sequence_parallel, timeaxis, validation
from lrnn.scan.by_pass import scan_by_pass
from lrnn.scan.diagonal import DiagonalMonoid
from lrnn.scan.diagonal_vjp import diagonal_scan, uses_reverse_scan_vjp
from lrnn.scan.methods import accepts, get_method, is_native, registered_methods
from lrnn.scan.monoid import Monoid
from lrnn.scan.segmented import with_resets
from lrnn.scan.sequential import start_state

tree_map = jax.tree_util.tree_map


def scan(
    monoid: Monoid,
    elements,
    *,
    axis: int = 1,
    initial=None,
    reverse: bool = False,
    resets=None,
    method: str = "auto",
    chunk_size: int | None = None,
    sequence_axis: str | None = None,
):
    """Run the recurrence of `monoid` over `elements` along `axis`.

    Args:
      monoid: a Monoid, e.g. DiagonalMonoid() for h_t = a_t ⊙ h_{t-1} + b_t.
      elements: tuple of arrays named by `monoid.leaf_names`, e.g. (a, b) each (B, T, D);
        floating or complex. All share their dims up to and including `axis`.
      axis: the time axis, counted from the front (default 1: batch-first).
      initial: the state before the first step, shaped like one step's state (e.g. (B, D));
        None for the monoid's empty state.
      reverse: scan from the last step to the first (for bidirectional layers).
      resets: bool array with the elements' dims up to and including `axis` (e.g. (B, T));
        True at t discards the state before t.
      method: "auto" | "sequential" | "associative" | "chunked" | any registered method.
      chunk_size: steps per chunk for "chunked" (None: the measured best for this size).
      sequence_axis: a mesh axis the time axis is split over (sequence parallelism, see
        `sequence_parallel`). Inside `jax.shard_map` over that axis the elements (and resets) are
        this device's contiguous shard of time and the states come back the same way; under
        `jax.set_mesh(mesh)` they are global arrays the scan splits itself. The final state is the
        whole sequence's, on every device.

    Returns:
      (states, final_state): states shaped like one state per step with time at `axis`
      (e.g. (B, T, D)), and the state after the last processed step (e.g. (B, D)).
    """
    validation.check_monoid(monoid)
    leaves = validation.check_elements(monoid, elements)
    axis = validation.check_axis(monoid, leaves, axis)
    monoid.check(leaves, axis)
    validation.check_method(method, chunk_size, registered_methods())
    validation.check_reverse(reverse)
    lead_shape = leaves[0].shape[: axis + 1]
    if sequence_axis is not None and not sequence_parallel.is_bound(sequence_axis):
        sequence_parallel.check_outside(sequence_axis, lead_shape[axis])
        resets = validation.check_resets(resets, lead_shape)
        options = dict(axis=axis, reverse=reverse, method=method, chunk_size=chunk_size, sequence_axis=sequence_axis)
        run = lambda leaves, initial, resets: scan(monoid, leaves, initial=initial, resets=resets, **options)  # noqa: E731
        return sequence_parallel.shard_locally(run, leaves, initial, resets, axis=axis, sequence_axis=sequence_axis)
    resets = validation.check_resets(resets, lead_shape, sharded_over=sequence_axis)
    checked = debug.ScanCall(monoid, leaves, method, axis, reverse) if debug.nans_enabled() else None

    out_dtype = jnp.result_type(*leaves)
    work_dtype = jnp.promote_types(out_dtype, jnp.float32)
    length = lead_shape[axis]
    plan = _Plan.of(monoid, method, chunk_size, length, auto.lanes_of(leaves, length), out_dtype)
    method = plan.forward[0]

    native = is_native(method) and length > 1
    leaves = tuple(x.astype(out_dtype if native else work_dtype) for x in leaves)
    layout = jax.eval_shape(lambda l: monoid.empty_state(timeaxis.at(l, 0, axis)),
                            tuple(jax.ShapeDtypeStruct(x.shape, work_dtype) for x in leaves))
    initial = validation.check_initial(initial, layout)

    monoid, leaves = with_resets(monoid, leaves, resets)
    if sequence_axis is not None:
        initial, whole_final = sequence_parallel.entering_and_final(
            monoid, leaves, start_state(monoid, leaves, initial, axis), axis=axis, reverse=bool(reverse),
            sequence_axis=sequence_axis)

    if length == 1:
        final = monoid.apply(timeaxis.at(leaves, 0, axis), start_state(monoid, leaves, initial, axis))
        states = timeaxis.expand(final, axis)
    elif isinstance(monoid, DiagonalMonoid) and plan.reverse_scan_vjp and not native:
        a, b = leaves
        h0 = jnp.zeros(layout.shape, layout.dtype) if initial is None else initial
        states, final = diagonal_scan(a, b, h0, plan.forward, plan.gradient, axis, bool(reverse))
    elif plan.gradient != plan.forward and not native:
        states, final = scan_by_pass(monoid, leaves, initial, plan.forward, plan.gradient, axis, bool(reverse))
    else:
        chunk = plan.forward[1]
        states, final = get_method(method)(monoid, leaves, initial, axis=axis, reverse=bool(reverse), chunk_size=chunk)
    if sequence_axis is not None:
        final = whole_final
    cast = lambda x: x.astype(out_dtype)  # noqa: E731
    states, final = tree_map(cast, states), tree_map(cast, final)
    if checked is not None:  # under lrnn.debug_nans(): see lrnn.debug
        checked.check(initial, states, method)
    return states, final


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What runs: the forward (method, chunk size), and the one the gradient runs through — the
    reverse scan of the diagonal VJP, or for other monoids the method JAX differentiates."""

    forward: tuple[str, int | None]
    gradient: tuple[str, int | None]
    reverse_scan_vjp: bool

    @classmethod
    def of(cls, monoid, method, chunk_size, length, lanes, dtype) -> "_Plan":
        family, key = monoid.family, auto.dtype_key(dtype)
        diagonal = isinstance(monoid, DiagonalMonoid)
        if method != "auto":
            if chunk_size is None and method == "chunked":  # the only method a chunk size steers
                chunk_size = auto.chunk_size_for(family, length, lanes, dtype=key)
            spec = (method, chunk_size)
            return cls(spec, spec, uses_reverse_scan_vjp(method))

        def usable(candidate, chunk):
            # The benchmark measures chunk sizes that divide T; one that does not pads the
            # elements with a copy (measured up to 2× slower) that the model cannot know of.
            divides = chunk is None or chunk_size is not None or length % chunk == 0
            return candidate in registered_methods() and accepts(candidate, monoid, dtype) and divides

        def pick(pass_, allowed):
            chosen, measured_chunk = auto.choose(family, length, lanes, dtype=key, pass_=pass_, usable=allowed)
            if not allowed(chosen, None):
                chosen = auto.unmeasured()
            return chosen, chunk_size or measured_chunk

        forward = pick(auto.FORWARD, usable)
        if not diagonal:
            return cls(forward, pick(auto.TRAIN, usable), False)
        backward = pick(auto.BACKWARD, lambda candidate, chunk: usable(candidate, chunk) and not is_native(candidate))
        return cls(forward, backward, True)

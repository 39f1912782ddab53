"""`debug_nans`: name the scan where a NaN or inf first appears.

    with lrnn.debug_nans():
        loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params, batch)

A NaN or inf in a scan's inputs runs through every later state and out of the model with
nothing to say where it came from. Under `debug_nans()` every `lrnn.scan` call (so every
cell's forward) checks, while it runs:

  - each array of its elements, by the monoid's leaf names ('a', 'b', ...),
  - the initial state, when one is given,
  - the states it computed,

and raises `NonFiniteError` naming the call's monoid and method, which input is non-finite,
the first time step where it is (in processing order, so the last index for a reverse scan)
and the batch index there:

    lrnn.scan(DiagonalMonoid, method='sequential'): elements 'b' is non-finite first at
    time step 17 (batch 0)

States that are non-finite while the elements and initial state are finite mean the
recurrence itself overflowed (|a| > 1 for many steps, say), and the message says so:
"states overflow first at time step 40 (batch 0) although the elements and initial are finite".

What the user sees: outside `jit` the `NonFiniteError` itself. Under `jit` the check runs on
the host through `jax.debug.callback`, and XLA reports the failed callback as a
`jax.errors.JaxRuntimeError` whose message ends with the `NonFiniteError` and its text (JAX
also logs "jax.debug.callback failed" with the traceback). It works under `jit`, `vmap`
(batch indices are then within one vmapped slice) and `grad` (the forward pass is checked;
the backward pass is not). Steps count within the one scan call: a cell's method="streamed"
scans chunk by chunk, so there the step is within the chunk (the error names no chunk).

Cost. Off (the default) it costs nothing: `scan` traces exactly the program it does without
this module. On, every scan adds one `isfinite` pass over its elements, initial state and
states, reduced on the device to a few integers per input, plus one host callback per scan
call, which waits for the scan to finish and so serialises it with the host. Measured on CPU
(float32, 8×2048×256, jit): 6–94 ms off, 23–130 ms on across sequential/associative/chunked.
Use it for a debugging run, not for training at speed.

The switch is read when a function is traced. So that an already-compiled function picks it
up, entering or leaving `debug_nans()` with a change of setting clears JAX's compilation caches
(`jax.clear_caches()`): the next call of every jitted function traces and compiles afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

_enabled = False


class NonFiniteError(FloatingPointError):
    """A NaN or inf in a scan's elements, initial state or states (see `debug_nans`)."""


def nans_enabled() -> bool:
    """Whether `lrnn.scan` calls traced now check for non-finite values."""
    return _enabled


@contextlib.contextmanager
def debug_nans(enabled: bool = True):
    """Within the block, every `lrnn.scan` call checks its elements, initial state and states
    for NaN and inf and raises `NonFiniteError` naming the first one (`debug_nans(False)`
    switches the checks off inside an enclosing block). The previous setting comes back on
    exit, also when the block raises."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    if _enabled != previous:
        jax.clear_caches()  # compiled functions retrace, with or without the checks
    try:
        yield
    finally:
        if _enabled != previous:
            jax.clear_caches()
        _enabled = previous


def _first_bad(bad: jax.Array, axis: int, reverse: bool):
    """From `bad` (batch..., T) bools: whether any is set, the first step in processing order
    where one is, and the flat batch index of the first set one at that step."""
    per_step = jnp.any(bad, axis=tuple(range(axis)))
    order = per_step[::-1] if reverse else per_step
    step = jnp.argmax(order)
    step = per_step.shape[0] - 1 - step if reverse else step
    at_step = jnp.take(bad, step, axis=axis).reshape(-1)
    return jnp.any(per_step), step, jnp.argmax(at_step)


def _bad_per_step(leaves, keep: int, log_space: bool) -> jax.Array:
    """Non-finite anywhere in the trailing dims, for each index of the first `keep` dims. In log
    space −inf is log 0, a value like any other, so only NaN and +inf count."""
    bad = (lambda x: jnp.isnan(x) | (x == jnp.inf)) if log_space else (lambda x: ~jnp.isfinite(x))
    return jnp.stack([jnp.any(bad(x), axis=tuple(range(keep, x.ndim))) for x in leaves]).any(0)


@dataclasses.dataclass(frozen=True)
class ScanCall:
    """What one `scan` call checks: made from its validated arguments (`elements` before the
    engine casts or rewrites them), checked with `check` once its states exist."""

    monoid: object
    elements: tuple
    method: str
    axis: int
    reverse: bool

    def check(self, initial, states, method: str) -> None:
        """Check the elements, `initial` (None or the state pytree) and `states` at run time;
        `method` is the method the call resolved to (differs from the request for "auto")."""
        from lrnn.scan.diagonal import LogDiagonalMonoid  # lrnn.scan imports this module

        axis, reverse = self.axis, bool(self.reverse)
        log_space = isinstance(self.monoid, LogDiagonalMonoid)
        batch_shape = self.elements[0].shape[:axis]
        per_step = lambda leaves: _bad_per_step(leaves, axis + 1, log_space)  # noqa: E731
        summary = {
            "elements": [_first_bad(per_step([x]), axis, reverse) for x in self.elements],
            "states": _first_bad(per_step(jax.tree_util.tree_leaves(states)), axis, reverse),
        }
        if initial is not None:
            bad = _bad_per_step(jax.tree_util.tree_leaves(initial), axis, log_space)
            summary["initial"] = (jnp.any(bad), jnp.argmax(bad.reshape(-1)))
        shown = f"method={self.method!r}" + (f" (ran {method!r})" if method != self.method else "")
        where = f"lrnn.scan({type(self.monoid).__name__}, {shown})"
        names = self.monoid.leaf_names
        jax.debug.callback(lambda s: _raise_if_bad(s, where, names, batch_shape, reverse), summary)


def _batch(flat, batch_shape: tuple) -> str:
    if not batch_shape:
        return ""
    index = np.unravel_index(int(flat), batch_shape)
    return f" (batch {int(index[0])})" if len(index) == 1 else f" (batch {tuple(int(i) for i in index)})"


def _raise_if_bad(summary: dict, where: str, leaf_names, batch_shape: tuple, reverse: bool) -> None:
    """Host side: raise `NonFiniteError` if the device summary found a non-finite value."""
    first = "first (scanning in reverse)" if reverse else "first"
    found = [f"elements {name!r} is non-finite {first} at time step {int(step)}{_batch(b, batch_shape)}"
             for name, (bad, step, b) in zip(leaf_names, summary["elements"]) if bad]
    if "initial" in summary and summary["initial"][0]:
        found.append(f"initial is non-finite{_batch(summary['initial'][1], batch_shape)}")
    if found:
        raise NonFiniteError(f"{where}: " + "; ".join(found))
    bad, step, b = summary["states"]
    if bad:
        raise NonFiniteError(f"{where}: states overflow {first} at time step {int(step)}{_batch(b, batch_shape)} "
                             "although the elements and initial are finite")

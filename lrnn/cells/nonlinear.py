"""Nonlinear cells: h_t = f(h_{t−1}, x_t) with f nonlinear in the state (GRU, LSTM, sLSTM), run by a
step loop or in parallel over time by Newton iterations on the engine (`lrnn.cells.deer`).

A nonlinear cell (a frozen dataclass subclassing `NonlinearCell`) says

    inputs(params, x) -> u                  what does not depend on the state, every token at once:
                                            a pytree of (B, T, …) arrays (the input projections)
    transition(params, state, u_t) -> state one token for a batch: state leaves (N, …), u_t = u[:, t]
                                            leaf-wise; any leading batch size N
    readout(params, states, x) -> y         (B, T, d_out) from the states (leaves (B, T, …)) and x
    initial_state(batch_shape, dtype)       zeros (a tuple for a state of several arrays)

with its own fields d_in and d_hidden (None: d_in) among them, calling
`self.check_sizes_and_solver()` in its `__post_init__`. It inherits the solver's fields
(keyword-only, after the cell's own):

    solver: str = "quasi_deer"          "deer": full Jacobians (DenseMonoid); "quasi_deer": their
                                        diagonal (DiagonalMonoid)
    damping: float = 0.0                k ∈ [0, 1): the Newton elements use (1 − k)·J
    tolerance: float | None = None      stop at |Δh| ≤ tolerance·(1 + |h|) everywhere; None: 1e-12
                                        in float64, 1e-5 in float32
    max_iterations: int | None = None   None: T (T iterations always suffice); capped at T

d_out = d_hidden, and

    forward(params, x, state=None, *, method="auto", resets, chunk_size, sequence_axis) -> (y, final)
    solve(params, x, state=None, *, method="auto", …) -> (y, final, iterations)     the Newton path
    step(params, state, x_t) -> (y_t, state)                                        inputs + transition + readout

forward's `method`:
  "sequential"   the step loop: `lax.scan` of `transition` over time, the recurrence's own sequential
                 method (differentiated by JAX through the loop);
  an engine method ("associative", "chunked", …): the Newton solve (`solver`), every iteration one
                 `lrnn.scan` with that method and `chunk_size`, differentiated by the implicit
                 function theorem (`lrnn.cells.deer`);
  "auto"         the step loop; under `sequence_axis`, which a loop cannot split, the Newton solve with
                 the engine's "auto". On CPU the loop is faster than either solver at every size
                 experiments/bench_deer.py measured (T = 256 and 4096; BENCHMARKS.md): a Newton
                 iteration costs about as much as a loop, and several are needed. No accelerator was
                 measured; where one makes the solve faster, ask for a method by name.

`solve` is the Newton path alone (its `method` is every iteration's scan method, "sequential"
included) and also returns the iteration count. Resets (B, T): at a reset the transition reads the
zero state (`initial_state`). Precision: computed in float32 or wider (bf16 inputs are promoted), y
in the input's dtype, states in the compute dtype.

A nonlinear cell has no monoid of its own (`monoid` is None): each Newton iteration builds its
elements (J_t, f − J_t h_{t−1}) afresh, so there is no per-token element to stream
(`method="streamed"` is refused).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lrnn.cells import checks, deer, params_check, shards
from lrnn.cells.base import Cell
from lrnn.scan import registered_methods

LOOP = "sequential"
tree_map = jax.tree_util.tree_map


@functools.lru_cache(maxsize=256)
def _layout(cell) -> tuple:
    """(treedef, per-row shape of every part) of the cell's state."""
    parts, treedef = jax.tree_util.tree_flatten(jax.eval_shape(lambda: cell.initial_state((1,))))
    return treedef, tuple(part.shape[1:] for part in parts)


@dataclasses.dataclass(frozen=True)
class NonlinearCell(Cell):
    """h_t = f(h_{t−1}, x_t) for a nonlinear f: a step loop or a parallel Newton solve (DEER / quasi-DEER)."""

    monoid: ClassVar = None
    solver: str = dataclasses.field(default=deer.QUASI_DEER, kw_only=True)
    damping: float = dataclasses.field(default=0.0, kw_only=True)
    tolerance: float | None = dataclasses.field(default=None, kw_only=True)
    max_iterations: int | None = dataclasses.field(default=None, kw_only=True)

    # ---- what a nonlinear cell defines -----------------------------------------------------
    def inputs(self, params: dict, x: jax.Array):
        """The state-independent part of every token: a pytree of (B, T, …) arrays."""
        raise NotImplementedError

    def transition(self, params: dict, state, u_t):
        """The state after one token, from the state before it (leaves (N, …)) and u_t."""
        raise NotImplementedError

    def check_solver(self) -> None:
        """ValueErrors naming a solver field that is out of range."""
        deer.check_options(self.solver, self.damping, self.tolerance, self.max_iterations)

    def check_sizes_and_solver(self) -> None:
        """For `__post_init__`: d_in, d_hidden (None becomes d_in) and the solver fields, ValueErrors
        naming the field."""
        checks.positive_int("d_in", self.d_in)
        if self.d_hidden is None:
            object.__setattr__(self, "d_hidden", self.d_in)
        checks.positive_int("d_hidden", self.d_hidden)
        self.check_solver()

    @property
    def d_out(self) -> int:
        return self.d_hidden

    # ---- what every nonlinear cell gets ----------------------------------------------------
    def forward(self, params: dict, x, state=None, *, method: str = "auto", resets=None,
                chunk_size: int | None = None, sequence_axis: str | None = None):
        """The states of every token (the step loop or the Newton solve, see the module docstring)
        and the readout.

        Args:
          params: from `init`.
          x: (B, T, d_in) real inputs.
          state: the state before the first token, shaped like `initial_state((B,))`; None for zeros.
          method: "auto", "sequential" (the step loop) or an engine method (the Newton solve).
          resets: (B, T) bool; True at t starts a fresh (zero) state there.
          chunk_size: the engine's chunk size for "chunked" (the Newton solve's scans).
          sequence_axis: a mesh axis time is split over (`lrnn.cells.shards`): inside shard_map, x
            and resets are this device's shard and y comes back the same way; outside, under
            `jax.set_mesh`, forward wraps itself in shard_map. Always the Newton solve.

        Returns:
          y (B, T, d_out) in x's dtype, and the state after the last token.
        """
        x, resets = self._check_call(params, x, resets, method, chunk_size, sequence_axis)
        if sequence_axis is not None and method == LOOP:
            raise ValueError("method='sequential' is the step loop, which cannot split time over sequence_axis "
                             f"{sequence_axis!r}: use 'auto' or an engine method (the Newton solve)")
        if sequence_axis is not None and not shards.is_bound(sequence_axis):
            return shards.split_forward(functools.partial(NonlinearCell.forward, self), params, x, state, resets, {},
                                        sequence_axis=sequence_axis, method=method, chunk_size=chunk_size)
        if method == "auto" and sequence_axis is None:
            method = LOOP
        y, final, _ = self._run(params, x, state, resets, method, chunk_size, sequence_axis, loop=method == LOOP)
        return y, final

    def solve(self, params: dict, x, state=None, *, method: str = "auto", resets=None,
              chunk_size: int | None = None, sequence_axis: str | None = None):
        """The Newton solve (`solver`), whatever `method` says: (y, final state, iterations).

        Args as `forward`'s, except that `method` is the engine method of every iteration's scan
        ("sequential" included: the engine's sequential scan) and `sequence_axis` must be bound by an
        enclosing shard_map. iterations: an int32 scalar, the Newton iterations that ran.
        """
        x, resets = self._check_call(params, x, resets, method, chunk_size, sequence_axis)
        if sequence_axis is not None and not shards.is_bound(sequence_axis):
            raise ValueError(f"solve needs sequence_axis {sequence_axis!r} bound by an enclosing jax.shard_map "
                             "(forward wraps itself; solve does not)")
        return self._run(params, x, state, resets, method, chunk_size, sequence_axis, loop=False)

    def step(self, params: dict, state, x_t):
        """One token for a batch: x_t (B, d_in) -> (y_t (B, d_out) in x_t's dtype, new state)."""
        params_check.check(self, params)
        x_t = checks.token(x_t, self.d_in)
        state = self._check_state("state", state, x_t.shape[0])
        xc = x_t.astype(jnp.promote_types(x_t.dtype, jnp.float32))[:, None]
        u_t = tree_map(lambda a: a[:, 0], self.inputs(params, xc))
        h = self._transition(params, self._in_dtype(state, self._dtype(u_t, state)), u_t)
        y = self.readout(params, tree_map(lambda s: s[:, None], h), xc)[:, 0]
        return y.astype(x_t.dtype), h

    # ---- the two paths -------------------------------------------------------------------
    def _check_call(self, params, x, resets, method, chunk_size, sequence_axis):
        params_check.check(self, params)
        x = checks.sequence(x, self.d_in)
        shards.check_name(sequence_axis)
        checks.one_of("method", method, ("auto",) + tuple(registered_methods()))
        if chunk_size is not None:
            checks.positive_int("chunk_size", chunk_size)
        self.check_solver()
        return x, checks.resets(resets, x.shape[:2])

    def _run(self, params, x, state, resets, method, chunk_size, sequence_axis, *, loop: bool):
        """(y, final state, iterations or None) of the step loop (`loop`) or the Newton solve."""
        xc = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        batch = x.shape[0]
        given = None if state is None else self._check_state("state", state, batch)
        u = self.inputs(params, xc)
        dtype = self._dtype(u, given)
        h0 = self.initial_state((batch,), dtype) if given is None else self._in_dtype(given, dtype)
        if loop:
            states, final = self._loop(params, u, h0, resets)
            iterations = None
        else:
            options = deer.Options(self.solver, self.damping, self.tolerance, self.max_iterations, method, chunk_size,
                                   sequence_axis)
            empty = self._flatten(self.initial_state((batch,), dtype))
            flat, iterations = deer.solve(self._flat_transition, params, u, self._flatten(h0), empty, resets,
                                          options=options)
            last = flat[:, -1] if sequence_axis is None else shards.last_steps(flat, 1, sequence_axis)[:, 0]
            states, final = self._unflatten(flat), self._unflatten(last)
        y = self.readout(params, states, xc)
        return y.astype(x.dtype), final, iterations

    def _loop(self, params, u, h0, resets):
        """(states (leaves (B, T, …)), final state) of `transition` stepped over time."""
        empty = tree_map(jnp.zeros_like, h0)

        def one_token(h, token):
            u_t, reset_t = token
            if reset_t is not None:
                h = tree_map(lambda e, s: jnp.where(reset_t.reshape(reset_t.shape + (1,) * (s.ndim - 1)), e, s),
                             empty, h)
            h = self._transition(params, h, u_t)
            return h, h

        time_major = lambda a: jnp.moveaxis(a, 1, 0)  # noqa: E731
        final, states = lax.scan(one_token, h0, (tree_map(time_major, u), None if resets is None else resets.T))
        return tree_map(lambda s: jnp.moveaxis(s, 0, 1), states), final

    # ---- the state as D numbers per row, for the Newton solve ----------------------------
    def _transition(self, params, state, u_t):
        """`transition`, its result in the state's dtype (a lax.scan carry keeps its type)."""
        return tree_map(lambda new, old: new.astype(old.dtype), self.transition(params, state, u_t), state)

    def _flat_transition(self, params, h, u_t):
        """`transition` on flat states: h (N, D) -> (N, D)."""
        return self._flatten(self._transition(params, self._unflatten(h), u_t))

    def _flatten(self, state) -> jax.Array:
        """A state (leaves (N, …)) as one (N, D) array."""
        return jnp.concatenate([s.reshape(s.shape[0], -1) for s in jax.tree_util.tree_leaves(state)], axis=-1)

    def _unflatten(self, flat: jax.Array):
        """(*lead, D) -> the state, its leaves (*lead, …)."""
        treedef, shapes = _layout(self)
        sizes = np.cumsum([math.prod(shape) for shape in shapes])[:-1]
        parts = jnp.split(flat, sizes, axis=-1)
        return jax.tree_util.tree_unflatten(
            treedef, [part.reshape(flat.shape[:-1] + shape) for part, shape in zip(parts, shapes)])

    @staticmethod
    def _dtype(u, state):
        """The compute dtype: that of the inputs' projections and the state, at least float32."""
        leaves = jax.tree_util.tree_leaves(u) + ([] if state is None else jax.tree_util.tree_leaves(state))
        return jnp.promote_types(jnp.result_type(*leaves), jnp.float32)

    @staticmethod
    def _in_dtype(state, dtype):
        return tree_map(lambda s: jnp.asarray(s).astype(dtype), state)

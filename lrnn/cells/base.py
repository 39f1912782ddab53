"""The contract every cell keeps, and the machinery a scan-defined cell gets for free.

A cell says what its recurrence elements are, e.g. for a diagonal state

    h_t = a_t ⊙ h_{t−1} + b_t          (a_t, b_t) = elements(params, x)
    y_t = readout(params, h_t, x_t)

(in general: the leaves of its `monoid` for every token), and inherits from `Cell`:

    init(key) -> params                                            the paper's init
    forward(params, x, state=None, *, method, resets, chunk_size, sequence_axis) -> (y, final_state)
    step(params, state, x_t) -> (y_t, new_state)                   one token, O(state) memory
    initial_state(batch_shape, dtype) -> state                     zeros
    param_labels(params) -> {"name": "recurrent" | "regular"}      for optax.multi_transform

`forward` builds the elements of every token, runs them through `lrnn.scan` (any method)
and reads out; `step` builds one token's elements and applies the monoid once. The two
share `elements` and `readout`, so they compute the same function by construction; the
tests check both against a loop of the paper's equations written independently.

Shapes: x (B, T, d_in) batch-first; states (B, *state_shape); y (B, T, d_out). A state made of
several arrays (mLSTM's (C, n, m), Aaren's (m, u, w)) is a tuple; such a cell overrides
`initial_state`, whose result is the template every given state is checked against.
Precision: the cell computes in float32 or wider (bf16 inputs are promoted) and returns y in
the input's dtype; states stay in the compute dtype (complex for complex cells).

The sizes live in the dataclass next to the other hyperparameters (so `init(key)` takes no
width, unlike the `init(key, d_in)` ARCHITECTURE.md sketches): `initial_state` needs the
state's width before any params exist, and a stacked model builds every layer from its
config alone.

A cell whose scan runs in another space (minGRU/minLSTM's log-space scan) sets `monoid`
and maps states in and out of it with `to_scan_state` / `from_scan_state`.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from lrnn.cells import checks, convolution, params_check, shards, streamed
from lrnn.scan import DiagonalMonoid, Monoid, scan

RECURRENT = "recurrent"
REGULAR = "regular"


class Cell:
    """Base class of the frozen dataclasses in lrnn.cells; subclasses define the fields."""

    d_in: int
    monoid: ClassVar[Monoid] = DiagonalMonoid()  # a property where it depends on a field (log space)
    # Names of the params that shape the recurrence itself (eigenvalues, steps, input
    # normalisation): papers give them a smaller learning rate and no weight decay.
    recurrent_params: ClassVar[frozenset] = frozenset()
    complex_state: ClassVar[bool] = False  # complex states (and eigenvalues), e.g. LRU, S5
    # reads a reverse scan's states too (bidirectional S5): `scan` takes backward_initial and
    # backward_resets, `reverse_resets` maps resets to the reverse scan's; no `step`
    bidirectional: ClassVar[bool] = False

    # ---- what a cell defines -------------------------------------------------------------
    def init(self, key: jax.Array) -> dict:
        raise NotImplementedError

    @property
    def state_shape(self) -> tuple:
        raise NotImplementedError

    @property
    def d_out(self) -> int:
        return self.d_in

    def elements(self, params: dict, x: jax.Array, **inputs) -> tuple:
        """The monoid's leaves for every token, time at axis 1 (for a diagonal cell (a, b), each
        (B, T, *state_shape)), from inputs x (B, T, d_in) and any extra per-call inputs the
        cell takes (HGRN's layer lower bound)."""
        raise NotImplementedError

    def readout(self, params: dict, h: jax.Array, x: jax.Array, **inputs) -> jax.Array:
        """y (B, T, d_out) from states h (B, T, *state_shape) and inputs x (B, T, d_in)."""
        raise NotImplementedError

    def to_scan_state(self, h: jax.Array) -> jax.Array:
        return h

    def from_scan_state(self, s: jax.Array) -> jax.Array:
        return s

    # ---- what every cell gets ------------------------------------------------------------
    def initial_state(self, batch_shape: tuple, dtype=jnp.float32) -> jax.Array:
        """Zeros (*batch_shape, *state_shape), complex when the cell's state is."""
        dtype = jnp.promote_types(dtype, jnp.complex64) if self.complex_state else dtype
        return jnp.zeros(tuple(batch_shape) + self.state_shape, dtype)

    def param_labels(self, params: dict) -> dict:
        """"recurrent" or "regular" per param, shaped like `params` (optax.multi_transform)."""
        return {name: RECURRENT if name in self.recurrent_params else REGULAR for name in params}

    def forward(self, params: dict, x, state=None, *, method: str = "auto", resets=None,
                chunk_size: int | None = None, sequence_axis: str | None = None, **inputs):
        """The parallel path: every token's elements, one `lrnn.scan`, the readout.

        Args:
          params: from `init`.
          x: (B, T, d_in) real inputs.
          state: (B, *state_shape) state before the first token; None for zeros.
          method: the engine's scan method (see `lrnn.scan.scan`), or "streamed": elements, scan
            and readout chunk by chunk, never a state per token (`lrnn.cells.streamed`). "auto"
            streams where the cost model of `experiments/bench_cells.py --write-auto`'s measurements
            predicts that faster (forward plus forward+backward time). "convolution", for the
            time-invariant cells (`lrnn.cells.convolution`): S4's convolution mode by FFT, no scan
            (no resets, sequence_axis or chunk_size with it).
          chunk_size: steps per chunk for the engine's "chunked"; for "streamed", tokens per
            chunk, dividing T (None: the measured or default one).
          resets: (B, T) bool; True at t starts a fresh state there (packed sequences).
          sequence_axis: a mesh axis time is split over (sequence parallelism, `lrnn.cells.shards`).
            Inside `jax.shard_map` with that axis bound, x and resets are this device's shard of
            time and y comes back the same way; outside, under `jax.set_mesh(mesh)`, they are the
            whole sequence and forward wraps itself in shard_map. The final state is the whole
            sequence's, on every device.
          **inputs: extra per-call inputs of the cell, if it takes any (e.g. HGRN's
            `lower_bound`); the same go to `step`.

        Returns:
          y (B, T, d_out) in x's dtype, and the state after the last token.
        """
        params_check.check(self, params)
        x = checks.sequence(x, self.d_in)
        shards.check_name(sequence_axis)
        if method == convolution.METHOD:
            convolution.check(self, resets=resets, sequence_axis=sequence_axis, chunk_size=chunk_size)
        if sequence_axis is not None and not shards.is_bound(sequence_axis):
            return shards.split_forward(functools.partial(Cell.forward, self), params, x, state,
                                        checks.resets(resets, x.shape[:2]), inputs, sequence_axis=sequence_axis,
                                        method=method, chunk_size=chunk_size)
        xc = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        state = None if state is None else self._check_state("state", state, x.shape[0])
        if method == convolution.METHOD:
            y, final = convolution.forward(self, params, xc, state, **inputs)
            return y.astype(x.dtype), final
        initial = None if state is None else self.to_scan_state(state)
        if method in ("auto", streamed.METHOD):
            method, chunk_size = streamed.choose(self, x.shape[:2], method, chunk_size)
        if method == streamed.METHOD:
            y, final = streamed.streamed_forward(self, params, xc, initial, chunk_size=chunk_size,
                                                 resets=checks.resets(resets, x.shape[:2]),
                                                 sequence_axis=sequence_axis, **inputs)
            return y.astype(x.dtype), self.from_scan_state(final)
        states, final = self.scan(self.elements(params, xc, **inputs), initial, method=method, resets=resets,
                                  chunk_size=chunk_size, sequence_axis=sequence_axis)
        y = self.readout(params, self.from_scan_state(states), xc, **inputs)
        return y.astype(x.dtype), self.from_scan_state(final)

    def step(self, params: dict, state, x_t, **inputs):
        """The inference path: one token for a batch.

        Args:
          params: from `init`.
          state: (B, *state_shape), e.g. from `initial_state((B,))` or `forward`.
          x_t: (B, d_in) the token's inputs.
          **inputs: the cell's extra per-call inputs, as for `forward`.

        Returns:
          y_t (B, d_out) in x_t's dtype, and the new state.
        """
        params_check.check(self, params)
        x_t = checks.token(x_t, self.d_in)
        state = self._check_state("state", state, x_t.shape[0])
        xc = x_t.astype(jnp.promote_types(x_t.dtype, jnp.float32))[:, None]
        leaf = jax.tree_util.tree_map(lambda e: e[:, 0], self.elements(params, xc, **inputs))
        h = self.from_scan_state(self.monoid.apply(leaf, self.to_scan_state(state)))
        y = self.readout(params, jax.tree_util.tree_map(lambda s: s[:, None], h), xc, **inputs)[:, 0]
        return y.astype(x_t.dtype), h

    def scan(self, elements: tuple, initial, **options):
        """`lrnn.scan` over time (axis 1) with this cell's monoid."""
        return scan(self.monoid, elements, axis=1, initial=initial, **options)

    def _check_state(self, name: str, state, batch: int):
        template = jax.eval_shape(lambda: self.initial_state((batch,)))
        return checks.state(name, state, template)

"""Matrix-state cells: a K×V state per head, trained chunkwise, run step-wise.

A matrix cell keeps the `Cell` contract and its per-token definition (`elements`, `readout`,
`monoid`), which gives it `step` (one O(K·V) update per head) and `forward_materialised`, the
per-token scan through `lrnn.scan` that keeps a K×V state for every token: the readable
reference, for small sizes only. Its `forward` is the training path: the chunkwise closed
form of `lrnn.cells.chunkwise`, matmuls inside chunks of `chunk_size` tokens and the engine
across chunks (`method` picks the engine's method there), so no per-token state is stored.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from lrnn.cells import checks, convolution, params_check, shards, streamed
from lrnn.cells.base import Cell
from lrnn.cells.heads import HeadSizes
from lrnn.scan import registered_methods, validation

DEFAULT_CHUNK_SIZE = 64


class MatrixCell(HeadSizes, Cell):
    """Base class of the matrix-state cells; a subclass defines `chunked` besides the `Cell` parts."""

    n_heads: int
    d_key: int  # key width summed over the heads, H·K
    d_value: int  # value width summed over the heads, H·V
    default_chunk_size: ClassVar[int] = DEFAULT_CHUNK_SIZE

    @property
    def state_shape(self) -> tuple:
        return (self.n_heads, self.key_dim, self.value_dim)

    def chunked(self, params: dict, x, state, *, chunk_size: int, method: str, resets, sequence_axis=None,
                **inputs):
        """(y, final state) by the chunkwise closed form, for x (B, T, d_in) in a float32 or
        wider dtype, a checked state (never None) and resets (B, T) bool or None; with a bound
        `sequence_axis`, x and resets are this device's shard of time (the chunk summaries cross
        devices in the engine's scan across chunks)."""
        raise NotImplementedError

    def forward(self, params: dict, x, state=None, *, method: str = "auto", resets=None,
                chunk_size: int | None = None, sequence_axis: str | None = None, **inputs):
        """The training path: the chunkwise closed form, the engine across chunks.

        Args:
          params: from `init`.
          x: (B, T, d_in) real inputs, any T ≥ 1.
          state: the state before the first token (see `initial_state`); None for zeros.
          method: the engine's method for the scan over chunk summaries, or "convolution" for a
            time-invariant cell (`lrnn.cells.convolution`): one chunk of T tokens, the parallel
            form (QKᵀ ⊙ D)V with its decay mask D (O(T²) memory; no resets, sequence_axis or
            chunk_size with it).
          resets: (B, T) bool; True at t starts a fresh state there (packed sequences).
          chunk_size: tokens per chunk (default 64); any C ≥ 1, T need not be a multiple.
          sequence_axis: a mesh axis time is split over, as for `Cell.forward`; the chunks are cut
            in each device's shard, so only chunk summaries cross devices.

        Returns:
          y (B, T, d_out) in x's dtype, and the state after the last token.
        """
        params_check.check(self, params)
        x = checks.sequence(x, self.d_in)
        if method == streamed.METHOD:
            raise ValueError(f"method='streamed' is for cells whose forward scans per-token elements; "
                             f"{type(self).__name__}'s forward is chunkwise already (no per-token state): "
                             f"pass an engine method for the scan across chunks, e.g. 'auto'")
        if method == convolution.METHOD:  # the decay mask is the time-invariant kernel: one chunk
            convolution.check(self, resets=resets, sequence_axis=sequence_axis, chunk_size=chunk_size)
            method, chunk_size = "sequential", x.shape[1]
        validation.check_method(method, None, registered_methods())  # before any chunk is computed
        chunk_size = self.default_chunk_size if chunk_size is None else chunk_size
        checks.positive_int("chunk_size", chunk_size)
        resets = checks.resets(resets, x.shape[:2])
        shards.check_name(sequence_axis)
        if sequence_axis is not None and not shards.is_bound(sequence_axis):
            return shards.split_forward(self.forward, params, x, state, resets, inputs, sequence_axis=sequence_axis,
                                        method=method, chunk_size=chunk_size)
        xc = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        if state is None:
            state = self.initial_state((x.shape[0],), xc.dtype)
        state = self._check_state("state", state, x.shape[0])
        y, final = self.chunked(params, xc, state, chunk_size=chunk_size, method=method, resets=resets,
                                sequence_axis=sequence_axis, **inputs)
        return y.astype(x.dtype), final

    def forward_materialised(self, params: dict, x, state=None, *, method: str = "auto", resets=None,
                             chunk_size: int | None = None, sequence_axis: str | None = None, **inputs):
        """The per-token reference: every token's state through one `lrnn.scan` (memory
        O(T·K·V) per head; `method` and `chunk_size` are the engine's). `Cell.forward` checks
        the params."""
        return Cell.forward(self, params, x, state, method=method, resets=resets, chunk_size=chunk_size,
                            sequence_axis=sequence_axis, **inputs)

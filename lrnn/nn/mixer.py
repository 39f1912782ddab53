"""The token mixer: a registered cell with the layer-level parts around it.

For x (B, T, D) with D = d_model, E = expand · D the inner width and O = cell.d_out:

    u = x W_in                                  (B, T, E)    in-projection, no bias
    u = SiLU(ShortConv(u))                      when conv_size is set (causal, kernel conv_size)
    y, h_T = cell.forward(θ, u)                 (B, T, O)    the recurrence, θ the cell's params
    y = RMSNorm(y)                              when norm
    y = y ⊙ SiLU(x W_g)                         when output_gate, W_g: D → O
    out = Dropout(y W_out)                      (B, T, D)    out-projection, no bias

Bidirectional (bidirectional=True): a second copy of the cell with its own params θ_b runs
over the reversed sequence and the two are summed before the norm and gate,

    y = cell(θ, u) + rev(cell(θ_b, rev(u)))

(summing keeps every width and the out-projection as in the causal mixer). The short conv
stays causal and feeds both directions. Such a mixer (or one whose cell is itself
bidirectional, S5's `bidirectional=True`) reads later tokens, so it has no step-wise path:
`prefill`, `init_cache` and `step` raise ValueError.

Padding: `__call__(x, mask=...)`, mask (B, T) bool with True at real positions and padding at
the end, matters only to a non-causal mixer, whose backward direction would otherwise read
the padding first. There the mask becomes scan resets at every change of the mask, so real
tokens and padding are separate packed segments and the real tokens' outputs do not depend
on the padding (a causal mixer's real outputs never do, so it ignores the mask).

Inference: `prefill(x)` is the parallel pass that also returns the cache (the conv's last
conv_size − 1 inputs and the cell's final state), `step(x_t, cache)` one token from it,
`init_cache(batch)` the cache before any token. Dropout is for training: `__call__` applies
it unless the module is in eval mode (`module.eval()`); `prefill` and `step` never do.

Layout: batch-first throughout, time on axis 1 of every scan. Measured side by side
(`experiments/bench_scan.py`, "Layout"; CPU, B×T×D from 8×1024×512 to 2×65536×64), the
diagonal scan through "auto" on time-major (T, B, D) elements takes 0.87–1.04× the batch-first
time forward and 0.91–1.17× forward+backward (0.85–1.25× over three runs): neither layout wins
across sizes by more than the machine's noise, and a time-major model would add transposes at
its edges, so the mixer hands the engine batch-first elements.

The cell's params are held as `RecurrentParam` where the cell labels them "recurrent" and as
`nnx.Param` otherwise (`lrnn.nn.params`). Extra per-call inputs of the cell (HGRN's
`lower_bound`) pass through as keyword arguments to every path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks
from lrnn.nn.cell_factory import build_cell
from lrnn.nn.conv import ShortConv
from lrnn.nn.norms import make_norm
from lrnn.nn.params import cell_variables, values
from lrnn.scan import registered_methods

SCAN_OPTIONS = ("method", "chunk_size")


def check_dropout(rate) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {rate!r}")


def check_scan_options(options) -> dict:
    """{"method": ..., "chunk_size": ...} with the defaults ("auto", None) filled in."""
    if options is None:
        options = {}
    if not isinstance(options, dict) or set(options) - set(SCAN_OPTIONS):
        raise ValueError(f"scan_options must be a dict with keys among {', '.join(SCAN_OPTIONS)}, got {options!r}")
    method = options.get("method", "auto")
    known = ("auto",) + tuple(registered_methods())
    if method not in known:
        hint = " (the Pallas kernels register it when pallas_kernels imports)" if method == "pallas" else ""
        raise ValueError(f"scan method must be one of {', '.join(repr(m) for m in known)}, got {method!r}{hint}")
    chunk_size = options.get("chunk_size")
    if chunk_size is not None:
        checks.positive_int("chunk_size", chunk_size)
    return {"method": method, "chunk_size": chunk_size}


def check_mask(mask, lead_shape: tuple) -> jax.Array:
    """A (B, T) bool mask of real positions."""
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_ or mask.shape != tuple(lead_shape):
        raise ValueError(f"mask must be a bool array of shape {tuple(lead_shape)} (B, T), got {mask.dtype} {mask.shape}")
    return mask


def segment_starts(mask: jax.Array) -> jax.Array:
    """(B, T) bool: True where the mask changes value (t ≥ 1), the scan resets that make real
    tokens and padding separate segments (in whichever time order `mask` is given)."""
    change = mask[:, 1:] != mask[:, :-1]
    return jnp.concatenate([jnp.zeros_like(mask[:, :1]), change], axis=1)


class Mixer(nnx.Module):
    """A cell between an in-projection (with optional short conv) and an out-projection."""

    def __init__(self, d_model: int, cell: str, cell_options: dict | None = None, *, expand: int = 1,
                 conv_size: int | None = None, output_gate: bool = False, norm: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, scan_options: dict | None = None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        """
        Args:
          d_model: D, the width of the inputs and outputs.
          cell: a registered cell name (`lrnn.cells.registered_cells()`).
          cell_options: the cell's hyperparameters besides d_in (see `lrnn.nn.build_cell`).
          expand: E / D, the inner width the cell runs at.
          conv_size: kernel size of the short causal conv before the cell; None for none.
          output_gate: multiply the cell's output by SiLU(x W_g).
          norm: RMSNorm on the cell's output.
          dropout: rate on the output, in [0, 1).
          bidirectional: add a second cell over the reversed sequence (not causal).
          scan_options: {"method": the engine's scan method, "chunk_size": int or None}.
          param_dtype: dtype of every param (float32 by default).
          rngs: nnx.Rngs with a "params" (and for dropout a "dropout") stream.
        """
        checks.positive_int("d_model", d_model)
        checks.positive_int("expand", expand)
        if conv_size is not None:
            checks.positive_int("conv_size", conv_size)
        for name, value in (("output_gate", output_gate), ("norm", norm), ("bidirectional", bidirectional)):
            checks.flag(name, value)
        check_dropout(dropout)
        scan_options = check_scan_options(scan_options)
        d_inner = expand * d_model
        self.cell = build_cell(cell, d_inner, cell_options)
        self.d_model = d_model
        self.bidirectional = bidirectional
        self.param_dtype = param_dtype
        self.method, self.chunk_size = scan_options["method"], scan_options["chunk_size"]
        d_out = self.cell.d_out
        linear = dict(use_bias=False, param_dtype=param_dtype, rngs=rngs)
        self.in_proj = nnx.Linear(d_model, d_inner, **linear)
        self.conv = ShortConv(d_inner, conv_size, param_dtype=param_dtype, rngs=rngs) if conv_size else None
        self.cell_params = cell_variables(self.cell, self.cell.init(rngs.params()), param_dtype)
        self.backward_cell_params = (cell_variables(self.cell, self.cell.init(rngs.params()), param_dtype)
                                     if bidirectional else None)
        self.norm = make_norm("rmsnorm", d_out, param_dtype=param_dtype, rngs=rngs) if norm else None
        self.gate_proj = nnx.Linear(d_model, d_out, **linear) if output_gate else None
        self.out_proj = nnx.Linear(d_out, d_model, **linear)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else None

    @property
    def causal(self) -> bool:
        """Whether every output reads only earlier tokens (then the step-wise path exists)."""
        return not self.bidirectional and not getattr(self.cell, "bidirectional", False)

    # ---- parallel paths ------------------------------------------------------------------
    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None, **cell_inputs) -> jax.Array:
        """out (B, T, D) for x (B, T, D); mask (B, T) bool marks real positions (see the module
        docstring: it matters only when the mixer is not causal)."""
        x = checks.sequence(x, self.d_model)
        if mask is not None:
            mask = check_mask(mask, x.shape[:2])
        resets = segment_starts(mask) if mask is not None and not self.causal else None
        u = self.in_proj(x)
        u, _ = self._conv(u, None)
        y, _ = self.cell.forward(values(self.cell_params), u, None, resets=resets, **self._scan(), **cell_inputs)
        if self.bidirectional:
            reverse = lambda a: jnp.flip(a, axis=1)  # noqa: E731
            backward_resets = None if mask is None else segment_starts(reverse(mask))
            y_b, _ = self.cell.forward(values(self.backward_cell_params), reverse(u), None, resets=backward_resets,
                                       **self._scan(), **cell_inputs)
            y = y + reverse(y_b)
        out = self._readout(x, y)
        return out if self.dropout is None else self.dropout(out)

    def prefill(self, x: jax.Array, cache: dict | None = None, **cell_inputs) -> tuple[jax.Array, dict]:
        """The parallel pass over x (B, T, D) that also returns the cache after its last token,
        continuing from `cache` when given (None: the start of the sequence). No dropout."""
        self._require_causal("prefill")
        x = checks.sequence(x, self.d_model)
        cache = self.init_cache(x.shape[0]) if cache is None else self._check_cache(cache)
        u = self.in_proj(x)
        u, conv_cache = self._conv(u, cache.get("conv"))
        y, state = self.cell.forward(values(self.cell_params), u, cache["state"], **self._scan(), **cell_inputs)
        return self._readout(x, y), self._cache(state, conv_cache)

    # ---- step-wise path ------------------------------------------------------------------
    def init_cache(self, batch: int) -> dict:
        """{"state": the cell's zero state, "conv": zeros (B, conv_size − 1, E) when there is a
        conv}: the cache before the first token."""
        self._require_causal("init_cache")
        checks.positive_int("batch", batch)
        state = self.cell.initial_state((batch,), jnp.promote_types(self.param_dtype, jnp.float32))
        conv_cache = None if self.conv is None else self.conv.init_cache(batch, self.param_dtype)
        return self._cache(state, conv_cache)

    def step(self, x_t: jax.Array, cache: dict, **cell_inputs) -> tuple[jax.Array, dict]:
        """One token x_t (B, D): (out_t (B, D), the new cache)."""
        self._require_causal("step")
        x_t = checks.token(x_t, self.d_model)
        cache = self._check_cache(cache)
        u_t = self.in_proj(x_t)
        conv_cache = None
        if self.conv is not None:
            u_t, conv_cache = self.conv.step(u_t, cache["conv"])
            u_t = jax.nn.silu(u_t)
        y_t, state = self.cell.step(values(self.cell_params), cache["state"], u_t, **cell_inputs)
        return self._readout(x_t, y_t), self._cache(state, conv_cache)

    # ---- parts ---------------------------------------------------------------------------
    def _conv(self, u, conv_cache):
        if self.conv is None:
            return u, None
        u, conv_cache = self.conv.prefill(u, conv_cache)
        return jax.nn.silu(u), conv_cache

    def _readout(self, x, y):
        """norm, gate and out-projection on the cell's output y (…, O) for mixer inputs x (…, D)."""
        if self.norm is not None:
            y = self.norm(y)
        if self.gate_proj is not None:
            y = y * jax.nn.silu(self.gate_proj(x))
        return self.out_proj(y)

    def _scan(self) -> dict:
        return {"method": self.method, "chunk_size": self.chunk_size}

    def _check_cache(self, cache) -> dict:
        keys = {"state"} if self.conv is None else {"state", "conv"}
        if not isinstance(cache, dict) or set(cache) != keys:
            got = sorted(cache) if isinstance(cache, dict) else type(cache).__name__
            raise ValueError(f"cache must be the dict init_cache or prefill returns, with keys {sorted(keys)}, got {got}")
        return cache

    def _cache(self, state, conv_cache) -> dict:
        return {"state": state} if self.conv is None else {"state": state, "conv": conv_cache}

    def _require_causal(self, what: str) -> None:
        if not self.causal:
            why = "bidirectional=True" if self.bidirectional else f"its cell {type(self.cell).__name__} is bidirectional"
            raise ValueError(f"{what} needs a causal mixer (it runs token by token), but {why}: "
                             f"use __call__, or a causal configuration to decode")

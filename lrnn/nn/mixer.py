"""The token mixer: a registered cell with the layer-level parts around it.

For x (B, T, D) with D = d_model, E the inner width (expand · D, or d_inner when given) and
O = cell.d_out:

    u = x W_in                                  (B, T, E)    in-projection, no bias
    u = φ_conv(ShortConv(u))                    when conv_size is set (causal, kernel conv_size)
    y, h_T = cell.forward(θ, u)                 (B, T, O)    the recurrence, θ the cell's params
    y = RMSNorm(y)                              when norm
    y = y ⊙ φ_gate(x W_g)                       when output_gate, W_g: D → O
    out = Dropout(y W_out)                      (B, T, D)    out-projection, no bias

φ_conv (conv_activation) is SiLU by default (Mamba, DeltaNet), GELU, or none; φ_gate
(gate_activation) is SiLU by default or GELU, both `ACTIVATIONS` (GELU in its tanh form). Hawk
and Griffin's recurrent block (De et al. 2024) is this mixer with the "rglru" cell, no conv
activation, a GELU output gate and E ≈ 4D/3 (`lrnn.models.presets`).

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

Sequence parallelism (`sequence_axis`, the name of a mesh axis): the time mixing, the short conv
and the cell(s), runs under `jax.shard_map` over the mesh the caller sets (`jax.set_mesh`), the
(B, T, …) activations split as PartitionSpec(<the mesh's other axes>, sequence_axis) (time over
that axis, the batch over the rest), the params replicated; the projections, norms and gate act
per token on the global arrays, which GSPMD shards. Inside, the conv receives the conv_size − 1
inputs before its shard from the previous device and the cell exchanges its shard summaries
(`lrnn.cells.shards`, `lrnn.scan.sequence_parallel`). The backward direction of a bidirectional
mixer reverses the whole sequence: each device flips its shard and swaps it with device
P − 1 − p (`shards.reverse_time`; a flip alone would keep the devices in order). Either way the
cell runs its own forward (any cell, no reverse form needed), at the cost of sending u and y_b
across once each. `prefill` splits the same way and returns the whole sequence's cache; `step`
and `init_cache` are per token and unchanged.

The cell's params are held as `RecurrentParam` where the cell labels them "recurrent" and as
`nnx.Param` otherwise (`lrnn.nn.params`). Extra per-call inputs of the cell (HGRN's
`lower_bound`) pass through as keyword arguments to every path.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec

from lrnn.cells import checks, shards
from lrnn.nn.cell_factory import build_cell
from lrnn.nn.conv import ShortConv, causal_conv
from lrnn.nn.norms import make_norm
from lrnn.nn.params import cell_variables, values
from lrnn.scan import registered_methods, sequence_parallel

SCAN_OPTIONS = ("method", "chunk_size")
ACTIVATIONS = {"silu": jax.nn.silu, "gelu": jax.nn.gelu}


def check_activations(conv_activation, gate_activation) -> None:
    """conv_activation one of `ACTIVATIONS` or None (none); gate_activation one of `ACTIVATIONS`."""
    checks.one_of("conv_activation", conv_activation, (*ACTIVATIONS, None))
    checks.one_of("gate_activation", gate_activation, tuple(ACTIVATIONS))


def inner_width(d_model: int, expand: int, d_inner: int | None) -> int:
    """The mixer's inner width E: d_inner when given (then expand must be 1), else expand · d_model."""
    checks.positive_int("expand", expand)
    if d_inner is None:
        return expand * d_model
    checks.positive_int("d_inner", d_inner)
    if expand != 1:
        raise ValueError(f"give the inner width as expand (E = expand · d_model) or as d_inner, not both: "
                         f"got expand={expand!r} and d_inner={d_inner!r}")
    return d_inner


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


def shard_over_time(run, sequence_axis: str, arrays, sharded, cache, *, argument: str):
    """run(arrays, sharded, cache) -> (out, new cache) under `jax.shard_map` over the current mesh:
    the (B, T, …) arrays of `sharded` (and `out`) split with PartitionSpec(<the mesh's other axes>,
    sequence_axis), the (B, …) arrays of `cache` (and the new cache) over the other axes, `arrays`
    (params, cell inputs) replicated. `argument` names the input in errors."""
    batch, length = jax.tree_util.tree_leaves(sharded)[0].shape[:2]
    mesh = jax.sharding.get_abstract_mesh()
    others = tuple(name for name in mesh.axis_names if name != sequence_axis)
    sequence_parallel.check_outside(sequence_axis, length, argument=argument)
    ways = math.prod(mesh.shape[name] for name in others)
    if batch % ways:
        raise ValueError(f"the batch {batch} must be divisible by the {ways} devices of the mesh's other axes "
                         f"{others} it is split over (sequence_axis={sequence_axis!r} splits time)")
    batch_spec = others or None
    time_split, batch_split = PartitionSpec(batch_spec, sequence_axis), PartitionSpec(batch_spec)
    cache_spec = None if cache is None else batch_split
    mapped = jax.shard_map(run, in_specs=(PartitionSpec(), time_split, cache_spec),
                           out_specs=(time_split, cache_spec), check_vma=False)
    return mapped(arrays, sharded, cache)


class Mixer(nnx.Module):
    """A cell between an in-projection (with optional short conv) and an out-projection."""

    def __init__(self, d_model: int, cell: str, cell_options: dict | None = None, *, expand: int = 1,
                 d_inner: int | None = None, conv_size: int | None = None, conv_activation: str | None = "silu",
                 output_gate: bool = False, gate_activation: str = "silu", norm: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, scan_options: dict | None = None,
                 sequence_axis: str | None = None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        """
        Args:
          d_model: D, the width of the inputs and outputs.
          cell: a registered cell name (`lrnn.cells.registered_cells()`).
          cell_options: the cell's hyperparameters besides d_in (see `lrnn.nn.build_cell`).
          expand: E / D, the inner width the cell runs at.
          d_inner: E itself, for widths that are no multiple of D (Hawk's 4D/3); None: expand · D.
            Give expand or d_inner, not both.
          conv_size: kernel size of the short causal conv before the cell; None for none.
          conv_activation: "silu", "gelu" or None (none), after the conv.
          output_gate: multiply the cell's output by φ_gate(x W_g).
          gate_activation: φ_gate, "silu" or "gelu".
          norm: RMSNorm on the cell's output.
          dropout: rate on the output, in [0, 1).
          bidirectional: add a second cell over the reversed sequence (not causal).
          scan_options: {"method": the engine's scan method, "chunk_size": int or None}.
          sequence_axis: a mesh axis to split time over (sequence parallelism, see the module
            docstring); None for none.
          param_dtype: dtype of every param (float32 by default).
          rngs: nnx.Rngs with a "params" (and for dropout a "dropout") stream.
        """
        checks.positive_int("d_model", d_model)
        d_inner = inner_width(d_model, expand, d_inner)
        if conv_size is not None:
            checks.positive_int("conv_size", conv_size)
        check_activations(conv_activation, gate_activation)
        for name, value in (("output_gate", output_gate), ("norm", norm), ("bidirectional", bidirectional)):
            checks.flag(name, value)
        check_dropout(dropout)
        scan_options = check_scan_options(scan_options)
        shards.check_name(sequence_axis)
        self.cell = build_cell(cell, d_inner, cell_options)
        self.d_model = d_model
        self.bidirectional = bidirectional
        self.sequence_axis = sequence_axis
        self.conv_activation, self.gate_activation = conv_activation, gate_activation
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
        backward_resets = segment_starts(jnp.flip(mask, axis=1)) if mask is not None and self.bidirectional else None
        y, _ = self._time_mix(self.in_proj(x), None, resets, backward_resets, cell_inputs)
        out = self._readout(x, y)
        return out if self.dropout is None else self.dropout(out)

    def prefill(self, x: jax.Array, cache: dict | None = None, **cell_inputs) -> tuple[jax.Array, dict]:
        """The parallel pass over x (B, T, D) that also returns the cache after its last token,
        continuing from `cache` when given (None: the start of the sequence). No dropout."""
        self._require_causal("prefill")
        x = checks.sequence(x, self.d_model)
        cache = self.init_cache(x.shape[0]) if cache is None else self._check_cache(cache)
        y, cache = self._time_mix(self.in_proj(x), cache, None, None, cell_inputs)
        return self._readout(x, y), cache

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
            u_t = self._conv_activation(u_t)
        y_t, state = self.cell.step(values(self.cell_params), cache["state"], u_t, **cell_inputs)
        return self._readout(x_t, y_t), self._cache(state, conv_cache)

    # ---- parts ---------------------------------------------------------------------------
    def _time_mix(self, u, cache, resets, backward_resets, cell_inputs):
        """(y (B, T, O), the cache after the last token or None): what mixes along time, the conv
        (+ its activation) and the cell(s), for the in-projected u (B, T, E) from `cache` (None:
        zeros, and no cache back). Under `sequence_axis` it runs in `jax.shard_map` (`shard_over_time`)."""
        if cache is not None and self.conv is not None:
            cache = {**cache, "conv": self.conv.check_cache(cache["conv"], u.shape[0])}
        arrays = {"cell": values(self.cell_params), "inputs": cell_inputs,
                  "backward": None if self.backward_cell_params is None else values(self.backward_cell_params),
                  "conv": None if self.conv is None else (self.conv.kernel[...],
                                                          None if self.conv.bias is None else self.conv.bias[...])}
        sharded = {"u": u, "resets": resets, "backward_resets": backward_resets}
        run = functools.partial(self._mix, sequence_axis=self.sequence_axis)
        if self.sequence_axis is None or shards.is_bound(self.sequence_axis):
            return run(arrays, sharded, cache)
        return shard_over_time(run, self.sequence_axis, arrays, sharded, cache, argument="the mixer's input x")

    def _mix(self, arrays, sharded, cache, *, sequence_axis):
        """`_time_mix`'s body on arrays: the whole sequence, or this device's shard of it."""
        u, cell_inputs = sharded["u"], arrays["inputs"]
        state = None if cache is None else cache["state"]
        conv_cache = None
        if arrays["conv"] is not None:
            u, conv_cache = causal_conv(u, *arrays["conv"], None if cache is None else cache["conv"],
                                        sequence_axis=sequence_axis)
            u = self._conv_activation(u)
        options = dict(**self._scan(), sequence_axis=sequence_axis, **cell_inputs)
        y, state = self.cell.forward(arrays["cell"], u, state, resets=sharded["resets"], **options)
        if self.bidirectional:  # the whole sequence reversed: across devices too (shards.reverse_time)
            reverse = functools.partial(shards.reverse_time, sequence_axis=sequence_axis)
            y_b, _ = self.cell.forward(arrays["backward"], reverse(u), None, resets=sharded["backward_resets"],
                                       **options)
            y = y + reverse(y_b)
        return y, (None if cache is None else self._cache(state, conv_cache))

    def _readout(self, x, y):
        """norm, gate and out-projection on the cell's output y (…, O) for mixer inputs x (…, D)."""
        if self.norm is not None:
            y = self.norm(y)
        if self.gate_proj is not None:
            y = y * ACTIVATIONS[self.gate_activation](self.gate_proj(x))
        return self.out_proj(y)

    def _conv_activation(self, u):
        return u if self.conv_activation is None else ACTIVATIONS[self.conv_activation](u)

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

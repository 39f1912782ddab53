"""ModelConfig: every architectural choice of an lrnn model, checked when it is made.

A model is `n_layers` residual blocks (lrnn.nn.Block) of width d_model, each mixing tokens with
one cell kind ("recurrent" layers) or with local multi-query attention ("attention" layers, as
Griffin's: De et al. 2024) as the `layers` pattern says, a final norm and a head. The fields are
what the CLI can set; a bad value raises ValueError in `__post_init__`, naming the field, what
it must be and what it was, before any param is drawn. The cell itself is built once here (at
its inner width) so options it rejects fail at configuration time too. Hawk and Griffin's
settings: `lrnn.models.presets`.
"""

from __future__ import annotations

import dataclasses

from lrnn.cells import checks
from lrnn.models.pooling import POOLINGS
from lrnn.nn import build_cell
from lrnn.nn.ffn import check_ffn
from lrnn.nn.mixer import check_activations, check_dropout, check_scan_options, inner_width
from lrnn.nn.norms import check_norm

LAYER_KINDS = ("recurrent", "attention")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The architecture of a SequenceClassifier, SequenceTagger or CausalLM.

    Attributes:
      cell: a registered cell name (`lrnn.cells.registered_cells()`).
      cell_options: the cell's hyperparameters besides d_in, e.g. {"n_heads": 2}.
      d_model: the residual stream's width.
      n_layers: the number of blocks.
      expand: the mixer's inner width over d_model.
      d_inner: the mixer's inner width itself (widths no multiple of d_model, Hawk's 4/3 · d_model);
        None: expand · d_model. Set expand or d_inner, not both.
      conv_size: kernel size of the mixer's short causal conv; None for no conv.
      conv_activation: after the conv, "silu", "gelu" or None (none).
      ffn: "glu" (SwiGLU), "geglu" (GeGLU), "mlp" (GELU) or None (no channel mixer).
      ffn_ratio: the FFN's hidden width over d_model.
      norm: "rmsnorm" or "layernorm", for the pre-norms and the final norm.
      output_gate: gate the mixer's output by φ(x W_g).
      gate_activation: that φ, "silu" or "gelu".
      mixer_norm: RMSNorm on the cell's output inside the mixer.
      dropout: rate on the mixer and FFN outputs, in [0, 1).
      bidirectional: a second, reversed cell in every mixer (classification and tagging only).
      pooling: how a classifier pools over time, "mean", "last" or "max".
      scan_method: the engine's scan method for the cells' parallel path.
      chunk_size: the scan's chunk size (None: the cell's default).
      sequence_axis: a mesh axis to split time over (sequence parallelism): every mixer runs its
        short conv and cell under `jax.shard_map` over the mesh the caller sets with
        `jax.set_mesh(mesh)`, time split over this axis and the batch over the mesh's other axes
        (`lrnn.nn.mixer`); None for none. The params are the same either way. Local attention
        needs attention_window − 1 ≤ the time length per device.
      layers: the kinds of the blocks, "recurrent" (a Mixer around `cell`) or "attention" (local
        multi-query attention, `lrnn.nn.LocalAttention`), a pattern repeated over n_layers: layer l
        is layers[l mod len(layers)] (Griffin: ("recurrent", "recurrent", "attention")). At most
        n_layers long.
      attention_heads: the attention layers' query heads (one key/value head); divides d_model.
      attention_window: the tokens each attention query sees (itself and the window − 1 before).
      attention_rope_fraction: the fraction of each head's dims RoPE turns, in [0, 1].
    """

    cell: str = "deltanet"
    cell_options: dict = dataclasses.field(default_factory=dict)
    d_model: int = 64
    n_layers: int = 2
    expand: int = 1
    d_inner: int | None = None
    conv_size: int | None = 4
    conv_activation: str | None = "silu"
    ffn: str | None = "glu"
    ffn_ratio: float = 2.0
    norm: str = "rmsnorm"
    output_gate: bool = False
    gate_activation: str = "silu"
    mixer_norm: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    pooling: str = "mean"
    scan_method: str = "auto"
    chunk_size: int | None = None
    sequence_axis: str | None = None
    layers: tuple = ("recurrent",)
    attention_heads: int = 1
    attention_window: int = 128
    attention_rope_fraction: float = 0.5

    def __post_init__(self):
        if self.cell_options is None:  # as build_cell reads it (and the CLI's model.cell_options=none)
            object.__setattr__(self, "cell_options", {})
        if not isinstance(self.cell_options, dict):
            raise ValueError(f"cell_options must be a dict of the cell's hyperparameters, got {self.cell_options!r}")
        for name in ("d_model", "n_layers"):
            checks.positive_int(name, getattr(self, name))
        inner_width(self.d_model, self.expand, self.d_inner)
        if self.conv_size is not None:
            checks.positive_int("conv_size", self.conv_size)
        check_activations(self.conv_activation, self.gate_activation)
        check_ffn(self.ffn, self.ffn_ratio)
        check_norm("norm", self.norm)
        for name in ("output_gate", "mixer_norm", "bidirectional"):
            checks.flag(name, getattr(self, name))
        check_dropout(self.dropout)
        checks.one_of("pooling", self.pooling, POOLINGS)
        check_scan_options(self.scan_options)
        if self.sequence_axis is not None and not isinstance(self.sequence_axis, str):
            raise ValueError(f"sequence_axis must be None or the name of a mesh axis (a str), "
                             f"got {self.sequence_axis!r}")
        build_cell(self.cell, self.inner_width, self.cell_options)
        self._check_layers()

    def _check_layers(self) -> None:
        """The layer pattern and the attention options."""
        if isinstance(self.layers, list):  # as a TOML array may arrive
            object.__setattr__(self, "layers", tuple(self.layers))
        if (not isinstance(self.layers, tuple) or not self.layers
                or not all(isinstance(kind, str) and kind in LAYER_KINDS for kind in self.layers)):
            raise ValueError(f"layers must be a non-empty tuple of layer kinds among {', '.join(LAYER_KINDS)} "
                             f"(a pattern repeated over n_layers), got {self.layers!r}")
        if len(self.layers) > self.n_layers:
            raise ValueError(f"layers (a pattern of {len(self.layers)}) must not be longer than n_layers = "
                             f"{self.n_layers}, got {self.layers!r}")
        for name in ("attention_heads", "attention_window"):
            checks.positive_int(name, getattr(self, name))
        if self.d_model % self.attention_heads:
            raise ValueError(f"attention_heads must divide d_model (heads of width d_model / attention_heads), "
                             f"got attention_heads={self.attention_heads} for d_model={self.d_model}")
        checks.in_range("attention_rope_fraction", self.attention_rope_fraction, 0.0, 1.0)
        if self.bidirectional and "attention" in self.layers:
            raise ValueError(f"bidirectional needs every layer recurrent (local attention is causal only), "
                             f"got layers={self.layers!r}")

    @property
    def inner_width(self) -> int:
        """The width the cell runs at: d_inner, or expand · d_model."""
        return inner_width(self.d_model, self.expand, self.d_inner)

    @property
    def layer_kinds(self) -> tuple:
        """The kind of every layer, the pattern `layers` repeated over n_layers."""
        return tuple(self.layers[layer % len(self.layers)] for layer in range(self.n_layers))

    @property
    def causal(self) -> bool:
        """Whether every layer reads only earlier tokens: no bidirectional mixer, and no cell
        that is bidirectional itself (S5's option)."""
        cell = build_cell(self.cell, self.inner_width, self.cell_options)
        return not self.bidirectional and not getattr(cell, "bidirectional", False)

    @property
    def scan_options(self) -> dict:
        return {"method": self.scan_method, "chunk_size": self.chunk_size}

    def block_options(self, kind: str = "recurrent") -> dict:
        """The keyword arguments of a `lrnn.nn.Block` of `kind` ("recurrent" or "attention"),
        besides param_dtype and rngs."""
        checks.one_of("kind", kind, LAYER_KINDS)
        shared = dict(d_model=self.d_model, norm=self.norm, ffn=self.ffn, ffn_ratio=self.ffn_ratio,
                      dropout=self.dropout, sequence_axis=self.sequence_axis)
        if kind == "attention":
            return dict(**shared, attention={"n_heads": self.attention_heads, "window": self.attention_window,
                                             "rope_fraction": self.attention_rope_fraction})
        return dict(**shared, cell=self.cell, cell_options=dict(self.cell_options), expand=self.expand,
                    d_inner=self.d_inner, conv_size=self.conv_size, conv_activation=self.conv_activation,
                    output_gate=self.output_gate, gate_activation=self.gate_activation, mixer_norm=self.mixer_norm,
                    bidirectional=self.bidirectional, scan_options=self.scan_options)

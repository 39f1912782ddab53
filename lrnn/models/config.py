"""ModelConfig: every architectural choice of an lrnn model, checked when it is made.

A model is `n_layers` residual blocks (lrnn.nn.Block) of width d_model around one cell kind,
a final norm and a head. The fields are what the CLI can set; a bad value raises ValueError
in `__post_init__`, naming the field, what it must be and what it was, before any param is
drawn. The cell itself is built once here (at d_in = expand · d_model) so options it rejects
fail at configuration time too.
"""

from __future__ import annotations

import dataclasses

from lrnn.cells import checks
from lrnn.models.pooling import POOLINGS
from lrnn.nn import build_cell
from lrnn.nn.ffn import check_ffn
from lrnn.nn.mixer import check_dropout, check_scan_options
from lrnn.nn.norms import check_norm


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The architecture of a SequenceClassifier, SequenceTagger or CausalLM.

    Attributes:
      cell: a registered cell name (`lrnn.cells.registered_cells()`).
      cell_options: the cell's hyperparameters besides d_in, e.g. {"n_heads": 2}.
      d_model: the residual stream's width.
      n_layers: the number of blocks.
      expand: the mixer's inner width over d_model.
      conv_size: kernel size of the mixer's short causal conv; None for no conv.
      ffn: "glu" (SwiGLU), "mlp" (GELU) or None (no channel mixer).
      ffn_ratio: the FFN's hidden width over d_model.
      norm: "rmsnorm" or "layernorm", for the pre-norms and the final norm.
      output_gate: gate the mixer's output by SiLU(x W_g).
      mixer_norm: RMSNorm on the cell's output inside the mixer.
      dropout: rate on the mixer and FFN outputs, in [0, 1).
      bidirectional: a second, reversed cell in every mixer (classification and tagging only).
      pooling: how a classifier pools over time, "mean", "last" or "max".
      scan_method: the engine's scan method for the cells' parallel path.
      chunk_size: the scan's chunk size (None: the cell's default).
      sequence_axis: a mesh axis to split time over (sequence parallelism): every mixer runs its
        short conv and cell under `jax.shard_map` over the mesh the caller sets with
        `jax.set_mesh(mesh)`, time split over this axis and the batch over the mesh's other axes
        (`lrnn.nn.mixer`); None for none. The params are the same either way.
    """

    cell: str = "deltanet"
    cell_options: dict = dataclasses.field(default_factory=dict)
    d_model: int = 64
    n_layers: int = 2
    expand: int = 1
    conv_size: int | None = 4
    ffn: str | None = "glu"
    ffn_ratio: float = 2.0
    norm: str = "rmsnorm"
    output_gate: bool = False
    mixer_norm: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    pooling: str = "mean"
    scan_method: str = "auto"
    chunk_size: int | None = None
    sequence_axis: str | None = None

    def __post_init__(self):
        if self.cell_options is None:  # as build_cell reads it (and the CLI's model.cell_options=none)
            object.__setattr__(self, "cell_options", {})
        if not isinstance(self.cell_options, dict):
            raise ValueError(f"cell_options must be a dict of the cell's hyperparameters, got {self.cell_options!r}")
        for name in ("d_model", "n_layers", "expand"):
            checks.positive_int(name, getattr(self, name))
        if self.conv_size is not None:
            checks.positive_int("conv_size", self.conv_size)
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
        build_cell(self.cell, self.d_inner, self.cell_options)

    @property
    def d_inner(self) -> int:
        """The width the cell runs at, expand · d_model."""
        return self.expand * self.d_model

    @property
    def causal(self) -> bool:
        """Whether every layer reads only earlier tokens: no bidirectional mixer, and no cell
        that is bidirectional itself (S5's option)."""
        cell = build_cell(self.cell, self.d_inner, self.cell_options)
        return not self.bidirectional and not getattr(cell, "bidirectional", False)

    @property
    def scan_options(self) -> dict:
        return {"method": self.scan_method, "chunk_size": self.chunk_size}

    def block_options(self) -> dict:
        """The keyword arguments of `lrnn.nn.Block` (besides param_dtype and rngs)."""
        return dict(d_model=self.d_model, cell=self.cell, cell_options=dict(self.cell_options), expand=self.expand,
                    conv_size=self.conv_size, output_gate=self.output_gate, mixer_norm=self.mixer_norm,
                    norm=self.norm, ffn=self.ffn, ffn_ratio=self.ffn_ratio, dropout=self.dropout,
                    bidirectional=self.bidirectional, scan_options=self.scan_options,
                    sequence_axis=self.sequence_axis)

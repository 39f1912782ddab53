"""The residual block: a pre-norm token mixer, then a pre-norm channel mixer.

For x (B, T, D):

    h = x + Mixer(Norm_1(x))
    y = h + Dropout(FFN(Norm_2(h)))         FFN ∈ {"mlp", "glu", "geglu"} (lrnn.nn.ffn); y = h if ffn is None

The token mixer is a recurrent `Mixer` around `cell`, or, given `attention` (its options),
`LocalAttention` (Griffin's local multi-query attention; then the recurrent mixer's options
are not used). Norm is "rmsnorm" or "layernorm" (lrnn.nn.norms). The block has the mixer's
paths: `__call__` (parallel, dropout unless in eval mode), `prefill` (parallel, returns the
cache), `init_cache` and `step` (one token); its cache is the mixer's (the norms and the FFN act
per position and keep nothing). Extra per-call cell inputs (HGRN's `lower_bound`) pass through
to the mixer.
With `sequence_axis`, only the mixer's time mixing runs under shard_map (time split over that
mesh axis); the norms, the FFN and the residuals act per position on the global arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks
from lrnn.nn.ffn import FeedForward, check_ffn
from lrnn.nn.local_attention import LocalAttention
from lrnn.nn.mixer import Mixer, check_dropout
from lrnn.nn.norms import check_norm, make_norm

ATTENTION_OPTIONS = ("n_heads", "window", "rope_fraction", "rope_base")


def check_attention(attention, cell, cell_options) -> dict:
    """`attention` as LocalAttention's options (a dict of ATTENTION_OPTIONS with n_heads and window),
    given with no cell."""
    if cell is not None or cell_options is not None:
        raise ValueError(f"a block mixes tokens with a cell or with local attention, not both: got cell={cell!r}, "
                         f"cell_options={cell_options!r} and attention={attention!r}")
    if (not isinstance(attention, dict) or not set(attention) <= set(ATTENTION_OPTIONS)
            or not {"n_heads", "window"} <= set(attention)):
        raise ValueError(f"attention must be a dict with keys n_heads and window (and optionally rope_fraction, "
                         f"rope_base), got {attention!r}")
    return attention


class Block(nnx.Module):
    """x + Mixer(Norm(x)), then + FFN(Norm(·)): one layer of a model."""

    def __init__(self, d_model: int, cell: str | None = None, cell_options: dict | None = None, *,
                 attention: dict | None = None, expand: int = 1, d_inner: int | None = None,
                 conv_size: int | None = None, conv_activation: str | None = "silu", output_gate: bool = False,
                 gate_activation: str = "silu", mixer_norm: bool = False, norm: str = "rmsnorm",
                 ffn: str | None = "glu", ffn_ratio: float = 2.0, dropout: float = 0.0, bidirectional: bool = False,
                 scan_options: dict | None = None, sequence_axis: str | None = None, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        """
        Args:
          d_model, cell, cell_options, expand, d_inner, conv_size, conv_activation, output_gate,
            gate_activation, bidirectional, scan_options, sequence_axis, param_dtype: as `Mixer`'s
            (mixer_norm is its `norm`).
          attention: instead of a cell, `LocalAttention`'s options {"n_heads", "window", and
            optionally "rope_fraction", "rope_base"}; give a cell or attention, not both.
          norm: the pre-norms' kind, "rmsnorm" or "layernorm".
          ffn: "mlp", "glu", "geglu" or None (no channel mixer).
          ffn_ratio: the FFN's hidden width over d_model.
          dropout: rate on the mixer's and the FFN's outputs, in [0, 1).
          rngs: nnx.Rngs.
        """
        checks.positive_int("d_model", d_model)
        check_norm("norm", norm)
        check_ffn(ffn, ffn_ratio)
        check_dropout(dropout)
        self.d_model = d_model
        self.pre_mixer_norm = make_norm(norm, d_model, param_dtype=param_dtype, rngs=rngs)
        if attention is None:
            self.mixer = Mixer(d_model, cell, cell_options, expand=expand, d_inner=d_inner, conv_size=conv_size,
                               conv_activation=conv_activation, output_gate=output_gate,
                               gate_activation=gate_activation, norm=mixer_norm, dropout=dropout,
                               bidirectional=bidirectional, scan_options=scan_options, sequence_axis=sequence_axis,
                               param_dtype=param_dtype, rngs=rngs)
        else:
            self.mixer = LocalAttention(d_model, **check_attention(attention, cell, cell_options), dropout=dropout,
                                        sequence_axis=sequence_axis, param_dtype=param_dtype, rngs=rngs)
        if ffn is None:
            self.pre_ffn_norm = self.ffn = None
        else:
            self.pre_ffn_norm = make_norm(norm, d_model, param_dtype=param_dtype, rngs=rngs)
            self.ffn = FeedForward(d_model, ffn, ffn_ratio, param_dtype=param_dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else None

    @property
    def causal(self) -> bool:
        return self.mixer.causal

    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None, **cell_inputs) -> jax.Array:
        """y (B, T, D) for x (B, T, D); mask (B, T) bool as for `Mixer.__call__`."""
        x = checks.sequence(x, self.d_model)
        h = x + self.mixer(self.pre_mixer_norm(x), mask=mask, **cell_inputs)
        return self._channel_mix(h, train=True)

    def prefill(self, x: jax.Array, cache: dict | None = None, **cell_inputs) -> tuple[jax.Array, dict]:
        """(y (B, T, D), the cache after the last token), continuing from `cache` if given."""
        x = checks.sequence(x, self.d_model)
        mixed, cache = self.mixer.prefill(self.pre_mixer_norm(x), cache, **cell_inputs)
        return self._channel_mix(x + mixed, train=False), cache

    def init_cache(self, batch: int) -> dict:
        return self.mixer.init_cache(batch)

    def step(self, x_t: jax.Array, cache: dict, **cell_inputs) -> tuple[jax.Array, dict]:
        """One token x_t (B, D): (y_t (B, D), the new cache)."""
        x_t = checks.token(x_t, self.d_model)
        mixed, cache = self.mixer.step(self.pre_mixer_norm(x_t), cache, **cell_inputs)
        return self._channel_mix(x_t + mixed, train=False), cache

    def _channel_mix(self, h: jax.Array, *, train: bool) -> jax.Array:
        if self.ffn is None:
            return h
        out = self.ffn(self.pre_ffn_norm(h))
        return h + (self.dropout(out) if train and self.dropout is not None else out)

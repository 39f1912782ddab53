"""The channel mixer of a block: a position-wise feed-forward network, by name.

    "mlp":    y = W_2 GELU(W_1 x)                  W_1: D → F, W_2: F → D
    "glu":    y = W_2 (SiLU(W_g x) ⊙ W_1 x)        SwiGLU (Shazeer 2020), W_g: D → F
    "geglu":  y = W_2 (GELU(W_g x) ⊙ W_1 x)        GeGLU (Shazeer 2020): Hawk and Griffin's gated
                                                   MLP block (De et al. 2024, with ratio 3)

with the hidden width F = round(ratio · D), GELU in its tanh form (`jax.nn.gelu`), no biases;
x (..., D), any leading axes, so the same module serves the parallel path (B, T, D) and a decode
step (B, D).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks

FFNS = ("mlp", "glu", "geglu")
GATES = {"glu": jax.nn.silu, "geglu": jax.nn.gelu}


def check_ffn(kind, ratio) -> None:
    """kind is "mlp", "glu", "geglu" or None (no channel mixer); ratio a positive number."""
    if kind is not None:
        checks.one_of("ffn", kind, FFNS)
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 < ratio < float("inf"):
        raise ValueError(f"ffn_ratio must be a positive finite number, got {ratio!r}")


def hidden_width(features: int, ratio: float) -> int:
    """F = round(ratio · D), at least 1."""
    return max(1, round(ratio * features))


class FeedForward(nnx.Module):
    """The "mlp", "glu" or "geglu" feed-forward network over the last axis."""

    def __init__(self, features: int, kind: str = "glu", ratio: float = 2.0, *, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        checks.positive_int("features", features)
        if kind is None:
            raise ValueError(f"ffn kind must be one of {', '.join(repr(k) for k in FFNS)}, got None")
        check_ffn(kind, ratio)
        self.kind = kind
        hidden = hidden_width(features, ratio)
        linear = dict(use_bias=False, param_dtype=param_dtype, rngs=rngs)
        self.up = nnx.Linear(features, hidden, **linear)
        self.gate = nnx.Linear(features, hidden, **linear) if kind in GATES else None
        self.down = nnx.Linear(hidden, features, **linear)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind in GATES:
            return self.down(GATES[self.kind](self.gate(x)) * self.up(x))
        return self.down(jax.nn.gelu(self.up(x)))

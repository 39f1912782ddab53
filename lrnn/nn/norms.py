"""The normalisations of lrnn's blocks, by name: Flax NNX's own, with lrnn's defaults.

    "rmsnorm":   y = x / √(mean(x²) + ε) ⊙ g                 (Zhang & Sennrich 2019)
    "layernorm": y = (x − mean(x)) / √(var(x) + ε) ⊙ g + b   (Ba et al. 2016)

over the last axis, ε = 1e−6, g = 1 and b = 0 at init; statistics in float32 or wider.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks

NORMS = {"rmsnorm": nnx.RMSNorm, "layernorm": nnx.LayerNorm}
EPSILON = 1e-6


def check_norm(name: str, value) -> None:
    """value is one of the norm names (for an argument called `name`)."""
    checks.one_of(name, value, tuple(NORMS))


def make_norm(kind: str, features: int, *, param_dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Module:
    """The norm called `kind` over `features` channels (the last axis)."""
    check_norm("norm", kind)
    checks.positive_int("features", features)
    return NORMS[kind](features, epsilon=EPSILON, param_dtype=param_dtype, rngs=rngs)

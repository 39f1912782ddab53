"""Model inputs: token ids through an embedding, or real features through a linear map.

    tokens   (B, T) int    →  E[tokens]        (B, T, D)    E: (vocab_size, D)
    features (B, T, F) float →  x W + b          (B, T, D)    W: (F, D)

and the checks on inputs and padding masks that every model shares.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lrnn.cells import checks
from lrnn.nn import mixer


def check_mask(mask, lead_shape: tuple):
    """mask (B, T) bool, True at real positions, padding only at the end, each row with at
    least one real position (the values are checked when concrete, not under jit)."""
    if mask is None:
        return None
    mask = mixer.check_mask(mask, lead_shape)
    values = checks.concrete(mask)
    if values is not None:
        if not values[:, 0].all():
            raise ValueError("mask must mark at least the first position of every row as real (padding at the end)")
        if (values[:, 1:] & ~values[:, :-1]).any():
            raise ValueError("mask must have its padding (False) only at the end of each row")
    return mask


def check_tokens(tokens, vocab_size: int, rank: int = 2, layout: str = "(B, T)"):
    """Integer token ids of `rank` dims in [0, vocab_size) (values checked when concrete)."""
    tokens = jnp.asarray(tokens)
    if not jnp.issubdtype(tokens.dtype, jnp.integer) or tokens.ndim != rank:
        raise ValueError(f"tokens must be an integer array {layout}, got {tokens.dtype} {tokens.shape}")
    if tokens.ndim == 2 and tokens.shape[1] < 1:
        raise ValueError(f"tokens must have at least one position, got shape {tokens.shape}")
    values = checks.concrete(tokens)
    if values is not None and values.size and (values.min() < 0 or values.max() >= vocab_size):
        raise ValueError(f"tokens must lie in [0, vocab_size = {vocab_size}), got values in "
                         f"[{np.min(values)}, {np.max(values)}]")
    return tokens


class InputEncoder(nnx.Module):
    """An embedding (vocab_size given) or a linear in-projection (n_features given) to d_model."""

    def __init__(self, d_model: int, *, vocab_size: int | None = None, n_features: int | None = None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        if (vocab_size is None) == (n_features is None):
            raise ValueError(f"give exactly one of vocab_size (token inputs) and n_features (real-valued inputs), "
                             f"got vocab_size={vocab_size!r}, n_features={n_features!r}")
        self.vocab_size, self.n_features, self.param_dtype = vocab_size, n_features, param_dtype
        if vocab_size is not None:
            checks.positive_int("vocab_size", vocab_size)
            self.embed = nnx.Embed(vocab_size, d_model, param_dtype=param_dtype, rngs=rngs)
        else:
            checks.positive_int("n_features", n_features)
            self.embed = nnx.Linear(n_features, d_model, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, inputs) -> jax.Array:
        """(B, T, D) for tokens (B, T) int or features (B, T, F) float (cast to param_dtype)."""
        if self.vocab_size is not None:
            return self.embed(check_tokens(inputs, self.vocab_size))
        features = jnp.asarray(inputs)
        if (not jnp.issubdtype(features.dtype, jnp.floating) or features.ndim != 3
                or features.shape[2] != self.n_features or features.shape[1] < 1):
            raise ValueError(f"inputs must be a real floating array (B, T, n_features = {self.n_features}) with T ≥ 1, "
                             f"got {features.dtype} {features.shape}")
        return self.embed(features.astype(self.param_dtype))

"""What the classifier and the tagger share: inputs → encoder → backbone → a linear head.

    x = InputEncoder(inputs)                   (B, T, D)   embedding or linear in-projection
    h = Norm(Block_{L−1}(… Block_0(x)))        (B, T, D)   `features`
    head: h W + b over n_classes               (…, C)      applied per position or after pooling
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks
from lrnn.models.backbone import Backbone
from lrnn.models.config import ModelConfig
from lrnn.models.inputs import InputEncoder, check_mask


class SequenceLabeller(nnx.Module):
    def __init__(self, config: ModelConfig, *, vocab_size: int | None = None, n_features: int | None = None,
                 n_classes: int, param_dtype=jnp.float32, rngs: nnx.Rngs):
        """
        Args:
          config: the architecture.
          vocab_size: for token inputs (B, T) int; or
          n_features: for real-valued inputs (B, T, n_features) (exactly one of the two).
          n_classes: C, the number of labels.
          param_dtype: dtype of every param (float32).
          rngs: nnx.Rngs.
        """
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        checks.positive_int("n_classes", n_classes)
        self.encoder = InputEncoder(config.d_model, vocab_size=vocab_size, n_features=n_features,
                                    param_dtype=param_dtype, rngs=rngs)
        self.backbone = Backbone(config, param_dtype=param_dtype, rngs=rngs)
        self.head = nnx.Linear(config.d_model, n_classes, param_dtype=param_dtype, rngs=rngs)

    def encode(self, inputs, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
        """(features (B, T, D), the checked mask (B, T) or None)."""
        x = self.encoder(inputs)
        mask = check_mask(mask, x.shape[:2])
        return self.backbone(x, mask), mask

    def features(self, inputs, mask: jax.Array | None = None) -> jax.Array:
        """(B, T, D): the final-normed features the head reads."""
        return self.encode(inputs, mask)[0]

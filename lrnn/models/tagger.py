"""Sequence tagging: one label per position.

    x = InputEncoder(inputs)                   (B, T, D)
    logits = Norm(Block_{L−1}(… Block_0(x))) W + b      (B, T, C)

Causal unless the config is bidirectional: with causal layers the logits at t read inputs ≤ t.
mask (B, T) bool (padding at the end) keeps a bidirectional tagger's real positions
independent of the padding, as for the classifier.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks
from lrnn.models.backbone import Backbone
from lrnn.models.config import ModelConfig
from lrnn.models.inputs import InputEncoder, check_mask


class SequenceTagger(nnx.Module):
    def __init__(self, config: ModelConfig, *, vocab_size: int | None = None, n_features: int | None = None,
                 n_classes: int, param_dtype=jnp.float32, rngs: nnx.Rngs):
        """Arguments as `SequenceClassifier`'s (config.pooling is not used)."""
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        checks.positive_int("n_classes", n_classes)
        self.encoder = InputEncoder(config.d_model, vocab_size=vocab_size, n_features=n_features,
                                    param_dtype=param_dtype, rngs=rngs)
        self.backbone = Backbone(config, param_dtype=param_dtype, rngs=rngs)
        self.head = nnx.Linear(config.d_model, n_classes, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, inputs, mask: jax.Array | None = None) -> jax.Array:
        """logits (B, T, C) for inputs (B, T) int or (B, T, F) float."""
        x = self.encoder(inputs)
        return self.head(self.backbone(x, check_mask(mask, x.shape[:2])))

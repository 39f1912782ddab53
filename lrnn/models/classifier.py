"""Sequence classification: one label per sequence.

    h = features(inputs, mask)                 (B, T, D)   encoder and backbone (`labeller`)
    logits = pool(h, mask) W + b               (B, C)      pooling: mean | last | max

mask (B, T) bool marks the real positions (padding at the end); the padding changes no logit:
causal layers never read ahead, non-causal ones (bidirectional) reset their scans where the
padding starts (lrnn.nn.mixer).
"""

from __future__ import annotations

import jax

from lrnn.models.labeller import SequenceLabeller
from lrnn.models.pooling import pool


class SequenceClassifier(SequenceLabeller):
    """Arguments as `SequenceLabeller`'s; config.pooling picks the pooling."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.pooling = config.pooling

    def __call__(self, inputs, mask: jax.Array | None = None) -> jax.Array:
        """logits (B, C) for inputs (B, T) int or (B, T, F) float; mask (B, T) bool or None."""
        h, mask = self.encode(inputs, mask)
        return self.head(pool(h, mask, self.pooling))

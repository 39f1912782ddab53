"""Sequence tagging: one label per position.

    logits = features(inputs, mask) W + b      (B, T, C)   encoder and backbone (`labeller`)

Causal unless the config is bidirectional: with causal layers the logits at t read inputs ≤ t.
mask (B, T) bool (padding at the end) keeps a bidirectional tagger's real positions
independent of the padding, as for the classifier.
"""

from __future__ import annotations

import jax

from lrnn.models.labeller import SequenceLabeller


class SequenceTagger(SequenceLabeller):
    """Arguments as `SequenceLabeller`'s (config.pooling is not used)."""

    def __call__(self, inputs, mask: jax.Array | None = None) -> jax.Array:
        """logits (B, T, C) for inputs (B, T) int or (B, T, F) float."""
        return self.head(self.features(inputs, mask))

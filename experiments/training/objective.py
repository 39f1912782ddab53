"""Losses and accuracies for the three kinds of task.

    classify   logits (B, C), targets (B,)        mean_b CE(logits_b, y_b)
    tag / lm   logits (B, T, C), targets (B, T)   Σ_bt m_bt CE(logits_bt, y_bt) / Σ_bt m_bt

Accuracy follows the same weighting. For length generalisation the number that matters is
whether the answer for the whole sequence is right, so `final_accuracy` scores, for "tag" tasks,
each sequence's last counted position (parity of all L bits, the product of the whole word);
for "classify" it is the accuracy. Scaled accuracy maps chance to 0 and perfect to 1:

    scaled = (accuracy − 1/C) / (1 − 1/C)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def predictions_and_losses(kind: str, logits: jax.Array, targets: jax.Array, mask: jax.Array):
    """(per-example correct, per-example CE, weights) with matching shapes."""
    logits = logits.astype(jnp.float32)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
    weights = jnp.ones_like(losses) if kind == "classify" else mask.astype(jnp.float32)
    return correct, losses, weights


def loss_and_metrics(kind: str, logits, targets, mask):
    """The mean loss (for gradients) and sums that average correctly across batches and devices."""
    correct, losses, weights = predictions_and_losses(kind, logits, targets, mask)
    count = jnp.maximum(weights.sum(), 1.0)
    loss = (losses * weights).sum() / count
    metrics = {"loss_sum": (losses * weights).sum(), "correct_sum": (correct * weights).sum(),
               "count": weights.sum(), "final_correct_sum": final_correct(kind, correct, mask).sum(),
               "sequences": jnp.asarray(targets.shape[0], jnp.float32)}
    return loss, metrics


def final_correct(kind: str, correct, mask):
    """(B,) whether each sequence's answer is right: the last counted position for tag/lm tasks."""
    if kind == "classify":
        return correct
    positions = jnp.arange(mask.shape[1])
    last = jnp.max(jnp.where(mask, positions, -1), axis=1)
    return jnp.take_along_axis(correct, jnp.maximum(last, 0)[:, None], axis=1)[:, 0] * (last >= 0)


def summarise(sums: dict) -> dict:
    """Means from the sums of `loss_and_metrics` (host floats)."""
    count, sequences = max(float(sums["count"]), 1.0), max(float(sums["sequences"]), 1.0)
    return {"loss": float(sums["loss_sum"]) / count, "accuracy": float(sums["correct_sum"]) / count,
            "final_accuracy": float(sums["final_correct_sum"]) / sequences}


def scaled(accuracy: float, n_classes: int) -> float:
    chance = 1.0 / n_classes
    return (accuracy - chance) / (1.0 - chance)

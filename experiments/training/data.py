"""Batches for training and evaluation, deterministic in (seed, step).

Batch `step` of a run is drawn from `np.random.default_rng([seed, stream, step])`, so a resumed run
sees exactly the batches an uninterrupted one would, without saving any data-loader state.
Training sequences take lengths uniformly in [min_train_length, train_length]; sequences shorter
than the batch are padded at the end with token 0 and `mask` False there, so one compiled step
serves every length (a causal model's outputs at real positions do not see the padding).
"""

from __future__ import annotations

import numpy as np

from experiments.tasks import Batch, Task

TRAIN_STREAM, EVAL_STREAM = 0, 1


def rng_for(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def training_batch(task: Task, seed: int, step: int, batch_size: int, length: int,
                   min_length: int | None = None) -> Batch:
    rng = rng_for(seed, TRAIN_STREAM, step)
    if min_length is None or min_length == length:
        return task.batch(rng, batch_size, length)
    lengths = rng.integers(min_length, length + 1, size=batch_size)
    parts = [pad(task.batch(rng, int(count), int(size)), length)
             for size, count in zip(*np.unique(lengths, return_counts=True))]
    order = rng.permutation(batch_size)
    return Batch(*(np.concatenate([getattr(part, name) for part in parts])[order]
                   for name in ("inputs", "targets", "mask")))


def evaluation_batch(task: Task, seed: int, length: int, index: int, batch_size: int) -> Batch:
    return task.batch(rng_for(seed, EVAL_STREAM, length * 100_003 + index), batch_size, length)


def pad(batch: Batch, length: int) -> Batch:
    """`batch` padded at the end of time to `length` (zeros, mask False)."""
    extra = length - batch.inputs.shape[1]
    if extra == 0:
        return batch

    def widen(array):
        widths = [(0, 0)] * array.ndim
        widths[1] = (0, extra)
        return np.pad(array, widths)

    targets = batch.targets if batch.targets.ndim == 1 else widen(batch.targets)
    return Batch(widen(batch.inputs), targets, widen(batch.mask))

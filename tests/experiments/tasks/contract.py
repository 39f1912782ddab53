"""The batch contract every task keeps (experiments/tasks/base.py), checked from outside."""

import chex
import numpy as np


def check_batch(task, batch, batch_size: int, length: int) -> None:
    """Shapes, dtypes and value ranges of `batch`; for "classify", padding only at the end."""
    chex.assert_shape(batch.mask, (batch_size, length))
    assert batch.mask.dtype == np.bool_
    if task.n_features is None:
        chex.assert_shape(batch.inputs, (batch_size, length))
        assert batch.inputs.dtype == np.int32
        assert batch.inputs.min() >= 0 and batch.inputs.max() < task.vocab_size
    else:
        assert task.vocab_size is None
        chex.assert_shape(batch.inputs, (batch_size, length, task.n_features))
        assert batch.inputs.dtype == np.float32
    target_shape = (batch_size,) if task.kind == "classify" else (batch_size, length)
    chex.assert_shape(batch.targets, target_shape)
    assert batch.targets.dtype == np.int32
    assert batch.targets.min() >= 0 and batch.targets.max() < task.n_classes
    if task.kind == "classify":
        real = batch.mask.sum(axis=1)
        assert (real >= 1).all()
        np.testing.assert_array_equal(batch.mask, np.arange(length)[None, :] < real[:, None])


def check_seeded(task, batch_size: int, length: int) -> None:
    """The same seed draws the same batch; another seed draws a different one."""
    first = task.batch(np.random.default_rng(7), batch_size, length)
    again = task.batch(np.random.default_rng(7), batch_size, length)
    other = task.batch(np.random.default_rng(8), batch_size, length)
    for field in ("inputs", "targets", "mask"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not all(np.array_equal(getattr(first, field), getattr(other, field))
                   for field in ("inputs", "targets", "mask"))

"""Selective copying: the marked outputs are the data tokens of the prefix, in order."""

import numpy as np

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


def test_outputs_are_the_scattered_data_tokens_in_order():
    task = make_task("selective_copy", n_tokens=5, n_symbols=3)
    assert task.vocab_size == 5
    batch = task.batch(np.random.default_rng(6), 10, 24)
    check_batch(task, batch, 10, 24)
    noise, marker = 0, 1
    for tokens, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(),
                                     batch.mask.tolist()):
        data = [t for t in tokens[:19] if t != noise]
        assert len(data) == 5 and all(t >= 2 for t in data)
        assert tokens[19:] == [marker] * 5
        assert targets[19:] == data
        assert mask == [False] * 19 + [True] * 5
    positions = [tuple(np.nonzero(row[:19])[0]) for row in batch.inputs]
    assert len(set(positions)) > 1  # scattered, not at a fixed offset

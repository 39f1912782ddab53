"""Parity: the target at every position is the parity of the bits so far."""

import numpy as np

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


def test_targets_are_prefix_parities():
    task = make_task("parity")
    batch = task.batch(np.random.default_rng(3), 6, 40)
    check_batch(task, batch, 6, 40)
    assert set(np.unique(batch.inputs)) == {0, 1}
    for bits, targets in zip(batch.inputs.tolist(), batch.targets.tolist()):
        state, expected = 0, []
        for bit in bits:
            state ^= bit
            expected.append(state)
        assert targets == expected
    assert batch.mask.all()
    assert (task.vocab_size, task.n_classes, task.n_features) == (2, 2, None)

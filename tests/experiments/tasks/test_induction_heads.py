"""Induction heads: the answer is the token after the trigger's earlier occurrence."""

import numpy as np

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


def test_answer_follows_the_first_trigger():
    task = make_task("induction_heads", n_symbols=4)
    batch = task.batch(np.random.default_rng(9), 16, 10)
    check_batch(task, batch, 16, 10)
    trigger = 0
    for tokens, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(),
                                     batch.mask.tolist()):
        occurrences = [i for i, t in enumerate(tokens) if t == trigger]
        assert len(occurrences) == 2 and occurrences[1] == 9
        assert targets[9] == tokens[occurrences[0] + 1]
        assert mask == [False] * 9 + [True]
    assert len(set(np.argmin(batch.inputs, axis=1))) > 1  # the first trigger moves

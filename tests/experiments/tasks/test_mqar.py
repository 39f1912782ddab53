"""MQAR: answers recomputed from the raw sequence with a dict."""

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


@pytest.mark.parametrize("n_pairs, vocab_size, length", [(4, 32, 24), (1, 8, 3), (6, 64, 64)])
def test_every_key_is_queried_once_and_answered_with_its_value(n_pairs, vocab_size, length):
    task = make_task("mqar", n_pairs=n_pairs, vocab_size=vocab_size, power_a=0.5)
    batch = task.batch(np.random.default_rng(0), 8, length)
    check_batch(task, batch, 8, length)
    half = vocab_size // 2
    for tokens, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(),
                                     batch.mask.tolist()):
        pairs = dict(zip(tokens[0:2 * n_pairs:2], tokens[1:2 * n_pairs:2]))
        assert len(pairs) == n_pairs                                  # distinct keys
        assert all(1 <= k < half for k in pairs) and all(half <= v < vocab_size
                                                         for v in pairs.values())
        assert len(set(pairs.values())) == n_pairs                    # distinct values
        assert not any(mask[:2 * n_pairs])
        queried = []
        for position in range(2 * n_pairs, length):
            token = tokens[position]
            if token in pairs:
                queried.append(token)
                assert mask[position] and targets[position] == pairs[token]
            else:
                assert token == 0 and not mask[position]
        assert sorted(queried) == sorted(pairs)


def test_small_power_a_puts_queries_closer_to_the_pairs():
    def mean_gap(power_a):
        task = make_task("mqar", n_pairs=2, vocab_size=16, power_a=power_a)
        mask = task.batch(np.random.default_rng(1), 200, 44).mask
        return np.nonzero(mask)[1].mean() - 4
    assert mean_gap(0.05) < 0.5 * mean_gap(1.0)


def test_too_many_pairs_for_the_vocabulary():
    with pytest.raises(ValueError, match=r"option 'n_pairs' must be at most .* = 3"):
        make_task("mqar", n_pairs=4, vocab_size=8)

"""Even pairs: the target at every position is whether the prefix has an odd number of
unequal neighbours, counted pair by pair."""

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch, check_seeded


def odd_changes_of_each_prefix(bits):
    changes, answers = 0, [0]
    for left, right in zip(bits, bits[1:]):
        changes += left != right
        answers.append(changes % 2)
    return answers


@pytest.mark.parametrize("length", [1, 2, 41])
def test_targets_count_the_unequal_pairs_of_every_prefix(length):
    task = make_task("even_pairs")
    assert (task.vocab_size, task.n_classes, task.kind) == (2, 2, "tag")
    batch = task.batch(np.random.default_rng(4), 32, length)
    check_batch(task, batch, 32, length)
    assert batch.mask.all()
    for bits, targets in zip(batch.inputs.tolist(), batch.targets.tolist()):
        assert targets == odd_changes_of_each_prefix(bits)
    if length > 1:
        assert set(batch.targets[:, -1]) == {0, 1}  # both answers occur


def test_the_paper_examples():
    """Delétang et al.'s examples: 001110 has one "01" and one "10" (even, class 0);
    0101001 has five unequal pairs (odd, class 1)."""
    assert odd_changes_of_each_prefix([0, 0, 1, 1, 1, 0])[-1] == 0
    assert odd_changes_of_each_prefix([0, 1, 0, 1, 0, 0, 1])[-1] == 1


def test_batches_follow_the_seed():
    check_seeded(make_task("even_pairs"), 4, 20)


def test_bad_lengths_and_options_are_named():
    task = make_task("even_pairs")
    with pytest.raises(ValueError, match=r"even_pairs.*at least 1, got 0"):
        task.batch(np.random.default_rng(0), 2, 0)
    with pytest.raises(ValueError, match=r"task 'even_pairs' has no option 'alphabet_size'"):
        make_task("even_pairs", alphabet_size=3)

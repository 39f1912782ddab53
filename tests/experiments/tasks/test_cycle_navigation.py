"""Cycle navigation: the target at every position is where the walk so far ends, replayed
one move at a time."""

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch, check_seeded

STAY, FORWARD, BACK = 0, 1, 2


def positions_after_each_move(moves, cycle_length):
    position, positions = 0, []
    for move in moves:
        if move == FORWARD:
            position = (position + 1) % cycle_length
        elif move == BACK:
            position = (position - 1) % cycle_length
        else:
            assert move == STAY
        positions.append(position)
    return positions


@pytest.mark.parametrize("cycle_length, length", [(5, 1), (5, 64), (3, 17)])
def test_targets_are_the_positions_of_the_walk(cycle_length, length):
    task = make_task("cycle_navigation", cycle_length=cycle_length)
    assert (task.vocab_size, task.n_classes, task.kind) == (3, cycle_length, "tag")
    batch = task.batch(np.random.default_rng(9), 40, length)
    check_batch(task, batch, 40, length)
    assert batch.mask.all()
    assert set(np.unique(batch.inputs)) <= {STAY, FORWARD, BACK}
    for moves, targets in zip(batch.inputs.tolist(), batch.targets.tolist()):
        assert targets == positions_after_each_move(moves, cycle_length)
    if length > 1:
        assert set(np.unique(batch.inputs)) == {STAY, FORWARD, BACK}
        assert set(batch.targets[:, -1]) == set(range(cycle_length))


def test_the_paper_example():
    """On the paper's cycle of 5: stay, forward, stay, back, forward, forward ends at 2."""
    assert positions_after_each_move([0, 1, 0, 2, 1, 1], 5)[-1] == 2
    assert make_task("cycle_navigation").cycle_length == 5


def test_batches_follow_the_seed():
    check_seeded(make_task("cycle_navigation"), 4, 20)


@pytest.mark.parametrize("bad", [1, 0, 2.5, "5", True, None])
def test_a_bad_cycle_length_is_named(bad):
    with pytest.raises(ValueError, match=r"task 'cycle_navigation': option 'cycle_length' "
                                         r"must be an int ≥ 2"):
        make_task("cycle_navigation", cycle_length=bad)


def test_an_impossible_length_is_named():
    with pytest.raises(ValueError, match=r"cycle_navigation.*at least 1, got 0"):
        make_task("cycle_navigation").batch(np.random.default_rng(0), 2, 0)

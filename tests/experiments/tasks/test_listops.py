"""ListOps: labels against a recursive evaluator written here, on the decoded symbols."""

import math

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch

SYMBOLS = [str(d) for d in range(10)] + ["[MIN", "[MAX", "[MED", "[SM", "]", "<pad>"]


def parse(symbols, position=0, depth=1):
    """(value, next position, depth of the deepest node, list sizes) of the node at position."""
    head = symbols[position]
    if head.isdigit():
        return int(head), position + 1, depth, []
    arguments, deepest, sizes = [], depth, []
    position += 1
    while symbols[position] != "]":
        value, position, sub_depth, sub_sizes = parse(symbols, position, depth + 1)
        arguments.append(value)
        deepest, sizes = max(deepest, sub_depth), sizes + sub_sizes
    ordered = sorted(arguments)
    middle = len(ordered) // 2
    value = {"[MIN": ordered[0], "[MAX": ordered[-1], "[SM": sum(arguments) % 10,
             "[MED": ordered[middle] if len(ordered) % 2 else
             (ordered[middle - 1] + ordered[middle]) // 2}[head]
    return value, position + 1, deepest, sizes + [len(arguments)]


@pytest.mark.parametrize("options, length", [({}, 64), ({"max_depth": 3, "max_args": 5,
                                                         "min_fraction": 0.5}, 32)])
def test_labels_match_an_independent_evaluator(options, length):
    task = make_task("listops", **options)
    batch = task.batch(np.random.default_rng(1), 16, length)
    check_batch(task, batch, 16, length)
    shortest = math.ceil(task.min_fraction * length)
    for ids, label, mask in zip(batch.inputs.tolist(), batch.targets, batch.mask):
        n = int(mask.sum())
        assert shortest <= n <= length
        symbols = [SYMBOLS[i] for i in ids]
        assert symbols[n:] == ["<pad>"] * (length - n)
        value, end, depth, sizes = parse(symbols[:n] + ["<end>"])
        assert end == n and label == value
        assert depth <= task.max_depth and all(2 <= s <= task.max_args for s in sizes)
    assert len(set(batch.targets.tolist())) > 1


def test_an_expression_the_grammar_cannot_reach_is_refused():
    task = make_task("listops", max_depth=2, max_args=3)  # at most "[OP d d d ]"
    with pytest.raises(ValueError, match=r"at least 8 tokens .* allow at most 5"):
        task.batch(np.random.default_rng(0), 1, 32)
    check_batch(task, task.batch(np.random.default_rng(0), 3, 16), 3, 16)


def test_a_window_too_rare_to_draw_is_reported():
    # Only the complete binary tree of depth 6 (94 tokens) fits, with probability 4^-30.
    task = make_task("listops", max_depth=6, max_args=2, min_fraction=1.0)
    with pytest.raises(RuntimeError, match="no expression of 94 to 94 tokens in 10000 draws"):
        task.batch(np.random.default_rng(0), 1, 94)

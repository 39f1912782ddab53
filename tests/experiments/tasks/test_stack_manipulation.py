"""Stack manipulation: the answer tape holds the stack the instructions leave, read top to
bottom, then END and 0s; replayed here with a Python list."""

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch, check_seeded

POP, PUSH_0, PUSH_1, QUERY, PAD = 2, 3, 4, 5, 6
END = 2


def split_input(tokens):
    """(initial stack bits, instructions, query tokens, padding tokens) of one sequence."""
    n = tokens.index(QUERY)
    height = next((i for i, token in enumerate(tokens[:n]) if token >= POP), n)
    stack, instructions, rest = tokens[:height], tokens[height:n], tokens[n:]
    assert set(stack) <= {0, 1} and set(instructions) <= {POP, PUSH_0, PUSH_1}
    queries = rest.count(QUERY)
    assert rest == [QUERY] * queries + [PAD] * (len(rest) - queries)
    return stack, instructions, queries, len(rest) - queries


def final_stack(stack, instructions):
    stack = list(stack)
    for instruction in instructions:
        if instruction == POP:
            if stack:
                stack.pop()
        elif instruction == PUSH_0:
            stack.append(0)
        else:
            stack.append(1)
    return stack


@pytest.mark.parametrize("length", [3, 4, 9, 81])
def test_the_answer_tape_holds_the_final_stack_top_first(length):
    task = make_task("stack_manipulation")
    assert (task.vocab_size, task.n_classes, task.kind) == (7, 3, "tag")
    batch = task.batch(np.random.default_rng(5), 64, length)
    check_batch(task, batch, 64, length)
    for tokens, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(),
                                     batch.mask.tolist()):
        stack, instructions, queries, padding = split_input(tokens)
        n = len(stack) + len(instructions)
        assert n == (length - 1) // 2 and queries == n + 1 and padding == (length - 1) % 2
        assert 1 <= len(stack) <= max(n - 1, 1)
        written = final_stack(stack, instructions)[::-1] + [END]
        expected = written + [0] * (n + 1 - len(written))
        assert targets[:n] == [0] * n and targets[n:n + n + 1] == expected
        assert mask == [False] * n + [True] * len(written) + [False] * (
            n + 1 - len(written) + padding)


def test_stack_heights_cover_the_papers_range():
    """Heights are uniform in [1, n − 1]: both ends occur, and so do empty final stacks."""
    task = make_task("stack_manipulation")
    batch = task.batch(np.random.default_rng(2), 400, 13)  # n = 6
    heights = [len(split_input(tokens)[0]) for tokens in batch.inputs.tolist()]
    assert set(heights) == {1, 2, 3, 4, 5}
    assert (batch.targets[:, 6] == END).any() and (batch.targets[:, 6] != END).any()


def test_the_paper_example():
    """0 1 1 0 PUSH 1 POP POP leaves 0 1 1, written 1 1 0 END."""
    assert final_stack([0, 1, 1, 0], [PUSH_1, POP, POP])[::-1] == [1, 1, 0]
    assert final_stack([1, 1, 0], [POP, POP, POP, POP]) == []


def test_lengths_map_to_the_papers_input_lengths():
    task = make_task("stack_manipulation")
    assert [task.sequence_length(n) for n in (1, 40, 256)] == [3, 81, 513]
    assert [task.input_length(length) for length in (3, 4, 81, 82)] == [1, 1, 40, 40]


def test_batches_follow_the_seed():
    check_seeded(make_task("stack_manipulation"), 4, 21)


def test_bad_lengths_and_options_are_named():
    with pytest.raises(ValueError, match=r"stack_manipulation.*at least 3 \(n ≥ 1 input tokens, "
                                         r"then n \+ 1 answer positions\), got 2"):
        make_task("stack_manipulation").batch(np.random.default_rng(0), 2, 2)
    with pytest.raises(ValueError, match=r"task 'stack_manipulation' has no option 'depth'"):
        make_task("stack_manipulation", depth=3)

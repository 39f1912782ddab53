"""Reverse string: the answer tape after the input holds the input backwards."""

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch, check_seeded


def decode(task, tokens):
    """(the input string, the number of query tokens, the number of padding tokens)."""
    text = []
    for token in tokens:
        if token == task.query_id:
            break
        text.append(token)
    rest = tokens[len(text):]
    queries = len(rest) - rest.count(task.pad_id)
    assert rest == [task.query_id] * queries + [task.pad_id] * (len(rest) - queries)
    return text, queries, len(rest) - queries


@pytest.mark.parametrize("alphabet_size, length", [(2, 2), (2, 80), (2, 81), (4, 33)])
def test_the_answer_tape_holds_the_input_backwards(alphabet_size, length):
    task = make_task("reverse_string", alphabet_size=alphabet_size)
    assert (task.vocab_size, task.n_classes, task.kind) == (alphabet_size + 2, alphabet_size, "tag")
    batch = task.batch(np.random.default_rng(1), 16, length)
    check_batch(task, batch, 16, length)
    for tokens, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(),
                                     batch.mask.tolist()):
        text, queries, padding = decode(task, tokens)
        n = len(text)
        assert n == length // 2 and queries == n and padding == length % 2
        assert all(0 <= symbol < alphabet_size for symbol in text)
        assert [targets[n + k] for k in range(n)] == [text[n - 1 - k] for k in range(n)]
        assert mask == [False] * n + [True] * n + [False] * padding
    if length > 2:
        assert set(np.unique(batch.inputs[:, :length // 2])) == set(range(alphabet_size))


def test_lengths_map_to_the_papers_input_lengths():
    task = make_task("reverse_string")
    assert [task.sequence_length(n) for n in (1, 40, 256)] == [2, 80, 512]
    assert [task.input_length(length) for length in (2, 3, 80, 81)] == [1, 1, 40, 40]


def test_batches_follow_the_seed():
    check_seeded(make_task("reverse_string"), 4, 20)


@pytest.mark.parametrize("bad", [1, 0, 2.0, "2", False])
def test_a_bad_alphabet_size_is_named(bad):
    with pytest.raises(ValueError, match=r"task 'reverse_string': option 'alphabet_size' "
                                         r"must be an int ≥ 2"):
        make_task("reverse_string", alphabet_size=bad)


def test_a_length_without_room_for_an_answer_is_named():
    with pytest.raises(ValueError, match=r"reverse_string.*at least 2 \(n ≥ 1 input tokens, "
                                         r"then n answer positions\), got 1"):
        make_task("reverse_string").batch(np.random.default_rng(0), 2, 1)

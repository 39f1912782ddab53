"""Group word problems: prefix products composed with plain Python tuples."""

import itertools

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


def sign(permutation) -> int:
    """+1 for even, −1 for odd, from the cycle decomposition."""
    seen, transpositions = set(), 0
    for start in range(len(permutation)):
        length = 0
        while start not in seen:
            seen.add(start)
            start = permutation[start]
            length += 1
        transpositions += max(length - 1, 0)
    return -1 if transpositions % 2 else 1


S5 = list(itertools.permutations(range(5)))          # lexicographic: the documented indexing
A5 = [p for p in S5 if sign(p) == 1]
SWAPS = []
for a, b in itertools.combinations(range(5), 2):
    image = list(range(5))
    image[a], image[b] = b, a
    SWAPS.append(tuple(image))

# group: (input alphabet as elements, target elements in index order, identity, product)
then = lambda s, g: tuple(g[s[i]] for i in range(5))  # noqa: E731 (apply s, then g)
GROUPS = {
    "S5": (S5, S5, S5[0], then),
    "A5": (A5, A5, A5[0], then),
    "S5_swaps": (SWAPS, S5, S5[0], then),
    "Z60": (list(range(60)), list(range(60)), 0, lambda s, g: (s + g) % 60),
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_targets_are_prefix_products(group):
    alphabet, elements, identity, product = GROUPS[group]
    task = make_task("group_word", group=group)
    assert (task.vocab_size, task.n_classes) == (len(alphabet), len(elements))
    batch = task.batch(np.random.default_rng(2), 4, 48)
    check_batch(task, batch, 4, 48)
    assert batch.mask.all()
    for tokens, targets in zip(batch.inputs.tolist(), batch.targets.tolist()):
        state, expected = identity, []
        for token in tokens:
            state = product(state, alphabet[token])
            expected.append(elements.index(state))
        assert targets == expected


def test_swap_words_alternate_in_sign_and_a5_words_stay_even():
    swaps = make_task("group_word", group="S5_swaps").batch(np.random.default_rng(4), 3, 20)
    signs = np.array([[sign(S5[i]) for i in row] for row in swaps.targets.tolist()])
    np.testing.assert_array_equal(signs, np.broadcast_to([-1, 1] * 10, (3, 20)))
    a5 = make_task("group_word", group="A5").batch(np.random.default_rng(4), 3, 20)
    assert all(sign(A5[i]) == 1 for i in a5.targets.ravel())

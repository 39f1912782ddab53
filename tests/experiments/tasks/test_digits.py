"""Sequential digits: rows are scikit-learn's images, pixel by pixel, from the chosen split."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


def test_rows_are_row_major_images_of_their_split_with_their_labels():
    digits = load_digits()
    row_major = np.array([[image[r][c] / 16 for r in range(8) for c in range(8)]
                          for image in digits.images])
    train, test = make_task("digits"), make_task("digits", split="test")
    train_indices, test_indices = set(train.indices()), set(test.indices())
    assert not train_indices & test_indices
    assert len(train_indices | test_indices) == len(digits.target) == 1797
    assert len(test_indices) == 360  # ⌈0.2 · 1797⌉
    for task, indices in ((train, train_indices), (test, test_indices)):
        batch = task.batch(np.random.default_rng(0), 12, 64)
        check_batch(task, batch, 12, 64)
        assert batch.mask.all()
        for pixels, label in zip(batch.inputs[..., 0], batch.targets):
            matches = np.nonzero(np.abs(row_major - pixels).max(axis=1) < 1e-6)[0]
            in_split = [i for i in matches if i in indices]
            assert in_split and label in {digits.target[i] for i in in_split}


def test_the_split_depends_on_its_seed_only():
    assert np.array_equal(make_task("digits").indices(), make_task("digits").indices())
    assert not np.array_equal(make_task("digits").indices(),
                              make_task("digits", split_seed=1).indices())


@pytest.mark.parametrize("length", [63, 65, 128])
def test_any_length_but_64_is_refused(length):
    with pytest.raises(ValueError, match=rf"'digits'.*length must be exactly 64, got {length}"):
        make_task("digits").batch(np.random.default_rng(0), 2, length)

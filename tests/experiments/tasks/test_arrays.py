"""Task "arrays": a user's arrays on disk, read back row for row, split as documented, with
the vocabulary and classes inferred over both splits, and clear errors for data that cannot serve."""

import numpy as np
import pytest

from experiments.tasks import make_task, save_arrays
from tests.experiments.tasks.contract import check_batch

N, T = 30, 12


def token_data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 7, size=(n, T))
    inputs[:, 0] = np.arange(n) % 7  # a row is found again by its content
    mask = np.arange(T)[None, :] < rng.integers(3, T + 1, size=(n, 1))
    return inputs, inputs.sum(axis=1) % 5, mask


def rows_of(batch, inputs):
    """Each batch row's index in `inputs` (rows are distinct)."""
    return [int(np.flatnonzero((inputs == row).all(axis=1))[0]) for row in batch.inputs]


def test_classify_rows_come_back_with_their_labels_and_masks(tmp_path):
    inputs, targets, mask = token_data()
    inputs[:, 1] = np.arange(N)  # rows distinct
    save_arrays(tmp_path / "data", inputs, targets, mask)
    task = make_task("arrays", path=str(tmp_path / "data"))
    assert (task.kind, task.vocab_size, task.n_classes, task.n_features, task.fixed_length) == (
        "classify", N, int(targets.max()) + 1, None, T)
    batch = task.batch(np.random.default_rng(1), 16, T)
    check_batch(task, batch, 16, T)
    found = rows_of(batch, inputs)
    np.testing.assert_array_equal(batch.targets, targets[found])
    np.testing.assert_array_equal(batch.mask, mask[found])
    again = task.batch(np.random.default_rng(1), 16, T)
    np.testing.assert_array_equal(again.inputs, batch.inputs)


def test_the_fixed_split_keeps_train_and_test_rows_apart(tmp_path):
    inputs, targets, _ = token_data()
    inputs[:, 1] = np.arange(N)
    save_arrays(tmp_path, inputs, targets)
    train = make_task("arrays", path=str(tmp_path), test_fraction=0.3)
    test = train.evaluation_task()
    assert test.split == "test"
    seen = {split: set(rows_of(task.batch(np.random.default_rng(0), 200, T), inputs)) for split, task in
            (("train", train), ("test", test))}
    assert not seen["train"] & seen["test"]
    assert len(seen["test"]) == 9 and len(seen["train"]) == N - 9
    assert make_task("arrays", path=str(tmp_path), split_seed=1, split="test").rows()[1].tolist() != sorted(
        seen["test"])


def test_a_test_path_is_the_test_split_and_counts_for_the_vocabulary(tmp_path):
    inputs, targets, _ = token_data()
    test_inputs = inputs[:5] + 7  # ids 7..13 only in the test files
    np.savez(tmp_path / "train.npz", inputs=inputs, targets=targets)
    np.savez(tmp_path / "test.npz", inputs=test_inputs, targets=targets[:5] + 5)
    task = make_task("arrays", path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"))
    assert task.vocab_size == int(test_inputs.max()) + 1 and task.n_classes == int(targets[:5].max()) + 6
    batch = task.evaluation_task().batch(np.random.default_rng(0), 8, T)
    assert (batch.inputs >= 7).any() and set(batch.targets.tolist()) <= set((targets[:5] + 5).tolist())


def test_float_features_and_per_position_targets(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(N, T, 3)).astype(np.float32)
    labels = (features[..., 0] > 0).astype(np.int64)
    save_arrays(tmp_path, features, labels)
    task = make_task("arrays", path=str(tmp_path), kind="tag")
    assert (task.n_features, task.vocab_size, task.n_classes) == (3, None, 2)
    batch = task.batch(np.random.default_rng(0), 6, T)
    check_batch(task, batch, 6, T)
    np.testing.assert_array_equal(batch.targets, (batch.inputs[..., 0] > 0).astype(np.int32))
    save_arrays(tmp_path / "one", features[..., 0], labels)
    one = make_task("arrays", path=str(tmp_path / "one"), kind="tag")
    assert one.n_features == 1 and one.batch(np.random.default_rng(0), 2, T).inputs.shape == (2, T, 1)


def test_errors_name_the_file_and_what_is_wrong(tmp_path):
    inputs, targets, mask = token_data()
    with pytest.raises(ValueError, match="option 'path' must be an existing directory"):
        make_task("arrays", path=str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="has no .*targets.npy"):
        make_task("arrays", path=str(save_arrays(tmp_path / "a", inputs, None)))
    with pytest.raises(ValueError, match=r"kind 'classify' takes integer targets \(N,\).*per-position targets need "
                                         r"kind=\"tag\""):
        make_task("arrays", path=str(save_arrays(tmp_path / "b", inputs, np.zeros((N, T), int))))
    with pytest.raises(ValueError, match=r"token ids must be ≥ 0, got -1"):
        make_task("arrays", path=str(save_arrays(tmp_path / "c", inputs - 1, targets)))
    with pytest.raises(ValueError, match=r"mask must be bool of shape \(30, 12\), got int64"):
        make_task("arrays", path=str(save_arrays(tmp_path / "d", inputs, targets, mask.astype(int))))
    with pytest.raises(ValueError, match=r"option 'classes' must be > the largest target 4"):
        make_task("arrays", path=str(save_arrays(tmp_path / "e", inputs, targets)), classes=3)
    with pytest.raises(ValueError, match="option 'kind' must be one of"):
        make_task("arrays", path=str(tmp_path / "e"), kind="regress")
    with pytest.raises(ValueError, match=r"needs option 'path'|option 'path' must be"):
        make_task("arrays")
    with pytest.raises(ValueError, match=r"'arrays'.*exactly 12, got 13"):
        make_task("arrays", path=str(tmp_path / "e")).batch(np.random.default_rng(0), 1, 13)

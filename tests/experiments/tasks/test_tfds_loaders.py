"""TensorFlow-Datasets tasks on tfds' mock data (nothing is downloaded): each row is one of
the split's examples, encoded as documented, with its label."""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch

N_MOCK = 6


@pytest.fixture
def mock_data():
    with tfds.testing.mock_data(num_examples=N_MOCK):
        yield


@pytest.mark.parametrize("name, dataset, side, channels", [
    ("smnist", "mnist", 28, 1), ("scifar", "cifar10", 32, 3)])
def test_images_are_read_pixel_by_pixel_in_row_major_order(mock_data, name, dataset, side,
                                                           channels):
    task = make_task(name, split="test")
    assert (task.n_features, task.fixed_length, task.n_classes) == (channels, side ** 2, 10)
    batch = task.batch(np.random.default_rng(0), 5, side * side)
    check_batch(task, batch, 5, side * side)
    assert batch.mask.all()
    source = tfds.data_source(dataset, split="test")
    examples = [source[i] for i in range(len(source))]
    row_major = [np.array([[e["image"][r, c, k] / 255 for k in range(channels)]
                           for r in range(side) for c in range(side)]) for e in examples]
    for row, label in zip(batch.inputs, batch.targets):
        matches = [i for i, pixels in enumerate(row_major) if np.allclose(row, pixels)]
        assert matches and label in {int(examples[i]["label"]) for i in matches}
    again = task.batch(np.random.default_rng(0), 5, side * side)
    np.testing.assert_array_equal(batch.inputs, again.inputs)
    with pytest.raises(ValueError, match=rf"'{name}'.*exactly {side * side}, got 100"):
        task.batch(np.random.default_rng(0), 1, 100)


def test_imdb_reviews_are_bytes_truncated_or_padded(mock_data):
    task = make_task("imdb_bytes")
    assert (task.vocab_size, task.n_classes, task.n_features) == (256, 2, None)
    source = tfds.data_source("imdb_reviews", split="train")
    texts = [source[i]["text"] for i in range(len(source))]
    texts = [t.encode() if isinstance(t, str) else t for t in texts]
    labels = [int(source[i]["label"]) for i in range(len(source))]
    shortest = min(len(t) for t in texts)
    for length in (max(shortest - 2, 1), 64):
        batch = task.batch(np.random.default_rng(3), 8, length)
        check_batch(task, batch, 8, length)
        for ids, label, mask in zip(batch.inputs, batch.targets, batch.mask):
            n = int(mask.sum())
            real = bytes(ids[:n].tolist())
            matches = [i for i, text in enumerate(texts) if text[:length] == real]
            assert matches and label in {labels[i] for i in matches}
            assert n == min(length, len(texts[matches[0]]))
            assert (ids[n:] == 0).all()
    assert not batch.mask.all()  # mock reviews are shorter than 64 bytes: padding shows


def test_missing_tensorflow_datasets_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    task = make_task("smnist")
    with pytest.raises(ImportError, match=r"install lrnn\[data\]"):
        task.batch(np.random.default_rng(0), 1, 784)

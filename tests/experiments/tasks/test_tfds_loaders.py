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


@pytest.mark.parametrize("dataset, n_features, length", [("fashion_mnist", 1, 784), ("cifar10", 3, 1024)])
def test_any_image_dataset_through_the_generic_task(mock_data, dataset, n_features, length):
    task = make_task("tfds", dataset=dataset, split="test")
    assert (task.n_features, task.fixed_length, task.n_classes, task.vocab_size) == (n_features, length, 10, None)
    batch = task.batch(np.random.default_rng(0), 4, length)
    check_batch(task, batch, 4, length)
    source = tfds.data_source(dataset, split="test")
    pixels = [np.asarray(source[i]["image"], np.float32).reshape(length, n_features) / 255 for i in range(len(source))]
    labels = [int(source[i]["label"]) for i in range(len(source))]
    for row, label in zip(batch.inputs, batch.targets):
        assert label in {labels[i] for i, image in enumerate(pixels) if np.allclose(row, image)}


def test_text_through_the_generic_task_is_bytes_like_imdb_bytes(mock_data):
    generic = make_task("tfds", dataset="imdb_reviews")
    assert (generic.vocab_size, generic.n_classes, generic.fixed_length) == (256, 2, None)
    preset = make_task("imdb_bytes")
    for got, want in zip(generic.batch(np.random.default_rng(5), 6, 40).__dict__.values(),
                         preset.batch(np.random.default_rng(5), 6, 40).__dict__.values()):
        np.testing.assert_array_equal(got, want)
    assert generic.evaluation_task().split == "test"


def test_generic_task_errors_name_the_features(mock_data):
    with pytest.raises(ValueError, match="option 'dataset' must be a TensorFlow-Datasets name"):
        make_task("tfds")
    with pytest.raises(ValueError, match=r"no feature 'pixels'; its features: image, label"):
        make_task("tfds", dataset="mnist", input_key="pixels").n_features
    with pytest.raises(ValueError, match=r"no label feature 'class'"):
        make_task("tfds", dataset="mnist", label_key="class").n_classes

"""Standard long-sequence data sets through TensorFlow Datasets.

    "smnist"      sequential MNIST: a 28 × 28 image read pixel by pixel in row-major order,
                  length 784, one feature (intensity / 255), 10 classes.
    "scifar"      sequential CIFAR-10: a 32 × 32 colour image read pixel by pixel in
                  row-major order, length 1024, three features (R, G, B / 255), 10 classes.
    "imdb_bytes"  IMDB reviews as UTF-8 bytes (the LRA text task at byte level): the first
                  `length` bytes, token id = byte value (vocabulary 256), padded at the end
                  with id 0 and `mask` False there; 2 classes (0 negative, 1 positive).
    "tfds"        any other TFDS data set with a class label: `dataset` (its TFDS name),
                  `input_key` (default: its only image, else its only feature besides the
                  label) and `label_key` ("label"). The input is encoded by its feature
                  type: an image as above (its pixel count the only length), text as bytes
                  as above, a numeric tensor (T,) or (T, F) as float features (its T the
                  only length where fixed).

All are kind "classify". Examples come from `tfds.data_source` (random access to the
prepared array-record files; no TensorFlow needed to read them); a batch draws examples
uniformly with replacement from the split. The first use of a data set downloads and
prepares it unless it is already under `data_dir` (tfds' default when None).
tensorflow-datasets is imported only when a batch is first drawn: `pip install 'lrnn[data]'`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from experiments.tasks.base import Batch, Task, check_choice

BYTE_VALUES = 256
BYTE_PAD_ID = 0  # a NUL byte does not occur in the reviews' text


def import_tfds():
    try:
        import tensorflow_datasets
    except ImportError as error:
        raise ImportError("the TensorFlow-Datasets tasks (smnist, scifar, imdb_bytes) need "
                          "tensorflow-datasets: install lrnn[data] "
                          "(pip install 'lrnn[data]')") from error
    return tensorflow_datasets


@dataclasses.dataclass(frozen=True)
class TFDSTask(Task):
    """A data set read through `tfds.data_source(dataset, split=split, data_dir=data_dir)`."""

    split: str = "train"
    data_dir: str | None = None
    _source: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    dataset: ClassVar[str]
    kind = "classify"

    def _check_options(self):
        check_choice(self, "split", ("train", "test"))
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise self.option_error("data_dir", "a directory path (str) or None", self.data_dir)

    def source(self):
        """The split's random-access data source, opened on first use."""
        if self._source is None:
            tfds = import_tfds()
            object.__setattr__(self, "_source", tfds.data_source(
                self.dataset, split=self.split, data_dir=self.data_dir))
        return self._source

    def _sample(self, rng, batch_size, length):
        source = self.source()
        chosen = rng.integers(0, len(source), size=batch_size)
        examples = [source[int(i)] for i in chosen]
        labels = np.array([int(example["label"]) for example in examples], dtype=np.int32)
        inputs, mask = self._encode(examples, length)
        return Batch(inputs=inputs, targets=labels, mask=mask)

    def _encode(self, examples, length) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class SequentialImage(TFDSTask):
    """An image read pixel by pixel (row-major), channels as features, scaled to [0, 1]."""

    side: ClassVar[int]
    channels: ClassVar[int]

    @property
    def n_features(self) -> int:
        return self.channels

    @property
    def n_classes(self) -> int:
        return 10

    @property
    def fixed_length(self) -> int:
        return self.side * self.side

    def _encode(self, examples, length):
        return encode_pixels([example["image"] for example in examples], length)


@dataclasses.dataclass(frozen=True)
class SequentialMNIST(SequentialImage):
    name = "smnist"
    dataset = "mnist"
    side, channels = 28, 1


@dataclasses.dataclass(frozen=True)
class SequentialCIFAR(SequentialImage):
    name = "scifar"
    dataset = "cifar10"
    side, channels = 32, 3


@dataclasses.dataclass(frozen=True)
class IMDBBytes(TFDSTask):
    name = "imdb_bytes"
    dataset = "imdb_reviews"

    @property
    def vocab_size(self) -> int:
        return BYTE_VALUES

    @property
    def n_classes(self) -> int:
        return 2

    def _encode(self, examples, length):
        return encode_bytes([example["text"] for example in examples], length)


def encode_pixels(images, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (H, W, C) uint8 read pixel by pixel, row-major: ((B, H·W, C) float32 / 255, mask)."""
    pixels = np.stack(images).reshape(len(images), length, -1) / 255.0
    return pixels.astype(np.float32), np.ones((len(images), length), dtype=bool)


def encode_bytes(texts, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Texts as their first `length` UTF-8 bytes, padded at the end with BYTE_PAD_ID: (ids, mask)."""
    inputs = np.full((len(texts), length), BYTE_PAD_ID, dtype=np.int32)  # B T
    mask = np.zeros((len(texts), length), dtype=bool)
    for row, text in enumerate(texts):
        data = (text.encode("utf-8") if isinstance(text, str) else bytes(text))[:length]
        inputs[row, :len(data)] = np.frombuffer(data, dtype=np.uint8)
        mask[row, :len(data)] = True
    return inputs, mask


def encode_values(values, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Numeric sequences (T,) or (T, F), their first `length` steps padded at the end with 0:
    ((B, length, F) float32, mask)."""
    rows = [np.asarray(value, dtype=np.float32).reshape(len(value), -1)[:length] for value in values]
    inputs = np.zeros((len(rows), length, rows[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), length), dtype=bool)
    for row, value in enumerate(rows):
        inputs[row, :len(value)] = value
        mask[row, :len(value)] = True
    return inputs, mask


@dataclasses.dataclass(frozen=True)
class TFDSDataset(TFDSTask):
    """Any TFDS data set with a class label, its input encoded by the feature's type."""

    dataset: str | None = None
    input_key: str | None = None
    label_key: str = "label"

    name = "tfds"

    def _check_options(self):
        super()._check_options()
        if not isinstance(self.dataset, str) or not self.dataset:
            raise self.option_error("dataset", "a TensorFlow-Datasets name such as \"mnist\"", self.dataset)
        for option in ("input_key", "label_key"):
            value = getattr(self, option)
            if value is not None and not isinstance(value, str):
                raise self.option_error(option, "a feature's name", value)

    def _features(self):
        return self.source().dataset_info.features

    def _label(self):
        features = self._features()
        if self.label_key not in features.keys():
            raise ValueError(f"task 'tfds' ({self.dataset}): no label feature {self.label_key!r}; its features: "
                             f"{', '.join(features.keys())} (set label_key)")
        return features[self.label_key]

    def _input(self) -> tuple[str, Any]:
        """(the input feature's name, its feature description): `input_key`, else the only
        image, else the only feature besides the label."""
        self._label()
        features = self._features()
        key = self.input_key
        if key is None:
            names = [name for name in features.keys() if name != self.label_key]
            images = [name for name in names if type(features[name]).__name__ == "Image"]
            if len(images) == 1 or len(names) == 1:
                key = (images or names)[0]
            else:
                raise ValueError(f"task 'tfds' ({self.dataset}): set input_key to one of {', '.join(names)}")
        if key not in features.keys():
            raise ValueError(f"task 'tfds' ({self.dataset}): no feature {key!r}; its features: "
                             f"{', '.join(features.keys())}")
        return key, features[key]

    def _encoding(self) -> str:
        feature = self._input()[1]
        kind = type(feature).__name__
        if kind == "Image":
            return "pixels"
        if kind == "Text" or np.dtype(feature.np_dtype) == np.dtype(object):
            return "bytes"
        if np.issubdtype(np.dtype(feature.np_dtype), np.number) and len(feature.shape) in (1, 2):
            return "values"
        raise ValueError(f"task 'tfds' ({self.dataset}): cannot encode feature {self._input()[0]!r} "
                         f"({kind}, shape {feature.shape}) as a sequence; images, text and numeric (T,) or "
                         "(T, F) tensors are supported")

    @property
    def vocab_size(self) -> int | None:
        return BYTE_VALUES if self._encoding() == "bytes" else None

    @property
    def n_features(self) -> int | None:
        shape = self._input()[1].shape
        encoding = self._encoding()
        if encoding == "bytes":
            return None
        if encoding == "pixels":
            return shape[-1]
        return shape[1] if len(shape) == 2 else 1

    @property
    def n_classes(self) -> int:
        return self._label().num_classes

    @property
    def fixed_length(self) -> int | None:
        shape, encoding = self._input()[1].shape, self._encoding()
        if encoding == "pixels":
            return shape[0] * shape[1]
        return shape[0] if encoding == "values" and shape[0] is not None else None

    def _sample(self, rng, batch_size, length):
        source = self.source()
        examples = [source[int(i)] for i in rng.integers(0, len(source), size=batch_size)]
        labels = np.array([int(example[self.label_key]) for example in examples], dtype=np.int32)
        key = self._input()[0]
        encode = {"pixels": encode_pixels, "bytes": encode_bytes, "values": encode_values}[self._encoding()]
        inputs, mask = encode([example[key] for example in examples], length)
        return Batch(inputs=inputs, targets=labels, mask=mask)

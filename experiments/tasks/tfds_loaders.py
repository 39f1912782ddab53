"""Standard long-sequence data sets through TensorFlow Datasets.

    "smnist"      sequential MNIST: a 28 × 28 image read pixel by pixel in row-major order,
                  length 784, one feature (intensity / 255), 10 classes.
    "scifar"      sequential CIFAR-10: a 32 × 32 colour image read pixel by pixel in
                  row-major order, length 1024, three features (R, G, B / 255), 10 classes.
    "imdb_bytes"  IMDB reviews as UTF-8 bytes (the LRA text task at byte level): the first
                  `length` bytes, token id = byte value (vocabulary 256), padded at the end
                  with id 0 and `mask` False there; 2 classes (0 negative, 1 positive).

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
        images = np.stack([example["image"] for example in examples])  # B H W C uint8
        inputs = (images.reshape(len(examples), length, self.channels) / 255.0)
        return inputs.astype(np.float32), np.ones((len(examples), length), dtype=bool)


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
        inputs = np.full((len(examples), length), BYTE_PAD_ID, dtype=np.int32)  # B T
        mask = np.zeros((len(examples), length), dtype=bool)
        for row, example in enumerate(examples):
            text = example["text"]
            data = (text.encode("utf-8") if isinstance(text, str) else bytes(text))[:length]
            inputs[row, :len(data)] = np.frombuffer(data, dtype=np.uint8)
            mask[row, :len(data)] = True
        return inputs, mask

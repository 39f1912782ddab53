"""Byte-level language modelling on a local text file.

The file's bytes b_0 … b_{N−1} are the corpus (vocabulary 256, kind "lm"). A batch takes
windows at start offsets i drawn uniformly from [0, N − T − 1]:

    inputs  = b[i : i + T]        targets = b[i + 1 : i + T + 1]

so every position predicts the next byte and every target counts (`mask` all True). A
length needs T + 1 ≤ N bytes. The file is read once, when the task is made.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from experiments.tasks.base import Batch, Task

BYTE_VALUES = 256


@dataclasses.dataclass(frozen=True)
class CharLM(Task):
    path: str
    corpus: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

    name = "char_lm"
    kind = "lm"

    def _check_options(self):
        if not isinstance(self.path, (str, os.PathLike)) or not str(self.path):
            raise self.option_error("path", "the path of a local text file", self.path)
        if not os.path.isfile(self.path):
            raise ValueError(f"task {self.name!r}: option 'path' must name an existing file, "
                             f"but {str(self.path)!r} is not a file")
        with open(self.path, "rb") as corpus_file:
            corpus = np.frombuffer(corpus_file.read(), dtype=np.uint8)
        if len(corpus) < 2:
            raise ValueError(f"task {self.name!r}: the file {str(self.path)!r} has "
                             f"{len(corpus)} bytes; it needs at least 2 (one input and its "
                             f"next byte)")
        object.__setattr__(self, "corpus", corpus)

    @property
    def vocab_size(self) -> int:
        return BYTE_VALUES

    @property
    def n_classes(self) -> int:
        return BYTE_VALUES

    @property
    def max_length(self) -> int:
        return len(self.corpus) - 1

    def allowed_lengths(self) -> str:
        return (f"from 1 to {self.max_length} (the file {str(self.path)!r} has "
                f"{len(self.corpus)} bytes, and a window needs length + 1)")

    def _sample(self, rng, batch_size, length):
        starts = rng.integers(0, len(self.corpus) - length, size=batch_size)  # B
        windows = self.corpus[starts[:, None] + np.arange(length + 1)].astype(np.int32)
        return Batch(inputs=windows[:, :-1], targets=windows[:, 1:],
                     mask=np.ones((batch_size, length), dtype=bool))

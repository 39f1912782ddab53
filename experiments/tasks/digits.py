"""Sequential digits: scikit-learn's 8 × 8 handwritten digits read one pixel at a time.

The 1797 images shipped with scikit-learn (`sklearn.datasets.load_digits`, no download)
become sequences of length 64 in row-major order (position t = 8 · row + column) with one
float feature, the pixel intensity / 16 ∈ [0, 1]; the label is the digit (kind "classify",
10 classes). The only length is 64.

The split is fixed: one permutation of all images drawn from `split_seed`; its first
⌈test_fraction · 1797⌉ images are the test split, the rest the training split. A batch draws
its images uniformly (with replacement) from the chosen split.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from experiments.tasks.base import Batch, Task, check_choice, check_int, check_real, split_rows

IMAGE_SIDE = 8


@functools.lru_cache(maxsize=None)
def load_images() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) float32 in [0, 1], labels (N,) int32), in scikit-learn's order."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int32)


@functools.lru_cache(maxsize=None)
def _split_indices(split: str, split_seed: int, test_fraction: float) -> np.ndarray:
    return split_rows(len(load_images()[1]), split, split_seed, test_fraction)


@dataclasses.dataclass(frozen=True)
class SequentialDigits(Task):
    split: str = "train"
    split_seed: int = 0
    test_fraction: float = 0.2

    name = "digits"
    kind = "classify"

    def _check_options(self):
        check_choice(self, "split", ("train", "test"))
        check_int(self, "split_seed", minimum=0)
        check_real(self, "test_fraction", low=0.0, high=0.99, open_low=True)

    @property
    def n_features(self) -> int:
        return 1

    @property
    def n_classes(self) -> int:
        return 10

    @property
    def fixed_length(self) -> int:
        return IMAGE_SIDE * IMAGE_SIDE

    def indices(self) -> np.ndarray:
        """Indices (into scikit-learn's order) of this task's split."""
        return _split_indices(self.split, self.split_seed, float(self.test_fraction))

    def _sample(self, rng, batch_size, length):
        images, labels = load_images()
        chosen = self.indices()[rng.integers(0, len(self.indices()), size=batch_size)]
        inputs = images[chosen].reshape(batch_size, length, 1)  # B T F, row-major pixels
        return Batch(inputs=inputs, targets=labels[chosen],
                     mask=np.ones((batch_size, length), dtype=bool))

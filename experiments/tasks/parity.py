"""Parity as state tracking at every step.

Inputs are uniform random bits x_1 … x_T ∈ {0, 1}; the target at every position t is the
parity of the prefix,

    y_t = (x_1 + … + x_t) mod 2,

so a model must carry one bit of state through the whole sequence. A linear RNN whose
transition eigenvalues are all non-negative cannot do this at every length (Grazzi et al.
2025); one with eigenvalue −1 can (flip the state on a 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.base import Batch, Task


@dataclasses.dataclass(frozen=True)
class Parity(Task):
    name = "parity"
    kind = "tag"

    @property
    def vocab_size(self) -> int:
        return 2

    @property
    def n_classes(self) -> int:
        return 2

    def _sample(self, rng, batch_size, length):
        bits = rng.integers(0, 2, size=(batch_size, length), dtype=np.int32)  # B T
        prefix_parity = (np.cumsum(bits, axis=1) % 2).astype(np.int32)
        return Batch(inputs=bits, targets=prefix_parity,
                     mask=np.ones((batch_size, length), dtype=bool))

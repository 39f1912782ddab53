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

from experiments.tasks.prefix_answers import BitPrefixTask


@dataclasses.dataclass(frozen=True)
class Parity(BitPrefixTask):
    name = "parity"

    def prefix_answers(self, bits):
        return np.cumsum(bits, axis=1) % 2

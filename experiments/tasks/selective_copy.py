"""Selective copying (Gu & Dao 2023, "Mamba", after Arjovsky et al.'s copying task).

A sequence of length T holds K = n_tokens data tokens scattered among noise tokens in its
first T − K positions, then K marker tokens; at the k-th marker the target is the k-th data
token in order of appearance (kind "tag", only the K marker positions in `mask`):

    · a · · b · c · · · d · · │ ▸ ▸ ▸ ▸         targets at ▸:  a b c d

The positions of the data tokens are uniform without replacement, so the model must select
by content, not by a fixed offset. Token ids: 0 noise, 1 marker, 2 … n_symbols + 1 data.
Mamba's setting: 16 data tokens over 16 symbols.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.base import Batch, Task, check_int

NOISE_ID, MARKER_ID, FIRST_DATA_ID = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class SelectiveCopy(Task):
    n_tokens: int = 16
    n_symbols: int = 16

    name = "selective_copy"
    kind = "tag"

    def _check_options(self):
        check_int(self, "n_tokens", minimum=1)
        check_int(self, "n_symbols", minimum=1)

    @property
    def vocab_size(self) -> int:
        return FIRST_DATA_ID + self.n_symbols

    @property
    def n_classes(self) -> int:
        return self.vocab_size

    @property
    def min_length(self) -> int:
        return 2 * self.n_tokens

    def allowed_lengths(self) -> str:
        return (f"at least 2 × n_tokens = {self.min_length} (n_tokens data positions, "
                f"n_tokens markers)")

    def _sample(self, rng, batch_size, length):
        k, prefix = self.n_tokens, length - self.n_tokens
        rows = np.arange(batch_size)[:, None]
        data = rng.integers(FIRST_DATA_ID, self.vocab_size, size=(batch_size, k),
                            dtype=np.int32)                                  # B K
        positions = np.sort(np.argsort(rng.random((batch_size, prefix)), axis=1)[:, :k],
                            axis=1)                                          # B K
        inputs = np.full((batch_size, length), NOISE_ID, dtype=np.int32)     # B T
        inputs[rows, positions] = data
        inputs[:, prefix:] = MARKER_ID
        targets = np.zeros((batch_size, length), dtype=np.int32)
        targets[:, prefix:] = data
        mask = np.zeros((batch_size, length), dtype=bool)
        mask[:, prefix:] = True
        return Batch(inputs=inputs, targets=targets, mask=mask)

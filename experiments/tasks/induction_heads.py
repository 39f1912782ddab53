"""Induction heads (Olsson et al. 2022; the synthetic version of Gu & Dao 2023, "Mamba").

Random tokens, among which a special trigger token appears exactly twice: once at a
uniform position p < T − 2, followed by an answer token, and once at the last position.
At the last position the model must produce the token that followed the trigger's earlier
occurrence:

    x_1 … x_p=◆ a … x_{T−1}  ◆          target at the last position: a

Kind "tag" with `mask` True only at the last position (so a causal model is trained and
scored exactly where the answer is due, with no pooling over the sequence). Token ids:
0 is the trigger, 1 … n_symbols the ordinary tokens (Mamba: 16). Targets are token ids.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.base import Batch, Task, check_int

TRIGGER_ID = 0


@dataclasses.dataclass(frozen=True)
class InductionHeads(Task):
    n_symbols: int = 16

    name = "induction_heads"
    kind = "tag"

    def _check_options(self):
        check_int(self, "n_symbols", minimum=1)

    @property
    def vocab_size(self) -> int:
        return 1 + self.n_symbols

    @property
    def n_classes(self) -> int:
        return self.vocab_size

    @property
    def min_length(self) -> int:
        return 3  # trigger, answer, trigger

    def _sample(self, rng, batch_size, length):
        rows = np.arange(batch_size)
        inputs = rng.integers(1, self.vocab_size, size=(batch_size, length),
                              dtype=np.int32)                       # B T, no trigger yet
        first = rng.integers(0, length - 2, size=batch_size)       # earlier trigger position
        inputs[rows, first] = TRIGGER_ID
        inputs[:, -1] = TRIGGER_ID
        targets = np.zeros((batch_size, length), dtype=np.int32)
        targets[:, -1] = inputs[rows, first + 1]
        mask = np.zeros((batch_size, length), dtype=bool)
        mask[:, -1] = True
        return Batch(inputs=inputs, targets=targets, mask=mask)

"""Tasks whose answer is a string: read the input, then write the answer on an answer tape.

This is the layout Delétang et al. (2023, "Neural networks and the Chomsky hierarchy") give
every task with a sequence as its answer: the n input tokens, then the answer positions,
each holding the same query token (their "empty output tape"); the target at the k-th
answer position is the k-th answer token (kind "tag"). An input of n tokens has
n + `extra_answer_positions` answer positions; `mask` is True on those that count.

    x_1 … x_n │ ▸ ▸ … ▸            targets at ▸: the answer

A sequence of T tokens holds the longest input whose layout fits, n = `input_length(T)`;
a token left over is padding at the end (`pad_id`, `mask` False), as in
`modular_arithmetic`. `sequence_length(n)` is the inverse: the length T of the layout for
an input of n tokens, the length at which the paper's input length n is tested.

Token ids: a subclass's input symbols 0 … n_input_symbols − 1, then the query token
(`query_id`) and the padding token (`pad_id`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from experiments.tasks.base import Batch, Task


class Transduction(Task):
    """Base of the answer-tape tasks; subclasses implement `n_input_symbols` and `_draw`."""

    kind = "tag"
    extra_answer_positions: ClassVar[int] = 0

    @property
    def n_input_symbols(self) -> int:
        raise NotImplementedError

    def _draw(self, rng, batch_size: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inputs (B, n), answers (B, n + extra), counted (B, n + extra) bool)."""
        raise NotImplementedError

    @property
    def query_id(self) -> int:
        return self.n_input_symbols

    @property
    def pad_id(self) -> int:
        return self.n_input_symbols + 1

    @property
    def vocab_size(self) -> int:
        return self.n_input_symbols + 2

    def sequence_length(self, n: int) -> int:
        """Tokens in the layout of an input of n tokens: the input and its answer tape."""
        return 2 * n + self.extra_answer_positions

    def input_length(self, length: int) -> int:
        """The input tokens n in a sequence of `length` (the longest layout that fits)."""
        return (length - self.extra_answer_positions) // 2

    @property
    def min_length(self) -> int:
        return self.sequence_length(1)

    def allowed_lengths(self) -> str:
        extra = f" + {self.extra_answer_positions}" if self.extra_answer_positions else ""
        return (f"at least {self.min_length} (n ≥ 1 input tokens, then n{extra} answer "
                f"positions)")

    def _sample(self, rng, batch_size, length):
        n = self.input_length(length)
        inputs, answers, counted = self._draw(rng, batch_size, n)
        end = self.sequence_length(n)
        tokens = np.full((batch_size, length), self.pad_id, dtype=np.int32)  # B T
        tokens[:, :n] = inputs
        tokens[:, n:end] = self.query_id
        targets = np.zeros((batch_size, length), dtype=np.int32)
        targets[:, n:end] = answers
        mask = np.zeros((batch_size, length), dtype=bool)
        mask[:, n:end] = counted
        return Batch(inputs=tokens, targets=targets, mask=mask)

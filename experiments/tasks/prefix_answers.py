"""Tasks with one answer, supervised at every prefix: the project's form of a task whose
answer comes after the whole input (see `parity`).

Inputs are uniform random token ids x_1 … x_T in [0, vocab_size); the target at every
position t is the answer for the prefix x_1 … x_t (kind "tag", `mask` all True), so the
answer for the whole input is the target at the last position, and a model is trained on
every prefix rather than on the last answer alone. A subclass says what the answers are.
"""

from __future__ import annotations

import numpy as np

from experiments.tasks.base import Batch, Task


class PrefixAnswerTask(Task):
    """Base of the every-prefix tasks; subclasses implement `vocab_size`, `n_classes` and
    `prefix_answers`."""

    kind = "tag"

    def prefix_answers(self, tokens: np.ndarray) -> np.ndarray:
        """(B, T) the answer for each prefix of the (B, T) token ids."""
        raise NotImplementedError

    def _sample(self, rng, batch_size, length):
        tokens = rng.integers(0, self.vocab_size, size=(batch_size, length), dtype=np.int32)  # B T
        return Batch(inputs=tokens, targets=self.prefix_answers(tokens).astype(np.int32),
                     mask=np.ones((batch_size, length), dtype=bool))


class BitPrefixTask(PrefixAnswerTask):
    """Bits in, a bit out at every prefix (parity, even pairs)."""

    @property
    def vocab_size(self) -> int:
        return 2

    @property
    def n_classes(self) -> int:
        return 2

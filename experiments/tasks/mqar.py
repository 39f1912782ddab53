"""Multi-query associative recall, MQAR (Arora et al. 2023, "Zoology: Measuring and
improving recall in efficient language models").

A sequence of length T with N = n_pairs key-value pairs, then N queries (kind "tag"):

    k_1 v_1 k_2 v_2 … k_N v_N | 0 … 0 k_σ(1) 0 … k_σ(2) … 0
    └────── 2N tokens ───────┘ └──────────── T − 2N tokens ────────────┘

Keys are distinct ids from [1, V/2), values distinct ids from [V/2, V) (V = vocab_size),
both drawn per sequence; id 0 is the filler between queries. Every key is queried once, in
a random order, at distinct positions of the query region; the target at a query position
is the key's value, and only the query positions are marked in `mask`.

Query positions follow Zoology's power law over the gap g = 1 … T − 2N from the end of the
pairs, P(g) ∝ g^(power_a − 1) (power_a = 1: uniform; small power_a: mostly short gaps),
drawn without replacement (Gumbel top-N over the log-weights).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.base import Batch, Task, check_int, check_real

FILLER_ID = 0


@dataclasses.dataclass(frozen=True)
class MQAR(Task):
    n_pairs: int = 8
    vocab_size: int = 8192
    power_a: float = 0.01

    name = "mqar"
    kind = "tag"

    def _check_options(self):
        check_int(self, "n_pairs", minimum=1)
        check_int(self, "vocab_size", minimum=4)
        check_real(self, "power_a", low=0.0, high=1.0, open_low=True)
        key_count = self.vocab_size // 2 - 1
        if self.n_pairs > key_count:
            raise self.option_error(
                "n_pairs", f"at most vocab_size // 2 − 1 = {key_count} (distinct keys from "
                f"[1, {self.vocab_size // 2}) with vocab_size={self.vocab_size})", self.n_pairs)

    @property
    def n_classes(self) -> int:
        return self.vocab_size

    @property
    def min_length(self) -> int:
        return 3 * self.n_pairs  # the pairs, then room for a query per key

    def allowed_lengths(self) -> str:
        return (f"at least 3 × n_pairs = {self.min_length} (2 × n_pairs for the pairs, "
                f"n_pairs for the queries)")

    def _sample(self, rng, batch_size, length):
        n, half = self.n_pairs, self.vocab_size // 2
        rows = np.arange(batch_size)[:, None]
        keys = 1 + _distinct(rng, half - 1, batch_size, n)                   # B N
        values = half + _distinct(rng, self.vocab_size - half, batch_size, n)  # B N

        region = length - 2 * n
        gaps = np.arange(1, region + 1)
        log_weight = (self.power_a - 1.0) * np.log(gaps)
        scores = log_weight + rng.gumbel(size=(batch_size, region))
        query_positions = 2 * n + np.argsort(-scores, axis=1, kind="stable")[:, :n]  # B N
        order = _distinct(rng, n, batch_size, n)  # which key each query position asks for

        inputs = np.full((batch_size, length), FILLER_ID, dtype=np.int32)  # B T
        inputs[:, 0:2 * n:2] = keys
        inputs[:, 1:2 * n:2] = values
        inputs[rows, query_positions] = keys[rows, order]
        targets = np.zeros((batch_size, length), dtype=np.int32)
        targets[rows, query_positions] = values[rows, order]
        mask = np.zeros((batch_size, length), dtype=bool)
        mask[rows, query_positions] = True
        return Batch(inputs=inputs, targets=targets, mask=mask)


def _distinct(rng, population: int, batch_size: int, count: int) -> np.ndarray:
    """(B, count) distinct draws from range(population) per row, uniformly without replacement."""
    return np.argsort(rng.random((batch_size, population)), axis=1)[:, :count]

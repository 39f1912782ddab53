"""Reverse string (Delétang et al. 2023, "Neural networks and the Chomsky hierarchy", a
deterministic context-free task): write the input string backwards.

The input s_1 … s_n is uniform over an alphabet of `alphabet_size` symbols (the paper's:
binary); the answer is s_n … s_1, written on an answer tape of n positions after the input
(the paper's layout, see `transduction`):

    0 1 1 0 1 0 │ ▸ ▸ ▸ ▸ ▸ ▸        targets at ▸: 0 1 0 1 1 0

Every answer position counts (`mask` True on all n of them, False on the input). A stack
solves it: push the input, pop it onto the tape.

A sequence of T tokens holds n = ⌊T / 2⌋ input tokens and n answer positions; an odd T
ends with one padding token (`mask` False). Token ids: the symbols 0 … alphabet_size − 1,
then the query token and the padding token.

Options: alphabet_size (an int ≥ 2, default 2).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.base import check_int
from experiments.tasks.transduction import Transduction


@dataclasses.dataclass(frozen=True)
class ReverseString(Transduction):
    alphabet_size: int = 2

    name = "reverse_string"

    def _check_options(self):
        check_int(self, "alphabet_size", minimum=2)

    @property
    def n_input_symbols(self) -> int:
        return self.alphabet_size

    @property
    def n_classes(self) -> int:
        return self.alphabet_size

    def _draw(self, rng, batch_size, n):
        strings = rng.integers(0, self.alphabet_size, size=(batch_size, n), dtype=np.int32)
        return strings, strings[:, ::-1], np.ones((batch_size, n), dtype=bool)

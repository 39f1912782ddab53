"""ListOps (Nangia & Bowman 2018) with the Long Range Arena grammar (Tay et al. 2021).

Nested prefix expressions over the digits 0–9 and four list operators,

    [MAX 2 9 [MIN 4 7 ] 0 ]   = 9
    MIN, MAX    the smallest / largest argument
    MED         the median; of an even count, the floor of the mean of the two middle
                values (LRA's int(np.median(…)))
    SM          the sum of the arguments mod 10

with the value of the whole expression as the label (kind "classify", 10 classes).

LRA's generator: a node at depth d < max_depth is an operator with probability 1/4
(otherwise a digit; at max_depth always a digit); an operator takes a uniform number of
arguments from 2 to max_args and is chosen uniformly among the four; the root has depth 1.
LRA keeps expressions whose token count lies in a window (500 to 2000 for length 2000);
here an expression is drawn again until its count lies in [⌈min_fraction · length⌉, length]
(default 1/4, as LRA's window), which gives LRA's distribution conditioned on that window.
The root is drawn as an operator, which changes nothing for windows above one token, and a
draw stops as soon as it outgrows `length`.

Tokens are the symbols, one id each: digits 0–9 are ids 0–9, then "[MIN", "[MAX", "[MED",
"[SM", "]", padding: 10 … 15. (LRA's files also hold "(" ")" from its binary-tree printer;
LRA's own input pipeline drops them, its tokenizer keeping alphanumerics only, and so do
the S4 and S5 pipelines.) Each expression is padded at the end to `length`; `mask` marks
its tokens.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from experiments.tasks.base import Batch, Task, check_int, check_real

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
SYMBOLS = (*map(str, range(10)), *OPERATORS, "]", "<pad>")
TOKEN_ID = {symbol: i for i, symbol in enumerate(SYMBOLS)}
PAD_ID, CLOSE_ID = TOKEN_ID["<pad>"], TOKEN_ID["]"]
OPERATOR_P = 0.25
MAX_DRAWS = 10_000  # per expression, before giving up on a window that is too rare


class _TooLong(Exception):
    pass


def apply_operator(operator: str, arguments: list[int]) -> int:
    if operator == "[MIN":
        return min(arguments)
    if operator == "[MAX":
        return max(arguments)
    if operator == "[MED":
        return int(np.median(arguments))
    return sum(arguments) % 10


@dataclasses.dataclass(frozen=True)
class ListOps(Task):
    max_depth: int = 10
    max_args: int = 10
    min_fraction: float = 0.25

    name = "listops"
    kind = "classify"

    def _check_options(self):
        check_int(self, "max_depth", minimum=2)
        check_int(self, "max_args", minimum=2)
        check_real(self, "min_fraction", low=0.0, high=1.0)

    @property
    def vocab_size(self) -> int:
        return len(SYMBOLS)

    @property
    def n_classes(self) -> int:
        return 10

    @property
    def min_length(self) -> int:
        return 4  # "[OP d d ]"

    def largest_expression(self) -> int:
        """Tokens of the largest expression the grammar can draw (every node full)."""
        size = 1
        for _ in range(self.max_depth - 1):
            size = 2 + self.max_args * size
        return size

    def shortest_expression(self, length: int) -> int:
        return max(self.min_length, math.ceil(self.min_fraction * length))

    def check_length(self, length):
        super().check_length(length)
        if self.shortest_expression(length) > self.largest_expression():
            raise ValueError(
                f"task {self.name!r} ({self.describe()}): length {length} asks for "
                f"expressions of at least {self.shortest_expression(length)} tokens "
                f"(min_fraction × length) but max_depth={self.max_depth} and "
                f"max_args={self.max_args} allow at most {self.largest_expression()}")

    def _sample(self, rng, batch_size, length):
        inputs = np.full((batch_size, length), PAD_ID, dtype=np.int32)  # B T
        mask = np.zeros((batch_size, length), dtype=bool)
        labels = np.empty(batch_size, dtype=np.int32)
        shortest = self.shortest_expression(length)
        for row in range(batch_size):
            tokens, labels[row] = self._expression(rng, shortest, length)
            inputs[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = True
        return Batch(inputs=inputs, targets=labels, mask=mask)

    def _expression(self, rng, shortest, longest):
        """Token ids and value of one expression with shortest ≤ tokens ≤ longest."""
        for _ in range(MAX_DRAWS):
            tokens = []
            try:
                value = self._node(rng, 1, tokens, longest, root=True)
            except _TooLong:
                continue
            if len(tokens) >= shortest:
                return tokens, value
        raise RuntimeError(
            f"task {self.name!r} ({self.describe()}): no expression of {shortest} to "
            f"{longest} tokens in {MAX_DRAWS} draws; lower min_fraction or raise max_depth")

    def _node(self, rng, depth, tokens, longest, root=False):
        """Append one node's tokens (depth-first) and return its value."""
        if root or (depth < self.max_depth and rng.random() < OPERATOR_P):
            n_arguments = int(rng.integers(2, self.max_args + 1))
            operator = OPERATORS[int(rng.integers(0, len(OPERATORS)))]
            tokens.append(TOKEN_ID[operator])
            arguments = [self._node(rng, depth + 1, tokens, longest)
                         for _ in range(n_arguments)]
            tokens.append(CLOSE_ID)
            value = apply_operator(operator, arguments)
        else:
            value = int(rng.integers(0, 10))
            tokens.append(value)
        if len(tokens) > longest:
            raise _TooLong
        return value

"""Modular arithmetic, with or without brackets (Deletang et al. 2023, "Neural networks and
the Chomsky hierarchy"; used for linear RNNs by Grazzi et al. 2025, "Unlocking
state-tracking in linear RNNs through negative eigenvalues").

The input is an expression over the numbers 0 … m−1 (default m = 5); the target is its
value mod m (kind "classify", m classes).

Without brackets (Deletang's regular task "modular_arithmetic"): numbers and binary
operators alternate, n_0 o_1 n_1 o_2 … o_k n_k, so the expression has odd length. It is
evaluated with the usual precedence, as Deletang's generator does: × binds tighter than
+ and −, and + and − associate to the left. Modulo 5:

    1 + 2 × 3 = 2        1 − 1 − 1 = 4        0 × 1 + 4 × 3 − 2 = 0

With brackets (Deletang's context-free task "modular_arithmetic_brackets"): an expression
of exactly n tokens is drawn recursively,

    n = 1:  d            n = 2:  −d           n = 3:  (d)          n = 4:  (−d)
    n ≥ 5:  (L ∘ R)  with ∘ a binary operator, |L| uniform in [1, n − 4], |R| = n − 3 − |L|,

d uniform in {0 … m−1}, ∘ uniform among the allowed operators, and the value computed on
the tree: −d = (m − d) mod m, (L ∘ R) = value(L) ∘ value(R) mod m. The unary minus belongs
to the grammar only when "-" is an allowed operator; without it every expression has odd
length and |L| is drawn uniformly among the odd values.

`operators` restricts the binary operators (any of "+", "-", "*"; default all three, the
default of Deletang's regular task; their brackets task and Grazzi et al.'s code default to
"+-"). A length the grammar cannot fill (an even length without brackets, or an even
length with brackets but without "-") gets an expression one token shorter and one padding
token at the end, marked False in `mask`.

`every_prefix` (without brackets only) supervises every prefix that ends in a number: kind
"tag", the target at position 2j the value of n_0 o_1 … n_j (with precedence, as a whole
expression), operator and padding positions masked out. The last target is the whole
expression's value, so evaluation scores what the "classify" form scores; training sees a
target at every other token (dense supervision, as the parity task has).

Token ids: the number d is id d; then "+", "-", "*", "(", ")", padding: m … m + 5.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.base import Batch, Task, check_flag, check_int, set_option

OPERATOR_SYMBOLS = ("+", "-", "*")
SYMBOLS = ("+", "-", "*", "(", ")", "<pad>")


@dataclasses.dataclass(frozen=True)
class ModularArithmetic(Task):
    modulus: int = 5
    operators: tuple[str, ...] = ("+", "-", "*")
    brackets: bool = False
    every_prefix: bool = False

    name = "modular_arithmetic"

    @property
    def kind(self) -> str:
        return "tag" if self.every_prefix else "classify"

    def _check_options(self):
        check_int(self, "modulus", minimum=2)
        check_flag(self, "brackets")
        check_flag(self, "every_prefix")
        if self.every_prefix and self.brackets:
            raise self.option_error("every_prefix", "False with brackets (a bracketed prefix is no expression)",
                                    self.every_prefix)
        operators = self.operators
        if isinstance(operators, str):
            operators = tuple(operators)
        if (not isinstance(operators, (tuple, list)) or not operators
                or any(op not in OPERATOR_SYMBOLS for op in operators)
                or len(set(operators)) != len(operators)):
            raise self.option_error(
                "operators", 'a non-empty set of distinct operators from "+", "-", "*" '
                '(a string such as "+-" or a sequence of symbols)', self.operators)
        set_option(self, "operators", tuple(op for op in OPERATOR_SYMBOLS if op in operators))

    def token_id(self, symbol: str) -> int:
        """The id of a number (as a str) or of one of `SYMBOLS`."""
        return int(symbol) if symbol.isdigit() else self.modulus + SYMBOLS.index(symbol)

    @property
    def pad_id(self) -> int:
        return self.token_id("<pad>")

    @property
    def vocab_size(self) -> int:
        return self.modulus + len(SYMBOLS)

    @property
    def n_classes(self) -> int:
        return self.modulus

    def expression_length(self, length: int) -> int:
        """Tokens of the expression in a sequence of `length` (the rest is padding)."""
        all_lengths = self.brackets and "-" in self.operators
        return length if all_lengths or length % 2 == 1 else length - 1

    def _sample(self, rng, batch_size, length):
        n = self.expression_length(length)
        if self.brackets:
            rows, values = zip(*(self._bracketed(rng, n) for _ in range(batch_size)))
            expressions, labels = np.array(rows, dtype=np.int32), np.array(values, np.int32)
        else:
            expressions, prefix_values = self._flat(rng, batch_size, n)
            labels = prefix_values[:, -1]
        inputs = np.full((batch_size, length), self.pad_id, dtype=np.int32)  # B T
        inputs[:, :n] = expressions
        mask = np.zeros((batch_size, length), dtype=bool)
        if self.every_prefix:
            mask[:, :n:2] = True
            targets = np.zeros((batch_size, length), dtype=np.int32)
            targets[:, :n:2] = prefix_values
            return Batch(inputs=inputs, targets=targets, mask=mask)
        mask[:, :n] = True
        return Batch(inputs=inputs, targets=labels, mask=mask)

    def _flat(self, rng, batch_size, n):
        """(B, n) alternating numbers and operators, and (B, n // 2 + 1) the values with
        precedence of every prefix ending in a number (the last: the whole expression's)."""
        m = self.modulus
        numbers = rng.integers(0, m, size=(batch_size, n // 2 + 1), dtype=np.int64)
        operator_ids = np.array([self.token_id(op) for op in self.operators], dtype=np.int32)
        ops = operator_ids[rng.integers(0, len(operator_ids), size=(batch_size, n // 2))]
        plus, times = self.token_id("+"), self.token_id("*")
        # Left to right: `total` holds the finished additive terms, `term` the signed product
        # still being multiplied.
        total = np.zeros(batch_size, dtype=np.int64)
        term = numbers[:, 0]
        values = [term % m]
        for k in range(n // 2):
            following, op = numbers[:, k + 1], ops[:, k]
            total = np.where(op == times, total, (total + term) % m)
            term = np.where(op == times, term * following,
                            np.where(op == plus, following, -following)) % m
            values.append((total + term) % m)
        expressions = np.empty((batch_size, n), dtype=np.int32)
        expressions[:, 0::2] = numbers
        expressions[:, 1::2] = ops
        return expressions, np.stack(values, axis=1).astype(np.int32)

    def _bracketed(self, rng, n):
        """One bracketed expression of exactly n tokens (ids) and its value mod m."""
        m, ids = self.modulus, self.token_id
        if n <= 4:
            d = int(rng.integers(0, m))
            return {1: ([d], d),
                    2: ([ids("-"), d], -d % m),
                    3: ([ids("("), d, ids(")")], d),
                    4: ([ids("("), ids("-"), d, ids(")")], -d % m)}[n]
        if "-" in self.operators:
            left_length = int(rng.integers(1, n - 3))
        else:  # odd lengths only: |L| odd in [1, n − 4]
            left_length = 2 * int(rng.integers(0, (n - 3) // 2)) + 1
        left, left_value = self._bracketed(rng, left_length)
        right, right_value = self._bracketed(rng, n - 3 - left_length)
        op = self.operators[int(rng.integers(0, len(self.operators)))]
        value = {"+": left_value + right_value, "-": left_value - right_value,
                 "*": left_value * right_value}[op] % m
        return [ids("("), *left, ids(op), *right, ids(")")], value

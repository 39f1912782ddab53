"""Even pairs (Delétang et al. 2023, "Neural networks and the Chomsky hierarchy", a regular
task): is the number of unequal neighbours ("01" and "10") in a bit string even?

Inputs are uniform random bits x_1 … x_T ∈ {0, 1}. The answer for a prefix x_1 … x_t is

    y_t = (#{s < t : x_s ≠ x_{s+1}}) mod 2      (0: even, 1: odd — the paper's classes)

which equals x_1 XOR x_t: the first and the last bit differ exactly when the string changes
value an odd number of times, so a two-state automaton that remembers x_1 solves it.

Deviation from the paper, the project's convention for a single answer (`prefix_answers`):
the target is given at every position t (kind "tag", `mask` all True), the answer for the
prefix of length t, where the paper supervises only the answer after the whole string. The
answer for the whole string is the target at the last position.
"""

from __future__ import annotations

import dataclasses

from experiments.tasks.prefix_answers import BitPrefixTask


@dataclasses.dataclass(frozen=True)
class EvenPairs(BitPrefixTask):
    name = "even_pairs"

    def prefix_answers(self, bits):
        return bits ^ bits[:, :1]  # odd changes exactly when the first and last bit differ

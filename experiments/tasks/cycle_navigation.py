"""Cycle navigation (Delétang et al. 2023, "Neural networks and the Chomsky hierarchy", a
regular task): where does a walk on a cycle of `cycle_length` positions end?

The walk starts at position 0; each input token is a move drawn uniformly from

    0: stay   1: one step forward (+1)   2: one step back (−1)

and the answer for the prefix of moves m_1 … m_t is the position reached,

    y_t = (Σ_{s ≤ t} step(m_s)) mod cycle_length        (cycle_length classes; paper: 5)

e.g. on the paper's cycle of 5, moves 0 1 0 2 1 1 end at 0+1+0−1+1+1 = 2. A finite automaton
with one state per position solves it.

Deviations from the paper: (1) the project's convention for a single answer
(`prefix_answers`): the target is given at every position t (kind "tag", `mask` all True),
the position after the first t moves, where the paper supervises only the final position,
the target at the last position here. (2) Token ids are the moves as the paper's text numbers them (0 stay,
1 forward, 2 back); the authors' code maps token a to the step a − 1, a relabelling of the
same three moves.

Options: cycle_length (an int ≥ 2, default 5).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.base import check_int
from experiments.tasks.prefix_answers import PrefixAnswerTask

STEPS = np.array([0, 1, -1])  # indexed by the move's token id


@dataclasses.dataclass(frozen=True)
class CycleNavigation(PrefixAnswerTask):
    cycle_length: int = 5

    name = "cycle_navigation"

    def _check_options(self):
        check_int(self, "cycle_length", minimum=2)

    @property
    def vocab_size(self) -> int:
        return len(STEPS)

    @property
    def n_classes(self) -> int:
        return self.cycle_length

    def prefix_answers(self, moves):
        return np.cumsum(STEPS[moves], axis=1) % self.cycle_length

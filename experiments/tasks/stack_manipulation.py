"""Stack manipulation (Delétang et al. 2023, "Neural networks and the Chomsky hierarchy", a
deterministic context-free task): run stack instructions on a given stack and write out the
stack that results.

An input of n tokens is a stack of bits given bottom to top, then instructions

    POP   PUSH 0   PUSH 1

drawn uniformly, as the paper's generator draws them: the stack's height is uniform in
[1, n − 1] and the other tokens are instructions (for n = 1 the input is a single bit and
no instruction). POP on an empty stack does nothing. The answer, on an answer tape of n + 1
positions after the input (the paper's layout, see `transduction`), is the final stack read
top to bottom, then the end-of-stack symbol, then 0s to fill the tape:

    0 1 1 0 PUSH1 POP POP │ ▸ ▸ ▸ ▸ ▸ ▸ ▸ ▸      targets at ▸: 1 1 0 END 0 0 0 0

`mask` is True on the answer positions up to and including END: the positions the paper's
accuracy counts.

Deviation from the paper: its loss also counts the 0s after END; here loss and accuracy
both count exactly the positions in `mask`.

A sequence of T tokens holds n = ⌊(T − 1) / 2⌋ input tokens and n + 1 answer positions;
an even T ends with one padding token (`mask` False). Token ids: 0 and 1 the stack's bits,
2 POP, 3 PUSH 0, 4 PUSH 1 (the paper's), 5 the query token, 6 padding. Classes: 0 and 1
the bits, 2 END.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.tasks.transduction import Transduction

POP, PUSH_0, PUSH_1 = 2, 3, 4
END = 2  # the class that ends the written stack


@dataclasses.dataclass(frozen=True)
class StackManipulation(Transduction):
    name = "stack_manipulation"
    extra_answer_positions = 1

    @property
    def n_input_symbols(self) -> int:
        return 5

    @property
    def n_classes(self) -> int:
        return 3

    def _draw(self, rng, batch_size, n):
        inputs = np.empty((batch_size, n), dtype=np.int32)
        answers = np.zeros((batch_size, n + 1), dtype=np.int32)
        counted = np.zeros((batch_size, n + 1), dtype=bool)
        for row in range(batch_size):
            height = int(rng.integers(1, n)) if n > 1 else 1
            inputs[row, :height] = rng.integers(0, 2, size=height)
            inputs[row, height:] = rng.integers(POP, PUSH_1 + 1, size=n - height)
            stack = self._run(inputs[row])
            answers[row, :len(stack)] = stack[::-1]
            answers[row, len(stack)] = END
            counted[row, :len(stack) + 1] = True
        return inputs, answers, counted

    @staticmethod
    def _run(tokens: np.ndarray) -> list[int]:
        """The stack (bottom first) after the initial bits and then the instructions."""
        stack = []
        for token in tokens.tolist():
            if token == POP:
                if stack:
                    stack.pop()
            else:
                stack.append(token - PUSH_0 if token >= PUSH_0 else token)
        return stack

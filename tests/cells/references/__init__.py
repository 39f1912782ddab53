"""Independent references for the cells: one module per cell family, each a plain Python
loop over time of its paper's equations in jax.numpy (float64 / complex128, so `jax.grad`
differentiates it), reading the cell's params by name and nothing else from lrnn.

Every module defines `CASES`, {case id: Case}: a small cell instance and its reference,

    reference(cell, params, x, h0, **kwargs) -> (y (B, T, d_out), final state)

with x (B, T, d_in) and h0 (shaped like `cell.initial_state((B,))`, a tuple for cells whose
state has several parts) already float64 / complex128. The contract
suite (tests/cells/test_contract.py) runs every case, and fails for any registered cell
class that no case covers.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Case:
    cell: object
    reference: Callable
    kwargs: dict = dataclasses.field(default_factory=dict)  # extra forward/step arguments
    stepwise: bool = True  # False for non-causal cells (bidirectional): `step` must refuse
    # Maps a random normal state (drawn like initial_state) to a valid one, where not every
    # state is (log-space states and softmax sums must be positive).
    prepare_state: Callable | None = None


def all_cases() -> dict[str, Case]:
    cases = {}
    for module in pkgutil.iter_modules(__path__):
        cases.update(importlib.import_module(f"{__name__}.{module.name}").CASES)
    return cases

"""Independent references for the cells: one module per cell family, each a loop over time of
its paper's equations in jax.numpy (float64 / complex128, so `jax.grad` differentiates it),
reading the cell's params by name and nothing else from lrnn. Most write one token's step and
run it with `over_time`: a plain Python loop when called eagerly, a lax.scan of the same step
under jit or grad.

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

import jax
import jax.numpy as jnp


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


def over_time(step: Callable, state, x, params=None):
    """(y (B, T, …), final state) of `y_t, state = step(state, x_t)` for x_t = x[:, t], t = 0 … T−1.

    Called eagerly, a Python loop (each op runs at once, nothing compiles). When the state, x
    or params are traced (under jit, grad, vmap), a lax.scan of the same step: the loop would
    unroll T copies of the step into the program, and compiling the gradient of such a loop
    took seconds per token.
    """
    leaves = jax.tree_util.tree_leaves((state, x, params))
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        final, ys = jax.lax.scan(lambda s, x_t: step(s, x_t)[::-1], state, jnp.moveaxis(x, 1, 0))
        return jax.tree_util.tree_map(lambda y: jnp.moveaxis(y, 0, 1), ys), final
    ys = []
    for t in range(x.shape[1]):
        y_t, state = step(state, x[:, t])
        ys.append(y_t)
    return jax.tree_util.tree_map(lambda *y: jnp.stack(y, axis=1), *ys), state

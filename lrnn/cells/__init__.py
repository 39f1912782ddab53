"""lrnn.cells — functional recurrent cells on the `lrnn.scan` engine.

Each cell is a frozen dataclass of hyperparameters (sizes included) with pure functions

    params = cell.init(key)
    y, final = cell.forward(params, x, state=None, method="auto")    # x (B, T, d_in)
    y_t, state = cell.step(params, state, x_t)                        # x_t (B, d_in)
    state = cell.initial_state((B,))
    labels = cell.param_labels(params)                                # recurrent / regular

See `base` for the contract and each module for its paper's equations.
"""

from lrnn.cells.base import RECURRENT, REGULAR, DiagonalCell
from lrnn.cells.lru import LRU
from lrnn.cells.registry import get_cell, register_cell, registered_cells

register_cell("lru", LRU)

__all__ = [
    "DiagonalCell",
    "LRU",
    "RECURRENT",
    "REGULAR",
    "get_cell",
    "register_cell",
    "registered_cells",
]

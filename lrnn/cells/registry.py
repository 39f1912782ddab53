"""The cells lrnn knows by name. Registering a cell class here puts it under the contract
suite in tests/cells (which then requires a reference loop for it)."""

from __future__ import annotations

_CELLS: dict[str, type] = {}


def register_cell(name: str, cell_class: type) -> type:
    if name in _CELLS and _CELLS[name] is not cell_class:
        raise ValueError(f"a cell named {name!r} is registered already ({_CELLS[name].__name__})")
    _CELLS[name] = cell_class
    return cell_class


def registered_cells() -> dict[str, type]:
    """{name: cell class}, in registration order."""
    return dict(_CELLS)


def get_cell(name: str) -> type:
    if name not in _CELLS:
        raise ValueError(f"cell must be one of {', '.join(sorted(_CELLS))}, got {name!r}")
    return _CELLS[name]

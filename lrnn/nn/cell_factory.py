"""A registered cell by name, at the width a mixer gives it, with sizes the cell leaves open.

    build_cell(name, d_in, options) = get_cell(name)(d_in=d_in, **(required sizes) | options)

Some cells have sizes with no default in their dataclass (the papers tie them to the model).
A mixer fills these in from its inner width d_in when `options` leave them out:

    lru, s5              d_state = d_in                (one state per channel)
    mingru, minlstm      d_hidden = d_in
    deltanet, gated_deltanet, deltaproduct
                         n_heads = d_in / 64 when 64 divides d_in, else 1   (heads of width 64)

Anything in `options` wins. Bad options fail here, naming the cell and the problem.
"""

from __future__ import annotations

import dataclasses

from lrnn.cells import checks, get_cell

HEAD_WIDTH = 64


def _heads(d_in: int) -> dict:
    return {"n_heads": d_in // HEAD_WIDTH if d_in % HEAD_WIDTH == 0 else 1}


REQUIRED_SIZES = {
    "lru": lambda d_in: {"d_state": d_in},
    "s5": lambda d_in: {"d_state": d_in},
    "mingru": lambda d_in: {"d_hidden": d_in},
    "minlstm": lambda d_in: {"d_hidden": d_in},
    "deltanet": _heads,
    "gated_deltanet": _heads,
    "deltaproduct": _heads,
}


def build_cell(name: str, d_in: int, options: dict | None = None):
    """The cell registered as `name` (see `lrnn.cells.registered_cells`) with input width d_in.

    Args:
      name: a registered cell name, e.g. "deltanet", "lru".
      d_in: the cell's input width (a mixer's inner width).
      options: the cell's other hyperparameters {field: value}; d_in is not one of them.

    Raises:
      ValueError: unknown name, options that are not a dict of the cell's fields, or values
        the cell rejects.
    """
    cell_class = get_cell(name)
    checks.positive_int("d_in", d_in)
    options = {} if options is None else options
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ValueError(f"cell_options must be a dict of field names to values, got {options!r}")
    fields = [f.name for f in dataclasses.fields(cell_class) if f.name != "d_in"]
    unknown = sorted(set(options) - set(fields))
    if "d_in" in options:
        raise ValueError(f"cell_options must not set d_in (the mixer sets it to its inner width), got {options!r}")
    if unknown:
        raise ValueError(f"cell_options for {name!r} must be among its fields {', '.join(fields)}; "
                         f"got unknown {', '.join(unknown)}")
    sizes = REQUIRED_SIZES.get(name, lambda _: {})(d_in)
    try:
        return cell_class(d_in=d_in, **{**sizes, **options})
    except (TypeError, ValueError) as error:
        raise ValueError(f"cell {name!r} with d_in={d_in} and options {options!r}: {error}") from error

"""The variable types of lrnn's modules, and the one place a cell's params become them.

A cell labels each of its params "recurrent" (they shape the recurrence itself: eigenvalues,
steps, forget-gate biases; papers give them a smaller learning rate and no weight decay) or
"regular" (`Cell.param_labels`). In a module the first are held as `RecurrentParam`, the
others as `nnx.Param`, so a trainer splits them by type:

    nnx.state(model, RecurrentParam)                       the recurrent group
    nnx.state(model, nnx.All(nnx.Param, nnx.Not(RecurrentParam)))   everything else

`RecurrentParam` subclasses `nnx.Param`, so anything that takes all params (nnx.Param) takes
these too.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from lrnn.cells import RECURRENT


class RecurrentParam(nnx.Param):
    """A param that shapes a recurrence: its own learning rate, no weight decay."""


def cell_variables(cell, params: dict, param_dtype) -> nnx.Dict:
    """A cell's params {name: array} as variables {name: RecurrentParam | nnx.Param}, each
    real floating array cast to `param_dtype` (cells may draw in float64 when x64 is on)."""
    labels = cell.param_labels(params)
    variables = {}
    for name, value in params.items():
        value = jnp.asarray(value)
        if jnp.issubdtype(value.dtype, jnp.floating):
            value = value.astype(param_dtype)
        kind = RecurrentParam if labels[name] == RECURRENT else nnx.Param
        variables[name] = kind(value)
    return nnx.Dict(variables)


def values(variables: nnx.Dict) -> dict:
    """{name: array} from {name: variable}: the params pytree a cell's functions take."""
    return {name: variable[...] for name, variable in variables.items()}

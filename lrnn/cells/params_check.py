"""The check of a cell's `params` against what its `init` returns, before they are used.

`check(cell, params)` compares the names, shapes and dtypes of `params` with those of
`cell.init(key)` and raises one ValueError listing every entry that is missing, extra, of the
wrong shape or not of the right kind of dtype, each with what was expected and what was given.
Without it, a wrong or incomplete pytree fails deep inside the cell (a bare KeyError, or a
broadcasting error far from its cause).

Names and shapes must match exactly (nested dicts entry by entry). The dtype need only be of
the same kind as init's, real floating (or complex where init's is), of any width: params cast
to bfloat16 or float64 are legitimate.

It costs nothing at run time: `init`'s structure comes from `jax.eval_shape` (no arrays are
made), once per cell (cells are frozen dataclasses, so hashable), and only the given leaves'
shapes and dtypes are read, so under `jit` the check runs while tracing and adds nothing to
the program.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np


def check(cell, params) -> None:
    """Raise a ValueError naming `params`, the cell and every entry that differs from `init`'s."""
    problems = _problems(_expected(cell), params, ())
    if problems:
        raise ValueError(f"params for {cell!r} " + "; ".join(problems))


@functools.lru_cache(maxsize=256)
def _expected(cell):
    """init's params as a pytree of ShapeDtypeStruct."""
    return jax.eval_shape(lambda: cell.init(jax.random.PRNGKey(0)))


def _name(path: tuple) -> str:
    return "/".join(str(p) for p in path)


def _shape_text(shape) -> str:
    return str(tuple(int(s) for s in shape))


def _kind(dtype) -> str:
    return "complex" if jnp.issubdtype(dtype, jnp.complexfloating) else "float"


def _problems(expected, given, path: tuple) -> list[str]:
    """What is wrong with `given` (at `path` inside params) against `expected`, as message parts."""
    where = f"{_name(path)!r} " if path else ""
    if isinstance(expected, Mapping):
        if not isinstance(given, Mapping):
            return [f"{where}must be a dict of {len(expected)} entries, got {type(given).__name__}"]
        missing = [f"{_name(path + (k,))!r} (expected {_describe(v)})" for k, v in expected.items() if k not in given]
        extra = [repr(_name(path + (k,))) for k in given if k not in expected]
        problems = [f"is missing {', '.join(missing)}"] if missing else []
        problems += [f"has extra {', '.join(extra)}"] if extra else []
        for k, v in expected.items():
            if k in given:
                problems += _problems(v, given[k], path + (k,))
        return problems
    try:
        shape, dtype = np.shape(given), jnp.result_type(given)
    except (TypeError, ValueError):
        return [f"{where}must be a {_describe(expected)} array, got {type(given).__name__}"]
    problems = []
    if shape != expected.shape:
        problems.append(f"{where}has shape {_shape_text(shape)}, expected {_shape_text(expected.shape)}")
    kind = jnp.complexfloating if _kind(expected.dtype) == "complex" else jnp.floating
    if not jnp.issubdtype(dtype, kind):
        problems.append(f"{where}has dtype {dtype}, expected a {_kind(expected.dtype)} dtype "
                        f"({expected.dtype} at init; any width)")
    return problems


def _describe(expected) -> str:
    if isinstance(expected, Mapping):
        return "dict"
    return f"{_kind(expected.dtype)} {_shape_text(expected.shape)}"

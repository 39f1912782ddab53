"""Every registered cell checks its params against init's names, shapes and dtype kinds (one
case per cell class from the contract suite), on every public path, once, and for free: the
jitted program is the same with the check as without it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from lrnn.cells import MatrixCell, params_check, registered_cells
from tests.cells.test_contract import CASES

# The first case (by id) of each registered cell class.
REPRESENTATIVES = {}
for _id in sorted(CASES):
    REPRESENTATIVES.setdefault(type(CASES[_id].cell), _id)
NAMES = [REPRESENTATIVES[cls] for cls in registered_cells().values()]
B, T = 2, 3


def inputs(name, params_dtype=jnp.float32):
    """(case, params, x (B, T, d_in), state) for case `name`, params cast to params_dtype."""
    case = CASES[name]
    params = jax.tree_util.tree_map(lambda p: p.astype(params_dtype), case.cell.init(jax.random.PRNGKey(0)))
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, case.cell.d_in), jnp.float32)
    return case, params, x, case.cell.initial_state((B,))


def paths(name):
    """(path name, callable(params)) for each public path of case `name`'s cell."""
    case, _, x, h0 = INPUTS[name]
    cell, kw = case.cell, case.kwargs
    found = [("forward", lambda p: cell.forward(p, x, **kw)),
             ("step", lambda p: cell.step(p, h0, x[:, 0], **kw)),
             ("jit(forward)", lambda p: jax.jit(lambda q: cell.forward(q, x, **kw))(p))]
    if isinstance(cell, MatrixCell):
        found.append(("forward_materialised", lambda p: cell.forward_materialised(p, x, **kw)))
    return found


INPUTS = {name: inputs(name) for name in NAMES}  # float32 params


def test_every_registered_cell_is_covered():
    assert len(NAMES) == len(registered_cells()) == len(set(NAMES))


def first_entry(params):
    return sorted(params)[0]


def wrong_shape(p):
    return jnp.concatenate([p, p]) if p.ndim else jnp.stack([p, p])


MUTATIONS = {  # id: (params -> bad params, params -> regex the message must match)
    "missing": (lambda ps: {k: v for k, v in ps.items() if k != first_entry(ps)},
                lambda ps: rf"is missing '{first_entry(ps)}' \(expected float \("),
    "extra": (lambda ps: {**ps, "not_a_param": jnp.zeros(3)}, lambda ps: r"has extra 'not_a_param'"),
    "shape": (lambda ps: {**ps, first_entry(ps): wrong_shape(ps[first_entry(ps)])},
              lambda ps: rf"'{first_entry(ps)}' has shape \(\d.*\), expected \("),
    "int_dtype": (lambda ps: {**ps, first_entry(ps): ps[first_entry(ps)].astype(jnp.int32)},
                  lambda ps: rf"'{first_entry(ps)}' has dtype int32, expected a float dtype"),
    "not_a_dict": (lambda ps: list(ps.values()), lambda ps: r"must be a dict of \d+ entries, got list"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_bad_params_name_the_entry(name, mutation):
    case, params, _, _ = INPUTS[name]
    mutate, pattern = MUTATIONS[mutation]
    expected = rf"^params for {type(case.cell).__name__}\(.*\) .*" + pattern(params)
    for path, call in paths(name):
        with pytest.raises(ValueError, match=expected):
            call(mutate(params))


def test_message_lists_every_problem():
    case, params, _, _ = INPUTS["lru"]
    cell = case.cell
    bad = {**params, "foo": 1.0, "B_re": jnp.zeros((1, 1), jnp.int8)}
    del bad["gamma_log"]
    with pytest.raises(ValueError) as info:
        cell.forward(bad, jnp.zeros((B, T, cell.d_in)))
    init_dtype = cell.init(jax.random.PRNGKey(0))["B_re"].dtype  # float64 under the suite's x64
    assert str(info.value) == (
        f"params for {cell!r} is missing 'gamma_log' (expected float ({cell.d_state},)); has extra 'foo'; "
        f"'B_re' has shape (1, 1), expected ({cell.d_state}, {cell.d_in}); "
        f"'B_re' has dtype int8, expected a float dtype ({init_dtype} at init; any width)")


def test_nested_params():
    expected = {"a": jax.ShapeDtypeStruct((2,), jnp.float32),
                "inner": {"w": jax.ShapeDtypeStruct((3, 4), jnp.float32),
                          "z": jax.ShapeDtypeStruct((), jnp.complex64)}}
    good = {"a": jnp.zeros(2, jnp.bfloat16), "inner": {"w": jnp.zeros((3, 4)), "z": jnp.zeros((), jnp.complex128)}}
    assert params_check._problems(expected, good, ()) == []
    bad = {"a": jnp.zeros(2), "inner": {"w": jnp.zeros((4, 3)), "z": jnp.zeros(()), "q": 0.0}}
    assert params_check._problems(expected, bad, ()) == [
        "has extra 'inner/q'", "'inner/w' has shape (4, 3), expected (3, 4)",
        "'inner/z' has dtype float64, expected a complex dtype (complex64 at init; any width)"]
    assert params_check._problems(expected, {"a": jnp.zeros(2), "inner": 1.0}, ()) == [
        "'inner' must be a dict of 2 entries, got float"]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_valid_params_of_any_float_width_pass(name, dtype):
    # Traced abstractly: the check runs while tracing, and the whole path traces with such params.
    case, params, x, h0 = inputs(name, dtype)
    cell, kw = case.cell, case.kwargs
    jax.eval_shape(lambda p: cell.forward(p, x, **kw), params)
    jax.eval_shape(lambda p: cell.step(p, h0, x[:, 0], **kw), params)
    if isinstance(cell, MatrixCell):
        jax.eval_shape(lambda p: cell.forward_materialised(p, x, **kw), params)


@pytest.mark.parametrize("name", NAMES)
def test_every_path_checks_once(name, monkeypatch):
    calls = []
    real = params_check.check
    monkeypatch.setattr(params_check, "check", lambda cell, params: calls.append(cell) or real(cell, params))
    case, params, _, _ = INPUTS[name]
    cell_paths = paths(name)
    if not isinstance(case.cell, MatrixCell) and case.cell.monoid is not None:  # nonlinear cells have no stream
        x = INPUTS[name][2]
        cell_paths.append(("streamed", lambda p: case.cell.forward(p, x, method="streamed", chunk_size=1,
                                                                  **case.kwargs)))
    for path, call in cell_paths:
        calls.clear()
        jax.eval_shape(call, params)
        assert calls == [case.cell], path


@pytest.mark.parametrize("name", NAMES)
def test_the_check_adds_nothing_to_the_program(name, monkeypatch):
    case, params, x, h0 = INPUTS[name]
    cell, kw = case.cell, case.kwargs

    def programs():
        params_check._expected.cache_clear()  # the worst case: init's structure is found while tracing
        return (str(jax.make_jaxpr(lambda p: cell.forward(p, x, **kw))(params)),
                str(jax.make_jaxpr(lambda p: cell.step(p, h0, x[:, 0], **kw))(params)))

    checked = programs()
    monkeypatch.setattr(params_check, "check", lambda cell, params: None)
    assert checked == programs()

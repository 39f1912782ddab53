"""The contract suite: every cell case in tests/cells/references against its independent
per-step loop, in float64, and the properties a caller of any cell relies on.

A registered cell joins by having a Case (the first test fails for one that has none).
Tolerances: float64 against float64 loops, 1e-8 relative and absolute (the engine's methods
reassociate sums, nothing more); bf16 inputs against the float32 output, 5e-2 of the output's
scale (bf16 keeps 8 mantissa bits; the recurrence itself runs in float32).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

from lrnn.cells import RECURRENT, REGULAR, MatrixCell, registered_cells
from tests.cells.references import all_cases
from tests.helpers import seed_of, to64

CASES = all_cases()
IDS = sorted(CASES)
STEPWISE = [name for name in IDS if CASES[name].stepwise]
METHODS = {"sequential": ("sequential", None), "associative": ("associative", None),
           "chunked3": ("chunked", 3), "auto": ("auto", None)}  # id: (method, chunk size)
TOL = dict(rtol=1e-8, atol=1e-8)
B = 2


def with_methods(methods, matrix_methods):
    """(name, method) pairs: every case with `methods`, except that a matrix-state cell, whose
    `method` only picks the engine's scan over chunk summaries (its chunked path, all methods
    and chunk sizes 1/16/64, is tested in test_matrix_contract.py), takes `matrix_methods`."""
    return [(name, method) for name in IDS
            for method in (matrix_methods if isinstance(CASES[name].cell, MatrixCell) else methods)]


def random_state(case, key, batch):
    """A random valid state shaped like the cell's initial_state((batch,)), in float64."""
    template = case.cell.initial_state((batch,), jnp.float64)
    parts, structure = jax.tree_util.tree_flatten(template)
    keys = jax.random.split(key, 2 * len(parts))
    drawn = []
    for i, part in enumerate(parts):
        h = 0.5 * jax.random.normal(keys[2 * i], part.shape, jnp.float64)
        if jnp.iscomplexobj(part):
            h = h * jnp.exp(1j * jax.random.uniform(keys[2 * i + 1], part.shape, jnp.float64, 0, 2 * np.pi))
        drawn.append(h)
    state = jax.tree_util.tree_unflatten(structure, drawn)
    return state if case.prepare_state is None else case.prepare_state(state)


def setup(name, length, *, with_state=True, batch=B):
    """(case, float64 params, x (batch, length, d_in), h0 or None), drawn per case name."""
    case = CASES[name]
    key_p, key_x, key_h = jax.random.split(jax.random.PRNGKey(seed_of(name, length)), 3)
    params = to64(case.cell.init(key_p))
    x = jax.random.normal(key_x, (batch, length, case.cell.d_in), jnp.float64)
    h0 = random_state(case, key_h, batch) if with_state else None
    return case, params, x, h0


def reference(case, params, x, h0):
    if h0 is None:
        h0 = to64(case.cell.initial_state((x.shape[0],)))
    return case.reference(case.cell, params, x, h0, **case.kwargs)


@functools.cache
def problem(name, length, *, with_state=True, batch=B):
    """setup(...) and the reference's (y, final) on it: the inputs depend only on these
    arguments, so every method and test that asks for them shares one reference run."""
    case, params, x, h0 = setup(name, length, with_state=with_state, batch=batch)
    return case, params, x, h0, reference(case, params, x, h0)


@functools.cache
def compiled(name):
    """(forward, step) of a case, each jitted: one compilation instead of dispatching every op
    one by one (the eager path has its own test, JitTest); made once per case, so the tests
    that call them with the same shapes share the compilation."""
    case = CASES[name]
    forward = jax.jit(lambda p, x, h: case.cell.forward(p, x, h, **case.kwargs))
    step = jax.jit(lambda p, s, x_t: case.cell.step(p, s, x_t, **case.kwargs))
    return forward, step


def test_every_registered_cell_has_a_case():
    covered = {type(case.cell) for case in CASES.values()}
    missing = [name for name, cls in registered_cells().items() if cls not in covered]
    assert not missing, f"registered cells without a reference case in tests/cells/references: {missing}"


@pytest.mark.parametrize("name, method", with_methods(list(METHODS), ["chunked3"]))
def test_forward_matches_reference(name, method):
    # A matrix cell's h0 and odd lengths get their own sweep in test_matrix_contract.py.
    matrix = isinstance(CASES[name].cell, MatrixCell)
    runs = [(1, False), (7, True)] if matrix else [(1, False), (1, True), (7, False), (7, True)]
    problems = [problem(name, length, with_state=with_state) for length, with_state in runs]
    case = CASES[name]
    method_name, chunk_size = METHODS[method]

    @jax.jit  # every run in one program: one compilation instead of one per run
    def forward_each(inputs):
        return [case.cell.forward(p, x, h, method=method_name, chunk_size=chunk_size, **case.kwargs)
                for p, x, h in inputs]

    outputs = forward_each([(params, x, h0) for _, params, x, h0, _ in problems])
    for (length, with_state), (y, final), (*_, expected) in zip(runs, outputs, problems):
        message = f"T={length}, {'with' if with_state else 'without'} h0"
        chex.assert_shape(y, (B, length, case.cell.d_out), custom_message=message)
        chex.assert_trees_all_equal_shapes(final, case.cell.initial_state((B,)), custom_message=message)
        chex.assert_trees_all_close((y, final), expected, **TOL, custom_message=message)


@pytest.mark.parametrize("name", STEPWISE)
def test_step_matches_forward(name):
    case, params, x, h0, (_, final_ref) = problem(name, 7)
    forward, step = compiled(name)
    y, final = forward(params, x, h0)
    state, ys = h0, []
    for t in range(x.shape[1]):
        y_t, state = step(params, state, x[:, t])
        ys.append(y_t)
    chex.assert_trees_all_close((jnp.stack(ys, axis=1), state), (y, final), **TOL)
    chex.assert_trees_all_close(state, final_ref, **TOL)


@pytest.mark.parametrize("name", STEPWISE)
def test_step_from_initial_state(name):
    # The reference from h0 = None runs from initial_state((B,)) in float64, the state stepped from here.
    case, params, x, _, (y_ref, final_ref) = problem(name, 3, with_state=False)
    state = case.cell.initial_state((B,), jnp.float64)
    chex.assert_trees_all_equal_shapes(state, case.cell.initial_state((B,)))
    _, step = compiled(name)
    for t in range(x.shape[1]):
        y_t, state = step(params, state, x[:, t])
    chex.assert_trees_all_close((y_t, state), (y_ref[:, -1], final_ref), **TOL)


def test_non_causal_cells_refuse_step():
    for name in sorted(set(IDS) - set(STEPWISE)):
        case, params, x, _ = setup(name, 1)
        with pytest.raises(ValueError, match="step"):
            case.cell.step(params, case.cell.initial_state((B,), jnp.float64), x[:, 0], **case.kwargs)


@pytest.mark.parametrize("name, method", with_methods(["sequential", "associative"], ["sequential"]))
def test_packed_sequences_equal_separate_ones(name, method):
    case, params, x, h0 = setup(name, 7)
    resets = jnp.zeros((B, 7), bool).at[:, 3].set(True).at[1, 5].set(True)

    @jax.jit  # the packed call and the separate ones in one program: one compilation
    def packed_and_separate(x, h0, resets):
        def forward(x, h, resets):
            return case.cell.forward(params, x, h, resets=resets, method=method, **case.kwargs)
        return (forward(x, h0, resets), forward(x[:, :3], h0, None), forward(x[:1, 3:], None, None),
                forward(x[1:, 5:], None, None))

    (y, final), (first, _), (y0, final0), (y1, final1) = packed_and_separate(x, h0, resets)
    chex.assert_trees_all_close(y[:, :3], first, **TOL)
    rows = lambda tree, s: jax.tree_util.tree_map(lambda a: a[s], tree)  # noqa: E731
    chex.assert_trees_all_close((y[:1, 3:], rows(final, slice(None, 1))), (y0, final0), **TOL)
    chex.assert_trees_all_close((y[1:, 5:], rows(final, slice(1, None))), (y1, final1), **TOL)


def _loss(outputs, weights):
    y, final = outputs
    parts = jax.tree_util.tree_leaves(final)
    return jnp.sum(y * weights[0]) + sum(jnp.sum(jnp.real(f * w)) for f, w in zip(parts, weights[1]))


@functools.cache
def _gradient_problem(name):
    """(case, params, x, h0, weights of the loss) for the gradient tests."""
    case, params, x, h0 = setup(name, 6)
    key = jax.random.PRNGKey(seed_of(name, "weights"))
    weights = (jax.random.normal(key, (B, 6, case.cell.d_out), jnp.float64),
               [jax.random.normal(key, h.shape, jnp.float64) for h in jax.tree_util.tree_leaves(h0)])
    return case, params, x, h0, weights


@functools.cache
def _reference_gradients(name):
    """The reference loss's gradient, computed once per case and shared by every method."""
    case, params, x, h0, weights = _gradient_problem(name)

    def reference_loss(params, x, h0):
        return _loss(reference(case, params, x, h0), weights)

    return jax.jit(jax.grad(reference_loss, argnums=(0, 1, 2)))(params, x, h0)


@pytest.mark.parametrize("name, method", with_methods(["sequential", "associative", "chunked3"], ["chunked3"]))
def test_gradients_match_reference(name, method):
    case, params, x, h0, weights = _gradient_problem(name)

    def cell_loss(params, x, h0):
        return _loss(case.cell.forward(params, x, h0, method=METHODS[method][0],
                                       chunk_size=METHODS[method][1], **case.kwargs), weights)

    grads = jax.jit(jax.grad(cell_loss, argnums=(0, 1, 2)))(params, x, h0)
    chex.assert_trees_all_close(grads, _reference_gradients(name), rtol=1e-7, atol=1e-7)


class JitTest(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*IDS)
    def test_forward_matches_reference(self, name):
        case, params, x, h0, expected = problem(name, 5)
        forward = self.variant(lambda p, x, h: case.cell.forward(p, x, h, **case.kwargs))
        chex.assert_trees_all_close(forward(params, x, h0), expected, **TOL)


@pytest.mark.parametrize("name", IDS)
def test_vmap_equals_the_batched_call(name):
    case, params, x, h0 = setup(name, 5, batch=4)
    pair = lambda tree: jax.tree_util.tree_map(lambda a: a.reshape((2, 2) + a.shape[1:]), tree)  # noqa: E731
    forward = lambda x, h: case.cell.forward(params, x, h, **case.kwargs)  # noqa: E731
    # Both in one program: one compilation.
    stacked, batched = jax.jit(lambda x, h: (jax.vmap(forward)(pair(x), pair(h)), forward(x, h)))(x, h0)
    chex.assert_trees_all_close(stacked, pair(batched), **TOL)


@pytest.mark.parametrize("name", IDS)
def test_bfloat16_inputs(name):
    case = CASES[name]
    params = case.cell.init(jax.random.PRNGKey(seed_of(name)))
    x = jax.random.normal(jax.random.PRNGKey(1), (B, 64, case.cell.d_in), jnp.float32)
    forward = lambda p, x: case.cell.forward(p, x, **case.kwargs)  # noqa: E731
    # Both precisions in one program (one compilation); the bf16 input is cast before the cell.
    (y32, _), (y16, final16) = jax.jit(lambda p, x: (forward(p, x), forward(p, x.astype(jnp.bfloat16))))(params, x)
    assert y16.dtype == jnp.bfloat16
    assert jnp.all(jnp.isfinite(y16.astype(jnp.float32)))
    assert all(jnp.all(jnp.isfinite(jnp.abs(f))) for f in jax.tree_util.tree_leaves(final16))
    scale = float(jnp.max(jnp.abs(y32))) + 1e-6
    np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), atol=5e-2 * scale)


@pytest.mark.parametrize("name", IDS)
def test_long_sequences_stay_finite(name):
    _long_sequence_is_finite(name, 2**16)


@pytest.mark.slow
def test_a_million_steps_stay_finite():
    _long_sequence_is_finite("lru", 2**20)


def _long_sequence_is_finite(name, length):
    case = CASES[name]
    params = case.cell.init(jax.random.PRNGKey(seed_of(name)))
    x = jax.random.normal(jax.random.PRNGKey(2), (1, length, case.cell.d_in), jnp.float32)
    y, final = jax.jit(lambda p, x: case.cell.forward(p, x, **case.kwargs))(params, x)
    assert bool(jnp.all(jnp.isfinite(y))), f"{name}: non-finite output at T={length}"
    assert all(bool(jnp.all(jnp.isfinite(jnp.abs(f)))) for f in jax.tree_util.tree_leaves(final)), \
        f"{name}: non-finite final state at T={length}"


@pytest.mark.parametrize("name", IDS)
def test_params_carry_group_labels(name):
    case = CASES[name]
    params = case.cell.init(jax.random.PRNGKey(0))
    labels = case.cell.param_labels(params)
    assert set(labels) == set(params)
    assert set(labels.values()) <= {RECURRENT, REGULAR}
    assert case.cell.recurrent_params <= set(params), "recurrent_params names a param init does not make"
    # The labels drive optax.multi_transform: a frozen recurrent group stays put.
    optimizer = optax.multi_transform({RECURRENT: optax.set_to_zero(), REGULAR: optax.sgd(0.1)}, labels)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    new = optax.apply_updates(params, updates)
    for key in params:
        moved = not np.allclose(new[key], params[key])
        assert moved == (labels[key] == REGULAR), key


@pytest.mark.parametrize("name", IDS)
def test_init_is_real_and_keyed(name):
    cell = CASES[name].cell
    first, again, other = (cell.init(jax.random.PRNGKey(k)) for k in (0, 0, 1))
    chex.assert_trees_all_equal(first, again)
    # Real floating leaves (complex params are stored as _re/_im pairs, so every optimizer
    # and weight decay treats them alike); float32 unless float64 is switched on.
    assert all(jnp.issubdtype(a.dtype, jnp.floating) for a in jax.tree_util.tree_leaves(first))
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(other)))


@pytest.mark.parametrize("name", IDS)
def test_bad_inputs_name_the_argument(name):
    case, params, x, h0 = setup(name, 4)
    cell, kw = case.cell, case.kwargs
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, "):
        cell.forward(params, jnp.concatenate([x, x], -1), **kw)
    with pytest.raises(ValueError, match=r"x must have shape"):
        cell.forward(params, x[0], **kw)
    with pytest.raises(TypeError, match="x must be a real floating array"):
        cell.forward(params, x.astype(jnp.int32), **kw)
    tree_map = jax.tree_util.tree_map
    with pytest.raises(ValueError, match=r"state(\[\d\])? must be"):
        cell.forward(params, x, tree_map(lambda h: jnp.concatenate([h, h], -1), h0), **kw)
    with pytest.raises(ValueError, match=r"state(\[\d\])? must be"):
        cell.forward(params, x, tree_map(lambda h: h[:1], h0), **kw)
    if case.stepwise:
        with pytest.raises(ValueError, match=r"state(\[\d\])? must be"):
            cell.step(params, tree_map(lambda h: h[0], h0), x[:, 0], **kw)
        with pytest.raises(ValueError, match=r"x_t must have shape \(B, "):
            cell.step(params, h0, jnp.concatenate([x[:, 0], x[:, 0]], -1), **kw)

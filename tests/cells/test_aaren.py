"""Aaren beyond the contract suite: it is softmax attention of a learned query over every
prefix (checked against a dense masked softmax, not a loop), stays finite where e^s overflows,
streams token by token and chunk by chunk, and follows its init."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.aaren import Aaren
from tests.cells.references.aaren import aaren as reference
from tests.helpers import to64

CELL = Aaren(d_in=6, n_heads=2, d_key=8, d_value=6)  # K = 4, V = 3 per head
TOL = dict(rtol=1e-10, atol=1e-10)


def setup(cell, length, seed=0, batch=2, dtype=jnp.float64):
    key_p, key_x = jax.random.split(jax.random.PRNGKey(seed))
    params = cell.init(key_p)
    params = to64(params) if dtype == jnp.float64 else params
    return params, jax.random.normal(key_x, (batch, length, cell.d_in), dtype)


def dense_attention(cell, p, x):
    """Causal softmax attention of each head's learned query, as one masked T×T softmax."""
    b, t, _ = x.shape
    h, kd, vd = cell.n_heads, cell.key_dim, cell.value_dim
    k = (x @ p["W_k"]).reshape(b, t, h, kd)
    v = (x @ p["W_v"]).reshape(b, t, h, vd)
    s = jnp.einsum("bthk,hk->bht", k, p["q"]) / np.sqrt(kd)
    causal = np.tril(np.ones((t, t), bool))  # [output t, token i]: i ≤ t
    logits = jnp.where(causal, s[:, :, None, :], -jnp.inf)
    o = jnp.einsum("bhti,bihv->bthv", jax.nn.softmax(logits, axis=-1), v).reshape(b, t, h * vd)
    return o @ p["W_o"] + p["b_o"] if cell.output_projection else o


@functools.cache
def _expected_at_37():
    """The dense attention and the reference loop on setup(CELL, 37), computed once for every method."""
    params, x = setup(CELL, 37)
    return dense_attention(CELL, params, x), reference(CELL, params, x, to64(CELL.initial_state((2,))))


@pytest.mark.parametrize("method, chunk_size", [("sequential", None), ("associative", None), ("chunked", 1),
                                                ("chunked", 16), ("chunked", 64), ("auto", None)])
def test_forward_is_softmax_attention_of_the_learned_query_over_each_prefix(method, chunk_size):
    params, x = setup(CELL, 37)
    y, (m, u, w) = jax.jit(lambda p, x: CELL.forward(p, x, method=method, chunk_size=chunk_size))(params, x)
    attention, (y_ref, final_ref) = _expected_at_37()
    chex.assert_trees_all_close(y, attention, **TOL)
    chex.assert_trees_all_close((y, (m, u, w)), (y_ref, final_ref), **TOL)
    # The final state is the max-shifted sums over all 37 tokens.
    s = CELL.scores(params, x)  # (B, T, H)
    chex.assert_trees_all_close(m, jnp.max(s, axis=1), **TOL)
    chex.assert_trees_all_close(u, jnp.sum(jnp.exp(s - m[:, None]), axis=1), **TOL)


def test_without_output_projection_the_output_is_the_merged_heads():
    cell = Aaren(d_in=5, n_heads=3, d_key=6, d_value=12, output_projection=False)
    params, x = setup(cell, 9)
    assert set(params) == {"q", "W_k", "W_v"} and cell.d_out == 12
    y, _ = jax.jit(lambda p, x: cell.forward(p, x, method="sequential"))(params, x)
    chex.assert_shape(y, (2, 9, 12))
    chex.assert_trees_all_close(y, dense_attention(cell, params, x), **TOL)
    # Head 1's outputs are convex combinations of head 1's values only.
    v1 = (x @ params["W_v"]).reshape(2, 9, 3, 4)[:, :, 1]
    first = y.reshape(2, 9, 3, 4)[:, 0, 1]
    chex.assert_trees_all_close(first, v1[:, 0], **TOL)


def test_the_score_is_scaled_by_one_over_root_key_dim():
    params, x = setup(CELL, 3)
    k = (x @ params["W_k"]).reshape(2, 3, 2, 4)
    expected = jnp.sum(k * params["q"], axis=-1) / 2.0  # √K = 2
    chex.assert_trees_all_close(CELL.scores(params, x), expected, **TOL)
    s, ones, v = CELL.elements(params, x)
    chex.assert_shape((s, ones, v), [(2, 3, 2), (2, 3, 2), (2, 3, 2, 3)])
    np.testing.assert_array_equal(ones, 1.0)


@pytest.mark.parametrize("method", ["sequential", "associative", "chunked"])
def test_scores_of_a_thousand_stay_finite_in_float32(method):
    """e^1000 overflows float32 (and float64); the max-shifted state never forms it."""
    params, x = setup(CELL, 40, seed=3, dtype=jnp.float32)
    params = dict(params, q=params["q"] * 1000.0)
    s = CELL.scores(params, x)
    assert s.dtype == jnp.float32 and float(jnp.max(s)) > 1e3  # e^s is inf in float32 past 88.7
    y, (m, u, w) = jax.jit(lambda p, x: CELL.forward(p, x, method=method, chunk_size=8))(params, x)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in (y, m, u, w))
    assert bool(jnp.all(u >= 1.0))  # the maximal token contributes e^0
    expected = dense_attention(CELL, params, x)  # jax.nn.softmax shifts by the max too
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(np.asarray(y), np.asarray(expected), rtol=1e-4, atol=1e-4 * scale)


def test_step_with_scores_of_a_thousand_stays_finite_and_equals_forward():
    params, x = setup(CELL, 12, seed=4, dtype=jnp.float32)
    params = dict(params, q=params["q"] * 1000.0)
    y, final = CELL.forward(params, x, method="sequential")
    step = jax.jit(CELL.step)
    state, ys = CELL.initial_state((2,)), []
    for t in range(12):
        y_t, state = step(params, state, x[:, t])
        ys.append(y_t)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves((ys, state)))
    chex.assert_trees_all_close((jnp.stack(ys, axis=1), state), (y, final), rtol=1e-5, atol=1e-5)


def test_initial_state_is_the_empty_sum():
    m, u, w = CELL.initial_state((3,), jnp.float64)
    chex.assert_shape((m, u, w), [(3, 2), (3, 2), (3, 2, 3)])
    assert bool(jnp.all(m == -jnp.inf)) and bool(jnp.all(u == 0)) and bool(jnp.all(w == 0))
    params, x = setup(CELL, 9, seed=1)
    # Token by token from the empty state: the O(1)-memory path equals forward from None.
    step = jax.jit(CELL.step)
    state, ys = CELL.initial_state((2,), jnp.float64), []
    for t in range(x.shape[1]):
        y_t, state = step(params, state, x[:, t])
        ys.append(y_t)
    y, final = jax.jit(lambda x: CELL.forward(params, x, method="associative"))(x)
    chex.assert_trees_all_close((jnp.stack(ys, axis=1), state), (y, final), **TOL)
    # The first token alone gives (s_1, 1, v_1) and y_1 = v_1 W_o + b_o.
    _, (m1, u1, w1) = CELL.step(params, CELL.initial_state((2,), jnp.float64), x[:, 0])
    s, _, v = CELL.elements(params, x[:, :1])
    chex.assert_trees_all_close((m1, u1, w1), (s[:, 0], jnp.ones_like(u1), v[:, 0]), **TOL)
    # Passing the empty state explicitly is the same as passing none.
    for method in ("sequential", "associative"):
        forward = jax.jit(lambda x, h: CELL.forward(params, x, h, method=method))
        chex.assert_trees_all_close(forward(x, CELL.initial_state((2,), jnp.float64)), (y, final), **TOL)


@pytest.mark.parametrize("method", ["sequential", "associative", "chunked"])
def test_streaming_in_pieces_equals_one_call(method):
    params, x = setup(CELL, 13, seed=2)
    run = lambda x, h: CELL.forward(params, x, h, method=method, chunk_size=4)  # noqa: E731

    @jax.jit  # the whole call and the pieces in one program: one compilation
    def whole_and_pieces(x):
        y1, state = run(x[:, :6], None)
        y2, final2 = run(x[:, 6:], state)
        return run(x, None), (jnp.concatenate([y1, y2], axis=1), final2)

    whole, pieces = whole_and_pieces(x)
    chex.assert_trees_all_close(pieces, whole, **TOL)


def test_the_last_output_ignores_the_order_of_the_prefix():
    """A learned query attends to a set: permuting the tokens leaves o_T and the sums unchanged
    (and changes the earlier outputs)."""
    params, x = setup(CELL, 11, seed=5)
    perm = np.random.default_rng(0).permutation(11)
    forward = jax.jit(lambda x: CELL.forward(params, x, method="associative"))
    y, final = forward(x)
    y_perm, final_perm = forward(x[:, perm])
    chex.assert_trees_all_close((y_perm[:, -1], final_perm), (y[:, -1], final), **TOL)
    assert not np.allclose(y_perm[:, :-1], y[:, :-1])


def test_a_given_state_counts_as_earlier_tokens():
    """The state of a prefix, passed in, continues attention over prefix + sequence."""
    params, x = setup(CELL, 10, seed=6)
    prefix = jax.random.normal(jax.random.PRNGKey(7), (2, 4, CELL.d_in), jnp.float64)
    _, state = CELL.forward(params, prefix)
    y, _ = jax.jit(lambda x, h: CELL.forward(params, x, h, method="chunked", chunk_size=3))(x, state)
    whole = dense_attention(CELL, params, jnp.concatenate([prefix, x], axis=1))
    chex.assert_trees_all_close(y, whole[:, 4:], **TOL)


def test_init_follows_multi_head_attention():
    cell = Aaren(d_in=256, n_heads=4, d_key=256, d_value=512)
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"q": (4, 64), "W_k": (256, 256), "W_v": (256, 512), "W_o": (512, 256), "b_o": (256,)}
    assert {k: v.shape for k, v in params.items()} == shapes
    q = np.asarray(params["q"], np.float64)
    assert abs(q.mean()) < 0.1 and abs(q.std() - 1.0) < 0.1
    for name in ("W_k", "W_v"):  # Glorot uniform: U[±√(6 / (fan_in + fan_out))]
        w = np.asarray(params[name], np.float64)
        fan_in, fan_out = w.shape
        assert np.all(np.abs(w) <= np.sqrt(6 / (fan_in + fan_out)))
        np.testing.assert_allclose(w.var() * (fan_in + fan_out) / 2, 1.0, rtol=0.03)
    w_o = np.asarray(params["W_o"], np.float64)  # nn.Linear: U[±1/√fan_in]
    assert np.all(np.abs(w_o) <= 1 / np.sqrt(512))
    np.testing.assert_allclose(w_o.var() * 3 * 512, 1.0, rtol=0.03)
    np.testing.assert_array_equal(params["b_o"], 0.0)
    assert cell.recurrent_params == frozenset()
    assert set(cell.param_labels(params).values()) == {"regular"}


def test_sizes_default_to_an_even_split_of_d_in():
    cell = Aaren(d_in=8, n_heads=2)
    assert (cell.d_key, cell.d_value, cell.key_dim, cell.value_dim, cell.d_out) == (8, 8, 4, 4, 8)
    cell = Aaren(d_in=8, n_heads=2, d_value=10, output_projection=False)
    assert (cell.value_dim, cell.d_out) == (5, 10)
    cell = Aaren(d_in=7, n_heads=2, d_key=6, d_value=6)  # explicit sizes need no divisibility of d_in
    assert (cell.key_dim, cell.value_dim, cell.d_out) == (3, 3, 7)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=2.0), "d_in"),
    (dict(d_in=4, n_heads=0), "n_heads"),
    (dict(d_in=4, n_heads=True), "n_heads"),
    (dict(d_in=5, n_heads=2), "n_heads"),
    (dict(d_in=5, n_heads=2, d_key=6), "n_heads"),
    (dict(d_in=4, d_key=0), "d_key"),
    (dict(d_in=4, d_value=-1), "d_value"),
    (dict(d_in=4, d_value=2.5), "d_value"),
    (dict(d_in=4, d_key=True), "d_key"),
    (dict(d_in=4, n_heads=2, d_key=5), "d_key"),  # not a whole number of keys per head
    (dict(d_in=4, n_heads=2, d_value=3), "d_value"),
    (dict(d_in=4, output_projection="yes"), "output_projection"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        Aaren(**kwargs)


def test_malformed_states_are_refused_naming_the_argument():
    params, x = setup(CELL, 4)
    m, u, w = CELL.initial_state((2,), jnp.float64)
    with pytest.raises(ValueError, match=r"^state must be a tuple of 3 arrays"):
        CELL.forward(params, x, w)
    with pytest.raises(ValueError, match=r"^state must be a tuple of 3 arrays"):
        CELL.step(params, (m, u), x[:, 0])
    with pytest.raises(ValueError, match=r"^state\[2\] must be a real floating array of shape \(2, 2, 3\)"):
        CELL.forward(params, x, (m, u, w[..., :2]))
    with pytest.raises(ValueError, match=r"^state\[1\] must be"):
        CELL.step(params, (m, u.astype(jnp.int32), w), x[:, 0])

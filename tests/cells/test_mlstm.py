"""mLSTM beyond the contract suite: the stabiliser (huge input gates, the unstabilised formula,
the representation of the zero state), the chunk sizes, the xLSTM init and the checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.mlstm import MLSTM
from tests.cells.references.mlstm import mlstm as reference
from tests.helpers import to64

TOL = dict(rtol=1e-9, atol=1e-9)
tree_map = jax.tree_util.tree_map


def _setup(cell, length, seed=0, *, batch=2, input_bias=0.0):
    """float64 params whose gates depend on the input (the init zeroes W_i and W_f), x and a
    random state (C̃, ñ, m)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 6)
    params = to64(cell.init(keys[0]))
    params["W_i"] = jax.random.normal(keys[1], params["W_i"].shape, jnp.float64)
    params["W_f"] = jax.random.normal(keys[2], params["W_f"].shape, jnp.float64)
    params["b_i"] = params["b_i"] + input_bias
    x = jax.random.normal(keys[3], (batch, length, cell.d_in), jnp.float64)
    c0, n0, m0 = cell.initial_state((batch,), jnp.float64)
    state = (jax.random.normal(keys[4], c0.shape, jnp.float64), jax.random.normal(keys[5], n0.shape, jnp.float64),
             jax.random.normal(keys[5], m0.shape, jnp.float64))
    return params, x, state


def _unstabilised(cell, p, x):
    """The paper's equations as written, from a zero state: i = e^ĩ, f = σ(f̃), the true C and n,
    h̃ = Cᵀq / max(|nᵀq|, 1). Returns (h̃ (B, T, H, V), C, n, |nᵀq| (B, T, H))."""
    b, h, kd, vd = x.shape[0], cell.n_heads, cell.key_dim, cell.value_dim
    C, n, hs, nqs = jnp.zeros((b, h, kd, vd)), jnp.zeros((b, h, kd)), [], []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        q = (x_t @ p["W_q"]).reshape(b, h, kd)
        k = (x_t @ p["W_k"]).reshape(b, h, kd) / np.sqrt(kd)
        v = (x_t @ p["W_v"]).reshape(b, h, vd)
        i = jnp.exp(x_t @ p["W_i"] + p["b_i"])
        f = jax.nn.sigmoid(x_t @ p["W_f"] + p["b_f"])
        C = f[..., None, None] * C + i[..., None, None] * k[..., :, None] * v[..., None, :]
        n = f[..., None] * n + i[..., None] * k
        nqs.append(jnp.abs(jnp.einsum("bhk,bhk->bh", q, n)))
        hs.append(jnp.einsum("bhk,bhkv->bhv", q, C) / jnp.maximum(nqs[-1], 1.0)[..., None])
    return jnp.stack(hs, axis=1), C, n, jnp.stack(nqs, axis=1)


def test_outputs_equal_the_unstabilised_formula_for_moderate_gates():
    cell = MLSTM(d_in=4, n_heads=2, d_key=6, d_value=8)
    params, x, _ = _setup(cell, 13, seed=1)
    h_tilde, C, n, nq = _unstabilised(cell, params, x)
    y, (c_s, n_s, m) = jax.jit(lambda p, x: cell.forward(p, x, chunk_size=4))(params, x)
    chex.assert_trees_all_close(y, cell._output(params, h_tilde, x), **TOL)
    scale = jnp.exp(m)
    chex.assert_trees_all_close((scale[..., None, None] * c_s, scale[..., None] * n_s), (C, n), rtol=1e-10, atol=1e-12)
    # Both branches of max(|nᵀq|, 1) occur in this example.
    assert np.any(np.asarray(nq) < 1) and np.any(np.asarray(nq) > 1)


def test_materialised_and_chunked_paths_equal_the_reference_at_odd_lengths():
    cell = MLSTM(d_in=4, n_heads=2, d_key=6, d_value=8)
    params, x, h0 = _setup(cell, 37, seed=2)
    y_ref, final_ref = reference(cell, params, x, h0)
    forward = jax.jit(cell.forward, static_argnames=("chunk_size", "method"))
    for chunk_size in (1, 16, 64):
        chex.assert_trees_all_close(forward(params, x, h0, chunk_size=chunk_size), (y_ref, final_ref), **TOL)
    materialised = jax.jit(cell.forward_materialised, static_argnames=("method",))
    chex.assert_trees_all_close(materialised(params, x, h0, method="associative"), (y_ref, final_ref), **TOL)


def test_a_huge_input_gate_stays_finite_in_float32():
    """ĩ ≈ 50–100: e^ĩ overflows float32 (above ≈ 88.7), the stabilised state does not."""
    cell = MLSTM(d_in=4, n_heads=2, d_key=6, d_value=8)
    params, x, _ = _setup(cell, 40, seed=3, input_bias=80.0)
    params["W_i"] = 15.0 * params["W_i"] / jnp.max(jnp.abs(x @ params["W_i"]))  # |x W_i| ≤ 15 on this x
    i_pre = np.asarray(x @ params["W_i"] + params["b_i"])
    assert i_pre.min() > 50 and i_pre.max() < 100 and i_pre.max() > 88.8
    assert i_pre.max() > np.log(np.finfo(np.float32).max)  # e^ĩ itself overflows float32
    y_ref, (c_ref, n_ref, m_ref) = reference(cell, params, x, cell.initial_state((2,), jnp.float64))
    p32 = tree_map(lambda a: a.astype(jnp.float32), params)
    x32 = x.astype(jnp.float32)
    y, (c, n, m) = jax.jit(cell.forward)(p32, x32)
    assert y.dtype == jnp.float32
    assert all(np.all(np.isfinite(np.asarray(a))) for a in (y, c, n, m))
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(m), np.asarray(m_ref), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(c), np.asarray(c_ref), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(n), np.asarray(n_ref), rtol=1e-3, atol=1e-4)
    # The per-token path (step) stays finite and agrees.
    state = cell.initial_state((2,))
    for t in range(5):
        y_t, state = cell.step(p32, state, x32[:, t])
    assert all(np.all(np.isfinite(np.asarray(a))) for a in (y_t,) + state)
    np.testing.assert_allclose(np.asarray(y_t), np.asarray(y_ref[:, 4]), rtol=1e-3, atol=1e-3)


def test_a_shut_input_gate_gives_finite_gradients_in_float32():
    """ĩ ≈ −100: the stabiliser m sinks below −88 and e^{−m} overflows float32; the readout
    never forms it, so outputs and gradients stay finite and match the float64 loop."""
    cell = MLSTM(d_in=4, n_heads=2, d_key=4, d_value=6)
    params, x, _ = _setup(cell, 6, seed=6, input_bias=-100.0)
    h0 = cell.initial_state((2,), jnp.float64)

    def loss(run, params):
        y, (c, n, m) = run(params)
        return jnp.sum(y ** 2) + jnp.sum(m), (y, m)

    x32 = x.astype(jnp.float32)
    p32 = tree_map(lambda a: a.astype(jnp.float32), params)
    (_, (y, m)), grads = jax.jit(jax.value_and_grad(
        lambda p: loss(lambda p: cell.forward(p, x32, chunk_size=4), p), has_aux=True))(p32)
    (_, (y_ref, _)), expected = jax.jit(jax.value_and_grad(
        lambda p: loss(lambda p: reference(cell, p, x, h0), p), has_aux=True))(params)
    assert float(jnp.max(m)) < -88
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-4, atol=1e-4)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    for name in grads:
        np.testing.assert_allclose(np.asarray(grads[name]), np.asarray(expected[name]), rtol=1e-3, atol=1e-3,
                                   err_msg=name)


def test_the_zero_state_has_log_scale_minus_infinity_and_its_representation_does_not_matter():
    cell = MLSTM(d_in=4, n_heads=2)
    params, x, h0 = _setup(cell, 9, seed=4)
    c0, n0, m0 = cell.initial_state((2,), jnp.float64)
    assert np.all(np.isneginf(np.asarray(m0))) and not np.any(c0) and not np.any(n0)
    forward = jax.jit(lambda s, x: cell.forward(params, x, s, chunk_size=4))
    y_fresh, final_fresh = jax.jit(lambda x: cell.forward(params, x, chunk_size=4))(x)
    y, final = forward((c0, n0, m0), x)
    chex.assert_trees_all_close((y, final), (y_fresh, final_fresh), **TOL)
    chex.assert_trees_all_equal(final[2], final_fresh[2])  # the stabiliser m exactly
    # The first stabiliser is exactly ĩ_1.
    i_1 = x[:, 0] @ params["W_i"] + params["b_i"]
    chex.assert_trees_all_equal(cell.step(params, (c0, n0, m0), x[:, 0])[1][2], i_1)
    # The xLSTM code's zero state (m = 0) is the same state: the same outputs.
    y_xlstm, (c, n, m) = forward((c0, n0, jnp.zeros_like(m0)), x)
    chex.assert_trees_all_close(y_xlstm, y, **TOL)
    # Any rescaling (C̃ e^δ, ñ e^δ, m − δ) of a state is the same state: the same outputs and
    # the same true memory e^m C̃.
    delta = jnp.array([[3.0, -2.0], [0.5, 7.0]])
    rescaled = (h0[0] * jnp.exp(delta)[..., None, None], h0[1] * jnp.exp(delta)[..., None], h0[2] - delta)
    (y_a, (c_a, n_a, m_a)), (y_b, (c_b, n_b, m_b)) = forward(h0, x), forward(rescaled, x)
    chex.assert_trees_all_close(y_a, y_b, **TOL)
    chex.assert_trees_all_close(jnp.exp(m_a)[..., None, None] * c_a, jnp.exp(m_b)[..., None, None] * c_b, **TOL)
    chex.assert_trees_all_close(jnp.exp(m_a)[..., None] * n_a, jnp.exp(m_b)[..., None] * n_b, **TOL)


def test_gradients_from_the_zero_state_are_finite_and_match_the_reference():
    cell = MLSTM(d_in=3, n_heads=1, d_key=2, d_value=3)
    params, x, _ = _setup(cell, 6, seed=5)
    h0 = cell.initial_state((2,), jnp.float64)

    def loss(run, params):
        y, (c, n, m) = run(params)
        return jnp.sum(y ** 2) + jnp.sum(c) + jnp.sum(n) + jnp.sum(m)

    grads = jax.jit(jax.grad(lambda p: loss(lambda p: cell.forward(p, x, chunk_size=4), p)))(params)
    expected = jax.jit(jax.grad(lambda p: loss(lambda p: reference(cell, p, x, h0), p)))(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    chex.assert_trees_all_close(grads, expected, rtol=1e-8, atol=1e-10)


def test_init_follows_the_xlstm_code():
    d, h = 256, 4
    cell = MLSTM(d_in=d, n_heads=h)
    assert (cell.key_dim, cell.value_dim) == (64, 64)
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_q": (d, d), "W_k": (d, d), "W_v": (d, d), "W_o": (d, d), "b_o": (d,), "W_i": (d, h), "b_i": (h,),
              "W_f": (d, h), "b_f": (h,), "norm_scale": (d,), "W_out": (d, d), "b_out": (d,)}
    assert {name: p.shape for name, p in params.items()} == shapes
    np.testing.assert_allclose(params["b_f"], [3.0, 4.0, 5.0, 6.0], rtol=1e-6)
    for name in ("W_f", "W_i", "b_o", "b_out"):
        np.testing.assert_array_equal(params[name], 0.0)
    np.testing.assert_array_equal(params["norm_scale"], 1.0)
    for name in ("W_q", "W_k", "W_v", "W_o"):  # small init: N(0, 2/(5 d))
        np.testing.assert_allclose(np.std(np.asarray(params[name], np.float64)), np.sqrt(2 / (5 * d)), rtol=0.02)
    np.testing.assert_allclose(np.std(np.asarray(params["W_out"], np.float64)), 2 / np.sqrt(d), rtol=0.02)
    assert cell.recurrent_params == {"W_i", "b_i", "W_f", "b_f"}
    # The input gate bias ~ N(0, 0.1²), over many heads.
    b_i = np.asarray(MLSTM(d_in=2, n_heads=8192, d_key=8192, d_value=8192).init(jax.random.PRNGKey(1))["b_i"], np.float64)
    np.testing.assert_allclose(b_i.std(), 0.1, rtol=0.05)
    assert abs(b_i.mean()) < 0.005
    assert MLSTM(d_in=4).init(jax.random.PRNGKey(0))["b_f"].tolist() == [3.0]


def test_gates_at_init_forget_slowly_and_write_with_a_positive_weight():
    cell = MLSTM(d_in=8, n_heads=4)
    params = cell.init(jax.random.PRNGKey(0))
    x = 3 * jax.random.normal(jax.random.PRNGKey(1), (2, 20, 8))
    log_f, log_i, update = cell.elements(params, x)
    chex.assert_shape((log_f, log_i), (2, 20, 4))
    chex.assert_shape(update, (2, 20, 4, 2, 3))  # k ⊗ [v, 1]
    f = np.exp(np.asarray(log_f))
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    assert np.all(f >= sigmoid(3.0) - 1e-6) and np.all(f <= sigmoid(6.0) + 1e-6)
    np.testing.assert_allclose(f[0, 0], sigmoid(np.linspace(3, 6, 4)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(log_i), np.broadcast_to(params["b_i"], log_i.shape), rtol=1e-6)
    # The last column of the update is k itself: the normaliser rides along.
    k = np.asarray(x @ params["W_k"]).reshape(2, 20, 4, 2) / np.sqrt(2)
    np.testing.assert_allclose(np.asarray(update[..., -1]), k, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=4, n_heads=0), "n_heads"),
    (dict(d_in=6, n_heads=4), "n_heads"),
    (dict(d_in=4, n_heads=2, d_key=-1), "d_key"),
    (dict(d_in=4, n_heads=2, d_value=0), "d_value"),
    (dict(d_in=4, n_heads=2, d_key=2.0), "d_key"),
    (dict(d_in=4, n_heads=2, d_key=3), "d_key"),  # not a whole number of keys per head
    (dict(d_in=4, n_heads=2, d_value=5), "d_value"),
    (dict(d_in=4, n_heads=True), "n_heads"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        MLSTM(**kwargs)


def test_bad_states_are_refused():
    cell = MLSTM(d_in=4, n_heads=2)
    params = cell.init(jax.random.PRNGKey(0))
    x = jnp.ones((2, 5, 4))
    c, n, m = cell.initial_state((2,))
    with pytest.raises(ValueError, match="state must be a tuple of 3 arrays"):
        cell.forward(params, x, (c, n))
    with pytest.raises(ValueError, match="state must be a tuple of 3 arrays"):
        cell.forward(params, x, c)
    with pytest.raises(ValueError, match=r"state\[2\] must be a real floating array of shape \(2, 2\)"):
        cell.forward(params, x, (c, n, m[:, :1]))
    with pytest.raises(ValueError, match=r"state\[1\] must be"):
        cell.step(params, (c, n[0], m), x[:, 0])

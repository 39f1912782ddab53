"""GateLoop beyond the contract suite: the complex gate, the chunk sizes, strong decays, the
paper's surrogate-attention identity, the init and the hyperparameter checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.gateloop import GateLoop
from tests.cells.references.gateloop import gateloop as reference
from tests.helpers import to64

TOL = dict(rtol=1e-9, atol=1e-9)


def _setup(cell, length, seed=0, *, batch=2):
    """float64 params with every gate projection scaled up (so the gates vary strongly over
    tokens), x (batch, length, d_in) and a random complex state."""
    k_p, k_x, k_h, k_a = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = to64(cell.init(k_p))
    params["W_a"] = 3 * params["W_a"]
    params["W_theta"] = 4 * params["W_theta"]
    params["norm_bias"] = 0.1 * jax.random.normal(k_a, params["norm_bias"].shape, jnp.float64)
    x = jax.random.normal(k_x, (batch, length, cell.d_in), jnp.float64)
    shape = (batch,) + cell.state_shape
    h0 = jax.random.normal(k_h, shape, jnp.float64) * jnp.exp(1j * jax.random.normal(k_a, shape, jnp.float64))
    return params, x, h0


def test_gate_is_sigmoid_magnitude_times_data_controlled_rotation():
    cell = GateLoop(d_in=4, n_heads=2, d_key=6, d_value=4)
    params, x, _ = _setup(cell, 50)
    params["b_a"] = params["b_a"] + jnp.array([-8.0, 0.0, 8.0, -3.0, 3.0, 0.5])
    decay, update = cell.elements(params, x)
    chex.assert_shape(decay, (2, 50, 2, 3))
    chex.assert_shape(update, (2, 50, 2, 3, 2))
    magnitude = np.abs(np.asarray(decay))
    assert np.all(magnitude > 0) and np.all(magnitude < 1)
    logits = np.asarray(x @ params["W_a"] + params["b_a"]).reshape(2, 50, 2, 3)
    np.testing.assert_allclose(magnitude, 1 / (1 + np.exp(-logits)), rtol=1e-12)
    theta = np.asarray(x @ params["W_theta"] + params["b_theta"]).reshape(2, 50, 2, 3)
    np.testing.assert_allclose(np.asarray(decay) / magnitude, np.exp(1j * theta), atol=1e-12)
    # The phase depends on the token: a genuinely data-controlled rotation, not a fixed one.
    assert np.std(np.angle(np.asarray(decay)), axis=1).min() > 0.1
    # The update is the real outer product k vᵀ.
    k = np.asarray(x @ params["W_k"]).reshape(2, 50, 2, 3)
    v = np.asarray(x @ params["W_v"]).reshape(2, 50, 2, 2)
    np.testing.assert_allclose(np.asarray(update), k[..., :, None] * v[..., None, :], rtol=1e-12)


def test_materialised_and_chunked_paths_equal_the_reference_at_odd_lengths():
    cell = GateLoop(d_in=6, n_heads=2, d_key=6, d_value=8, norm_groups=2)
    params, x, h0 = _setup(cell, 37, seed=1)
    y_ref, final_ref = reference(cell, params, x, h0)
    forward = jax.jit(cell.forward, static_argnames=("chunk_size", "method"))
    for chunk_size in (1, 16, 64):
        chex.assert_trees_all_close(forward(params, x, h0, chunk_size=chunk_size), (y_ref, final_ref), **TOL)
    materialised = jax.jit(cell.forward_materialised, static_argnames=("method",))
    chex.assert_trees_all_close(materialised(params, x, h0, method="associative"), (y_ref, final_ref), **TOL)


def _surrogate_attention(cell, params, x):
    """The paper's O(T²) surrogate attention mode from a zero state, per head:
    o_i = Re Σ_{j≤i} (Σ_k q_ik k_jk Π_{j<s≤i} a_sk) v_j, with the products as exp of
    differences of cumulative complex log gates."""
    b, t = x.shape[:2]
    h, kd, vd = cell.n_heads, cell.key_dim, cell.value_dim
    q = (x @ params["W_q"]).reshape(b, t, h, kd)
    k = (x @ params["W_k"]).reshape(b, t, h, kd)
    v = (x @ params["W_v"]).reshape(b, t, h, vd)
    log_a = (jax.nn.log_sigmoid(x @ params["W_a"] + params["b_a"])
             + 1j * (x @ params["W_theta"] + params["b_theta"])).reshape(b, t, h, kd)
    cum = jnp.cumsum(log_a, axis=1)
    relative = jnp.exp(cum[:, :, None] - cum[:, None, :])  # (b, i, j, h, k): Π_{j<s≤i} a_s
    scores = jnp.einsum("bihk,bjhk,bijhk->bhij", q, k, relative)
    scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, 0)
    return jnp.real(jnp.einsum("bhij,bjhv->bihv", scores, v)).reshape(b, t, h * vd)


def test_the_recurrence_equals_the_papers_surrogate_attention_mode():
    cell = GateLoop(d_in=4, n_heads=2, d_key=4, d_value=4)
    params, x, _ = _setup(cell, 11, seed=2)
    o = _surrogate_attention(cell, params, x)
    y = jax.jit(lambda p, x: cell.forward(p, x, chunk_size=4)[0])(params, x)
    chex.assert_trees_all_close(y, cell._output(params, o, x), **TOL)


def test_without_rotation_the_state_stays_real():
    """θ ≡ 0 makes GateLoop a real gated linear attention (a real state from a real one)."""
    cell = GateLoop(d_in=4, n_heads=2)
    params, x, h0 = _setup(cell, 9, seed=3)
    params["W_theta"], params["b_theta"] = jnp.zeros_like(params["W_theta"]), jnp.zeros_like(params["b_theta"])
    _, final = jax.jit(lambda p, x, h: cell.forward(p, x, h, chunk_size=4))(params, x, h0.real.astype(h0.dtype))
    np.testing.assert_array_equal(np.imag(final), 0.0)


def test_strong_decays_stay_finite_in_float32():
    """log|a| ≈ −30 per token: over a chunk of 64 the cumulative log decay is ≈ −1900, which
    overflows any factored form; the outputs stay finite and match the float64 loop."""
    cell = GateLoop(d_in=4, n_heads=2)
    params, x, _ = _setup(cell, 100, seed=4)
    params["b_a"] = params["b_a"] - 30.0
    params["b_theta"] = params["b_theta"] + 50.0  # fast rotation too
    # Jitted, the loop runs as a lax.scan of its step.
    y_ref, final_ref = jax.jit(reference, static_argnums=0)(cell, params, x,
                                                            jnp.zeros((2,) + cell.state_shape, jnp.complex128))
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    y, final = jax.jit(cell.forward)(p32, x.astype(jnp.float32))
    assert y.dtype == jnp.float32 and final.dtype == jnp.complex64
    assert np.all(np.isfinite(np.asarray(y))) and np.all(np.isfinite(np.asarray(final)))
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(final), np.asarray(final_ref), rtol=1e-3, atol=1e-4)


def test_init_follows_nn_linear_and_the_defaults_are_max_headed():
    cell = GateLoop(d_in=128)
    assert (cell.n_heads, cell.key_dim, cell.value_dim, cell.norm_groups) == (128, 1, 1, 1)
    assert cell.state_shape == (128, 1, 1) and cell.d_out == 128 and cell.complex_state
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_q": (128, 128), "W_k": (128, 128), "W_v": (128, 128), "W_a": (128, 128), "b_a": (128,),
              "W_theta": (128, 128), "b_theta": (128,), "W_g": (128, 128), "b_g": (128,),
              "norm_scale": (128,), "norm_bias": (128,), "W_o": (128, 128), "b_o": (128,)}
    assert {name: p.shape for name, p in params.items()} == shapes
    for name, p in params.items():
        if name.startswith(("W_", "b_")):
            w = np.asarray(p, np.float64)
            bound = 1 / np.sqrt(128)
            assert np.all(np.abs(w) <= bound), name
            if name.startswith("W_"):  # U[±1/√fan_in]: variance 1/(3 fan_in)
                np.testing.assert_allclose(w.var() * 3 * 128, 1.0, rtol=0.05, err_msg=name)
    np.testing.assert_array_equal(params["norm_scale"], 1.0)
    np.testing.assert_array_equal(params["norm_bias"], 0.0)
    assert cell.recurrent_params == {"W_a", "b_a", "W_theta", "b_theta"}
    assert cell.initial_state((3,)).dtype == jnp.complex64
    # At init the gate magnitudes spread around ½ (σ of a zero-mean pre-activation).
    decay, _ = cell.elements(params, jax.random.normal(jax.random.PRNGKey(1), (4, 64, 128)))
    assert abs(float(jnp.mean(jnp.abs(decay))) - 0.5) < 0.02


def test_sizes_default_from_the_heads():
    cell = GateLoop(d_in=8, n_heads=2)
    assert (cell.d_key, cell.d_value, cell.key_dim, cell.value_dim) == (8, 8, 4, 4)
    cell = GateLoop(d_in=7, n_heads=2, d_key=6, d_value=10)  # explicit sizes need no divisibility of d_in
    assert cell.state_shape == (2, 3, 5)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_in=4, n_heads=0), "n_heads"),
    (dict(d_in=5, n_heads=2), "n_heads"),
    (dict(d_in=4, n_heads=2, d_key=0), "d_key"),
    (dict(d_in=4, n_heads=2, d_value=2.0), "d_value"),
    (dict(d_in=4, n_heads=2, d_key=3), "d_key"),  # not a whole number of keys per head
    (dict(d_in=4, n_heads=2, d_value=5), "d_value"),
    (dict(d_in=4, n_heads=2, norm_groups=0), "norm_groups"),
    (dict(d_in=6, n_heads=2, norm_groups=4), "norm_groups"),  # 6 channels do not split into 4 groups
    (dict(d_in=4, norm_groups=4), "norm_groups"),  # max-headed with a norm per head: groups of one
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        GateLoop(**kwargs)


def test_bad_state_and_chunk_size_are_refused():
    cell = GateLoop(d_in=4, n_heads=2)
    params = cell.init(jax.random.PRNGKey(0))
    x = jnp.ones((2, 5, 4))
    with pytest.raises(ValueError, match=r"state must be a complex array of shape \(2, 2, 2, 2\)"):
        cell.forward(params, x, jnp.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        cell.forward(params, x, chunk_size=0)
    with pytest.raises(ValueError, match="resets must be a bool array"):
        cell.forward(params, x, resets=jnp.zeros((2, 5)))

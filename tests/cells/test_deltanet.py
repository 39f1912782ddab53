"""DeltaNet beyond the contract suite: β and the eigenvalues of its transitions (negative ones
for eigenvalue_range (−1, 1)), the delta rule as online gradient descent, chunk sizes against
the reference, the O(K·V) step, the init, bad hyperparameters and inputs.

The helpers here (`setup`, `compiled_forward`, `assert_matches_reference`, `builds_key_by_key`)
serve the gated and product tests too."""

import functools

import chex
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.deltanet import DeltaNet
from tests.cells.references.deltanet import deltanet as reference
from tests.helpers import seed_of, to64

T_ODD = 37
CHUNK_SIZES = (1, 16, 64)
TOL = dict(rtol=1e-9, atol=1e-10)


def setup(cell, length, *, batch=2, seed=0, x_scale=1.0):
    """(float64 params, x (batch, length, d_in), random h0) for a cell."""
    key_p, key_x, key_h = jax.random.split(jax.random.PRNGKey(seed_of(repr(cell), seed)), 3)
    params = to64(cell.init(key_p))
    x = x_scale * jax.random.normal(key_x, (batch, length, cell.d_in), jnp.float64)
    h0 = 0.5 * jax.random.normal(key_h, (batch,) + cell.state_shape, jnp.float64)
    return params, x, h0


def compiled_forward(cell, **options):
    """cell.forward under jit with fixed options (chunk_size, method); params, x, state and
    resets stay arguments."""
    return jax.jit(functools.partial(cell.forward, **options))


def assert_matches_reference(cell, reference_fn, *, chunk_sizes=CHUNK_SIZES, length=T_ODD):
    """forward at each chunk size and forward_materialised equal the reference at an odd T."""
    params, x, h0 = setup(cell, length)
    expected = reference_fn(cell, params, x, h0)
    assert float(jnp.max(jnp.abs(expected[0]))) > 1e-2, "outputs too small to compare"
    for chunk_size in chunk_sizes:
        chex.assert_trees_all_close(compiled_forward(cell, chunk_size=chunk_size)(params, x, h0), expected, **TOL)
    chex.assert_trees_all_close(jax.jit(cell.forward_materialised)(params, x, h0), expected, **TOL)


def intermediate_shapes(fn, *args) -> set:
    """The shapes of every value `fn` computes (sub-jaxprs included), from its jaxpr."""
    shapes = set()

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            shapes.update(tuple(v.aval.shape) for v in eqn.outvars)
            for value in eqn.params.values():
                for item in value if isinstance(value, (tuple, list)) else (value,):
                    if isinstance(item, jax.extend.core.ClosedJaxpr):
                        visit(item.jaxpr)
                    elif isinstance(item, jax.extend.core.Jaxpr):
                        visit(item)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return shapes


def builds_key_by_key(fn, *args, k: int) -> bool:
    """Whether `fn` forms any K×K matrix (an array whose last two dims are both K)."""
    return any(len(s) >= 2 and s[-2:] == (k, k) for s in intermediate_shapes(fn, *args))


@pytest.mark.parametrize("eigenvalue_range", [(0, 1), (-1, 1)], ids=["positive", "negative"])
def test_chunk_sizes_and_materialised_match_the_reference(eigenvalue_range):
    cell = DeltaNet(d_in=6, n_heads=2, d_key=6, d_value=8, eigenvalue_range=eigenvalue_range,
                    initializer_range=0.5)
    assert_matches_reference(cell, reference)


@pytest.mark.parametrize("eigenvalue_range, low, high", [((0, 1), 0.0, 1.0), ((-1, 1), 0.0, 2.0)],
                         ids=["positive", "negative"])
def test_beta_range_and_transition_eigenvalues(eigenvalue_range, low, high):
    """β ∈ (0, 1) or (0, 2); the eigenvalues of I − β k kᵀ are 1 (K−1 times) and 1 − β‖k‖²,
    in [0, 1] or (−1, 1] — negative ones occur only for (−1, 1)."""
    cell = DeltaNet(d_in=8, n_heads=2, d_key=8, d_value=8, eigenvalue_range=eigenvalue_range,
                    initializer_range=1.0)
    params, x, _ = setup(cell, 64, batch=4, x_scale=2.0)
    k, _, beta = cell.inputs(params, x)
    assert float(beta.min()) > low and float(beta.max()) < high
    transitions = cell.monoid.expand(cell.elements(params, x))[0]  # (B, T, H, K, K)
    eigenvalues = np.linalg.eigvalsh(np.asarray(transitions))  # symmetric: I − β k kᵀ
    np.testing.assert_allclose(eigenvalues[..., 1:], 1.0, atol=1e-12)  # the K−1 directions ⟂ k
    np.testing.assert_allclose(eigenvalues[..., 0], 1 - beta * jnp.sum(k * k, -1), atol=1e-12)
    assert eigenvalues.min() > -1 and eigenvalues.max() <= 1 + 1e-12
    if eigenvalue_range == (-1, 1):
        assert float(beta.max()) > 1.5, "β must reach above 1 for a negative eigenvalue"
        assert eigenvalues.min() < -0.5
    else:
        assert eigenvalues.min() >= 0


def test_beta_at_its_upper_end_makes_a_householder_reflection():
    """With eigenvalue_range (−1, 1) and β → 2, I − 2 k kᵀ (‖k‖ = 1) reflects: orthogonal,
    determinant −1. The (0, 1) cell at β → 1 projects instead (determinant 0)."""
    for eigenvalue_range, determinant in (((-1, 1), -1.0), ((0, 1), 0.0)):
        cell = DeltaNet(d_in=4, n_heads=2, d_key=6, d_value=4, eigenvalue_range=eigenvalue_range,
                        initializer_range=1.0)
        params, x, _ = setup(cell, 5)
        params["W_beta"] = 1e3 * jnp.sign(x[0, 0])[:, None] * jnp.ones_like(params["W_beta"])  # logits 1e3·Σ|x|
        transitions = cell.monoid.expand(cell.elements(params, x[:1, :1]))[0][0, 0]  # (H, K, K)
        np.testing.assert_allclose(np.linalg.det(transitions), determinant, atol=1e-4)
        if determinant == -1.0:
            np.testing.assert_allclose(transitions @ jnp.swapaxes(transitions, -1, -2),
                                       np.broadcast_to(np.eye(3), transitions.shape), atol=1e-4)


def test_the_delta_rule_is_one_gradient_step():
    """S_t = S_{t−1} − β_t ∇_S ½‖Sᵀk_t − v_t‖² at S_{t−1} (the paper's online regression view)."""
    cell = DeltaNet(d_in=5, n_heads=2, d_key=6, d_value=4, eigenvalue_range=(-1, 1), initializer_range=0.7)
    params, x, h0 = setup(cell, 1)
    k, v, beta = (a[:, 0] for a in cell.inputs(params, x))
    loss = lambda S: 0.5 * jnp.sum((jnp.einsum("bhkv,bhk->bhv", S, k) - v) ** 2)  # noqa: E731
    expected = h0 - beta[..., None, None] * jax.grad(loss)(h0)
    _, state = cell.step(params, h0, x[:, 0])
    chex.assert_trees_all_close(state, expected, rtol=1e-12, atol=1e-13)


def test_step_builds_no_key_by_key_matrix():
    """DeltaNet's step is the monoid's O(K·V) identity-minus-rank-one apply; the per-token
    reference (forward_materialised) expands K×K transitions, which shows the check can fail."""
    cell = DeltaNet(d_in=4, n_heads=2, d_key=6, d_value=8)
    params, x, h0 = setup(cell, 3)
    assert not builds_key_by_key(lambda s, x_t: cell.step(params, s, x_t), h0, x[:, 0], k=3)
    assert builds_key_by_key(lambda s, x: cell.forward_materialised(params, x, s, method="associative"), h0, x, k=3)


def test_packed_sequences_with_resets_inside_chunks():
    cell = DeltaNet(d_in=4, n_heads=2, d_key=4, d_value=4, eigenvalue_range=(-1, 1), initializer_range=0.5)
    params, x, h0 = setup(cell, 11)
    resets = jnp.zeros((2, 11), bool).at[0, 5].set(True).at[1, 2].set(True)
    y, final = compiled_forward(cell, chunk_size=4)(params, x, h0, resets=resets)
    chex.assert_trees_all_close(y[0, :5], reference(cell, params, x[:1, :5], h0[:1])[0][0], **TOL)
    rest = reference(cell, params, x[:1, 5:], jnp.zeros_like(h0[:1]))
    chex.assert_trees_all_close((y[:1, 5:], final[:1]), rest, **TOL)


def test_init_follows_the_papers_code():
    cell = DeltaNet(d_in=64, n_heads=4, output_gate=True)
    assert (cell.d_key, cell.d_value, cell.state_shape, cell.d_out) == (64, 64, (4, 16, 16), 64)
    params = cell.init(jax.random.PRNGKey(0))
    shapes = {"W_q": (64, 64), "W_k": (64, 64), "W_v": (64, 64), "W_beta": (64, 4), "W_g": (64, 64),
              "W_o": (64, 64), "norm_scale": (16,)}
    assert {name: p.shape for name, p in params.items()} == shapes
    weights = np.concatenate([np.ravel(params[name]) for name in shapes if name.startswith("W_")])
    np.testing.assert_allclose(weights.std(), 0.02, rtol=0.03)  # FLA: N(0, 0.02²)
    assert abs(weights.mean()) < 1e-3
    np.testing.assert_array_equal(params["norm_scale"], 1.0)
    assert cell.recurrent_params == frozenset()
    assert "W_g" not in DeltaNet(d_in=4, n_heads=2).init(jax.random.PRNGKey(0))


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0, n_heads=1), "d_in"),
    (dict(d_in=4, n_heads=0), "n_heads"),
    (dict(d_in=4, n_heads=3), "n_heads"),  # the default d_key = d_in
    (dict(d_in=4, n_heads=2, d_value=5), "d_value"),
    (dict(d_in=4, n_heads=2, d_key=-2), "d_key"),
    (dict(d_in=4, n_heads=2, eigenvalue_range=(-0.5, 1)), "eigenvalue_range"),
    (dict(d_in=4, n_heads=2, eigenvalue_range=(0, 2)), "eigenvalue_range"),
    (dict(d_in=4, n_heads=2, eigenvalue_range="negative"), "eigenvalue_range"),
    (dict(d_in=4, n_heads=2, output_gate=1), "output_gate"),
    (dict(d_in=4, n_heads=2, norm_eps=0.0), "norm_eps"),
    (dict(d_in=4, n_heads=2, initializer_range=-0.02), "initializer_range"),
])
def test_invalid_hyperparameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        DeltaNet(**kwargs)


def test_bad_inputs_name_the_argument():
    cell = DeltaNet(d_in=4, n_heads=2)
    params, x, h0 = setup(cell, 5)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        cell.forward(params, x, chunk_size=0)
    with pytest.raises(ValueError, match="resets must be a bool array"):
        cell.forward(params, x, resets=jnp.zeros((2, 4), bool))
    with pytest.raises(ValueError, match=r"state must be a real floating array of shape \(2, 2, 2, 2\)"):
        cell.forward(params, x, h0[..., :1])
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 4\)"):
        cell.step(params, h0, x)

"""S5: HiPPO-N initialisation (checked against an eigendecomposition computed here from the
HiPPO-LegS formula), B̃ = V*B and C̃ = CV with their distributions, Δ range, conjugate
symmetry, clip_eigs, the bidirectional mode's backward scan, and hyperparameter validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.linalg import block_diag

from lrnn.cells.hippo import hippo_legs, hippo_legs_normal_eig
from lrnn.cells.s5 import S5, hippo_n
from tests.cells.references.s5 import s5 as reference
from tests.helpers import to64

RECURRENT = {"Lambda_re", "Lambda_im", "B_re", "B_im", "log_step"}
TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [−2, 2]


def legs_normal_part(n):
    """S = A + p pᵀ from the paper's formulas, entry by entry."""
    A = np.zeros((n, n))
    for i in range(n):
        for k in range(n):
            if i > k:
                A[i, k] = -math.sqrt(2 * i + 1) * math.sqrt(2 * k + 1)
            elif i == k:
                A[i, k] = -(i + 1)
    p = np.sqrt(np.arange(n) + 0.5)
    return A, A + np.outer(p, p)


def hippo_n_blocks(d_state, blocks, conj_sym):
    """(Λ (P_s,), V (d_state, P_s) block-diagonal), the S5 init's eigenbasis over the whole state."""
    lam, v = hippo_n(d_state // blocks, conj_sym)
    return np.tile(lam, blocks), block_diag(*[v] * blocks)


def test_truncated_std_constant():
    np.testing.assert_allclose(stats.truncnorm(-2, 2).std(), TRUNCATED_STD, rtol=1e-12)


@pytest.mark.parametrize("n", [2, 5, 16])
def test_hippo_legs_and_its_normal_eigendecomposition(n):
    A, S = legs_normal_part(n)
    np.testing.assert_allclose(hippo_legs(n), A, rtol=1e-14)
    lam, V = hippo_legs_normal_eig(n)
    np.testing.assert_allclose(V.conj().T @ V, np.eye(n), atol=1e-12)  # unitary
    np.testing.assert_allclose(S @ V, V * lam, atol=1e-10 * n**2)      # S V = V Λ
    np.testing.assert_array_equal(lam.real, -0.5)
    assert np.all(np.diff(lam.imag) > 0)                               # ω ascending
    np.testing.assert_allclose(lam.imag, -lam.imag[::-1], atol=1e-10 * n**2)  # ± pairs


@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("blocks", [1, 4])
def test_lambda_is_the_hippo_normal_spectrum(conj_sym, blocks):
    P = 128
    cell = S5(d_in=2, d_state=P, blocks=blocks, conj_sym=conj_sym)
    params = cell.init(jax.random.PRNGKey(0))
    assert params["Lambda_re"].shape == (cell.state_size,) == ((P // 2,) if conj_sym else (P,))
    np.testing.assert_array_equal(np.asarray(params["Lambda_re"]), -0.5)  # before Δ
    _, S = legs_normal_part(P // blocks)
    eig = np.linalg.eigvals(S)  # general (non-Hermitian) solver, independent of the cell's eigh
    np.testing.assert_allclose(eig.real, -0.5, atol=1e-8)
    omega = np.sort(eig.imag)
    expected = omega[: P // blocks // 2] if conj_sym else omega  # conj_sym keeps ω < 0
    for block in np.asarray(params["Lambda_im"], np.float64).reshape(blocks, -1):
        np.testing.assert_allclose(np.sort(block), expected, rtol=1e-6, atol=1e-5)


def test_conj_sym_keeps_one_of_each_conjugate_pair():
    lam_half, V_half = hippo_n_blocks(16, 2, conj_sym=True)
    lam_full, V_full = hippo_n_blocks(16, 2, conj_sym=False)
    assert np.all(lam_half.imag < 0)
    for b in range(2):
        kept, full = lam_half[b * 4:(b + 1) * 4], lam_full[b * 8:(b + 1) * 8]
        np.testing.assert_allclose(np.sort(np.concatenate([kept, kept.conj()]).imag), np.sort(full.imag), atol=1e-9)
    # the dropped columns are the conjugates of the kept ones (up to phase): together they
    # span the whole space, V_h V_h* + conj(V_h V_h*) = I
    projector = V_half @ V_half.conj().T
    np.testing.assert_allclose(projector + projector.conj(), np.eye(16), atol=1e-12)
    np.testing.assert_allclose(V_full.conj().T @ V_full, np.eye(16), atol=1e-12)
    _, S = legs_normal_part(8)
    np.testing.assert_allclose(block_diag(S, S) @ V_half, V_half * lam_half, atol=1e-10)


@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("blocks", [1, 2])
def test_B_tilde_recovers_a_lecun_normal_B(conj_sym, blocks):
    P, d_in = 512, 128
    cell = S5(d_in=d_in, d_state=P, blocks=blocks, conj_sym=conj_sym)
    params = cell.init(jax.random.PRNGKey(1))
    _, V = hippo_n_blocks(P, blocks, conj_sym)
    B_tilde = np.asarray(params["B_re"], np.float64) + 1j * np.asarray(params["B_im"], np.float64)
    VB = V @ B_tilde
    if conj_sym:
        B = 2 * VB.real  # V_h B̃ + conj(V_h B̃) = B
    else:
        np.testing.assert_allclose(VB.imag, 0.0, atol=1e-5)
        B = VB.real
    assert B.shape == (P, d_in)
    std = 1 / math.sqrt(P)  # lecun_normal, fan_in = P as in the paper's code
    np.testing.assert_allclose(B.std(), std, rtol=0.02)
    assert abs(B.mean()) < 0.02 * std
    assert np.abs(B).max() <= 2 * std / TRUNCATED_STD * (1 + 1e-4)  # truncated at 2σ
    ks = stats.kstest(B.ravel() / (std / TRUNCATED_STD), stats.truncnorm(-2, 2).cdf).statistic
    assert ks < 0.01


@pytest.mark.parametrize("conj_sym", [True, False])
def test_C_tilde_is_C_times_V(conj_sym):
    P, d_in = 512, 128
    cell = S5(d_in=d_in, d_state=P, conj_sym=conj_sym)
    params = cell.init(jax.random.PRNGKey(2))
    std = 1 / math.sqrt(P)  # the paper code's trunc_standard_normal: std 1/√P per part
    C_tilde = np.asarray(params["C_re"], np.float64) + 1j * np.asarray(params["C_im"], np.float64)
    assert C_tilde.shape == (d_in, cell.state_size)
    if not conj_sym:
        _, V = hippo_n_blocks(P, 1, False)
        C = C_tilde @ V.conj().T  # V unitary: C = C̃ V*
        for part in (C.real, C.imag):
            np.testing.assert_allclose(part.std(), std, rtol=0.02)
            assert np.abs(part).max() <= 2 * std / TRUNCATED_STD * (1 + 1e-4)
            assert stats.kstest(part.ravel() / (std / TRUNCATED_STD), stats.truncnorm(-2, 2).cdf).statistic < 0.01
    # C circular with orthonormal columns of V: each part of C̃ keeps variance 1/P
    for part in (C_tilde.real, C_tilde.imag):
        np.testing.assert_allclose(part.std(), std, rtol=0.03)
    np.testing.assert_allclose(np.mean(C_tilde.real * C_tilde.imag), 0.0, atol=0.02 * std**2)


def test_bidirectional_draws_its_own_C2():
    cell = S5(d_in=16, d_state=64, bidirectional=True)
    params = cell.init(jax.random.PRNGKey(3))
    assert set(params) == RECURRENT | {"C_re", "C_im", "C2_re", "C2_im", "D"}
    assert params["C2_re"].shape == params["C_re"].shape == (16, 32)
    assert not np.allclose(params["C2_re"], params["C_re"])
    np.testing.assert_allclose(np.std(params["C2_re"]), np.std(params["C_re"]), rtol=0.1)


def test_log_step_is_log_uniform_per_state():
    dt_min, dt_max = 1e-4, 1e-2
    cell = S5(d_in=1, d_state=40000, blocks=1000, dt_min=dt_min, dt_max=dt_max)
    log_step = np.asarray(cell.init(jax.random.PRNGKey(4))["log_step"], np.float64)
    assert log_step.shape == (20000,)
    lo, hi = math.log(dt_min), math.log(dt_max)
    assert log_step.min() >= lo - 1e-6 and log_step.max() <= hi + 1e-6
    assert stats.kstest(log_step, stats.uniform(lo, hi - lo).cdf).statistic < 0.015


def test_D_is_standard_normal():
    D = np.asarray(S5(d_in=20000, d_state=2).init(jax.random.PRNGKey(5))["D"], np.float64)
    assert abs(D.mean()) < 0.03
    np.testing.assert_allclose(D.std(), 1.0, rtol=0.03)


def test_param_labels():
    cell = S5(d_in=2, d_state=4)
    labels = cell.param_labels(cell.init(jax.random.PRNGKey(0)))
    assert {k for k, v in labels.items() if v == "recurrent"} == RECURRENT
    assert {k for k, v in labels.items() if v == "regular"} == {"C_re", "C_im", "D"}


def test_conj_sym_equals_the_explicit_conjugate_pairs():
    half, full = S5(d_in=3, d_state=8), S5(d_in=3, d_state=8, conj_sym=False)
    p = to64(half.init(jax.random.PRNGKey(6)))
    both = lambda a, sign=1: jnp.concatenate([a, sign * a], axis=0)  # noqa: E731
    both_c = lambda a, sign=1: jnp.concatenate([a, sign * a], axis=-1)  # noqa: E731
    q = {"Lambda_re": both(p["Lambda_re"]), "Lambda_im": both(p["Lambda_im"], -1),
         "log_step": both(p["log_step"]), "B_re": both(p["B_re"]), "B_im": both(p["B_im"], -1),
         "C_re": both_c(p["C_re"]), "C_im": both_c(p["C_im"], -1), "D": p["D"]}
    x = jax.random.normal(jax.random.PRNGKey(7), (2, 9, 3), jnp.float64)
    y_half, y_full = jax.jit(lambda p, q, x: (half.forward(p, x)[0], full.forward(q, x)[0]))(p, q, x)
    np.testing.assert_allclose(y_half, y_full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("discretisation", ["zoh", "bilinear"])
def test_clip_eigs_keeps_growing_modes_stable(discretisation):
    clipped = S5(d_in=2, d_state=6, clip_eigs=True, discretisation=discretisation)
    free = S5(d_in=2, d_state=6, discretisation=discretisation)
    p = to64(clipped.init(jax.random.PRNGKey(8)))
    p["Lambda_re"] = jnp.array([0.3, -1e-6, -0.5])
    p["log_step"] = jnp.log(jnp.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(np.asarray(clipped.eigenvalues(p).real), [-1e-4, -1e-4, -0.5])
    a, _ = clipped.elements(p, jnp.zeros((1, 1, 2)))
    assert np.all(np.abs(np.asarray(a)) < 1)
    a_free, _ = free.elements(p, jnp.zeros((1, 1, 2)))
    assert np.abs(np.asarray(a_free))[0, 0, 0] > 1
    x = jax.random.normal(jax.random.PRNGKey(9), (2, 12, 2), jnp.float64)
    h0 = jnp.zeros((2, 3), jnp.complex128)
    y_ref, final_ref = reference(clipped, p, x, h0)
    methods = ("sequential", "associative")

    @jax.jit  # every forward in one program: one compilation
    def forwards(p, x):
        return [clipped.forward(p, x, method=method) for method in methods], free.forward(p, x)[0]

    clipped_outputs, y_free = forwards(p, x)
    for method, (y, final) in zip(methods, clipped_outputs):
        np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-9, err_msg=method)
        np.testing.assert_allclose(final, final_ref, rtol=1e-9, atol=1e-9, err_msg=method)
    assert not np.allclose(y_free, y)
    grad = jax.jit(jax.grad(lambda lr: jnp.sum(clipped.forward({**p, "Lambda_re": lr}, x)[0])))(p["Lambda_re"])
    np.testing.assert_array_equal(np.asarray(grad)[:2], 0.0)  # clipped entries get no gradient
    assert np.asarray(grad)[2] != 0


@pytest.mark.parametrize("cell", [
    S5(d_in=3, d_state=4, bidirectional=True),
    S5(d_in=2, d_state=6, blocks=3, conj_sym=False, bidirectional=True, discretisation="bilinear"),
])
def test_backward_direction_is_a_forward_scan_of_the_reversed_sequence(cell):
    p = to64(cell.init(jax.random.PRNGKey(10)))
    T = 9
    x = jax.random.normal(jax.random.PRNGKey(11), (2, T, cell.d_in), jnp.float64)
    h0 = jnp.exp(1j * jax.random.normal(jax.random.PRNGKey(12), (2,) + cell.state_shape, jnp.float64))
    zeros = jnp.zeros_like(p["C_re"])
    backward_only = {**p, "C_re": zeros, "C_im": zeros, "D": jnp.zeros_like(p["D"])}
    forward_cell = S5(**{**{f: getattr(cell, f) for f in cell.__dataclass_fields__}, "bidirectional": False})
    reversed_params = {k: v for k, v in backward_only.items() if not k.startswith("C")}
    reversed_params.update(C_re=p["C2_re"], C_im=p["C2_im"])
    methods = ("sequential", "associative", "chunked")

    @jax.jit  # every forward in one program: one compilation
    def forwards(p, backward_only, reversed_params, x, h0):
        expected, _ = forward_cell.forward(reversed_params, x[:, ::-1])
        backward = [cell.forward(backward_only, x, h0, method=method, chunk_size=4) for method in methods]
        forward_only = {k: v for k, v in p.items() if not k.startswith("C2")}  # the causal cell's params
        return expected, backward, cell.forward(p, x, h0)[0], forward_cell.forward(forward_only, x, h0)

    expected, backward, y_full, (y_fwd, final_fwd) = forwards(p, backward_only, reversed_params, x, h0)
    y_ref, _ = reference(cell, backward_only, x, h0)
    for method, (y, final) in zip(methods, backward):
        # h0 reaches only the forward part
        np.testing.assert_allclose(y, expected[:, ::-1], rtol=1e-9, atol=1e-9, err_msg=method)
        np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-9, err_msg=method)
        # the final state is the forward direction's
        np.testing.assert_allclose(final, final_fwd, rtol=1e-9, atol=1e-9, err_msg=method)
    # and the full output is the sum of both directions
    np.testing.assert_allclose(y_full, y_fwd + expected[:, ::-1], rtol=1e-9, atol=1e-9)


def test_bidirectional_step_refuses():
    cell = S5(d_in=2, d_state=4, bidirectional=True)
    params = cell.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="bidirectional S5 is not causal"):
        cell.step(params, cell.initial_state((1,)), jnp.zeros((1, 2)))


def test_bidirectional_resets_end_the_backward_scan_at_each_sequence():
    cell = S5(d_in=2, d_state=4, bidirectional=True)
    p = to64(cell.init(jax.random.PRNGKey(13)))
    x = jax.random.normal(jax.random.PRNGKey(14), (1, 10, 2), jnp.float64)
    resets = jnp.zeros((1, 10), bool).at[0, 4].set(True).at[0, 7].set(True)

    @jax.jit  # the packed call and the pieces in one program: one compilation
    def packed_and_pieces(p, x, resets):
        pieces = [cell.forward(p, x[:, a:b])[0] for a, b in ((0, 4), (4, 7), (7, 10))]
        return cell.forward(p, x, resets=resets)[0], jnp.concatenate(pieces, axis=1)

    y, pieces = packed_and_pieces(p, x, resets)
    np.testing.assert_allclose(y, pieces, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_in=0), "d_in"),
    (dict(d_state=0), "d_state"),
    (dict(d_state=2.5), "d_state"),
    (dict(blocks=0), "blocks"),
    (dict(d_state=8, blocks=3), "divisible by blocks"),
    (dict(d_state=6, blocks=2), "block size"),
    (dict(d_state=5), "even"),
    (dict(discretisation="euler"), "discretisation"),
    (dict(conj_sym=None), "conj_sym"),
    (dict(clip_eigs="yes"), "clip_eigs"),
    (dict(bidirectional=2), "bidirectional"),
    (dict(dt_min=0.0), "dt_min"),
    (dict(dt_max=-1.0), "dt_max"),
    (dict(dt_min=0.1, dt_max=0.01), "dt_min"),
])
def test_invalid_hyperparameters_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        S5(**{"d_in": 2, "d_state": 4, **kwargs})


def test_odd_blocks_are_fine_without_conj_sym():
    cell = S5(d_in=2, d_state=6, blocks=2, conj_sym=False)
    assert cell.state_shape == (6,)
    np.testing.assert_allclose(np.asarray(cell.init(jax.random.PRNGKey(0))["Lambda_im"][:3]),
                               np.sort(np.linalg.eigvals(legs_normal_part(3)[1]).imag), rtol=1e-6, atol=1e-6)

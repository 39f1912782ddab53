"""The delta-rule family, one token (and one Householder-like factor) at a time, per head h:

    q = K^−½ l2(SiLU(x W_q)),  k_j = l2(SiLU(x W_k)_j),  v_j = SiLU(x W_v)_j,  β_j = σ(x W_beta)_j (×2 for (−1, 1))
    α = exp(−exp(A_log) softplus(x W_a + dt_bias))                      (gated cells; α = 1 otherwise)
    S ← α S,  then for j = 1..n_h:  S ← (I − β_j k_j k_jᵀ) S + β_j k_j v_jᵀ   (dense K×K factors)
    y = W_o [RMSNorm(Sᵀq) · norm_scale (· SiLU(x W_g))]

DeltaNet is n_h = 1 without α, Gated DeltaNet n_h = 1 with α, DeltaProduct any n_h.
"""

import jax
import jax.numpy as jnp

from lrnn.cells.deltanet import DeltaNet
from lrnn.cells.deltaproduct import DeltaProduct
from lrnn.cells.gated_deltanet import GatedDeltaNet
from tests.cells.references import Case, over_time


def _l2(z):
    return z / jnp.sqrt(jnp.sum(z * z, axis=-1, keepdims=True) + 1e-6)


def _rms_norm(z, eps):
    return z / jnp.sqrt(jnp.mean(z * z, axis=-1, keepdims=True) + eps)


def delta_family(cell, p, x, h0, *, n_h=1, gated=False):
    """(y, final S) for x (B, T, d_in), S (B, H, K, V)."""
    b = x.shape[0]
    h, dk, dv = h0.shape[1:]
    negative = tuple(cell.eigenvalue_range) == (-1.0, 1.0)
    eye = jnp.eye(dk)

    def step(S, x_t):
        q = _l2(jax.nn.silu(x_t @ p["W_q"]).reshape(b, h, dk)) / jnp.sqrt(dk)
        k = _l2(jax.nn.silu(x_t @ p["W_k"]).reshape(b, n_h, h, dk))
        v = jax.nn.silu(x_t @ p["W_v"]).reshape(b, n_h, h, dv)
        beta = jax.nn.sigmoid(x_t @ p["W_beta"]).reshape(b, n_h, h)
        if negative:
            beta = 2 * beta
        if gated:
            alpha = jnp.exp(-jnp.exp(p["A_log"]) * jax.nn.softplus(x_t @ p["W_a"] + p["dt_bias"]))
            S = alpha[:, :, None, None] * S
        for j in range(n_h):
            kj, vj, bj = k[:, j], v[:, j], beta[:, j, :, None, None]
            factor = eye - bj * jnp.einsum("bhi,bhk->bhik", kj, kj)
            S = jnp.einsum("bhik,bhkv->bhiv", factor, S) + bj * jnp.einsum("bhk,bhv->bhkv", kj, vj)
        o = jnp.einsum("bhkv,bhk->bhv", S, q)
        z = _rms_norm(o, cell.norm_eps) * p["norm_scale"]
        if cell.output_gate:
            z = z * jax.nn.silu(x_t @ p["W_g"]).reshape(b, h, dv)
        return z.reshape(b, h * dv) @ p["W_o"], S

    return over_time(step, h0, x, p)


def deltanet(cell, p, x, h0):
    return delta_family(cell, p, x, h0)


def gated_deltanet(cell, p, x, h0):
    return delta_family(cell, p, x, h0, gated=True)


def deltaproduct(cell, p, x, h0):
    return delta_family(cell, p, x, h0, n_h=cell.n_h, gated=cell.forget_gate)


# initializer_range 0.5 (not 0.02) keeps q, k, β and y of order one, so the comparisons see them.
CASES = {
    "deltanet-negative-gate": Case(DeltaNet(d_in=5, n_heads=2, eigenvalue_range=(-1, 1), output_gate=True,
                                            d_key=4, d_value=6, initializer_range=0.5), deltanet),
    "gated_deltanet-negative-no-gate": Case(GatedDeltaNet(d_in=3, n_heads=2, d_key=4, d_value=6,
                                                          eigenvalue_range=(-1, 1), output_gate=False,
                                                          initializer_range=0.5), gated_deltanet),
    "deltaproduct-gated-negative": Case(DeltaProduct(d_in=3, n_heads=2, n_h=3, d_key=4, d_value=6,
                                                     forget_gate=True, eigenvalue_range=(-1, 1),
                                                     output_gate=False, initializer_range=0.5), deltaproduct),
}

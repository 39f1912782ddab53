"""RWKV-6's `forward(..., method="pallas")`: the strictly causal attention S_{t−1}ᵀ r_t runs
through the decay-attention kernel on the keys, values and decays shifted one token later
(lrnn/cells/rwkv6.py), so the kernel's contract (inclusive, float32, no resets, no
sequence_axis) fits as it is. Checked against the float64 loop in float32, outputs and the
gradients of params, inputs and both parts of the state, at T = 20 with C = 16 (a whole chunk
and a tail), with every parameter drawn at random; and what the kernel refuses, named.

Tolerance as tests/pallas_kernels/test_registration.py's cells: rtol = atol = 2e-4 (float32
chunk matmuls, the projections, the GroupNorm).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest

from lrnn.cells.rwkv6 import RWKV6
from tests.cells.references.rwkv6 import rwkv6 as reference
from tests.helpers import seed_of, to64

CELL = RWKV6(d_in=6, n_heads=2, d_key=4, d_value=6, mix_rank=3, decay_rank=2)
T, CHUNK, B = 20, 16, 2
TOL = dict(rtol=2e-4, atol=2e-4)


def _problem():
    keys = jax.random.split(jax.random.PRNGKey(seed_of("pallas-rwkv6")), 6)
    params = to64(CELL.init(keys[0]))
    names = sorted(params)
    params = {n: params[n] + 0.5 * jax.random.normal(k, params[n].shape, jnp.float64)
              for n, k in zip(names, jax.random.split(keys[1], len(names)))}
    x = jax.random.normal(keys[2], (B, T, CELL.d_in), jnp.float64)
    s0, x0 = CELL.initial_state((B,), jnp.float64)
    h0 = (0.5 * jax.random.normal(keys[3], s0.shape, jnp.float64), jax.random.normal(keys[4], x0.shape, jnp.float64))
    weights = jax.random.normal(keys[5], (B, T, CELL.d_in), jnp.float64)
    return params, x, h0, weights


def _with_gradients(forward, weights):
    def loss(p, x, h):
        y, (s, x_last) = forward(p, x, h)
        return jnp.sum(y * weights) + jnp.sum(jnp.sin(s)) + jnp.sum(x_last)
    return lambda p, x, h: (forward(p, x, h), jax.grad(loss, argnums=(0, 1, 2))(p, x, h))


def test_forward_and_gradients_through_the_kernel():
    params, x, h0, weights = _problem()
    to32 = lambda tree: jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), tree)  # noqa: E731
    kernel = _with_gradients(lambda p, x, h: CELL.forward(p, x, h, method="pallas", chunk_size=CHUNK), to32(weights))
    got = jax.jit(kernel)(*to32((params, x, h0)))
    expected = jax.jit(_with_gradients(lambda p, x, h: reference(CELL, p, x, h), weights))(params, x, h0)
    chex.assert_trees_all_equal_shapes(got, expected)
    chex.assert_trees_all_close(to64(got), expected, **TOL)


def test_what_the_kernel_does_not_take_is_refused_by_name():
    params, x, h0, _ = _problem()
    narrow = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), (params, x, h0))
    resets = jnp.zeros((B, T), bool).at[:, 5].set(True)
    with pytest.raises(ValueError, match="method='pallas': the decay_attention kernel does not take resets"):
        CELL.forward(*narrow, method="pallas", resets=resets)
    with pytest.raises(ValueError, match="the decay_attention kernel does not take float64 inputs"):
        CELL.forward(params, x, h0, method="pallas")

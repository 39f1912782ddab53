"""ShortConv against a direct numpy convolution, y_t = b + Σ_j w_j x_{t−(k−1)+j} (zeros
before the start): the parallel pass, the step loop and a prefill continued from its cache."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrnn.nn import ShortConv
from tests.helpers import seed_of

B, T, D = 2, 7, 3
TOL = dict(rtol=1e-12, atol=1e-12)


def numpy_causal_conv(x, kernel, bias):
    """The definition, one output at a time, in float64."""
    x, kernel, bias = (np.asarray(a, np.float64) for a in (x, kernel, bias))
    k = kernel.shape[0]
    y = np.zeros_like(x)
    for t in range(x.shape[1]):
        y[:, t] = bias
        for j in range(k):
            s = t - (k - 1) + j
            if s >= 0:
                y[:, t] += kernel[j] * x[:, s]
    return y


@pytest.mark.parametrize("kernel_size", [1, 4])
def test_parallel_step_and_prefill_match_numpy(kernel_size):
    conv = ShortConv(D, kernel_size, param_dtype=jnp.float64, rngs=nnx.Rngs(seed_of("conv", kernel_size)))
    x = jax.random.normal(jax.random.key(seed_of("x", kernel_size)), (B, T, D), jnp.float64)
    expected = numpy_causal_conv(x, conv.kernel[...], conv.bias[...])

    chex.assert_trees_all_close(conv(x), expected, **TOL)

    cache, ys = conv.init_cache(B, jnp.float64), []
    chex.assert_shape(cache, (B, kernel_size - 1, D))
    for t in range(T):
        y_t, cache = conv.step(x[:, t], cache)
        ys.append(y_t)
    chex.assert_trees_all_close(jnp.stack(ys, axis=1), expected, **TOL)
    chex.assert_trees_all_close(cache, x[:, T - (kernel_size - 1):], **TOL)  # the last k − 1 inputs

    head, head_cache = conv.prefill(x[:, :2])
    tail, tail_cache = conv.prefill(x[:, 2:], head_cache)
    chex.assert_trees_all_close(jnp.concatenate([head, tail], axis=1), expected, **TOL)
    chex.assert_trees_all_close(tail_cache, cache, **TOL)


def test_bad_sizes_and_caches_raise():
    with pytest.raises(ValueError, match="kernel_size"):
        ShortConv(D, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="features"):
        ShortConv(-1, 3, rngs=nnx.Rngs(0))
    conv = ShortConv(D, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="cache must be"):
        conv.step(jnp.zeros((B, D)), jnp.zeros((B, 3, D)))

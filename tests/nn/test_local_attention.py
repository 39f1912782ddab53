"""LocalAttention (Griffin's local multi-query attention, De et al. 2024): the parallel path
against an independent float64 reference (a loop over queries and heads, RoPE written with
complex numbers, reading the projections by name), over sequences longer than the window (the
blocked path, with padding) and shorter; the step-wise path (a ring buffer of `window` entries
that wraps) and prefill continued by steps or by a second prefill equal the parallel path; a
window ≥ T is full causal attention; Block with attention has the same paths; bad input fails
clearly.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrnn.nn import Block, LocalAttention
from tests.helpers import seed_of
from tests.nn.test_mixer_block import all_paths, step_through

B, T, D, H = 2, 11, 8, 2
TOL = dict(rtol=1e-9, atol=1e-9)


def attention(window, rope_fraction=0.5):
    """The module at `window` (the params do not depend on it: the same for every window)."""
    return LocalAttention(D, H, window, rope_fraction=rope_fraction, param_dtype=jnp.float64,
                          rngs=nnx.Rngs(seed_of("attention")))


def inputs(*key, length=T):
    return jax.random.normal(jax.random.key(seed_of(*key)), (B, length, D), jnp.float64)


def reference(module, x, window=None, start=0):
    """Windowed multi-query attention, one query and head at a time (window None: full causal)."""
    x = np.asarray(x)
    w_q, w_k, w_v, w_o = (np.asarray(p.kernel[...]) for p in (module.q_proj, module.k_proj, module.v_proj,
                                                               module.out_proj))
    heads, width = module.n_heads, D // module.n_heads
    rotated = module.rotated
    angles = module.rope_base ** (-np.arange(rotated // 2) * 2.0 / max(rotated, 1))

    def rope(vector, position):  # pairs (i, i + R/2) as complex numbers, turned by position · θ_i
        z = (vector[:rotated // 2] + 1j * vector[rotated // 2:rotated]) * np.exp(1j * position * angles)
        return np.concatenate([z.real, z.imag, vector[rotated:]])

    length = x.shape[1]
    out = np.zeros_like(x)
    for b in range(x.shape[0]):
        keys = [rope(x[b, s] @ w_k, start + s) for s in range(length)]
        values = [x[b, s] @ w_v for s in range(length)]
        for t in range(length):
            seen = [s for s in range(t + 1) if window is None or t - s < window]
            heads_out = []
            for h in range(heads):
                q = rope(x[b, t] @ w_q[:, h * width:(h + 1) * width], start + t)
                scores = np.array([q @ keys[s] for s in seen]) / np.sqrt(width)
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                heads_out.append(sum(w * values[s] for w, s in zip(weights, seen)))
            out[b, t] = np.concatenate(heads_out) @ w_o
    return out


@pytest.mark.parametrize("window, rope_fraction, length", [(4, 0.5, T), (3, 1.0, 9), (1, 0.5, 5), (16, 0.0, T)],
                         ids=["blocks-padded", "full-rope-blocks-exact", "window-1", "window>T-no-rope"])
def test_parallel_path_is_windowed_multi_query_attention(window, rope_fraction, length):
    module = attention(window, rope_fraction)
    x = inputs("x", window, length=length)

    y, grads = nnx.jit(lambda m, x: (m(x), nnx.grad(lambda m: jnp.sum(jnp.sin(m(x))))(m)))(module, x)
    chex.assert_shape(y, (B, length, D))
    chex.assert_trees_all_close(y, reference(module, x, window), **TOL)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))  # the masked scores pass no NaN


def test_window_at_least_the_length_is_full_causal_attention():
    x = inputs("full")
    full = reference(attention(T), x, window=None)
    for window in (T, 3 * T):
        chex.assert_trees_all_close(attention(window)(x), full, **TOL)


def final_cache(module, x, cache):
    """The cache after module.step over every token of x (B, T', D) from `cache`."""
    return jax.lax.fori_loop(0, x.shape[1], lambda t, cache: module.step(x[:, t], cache)[1], cache)


def wrapped_paths(module, x):
    """Outputs from a prefill of 6 tokens (past a window of 4: the ring has wrapped) continued by a
    second prefill and by steps, and the caches after stepping and after prefilling everything."""
    head, cache = module.prefill(x[:, :6])
    tail, _ = module.prefill(x[:, 6:], cache)
    stepped = jnp.concatenate([head, step_through(module, x[:, 6:], cache)], axis=1)
    return (jnp.concatenate([head, tail], axis=1), stepped,
            final_cache(module, x, module.init_cache(x.shape[0])), module.prefill(x)[1])


@pytest.mark.parametrize("window", [4, 16])
def test_step_and_prefill_match_parallel_and_the_cache_stays_window_sized(window):
    module = attention(window)
    x = inputs("paths", window)
    parallel, *others = nnx.jit(all_paths)(module, x)  # prompt 3, then steps or a second prefill
    for other in others:
        chex.assert_trees_all_close(other, parallel, **TOL)
    chex.assert_trees_all_close(parallel, reference(module, x, window), **TOL)
    prefilled_twice, stepped, stepped_cache, prefilled_cache = nnx.jit(wrapped_paths)(module, x)
    chex.assert_trees_all_close(prefilled_twice, parallel, **TOL)
    chex.assert_trees_all_close(stepped, parallel, **TOL)
    # the prefill's cache is the steps' cache: the same ring buffer of `window` entries however long
    chex.assert_shape([stepped_cache["keys"], stepped_cache["values"]], (B, window, D // H))
    assert int(stepped_cache["position"]) == T
    chex.assert_trees_all_close(prefilled_cache, stepped_cache, **TOL)


def test_block_with_attention_has_the_same_paths():
    block = Block(D, attention={"n_heads": H, "window": 3}, ffn="geglu", ffn_ratio=3.0, param_dtype=jnp.float64,
                  rngs=nnx.Rngs(seed_of("attention block")))
    assert isinstance(block.mixer, LocalAttention) and block.causal
    parallel, *others = nnx.jit(all_paths)(block, inputs("block"))
    for other in others:
        chex.assert_trees_all_close(other, parallel, **TOL)


def test_dropout_only_in_training():
    module = LocalAttention(D, H, 4, dropout=0.5, param_dtype=jnp.float64, rngs=nnx.Rngs(1))
    x = inputs("dropout")
    module.eval()
    clean, prefilled = nnx.jit(lambda m, x: (m(x), m.prefill(x)[0]))(module, x)
    chex.assert_trees_all_close(prefilled, clean, **TOL)
    module.train()
    dropped = np.asarray(nnx.jit(lambda m, x: m(x))(module, x))
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2.0 * np.asarray(clean)[kept], rtol=1e-12)


@pytest.mark.parametrize("make, match", [
    (lambda: LocalAttention(D, 3, 4, rngs=nnx.Rngs(0)), "n_heads must divide d_model"),
    (lambda: LocalAttention(D, 0, 4, rngs=nnx.Rngs(0)), "n_heads"),
    (lambda: LocalAttention(D, H, 0, rngs=nnx.Rngs(0)), "window"),
    (lambda: LocalAttention(D, H, 4, rope_fraction=1.5, rngs=nnx.Rngs(0)), "rope_fraction"),
    (lambda: LocalAttention(D, H, 4, rope_base=1.0, rngs=nnx.Rngs(0)), "rope_base"),
    (lambda: LocalAttention(D, H, 4, dropout=1.0, rngs=nnx.Rngs(0)), "dropout"),
    (lambda: Block(D, "lru", attention={"n_heads": H, "window": 4}, rngs=nnx.Rngs(0)), "not both"),
    (lambda: Block(D, attention={"n_heads": H}, rngs=nnx.Rngs(0)), "window"),
    (lambda: Block(D, attention={"n_heads": H, "window": 4, "heads": 2}, rngs=nnx.Rngs(0)), "attention must be"),
])
def test_bad_hyperparameters_raise_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_and_caches_are_named():
    module = attention(4)
    x = inputs("bad")
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 8\)"):
        module(x[..., :5])
    with pytest.raises(ValueError, match="mask"):
        module(x, mask=jnp.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match="x_t"):
        module.step(x, module.init_cache(B))
    cache = module.init_cache(B)
    with pytest.raises(ValueError, match="cache must be the dict"):
        module.step(x[:, 0], {"keys": cache["keys"]})
    with pytest.raises(ValueError, match=r"cache\['keys'\] must be .*\(2, 4, 4\)"):
        module.step(x[:, 0], {**cache, "keys": cache["keys"][:, :3]})
    with pytest.raises(ValueError, match=r"cache\['position'\] must be an integer scalar"):
        module.prefill(x, {**cache, "position": jnp.zeros(B, jnp.int32)})
    with pytest.raises(ValueError, match="batch"):
        module.init_cache(0)

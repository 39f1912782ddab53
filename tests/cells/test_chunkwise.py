"""The chunkwise ops against per-token float64 loops of their recurrences.

Each op is checked at an odd length (37: two full chunks of 16 and a tail; shorter than a
chunk of 64), chunk sizes {1, 3, 16, 64} (every engine method across chunks at 16), with an
initial state and with resets, and its gradients (including the initial state's) against the loop's.

Thresholds, per dtype: float64 against float64 loops 1e-9 (reassociated sums only);
float32 against the float64 loop 2e-4 of the output's scale (a float32 matmul of 64 terms
and a triangular solve; the measured error is ~1e-6).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrnn.cells.chunkwise import decay_attention, delta_rule, stabilised_attention
from tests.chunkwise_loops import decay_loop, delta_loop, stabilised_loop
from tests.helpers import seed_of

B, H, T, K, V = 2, 2, 37, 4, 3
CHUNKS = (1, 3, 16, 64)
METHODS = ("sequential", "associative", "chunked")
TOL64 = dict(rtol=1e-9, atol=1e-9)
FLOAT32_SCALE_TOL = 2e-4


def inputs(name):
    rng = np.random.default_rng(seed_of(name))
    normal = lambda *shape: jnp.asarray(rng.normal(size=shape))  # noqa: E731
    k = normal(B, H, T, K)
    return dict(
        q=normal(B, H, T, K), k=k, k_unit=k / jnp.linalg.norm(k, axis=-1, keepdims=True), v=normal(B, H, T, V),
        log_decay_keys=-jnp.abs(normal(B, H, T, K)), log_decay=-jnp.abs(normal(B, H, T)),
        beta=2 * jax.nn.sigmoid(normal(B, H, T)), log_input=5 * normal(B, H, T),
        state=normal(B, H, K, V), m0=normal(B, H), resets=jnp.asarray(rng.uniform(size=(B, T)) < 0.15),
        rotation=normal(B, H, T, K),
    )


def ops(x):
    """name -> (chunked op(chunk_size, method, resets, state), loop(resets, state), initial)."""
    return {
        "decay": (lambda c, m, r, s: decay_attention(x["q"], x["k"], x["v"], x["log_decay_keys"], s,
                                                      chunk_size=c, method=m, resets=r),
                  lambda r, s: decay_loop(x["q"], x["k"], x["v"], x["log_decay_keys"], s, r), x["state"]),
        "decay_complex": (
            lambda c, m, r, s: decay_attention(x["q"], x["k"], x["v"], x["log_decay_keys"] + 1j * x["rotation"], s,
                                               chunk_size=c, method=m, resets=r),
            lambda r, s: decay_loop(x["q"], x["k"], x["v"], x["log_decay_keys"] + 1j * x["rotation"], s, r),
            x["state"].astype(jnp.complex128)),
        "delta": (lambda c, m, r, s: delta_rule(x["q"], x["k_unit"], x["v"], x["beta"], s,
                                                chunk_size=c, method=m, resets=r),
                  lambda r, s: delta_loop(x["q"], x["k_unit"], x["v"], x["beta"], s, resets=r), x["state"]),
        "gated_delta": (lambda c, m, r, s: delta_rule(x["q"], x["k_unit"], x["v"], x["beta"], s,
                                                      log_decay=x["log_decay"], chunk_size=c, method=m, resets=r),
                        lambda r, s: delta_loop(x["q"], x["k_unit"], x["v"], x["beta"], s, x["log_decay"], r),
                        x["state"]),
        "stabilised": (
            lambda c, m, r, s: stabilised_attention(x["q"], x["k"], x["v"], x["log_decay"], x["log_input"], s,
                                                    chunk_size=c, method=m, resets=r),
            lambda r, s: stabilised_loop(x["q"], x["k"], x["v"], x["log_decay"], x["log_input"], s, r),
            (x["m0"], x["state"])),
    }


OPS = ("decay", "decay_complex", "delta", "gated_delta", "stabilised")


# Every engine method across chunks at C = 16 (two full chunks and a tail); the default at
# the other sizes (every token a chunk; a chunk that is not a power of two; one chunk > T).
CHUNK_METHODS = [(chunk, method) for chunk in CHUNKS for method in (METHODS if chunk == 16 else ("auto",))]


@functools.cache
def loop_outputs(op):
    """The loop's outputs on `inputs(op)`, without and with resets: the same for every chunk
    size and method, so computed once per op."""
    x = inputs(op)
    _, loop, state = ops(x)[op]
    return jax.jit(lambda resets, state: (loop(None, state), loop(resets, state)))(x["resets"], state)


@pytest.mark.parametrize("chunk, method", CHUNK_METHODS)
@pytest.mark.parametrize("op", OPS)
def test_chunked_matches_the_loop(op, chunk, method):
    x = inputs(op)
    chunked, _, state = ops(x)[op]
    # Without and with resets in one program: one compilation.
    run = jax.jit(lambda resets, s: (chunked(chunk, method, None, s), chunked(chunk, method, resets, s)))
    for name, got, expected in zip(("no resets", "resets"), run(x["resets"], state), loop_outputs(op)):
        chex.assert_trees_all_close(got, expected, **TOL64, custom_message=name)


def test_stabilised_from_an_empty_state():
    x = inputs("stabilised-empty")
    chunked, loop, (_, c0) = ops(x)["stabilised"]
    empty = (jnp.full((B, H), -jnp.inf), jnp.zeros_like(c0))
    outputs = jax.jit(lambda s: chunked(16, "auto", None, s))(empty)
    chex.assert_tree_all_finite(outputs)
    chex.assert_trees_all_close(outputs, loop(None, empty), **TOL64)


@pytest.mark.parametrize("op", OPS)
def test_gradients_match_the_loop(op):
    x = inputs(op + "-grad")
    _, _, state = ops(x)[op]
    weights = jax.random.normal(jax.random.PRNGKey(seed_of(op)), (B, H, T, V))

    def loss(outputs):
        o, final = outputs
        o = o[0] if isinstance(o, tuple) else o
        return jnp.sum(jnp.real(o * weights)) + sum(jnp.sum(jnp.real(f)) for f in jax.tree_util.tree_leaves(final))

    def chunked(y, resets, s):
        return ops(y)[op][0](16, "auto", resets, s)

    def loop(y, resets, s):
        return ops(y)[op][1](resets, s)

    def gradients(run, resets, state, v):
        """With respect to the initial state, without and with resets; and with respect to the
        inputs, through the op's own closure: perturb v. All in one program (one compilation)."""
        by_state = [jax.grad(lambda s: loss(run(x, r, s)))(state) for r in (None, resets)]
        by_v = jax.grad(lambda v: loss(run(dict(x, v=v), None, state)))(v)
        return by_state, by_v

    got = jax.jit(functools.partial(gradients, chunked))(x["resets"], state, x["v"])
    expected = jax.jit(functools.partial(gradients, loop))(x["resets"], state, x["v"])
    chex.assert_trees_all_close(got, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("op", ("decay", "delta", "stabilised"))
def test_float32_within_the_written_threshold(op):
    x = inputs(op + "-f32")
    chunked, loop, state = ops(x)[op]
    expected = loop(None, state)
    narrow = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), dict(x))
    chunked32, _, state32 = ops(narrow)[op]
    got = jax.jit(lambda s: chunked32(64, "auto", None, s))(state32)
    for g, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
        assert g.dtype == jnp.float32
        scale = float(jnp.max(jnp.abs(e)))
        np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(e), atol=FLOAT32_SCALE_TOL * scale)


def test_strong_decay_is_safe_in_float32():
    """log α = −20 per step and key: the halving form never forms e^{+Σ log α}."""
    x = inputs("strong")
    strong = jnp.full((B, H, T, K), -20.0).at[..., 0].set(-1e-3)  # one slow key beside fast ones
    expected = decay_loop(x["q"], x["k"], x["v"], strong, x["state"])
    narrow = [a.astype(jnp.float32) for a in (x["q"], x["k"], x["v"], strong, x["state"])]
    run = jax.jit(lambda *a: decay_attention(*a, chunk_size=64))
    got = run(*narrow)
    chex.assert_tree_all_finite(got)
    scale = float(jnp.max(jnp.abs(expected[0])))
    np.testing.assert_allclose(np.asarray(got[0], np.float64), np.asarray(expected[0]), atol=FLOAT32_SCALE_TOL * scale)
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(decay_attention(*a, chunk_size=64)[0]), argnums=(0, 1, 2, 3, 4)))(
        *narrow)
    chex.assert_tree_all_finite(grads)


BAD = [
    ("k-width", dict(k=jnp.zeros((B, H, T, K + 1))), r"k must have shape \(B, H, T, K\) like q"),
    ("v-length", dict(v=jnp.zeros((B, H, T + 1, V))), r"v must have shape \(B, H, T, V\) with q's B, H, T"),
    ("q-rank", dict(q=jnp.zeros((B, T, K))), r"q must have shape \(B, H, T, K\)"),
    ("state", dict(initial=jnp.zeros((B, H, V, K))), r"initial must have shape \(B, H, K, V\)"),
    ("chunk-zero", dict(chunk_size=0), r"chunk_size must be a positive int, got 0"),
    ("chunk-float", dict(chunk_size=16.0), r"chunk_size must be a positive int, got 16.0"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_inputs_name_the_argument(case):
    _, change, message = case
    base = dict(q=jnp.zeros((B, H, T, K)), k=jnp.zeros((B, H, T, K)), v=jnp.zeros((B, H, T, V)),
                initial=jnp.zeros((B, H, K, V)), chunk_size=16)
    args = dict(base, **change)
    with pytest.raises(ValueError, match=message):
        decay_attention(log_decay=jnp.zeros(args["q"].shape[:3] + (K,)), **args)
    with pytest.raises(ValueError, match=message):
        delta_rule(beta=jnp.zeros(args["q"].shape[:3]), **args)


def test_bad_gates_name_the_argument():
    q = k = jnp.zeros((B, H, T, K))
    v, state = jnp.zeros((B, H, T, V)), jnp.zeros((B, H, K, V))
    with pytest.raises(ValueError, match=r"log_decay must have shape \(B, H, T, K\) = \(2, 2, 37, 4\), got \(2, 2, 37\)"):
        decay_attention(q, k, v, jnp.zeros((B, H, T)), state, chunk_size=16)
    with pytest.raises(ValueError, match=r"beta must have shape \(B, H, T\) = \(2, 2, 37\), got \(2, 2, 37, 4\)"):
        delta_rule(q, k, v, jnp.zeros((B, H, T, K)), state, chunk_size=16)
    with pytest.raises(ValueError, match=r"log_decay must have shape \(B, H, T\)"):
        delta_rule(q, k, v, jnp.zeros((B, H, T)), state, log_decay=jnp.zeros((B, H, T, K)), chunk_size=16)
    with pytest.raises(ValueError, match=r"log_input must have shape \(B, H, T\)"):
        stabilised_attention(q, k, v, jnp.zeros((B, H, T)), jnp.zeros((B, H)), (jnp.zeros((B, H)), state),
                             chunk_size=16)


@pytest.mark.parametrize("size", (1, 5, 16, 37))
def test_unit_lower_inverse_inverts(size):
    from lrnn.cells.chunkwise.delta import unit_lower_inverse
    strict = jnp.tril(jax.random.normal(jax.random.PRNGKey(size), (3, size, size), jnp.float64), -1)
    inverse = jax.jit(unit_lower_inverse)(strict)
    chex.assert_trees_all_close(inverse, np.linalg.inv(np.eye(size) + np.asarray(strict)), rtol=1e-10, atol=1e-10)

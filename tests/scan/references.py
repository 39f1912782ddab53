"""Independent references for the scan engine, and the random test cases they run on.

Every reference is a plain Python loop over time of its recurrence's defining equation,
written in jax.numpy (so `jax.grad` differentiates it) in float64 / complex128. Nothing
here imports lrnn: the references do not share a line of code with the monoids they check.

A reference takes the same arguments as `lrnn.scan.scan` minus the monoid and method:

    reference(leaves, initial=None, *, axis=1, reverse=False, resets=None) -> (states, final)

with time at `axis` of every leaf, everything before `axis` batch, and the monoid's own
dimensions after it. `resets` must be concrete (numpy): True at t empties the state before
step t, "before" in processing order (after step t+1 when `reverse`).

`CASES` names one random test case per monoid configuration: the lrnn.scan class to build,
a generator of leaves and initial states, and the reference.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from tests.helpers import to64

K, V, D = 3, 2, 3  # key / value dims of matrix states, width of vector states


def _broadcast_flag(flag, like):
    flag = jnp.asarray(flag)
    return flag.reshape(flag.shape + (1,) * (like.ndim - flag.ndim))


def _order(length, reverse):
    return range(length - 1, -1, -1) if reverse else range(length)


def _at(leaves, t, axis):
    """Every leaf at time t. (One compiled dynamic slice serves every t; x[t] compiles one
    slice per t and jnp.unstack of thousands of steps takes minutes to compile.)"""
    return [jax.lax.dynamic_index_in_dim(x, t, axis, keepdims=False) for x in leaves]


def _stack(xs, axis):
    """jnp.stack in groups of 64: one XLA concatenate of thousands of operands takes
    seconds to compile."""
    if len(xs) <= 64:
        return jnp.stack(xs, axis=axis)
    return jnp.concatenate([jnp.stack(xs[i:i + 64], axis=axis) for i in range(0, len(xs), 64)], axis=axis)


def _loop(step, empty, leaves, initial, axis, reverse, resets):
    """Run `state = step(leaf_t, state)` over time in processing order, emptying at resets.

    `empty(leaf_t)` is the state before any step (also what a reset restores).
    """
    leaves = [to64(x) for x in leaves]
    flags = None if resets is None else np.moveaxis(np.asarray(resets, bool), axis, 0)
    length = leaves[0].shape[axis]
    state = empty(_at(leaves, 0, axis)) if initial is None else to64(initial)
    states = [None] * length
    for t in _order(length, reverse):
        leaf = _at(leaves, t, axis)
        if flags is not None:
            state = jax.tree_util.tree_map(
                lambda s, e: jnp.where(_broadcast_flag(flags[t], s), e, s), state, empty(leaf))
        state = step(leaf, state)
        states[t] = state
    stacked = jax.tree_util.tree_map(lambda *xs: _stack(xs, axis), *states)
    return stacked, state


# --- the recurrences, one step each, straight from their equations ---------------------


def diagonal(leaves, initial=None, *, axis=1, reverse=False, resets=None):
    """h_t = a_t ⊙ h_{t-1} + b_t, h empty = 0."""
    def step(leaf, h):
        a, b = leaf
        return a * h + b
    return _loop(step, lambda leaf: jnp.zeros_like(leaf[1]), leaves, initial, axis, reverse, resets)


def log_diagonal(leaves, initial=None, *, axis=1, reverse=False, resets=None):
    """The log of h_t = a_t h_{t-1} + b_t, run in linear space on a = e^{log_a}, b = e^{log_b}."""
    log_a, log_b = leaves
    linear = (jnp.exp(to64(log_a)), jnp.exp(to64(log_b)))
    h0 = None if initial is None else jnp.exp(to64(initial))
    states, final = diagonal(linear, h0, axis=axis, reverse=reverse, resets=resets)
    return jnp.log(states), jnp.log(final)


def _matrix_step(transition):
    """A step S_t = M_t S_{t-1} + U_t with M_t = transition(leaf) a (..., K, K) matrix."""
    def step(leaf, state):
        return jnp.einsum("...ij,...jv->...iv", transition(leaf), state) + leaf[-1]
    return step


def _zero_matrix_state(leaf):
    return jnp.zeros_like(leaf[-1])


def _decay_matrix(leaf):
    """Diag(decay) for a per-key-row decay (..., K) or a scalar decay (...)."""
    decay, update = leaf
    k = update.shape[-2]
    if decay.shape != update.shape[:-1]:
        decay = jnp.broadcast_to(decay[..., None], update.shape[:-1])
    return decay[..., :, None] * jnp.eye(k)


def matrix_decay(leaves, initial=None, *, axis=1, reverse=False, resets=None):
    """S_t = Diag(decay_t) S_{t-1} + U_t."""
    return _loop(_matrix_step(_decay_matrix), _zero_matrix_state, leaves, initial, axis, reverse, resets)


def dense(leaves, initial=None, *, axis=1, reverse=False, resets=None):
    """S_t = A_t S_{t-1} + U_t."""
    return _loop(_matrix_step(lambda leaf: leaf[0]), _zero_matrix_state, leaves, initial, axis, reverse, resets)


def rank_one(leaves, initial=None, *, axis=1, reverse=False, resets=None):
    """S_t = (I − u_t w_tᵀ) S_{t-1} + U_t."""
    def transition(leaf):
        u, w, _ = leaf
        return jnp.eye(u.shape[-1]) - u[..., :, None] * w[..., None, :]
    return _loop(_matrix_step(transition), _zero_matrix_state, leaves, initial, axis, reverse, resets)


def stabilised_decay(leaves, initial=None, *, axis=1, reverse=False, resets=None):
    """xLSTM's stabilised recurrence: m_t = max(g_t + m_{t−1}, w_t),
    S_t = e^{g_t + m_{t−1} − m_t} S_{t−1} + e^{w_t − m_t} U_t; empty state (−∞, 0)."""
    def step(leaf, state):
        g, w, u = leaf
        m, s = state
        m_new = jnp.maximum(g + m, w)
        return m_new, jnp.exp(g + m - m_new)[..., None, None] * s + jnp.exp(w - m_new)[..., None, None] * u

    def empty(leaf):
        return jnp.full_like(leaf[0], -jnp.inf), jnp.zeros_like(leaf[2])
    return _loop(step, empty, leaves, initial, axis, reverse, resets)


def softmax(leaves, initial=None, *, axis=1, reverse=False, resets=None):
    """The softmax state by its definition, summed directly (no recurrence).

    Over the tokens i in the current segment up to t (and the initial triple (m0, u0, w0)
    while no reset has been processed), with m the largest score among them:

        m_t = max_i m_i,   u_t = Σ_i u_i e^{m_i − m_t},   w_t = Σ_i w_i e^{m_i − m_t}.

    Slot 0 holds the initial triple, slot i + 1 token i; `counts` marks the slots in the sum.
    """
    m, u, w = (jnp.moveaxis(to64(x), axis, 0) for x in leaves)
    flags = None if resets is None else np.moveaxis(np.asarray(resets, bool), axis, 0)
    length, batch = m.shape[0], m.shape[1:]
    h0 = (jnp.zeros(batch), jnp.zeros(batch), jnp.zeros(w.shape[1:])) if initial is None else initial
    slots = [jnp.concatenate([to64(first)[None], rest]) for first, rest in zip(h0, (m, u, w))]
    counts = np.zeros((length + 1,) + batch, bool)
    counts[0] = initial is not None
    states = [None] * length
    for t in _order(length, reverse):
        counts = counts.copy()  # JAX may alias a numpy array it was given: never mutate one
        if flags is not None:
            counts &= ~flags[t]
        counts[t + 1] = True
        scores = jnp.where(counts, slots[0], -jnp.inf)
        m_t = jnp.max(scores, axis=0)
        weights = jnp.exp(scores - m_t)  # 0 for the slots that do not count
        states[t] = (m_t, jnp.sum(weights * slots[1], axis=0), jnp.sum(weights[..., None] * slots[2], axis=0))
    stacked = tuple(_stack(xs, axis) for xs in zip(*states))
    return stacked, states[0 if reverse else -1]


def softmax_attention(scores, values):
    """o_t = Σ_{i≤t} e^{s_i} v_i / Σ_{i≤t} e^{s_i} for scores (B, T), values (B, T, V)."""
    scores, values = to64(scores), to64(values)
    length = scores.shape[1]
    outs = []
    for t in range(length):
        p = jax.nn.softmax(jnp.where(np.arange(length) <= t, scores, -jnp.inf), axis=1)
        outs.append(jnp.einsum("bi,biv->bv", p, values))
    return jnp.stack(outs, axis=1)


# --- random cases ------------------------------------------------------------------------


def _complex_normal(rng, shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)


def _complex_decay(rng, shape):
    return rng.uniform(0.3, 0.95, shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))


@dataclasses.dataclass(frozen=True)
class Case:
    """One monoid configuration under test.

    `leaves(rng, lead)` draws the elements for leading dims `lead` = (batch..., T);
    `initial(rng, batch)` draws a state for batch dims `batch` (a tuple, possibly empty).
    """

    name: str
    monoid: str  # the lrnn.scan class to build, by name
    leaves: Callable
    initial: Callable
    reference: Callable

    def __str__(self):
        return self.name


CASES = {
    case.name: case
    for case in [
        Case(
            "diagonal", "DiagonalMonoid",
            lambda rng, lead: (rng.uniform(-0.95, 0.95, lead + (D,)), rng.normal(size=lead + (D,))),
            lambda rng, batch: rng.normal(size=batch + (D,)),
            diagonal,
        ),
        Case(
            "diagonal_complex", "DiagonalMonoid",
            lambda rng, lead: (_complex_decay(rng, lead + (D,)), _complex_normal(rng, lead + (D,))),
            lambda rng, batch: _complex_normal(rng, batch + (D,)),
            diagonal,
        ),
        Case(
            "log_diagonal", "LogDiagonalMonoid",
            lambda rng, lead: (np.log(rng.uniform(0.2, 1.0, lead + (D,))), 0.5 * rng.normal(size=lead + (D,))),
            lambda rng, batch: rng.normal(size=batch + (D,)),
            log_diagonal,
        ),
        Case(
            "matrix_decay_rows", "MatrixDecayMonoid",
            lambda rng, lead: (rng.uniform(0.2, 1.0, lead + (K,)), rng.normal(size=lead + (K, V))),
            lambda rng, batch: rng.normal(size=batch + (K, V)),
            matrix_decay,
        ),
        Case(
            "matrix_decay_scalar", "MatrixDecayMonoid",
            lambda rng, lead: (rng.uniform(0.2, 1.0, lead), rng.normal(size=lead + (K, V))),
            lambda rng, batch: rng.normal(size=batch + (K, V)),
            matrix_decay,
        ),
        Case(
            "dense", "DenseMonoid",
            lambda rng, lead: (rng.normal(size=lead + (K, K)) / (1.5 * np.sqrt(K)), rng.normal(size=lead + (K, V))),
            lambda rng, batch: rng.normal(size=batch + (K, V)),
            dense,
        ),
        Case(
            "rank_one", "IdentityMinusRankOneMonoid",
            lambda rng, lead: (0.5 * rng.normal(size=lead + (K,)), 0.5 * rng.normal(size=lead + (K,)),
                               rng.normal(size=lead + (K, V))),
            lambda rng, batch: rng.normal(size=batch + (K, V)),
            rank_one,
        ),
        Case(
            "stabilised_decay", "StabilisedDecayMonoid",
            lambda rng, lead: (np.log(rng.uniform(0.2, 1.0, lead)), 3 * rng.normal(size=lead),
                               rng.normal(size=lead + (K, V))),
            lambda rng, batch: (rng.normal(size=batch), rng.normal(size=batch + (K, V))),
            stabilised_decay,
        ),
        Case(
            "softmax", "SoftmaxMonoid",
            lambda rng, lead: (rng.normal(size=lead), rng.uniform(0.5, 1.5, lead), rng.normal(size=lead + (V,))),
            lambda rng, batch: (rng.normal(size=batch), rng.uniform(0.5, 1.5, batch), rng.normal(size=batch + (V,))),
            softmax,
        ),
    ]
}


def random_resets(rng, lead):
    """Random reset flags (about one step in four), always with a reset at step 0 of the
    first sequence and at step T−1 of the last, so that an initial state is discarded in
    both scan directions."""
    flags = rng.uniform(size=lead) < 0.25
    rows = flags.reshape(-1, lead[-1])
    rows[0, 0] = True
    rows[-1, -1] = True
    return rows.reshape(lead)


def draw(case: Case, lead: tuple, *, seed: int, initial: bool, resets: bool):
    """Deterministic random (leaves, initial or None, resets or None) for `case`."""
    rng = np.random.default_rng(seed)
    leaves = tuple(np.asarray(x) for x in case.leaves(rng, tuple(lead)))
    h0 = case.initial(rng, tuple(lead[:-1])) if initial else None
    flags = random_resets(rng, tuple(lead)) if resets else None
    return leaves, h0, flags

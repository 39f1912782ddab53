"""A scalar-decay matrix state kept in max-stabilised log scale (the mLSTM's recurrence).

The true state C_t = f_t C_{t−1} + e^{ĩ_t} U_t overflows once the exponential input gate is
large, so it is carried as a pair (m, S) with C = e^m S. Leaves (log_decay g, log_weight w,
update U), g and w shaped (...), U (..., K, V); one step is

    m_t = max(g_t + m_{t−1}, w_t)
    S_t = e^{g_t + m_{t−1} − m_t} S_{t−1} + e^{w_t − m_t} U_t

which keeps every exponent ≤ 0. Two elements compose to another of the same form:

    (g_i, w_i, U_i) then (g_j, w_j, U_j) = (g_i + g_j, w, e^{g_j + w_i − w} U_i + e^{w_j − w} U_j),
    w = max(g_j + w_i, w_j)                                        identity (0, lowest, 0)

State (m, S); the empty state is (lowest, 0). "lowest" is the dtype's most negative finite
value, not −∞, so that two empty elements meeting give e^0 · 0 rather than e^{−∞+∞}. The
softmax monoid (`SoftmaxMonoid`) is the special case g = 0 with a vector in place of U.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lrnn.scan.monoid import Monoid, trailing


def lowest(x):
    """The most negative finite value of x's dtype, shaped like x."""
    return jnp.full_like(x, jnp.finfo(x.dtype).min)


@dataclasses.dataclass(frozen=True)
class StabilisedDecayMonoid(Monoid):
    family = "matrix"
    leaf_names: tuple = ("log_decay", "log_weight", "update")

    def combine(self, earlier, later):
        g_i, w_i, u_i = earlier
        g_j, w_j, u_j = later
        carried = g_j + w_i
        w = jnp.maximum(carried, w_j)
        return g_i + g_j, w, trailing(jnp.exp(carried - w), u_i) * u_i + trailing(jnp.exp(w_j - w), u_j) * u_j

    def identity(self, leaf):
        g, w, u = leaf
        return jnp.zeros_like(g), lowest(w), jnp.zeros_like(u)

    def apply(self, leaf, state):
        g, w, u = leaf
        m, s = state
        carried = g + m
        m_new = jnp.maximum(carried, w)
        return m_new, trailing(jnp.exp(carried - m_new), s) * s + trailing(jnp.exp(w - m_new), u) * u

    def lift(self, state):
        m, s = state
        return lowest(m), m, s

    def state_of(self, element):
        _, w, u = element
        return w, u

    def forget(self, leaf, mask):
        g, w, u = leaf
        return jnp.where(mask, lowest(g), g), w, u

    def check(self, leaf, axis):
        super().check(leaf, axis)
        self.require_real(leaf)
        g, w, u = leaf
        self.require_matrix(leaf, 2, axis)
        self.require_shape(leaf, 0, u.shape[:-2], "(...): one log decay per state")
        self.require_shape(leaf, 1, u.shape[:-2], "(...): one log weight per state")

"""The softmax monoid of Aaren (attention as a prefix scan); not affine, still associative.

Leaves (m, u, w): m and u shaped (...), w shaped (..., V). Token i with score s_i = q·k_i and
value v_i is the leaf (s_i, 1, v_i). With m = max(m_A, m_B):

    (m_A, u_A, w_A) then (m_B, u_B, w_B) = (m, u_A e^{m_A−m} + u_B e^{m_B−m}, w_A e^{m_A−m} + w_B e^{m_B−m})

The state is the triple itself and the attention output is `normalised(state)` = w / u, i.e.
o_k = Σ_{i≤k} e^{s_i} v_i / Σ_{i≤k} e^{s_i}. The identity is (lowest finite value, 0, 0): a
finite stand-in for −∞ keeps e^{m_A−m} from becoming ∞−∞ when two empty triples meet.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lrnn.scan.monoid import Monoid


@dataclasses.dataclass(frozen=True)
class SoftmaxMonoid(Monoid):
    leaf_names: tuple = ("m", "u", "w")

    def combine(self, earlier, later):
        m_a, u_a, w_a = earlier
        m_b, u_b, w_b = later
        m = jnp.maximum(m_a, m_b)
        scale_a, scale_b = jnp.exp(m_a - m), jnp.exp(m_b - m)
        return m, u_a * scale_a + u_b * scale_b, w_a * scale_a[..., None] + w_b * scale_b[..., None]

    def identity(self, leaf):
        m, u, w = leaf
        return jnp.full_like(m, jnp.finfo(m.dtype).min), jnp.zeros_like(u), jnp.zeros_like(w)

    def apply(self, leaf, state):
        return self.combine(state, leaf)

    def lift(self, state):
        return state

    def state_of(self, element):
        return element

    @staticmethod
    def normalised(state):
        """The attention output w / u of a state."""
        _, u, w = state
        return w / u[..., None]

    def check(self, leaf, axis):
        super().check(leaf, axis)
        self.require_real(leaf)
        m, _, w = leaf
        if w.ndim < axis + 2 or tuple(w.shape[:-1]) != tuple(m.shape):
            raise ValueError(
                f"elements[2] (w) of SoftmaxMonoid must have shape {tuple(m.shape)} + (V,), "
                f"got {tuple(w.shape)}"
            )
        self.require_shape(leaf, 1, m.shape, "the shape of m")

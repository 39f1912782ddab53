"""Diagonal monoids: a vector state with an elementwise transition.

DiagonalMonoid — leaves (a, b), both shaped (..., D), real or complex:

    h_t = a_t ⊙ h_{t-1} + b_t
    (a_i, b_i) then (a_j, b_j)  =  (a_j a_i, a_j b_i + b_j)        identity (1, 0)

LRU, S4D/S5 (after discretisation), HGRN, minGRU/minLSTM, Mamba and RG-LRU all reduce to it.

LogDiagonalMonoid — leaves (log_a, log_b), real, for positive a and b; the state is log h:

    log h_t = logaddexp(log a_t + log h_{t-1}, log b_t)
    (α_i, β_i) then (α_j, β_j)  =  (α_j + α_i, logaddexp(α_j + β_i, β_j))     identity (0, −∞)

which is the minGRU/minLSTM log-space scan (log h = a* + logcumsumexp(log b − a*)) written
as a monoid: it cannot overflow however long the product of gates runs.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lrnn.scan.monoid import Monoid, trailing


@dataclasses.dataclass(frozen=True)
class DiagonalMonoid(Monoid):
    leaf_names: tuple = ("a", "b")

    def combine(self, earlier, later):
        a_i, b_i = earlier
        a_j, b_j = later
        return a_j * a_i, a_j * b_i + b_j

    def identity(self, leaf):
        a, b = leaf
        return jnp.ones_like(a), jnp.zeros_like(b)

    def apply(self, leaf, state):
        a, b = leaf
        return a * state + b

    def lift(self, state):
        return jnp.zeros_like(state), state

    def state_of(self, element):
        return element[1]

    def forget(self, leaf, mask):
        a, b = leaf
        return jnp.where(trailing(mask, a), jnp.zeros_like(a), a), b

    def check(self, leaf, axis):
        super().check(leaf, axis)
        self.require_shape(leaf, 0, leaf[1].shape, "the shape of b: one decay per state entry")


@dataclasses.dataclass(frozen=True)
class LogDiagonalMonoid(Monoid):
    leaf_names: tuple = ("log_a", "log_b")

    def combine(self, earlier, later):
        alpha_i, beta_i = earlier
        alpha_j, beta_j = later
        return alpha_j + alpha_i, jnp.logaddexp(alpha_j + beta_i, beta_j)

    def identity(self, leaf):
        log_a, log_b = leaf
        return jnp.zeros_like(log_a), jnp.full_like(log_b, -jnp.inf)

    def apply(self, leaf, state):
        log_a, log_b = leaf
        return jnp.logaddexp(log_a + state, log_b)

    def lift(self, state):
        return jnp.full_like(state, -jnp.inf), state

    def state_of(self, element):
        return element[1]

    def forget(self, leaf, mask):
        log_a, log_b = leaf
        return jnp.where(trailing(mask, log_a), -jnp.inf, log_a), log_b

    def check(self, leaf, axis):
        super().check(leaf, axis)
        self.require_real(leaf)
        self.require_shape(leaf, 0, leaf[1].shape, "the shape of log_b")

"""Monoids on a matrix state S (..., K, V): decays, dense and identity-minus-rank-one transitions.

MatrixDecayMonoid — leaves (decay, update); update (..., K, V); decay (..., K) acts on the rows
(a per-key decay: GLA, HGRN2, mLSTM) or (...) is one scalar per state (RetNet, gated DeltaNet):

    S_t = Diag(α_t) S_{t-1} + U_t
    (α_i, U_i) then (α_j, U_j)  =  (α_j α_i, Diag(α_j) U_i + U_j)            identity (1, 0)

DenseMonoid — leaves (transition, update), transition (..., K, K):

    S_t = A_t S_{t-1} + U_t
    (A_i, U_i) then (A_j, U_j)  =  (A_j A_i, A_j U_i + U_j)                  identity (I, 0)

IdentityMinusRankOneMonoid — leaves (u, w, update), u and w (..., K), the DeltaNet family
(u = β k, w = k, U = β k vᵀ):

    S_t = (I − u_t w_tᵀ) S_{t-1} + U_t

One step costs O(K·V); a product of two such transitions is no longer rank one, so the
elements that `combine` composes are dense (`expand` builds I − u wᵀ). The per-token dense
scan is the small-size reference; matrix-state cells train through chunkwise closed forms
and call the engine only on chunk summaries.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lrnn.scan.monoid import Monoid, trailing


def _on_rows(decay, state):
    """Diag(decay) · state for a per-key (..., K) or scalar (...) decay."""
    return trailing(decay, state) * state


@dataclasses.dataclass(frozen=True)
class MatrixDecayMonoid(Monoid):
    family = "matrix"
    leaf_names: tuple = ("decay", "update")

    def combine(self, earlier, later):
        decay_i, update_i = earlier
        decay_j, update_j = later
        return decay_j * decay_i, _on_rows(decay_j, update_i) + update_j

    def identity(self, leaf):
        decay, update = leaf
        return jnp.ones_like(decay), jnp.zeros_like(update)

    def apply(self, leaf, state):
        decay, update = leaf
        return _on_rows(decay, state) + update

    def lift(self, state):
        # A 0-d zero decay: it broadcasts against a per-key or a scalar decay alike.
        return jnp.zeros((), state.dtype), state

    def state_of(self, element):
        return element[1]

    def forget(self, leaf, mask):
        decay, update = leaf
        return jnp.where(trailing(mask, decay), jnp.zeros_like(decay), decay), update

    def check(self, leaf, axis):
        super().check(leaf, axis)
        decay, update = leaf
        self.require_matrix(leaf, 1, axis)
        if tuple(decay.shape) not in (tuple(update.shape[:-1]), tuple(update.shape[:-2])):
            raise ValueError(
                f"elements[0] (decay) of MatrixDecayMonoid must have shape {tuple(update.shape[:-1])} "
                f"(one decay per key row) or {tuple(update.shape[:-2])} (one scalar per state), "
                f"got {tuple(decay.shape)}"
            )


@dataclasses.dataclass(frozen=True)
class DenseMonoid(Monoid):
    family = "dense"
    leaf_names: tuple = ("transition", "update")

    def combine(self, earlier, later):
        transition_i, update_i = earlier
        transition_j, update_j = later
        return transition_j @ transition_i, transition_j @ update_i + update_j

    def identity(self, leaf):
        transition, update = leaf
        eye = jnp.eye(transition.shape[-1], dtype=transition.dtype)
        return jnp.broadcast_to(eye, transition.shape), jnp.zeros_like(update)

    def apply(self, leaf, state):
        transition, update = leaf
        return transition @ state + update

    def lift(self, state):
        k = state.shape[-2]
        return jnp.zeros(state.shape[:-1] + (k,), state.dtype), state

    def state_of(self, element):
        return element[1]

    def forget(self, leaf, mask):
        transition, update = leaf
        return jnp.where(trailing(mask, transition), 0, transition), update

    def check(self, leaf, axis):
        super().check(leaf, axis)
        transition, update = leaf
        self.require_matrix(leaf, 1, axis)
        k = update.shape[-2]
        self.require_shape(leaf, 0, update.shape[:-1] + (k,), "(..., K, K) acting on the (..., K, V) update")


@dataclasses.dataclass(frozen=True)
class IdentityMinusRankOneMonoid(DenseMonoid):
    family = "delta"
    leaf_names: tuple = ("u", "w", "update")

    def expand(self, leaf):
        u, w, update = leaf
        eye = jnp.eye(u.shape[-1], dtype=jnp.result_type(u, w))
        return eye - u[..., :, None] * w[..., None, :], update

    def identity(self, leaf):
        return tuple(jnp.zeros_like(x) for x in leaf)

    def apply(self, leaf, state):
        u, w, update = leaf
        w_state = jnp.einsum("...k,...kv->...v", w, state)
        return state - u[..., :, None] * w_state[..., None, :] + update

    forget = None

    def check(self, leaf, axis):
        Monoid.check(self, leaf, axis)
        u, w, update = leaf
        self.require_matrix(leaf, 2, axis)
        self.require_shape(leaf, 0, update.shape[:-1], "(..., K): one entry per key row of the update")
        self.require_shape(leaf, 1, update.shape[:-1], "(..., K): the shape of u")

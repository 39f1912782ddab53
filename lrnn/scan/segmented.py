"""Resets as a monoid: the segmented scan over (flag, element) pairs.

A flag r_t at step t starts a fresh state there. For any monoid ∘ the pairs

    (r_i, e_i) then (r_j, e_j)  =  (r_i ∨ r_j,  e_j if r_j else e_j ∘ e_i)

are again a monoid (identity (False, identity)), so a packed batch scans exactly as the
separate sequences would. The engine uses a monoid's own `forget` when it has one (zeroing
an affine transition is cheaper) and wraps it in `Segmented` otherwise.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.scan.monoid import Monoid, trailing


def _select(flag, if_true, if_false):
    return jax.tree_util.tree_map(lambda t, f: jnp.where(trailing(flag, t), t, f), if_true, if_false)


@dataclasses.dataclass(frozen=True)
class Segmented(Monoid):
    inner: Monoid = None

    @property
    def family(self):
        return self.inner.family

    def expand(self, leaf):
        flag, inner_leaf = leaf
        return flag, self.inner.expand(inner_leaf)

    def combine(self, earlier, later):
        flag_i, element_i = earlier
        flag_j, element_j = later
        return flag_i | flag_j, _select(flag_j, element_j, self.inner.combine(element_i, element_j))

    def identity(self, leaf):
        flag, inner_leaf = leaf
        return jnp.zeros_like(flag), self.inner.identity(inner_leaf)

    def apply(self, leaf, state):
        flag, inner_leaf = leaf
        fresh = self.inner.empty_state(inner_leaf)
        return self.inner.apply(inner_leaf, _select(flag, fresh, state))

    def lift(self, state):
        first = jax.tree_util.tree_leaves(state)[0]
        return jnp.zeros(first.shape[:0], bool), self.inner.lift(state)

    def state_of(self, element):
        return self.inner.state_of(element[1])


def resettable(monoid: Monoid) -> Monoid:
    """The monoid a scan with resets runs: `monoid` itself when it can `forget`, else `Segmented`."""
    return monoid if getattr(monoid, "forget", None) is not None else Segmented(inner=monoid)


def with_resets(monoid: Monoid, leaves, resets):
    """(monoid, leaves) that scan `leaves` starting afresh where `resets` (None: unchanged)."""
    if resets is None:
        return monoid, leaves
    scanned = resettable(monoid)
    return scanned, (monoid.forget(leaves, resets) if scanned is monoid else (resets, leaves))

"""The monoid protocol every scan runs on.

A linear recurrence h_t = A_t·h_{t-1} + b_t has elements e_t = (A_t, b_t) that compose as

    e_j ∘ e_i = (A_j A_i, A_j b_i + b_j)        identity (I, 0)

so every state is a prefix product of the elements applied to the initial state. The
engine (`lrnn.scan.scan`) needs from a monoid only the operations below; it knows
nothing else about the recurrence.

Vocabulary:
  leaf     the per-token input a caller passes, a tuple of arrays sharing their leading
           (batch..., time) dimensions; trailing dimensions belong to the monoid.
  element  the form `combine` composes. Equal to the leaf for every monoid except
           identity-minus-rank-one, whose leaves are cheap vectors and whose elements
           are dense K×K transitions.
  state    what the recurrence carries, h_t.

Operations (all elementwise over the leading dimensions):
  expand(leaf)            -> element   the leaf in the form `combine` takes
  combine(earlier, later) -> element   associative: `later ∘ earlier`
  identity(leaf)          -> leaf      a leaf that leaves every state unchanged
  apply(leaf, state)      -> state     one step of the recurrence
  lift(state)             -> element   the constant element mapping any state to `state`
  state_of(element)       -> state     the state a prefix element produces from the empty state
  forget(leaf, mask)      -> leaf      optional; where mask, drop the dependence on the past
                                       (the engine falls back to `Segmented` without it)
  check(leaf, axis)                    raise ValueError naming the leaf that is malformed
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp

Leaf = tuple
Element = Any
State = Any


def trailing(mask: jax.Array, like: jax.Array) -> jax.Array:
    """`mask` (leading dims of `like`) with singleton trailing dims so it broadcasts to `like`."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


@dataclasses.dataclass(frozen=True)
class Monoid:
    """Base class: the defaults fit monoids whose leaves already are elements."""

    leaf_names: Sequence[str] = ()
    family: ClassVar[str] = "diagonal"  # the benchmark family `method="auto"` looks up

    def expand(self, leaf: Leaf) -> Element:
        return leaf

    def combine(self, earlier: Element, later: Element) -> Element:
        raise NotImplementedError

    def identity(self, leaf: Leaf) -> Leaf:
        raise NotImplementedError

    def apply(self, leaf: Leaf, state: State) -> State:
        return self.state_of(self.combine(self.lift(state), self.expand(leaf)))

    def lift(self, state: State) -> Element:
        raise NotImplementedError

    def state_of(self, element: Element) -> State:
        raise NotImplementedError

    def empty_state(self, leaf: Leaf) -> State:
        """The state before any step: the state of the identity."""
        return self.state_of(self.expand(self.identity(leaf)))

    def check(self, leaf: Leaf, axis: int) -> None:
        """Shapes and dtypes particular to this monoid; the engine has checked the leaf count,
        their dtypes and their shared leading (batch..., time) dims already."""

    def require_matrix(self, leaf: Leaf, index: int, axis: int) -> None:
        """Raise unless leaf `index` has a (K, V) matrix after the time axis."""
        x = leaf[index]
        if x.ndim < axis + 3:
            raise ValueError(
                f"elements[{index}] ({self.leaf_names[index]}) of {type(self).__name__} must have shape "
                f"(batch..., T, ..., K, V) with time at axis {axis}: a matrix state per step, got {tuple(x.shape)}"
            )

    def require_shape(self, leaf: Leaf, index: int, expected: tuple, meaning: str) -> None:
        """Raise naming leaf `index` when its shape is not `expected`."""
        got = tuple(leaf[index].shape)
        if got != tuple(expected):
            raise ValueError(
                f"elements[{index}] ({self.leaf_names[index]}) of {type(self).__name__} must have "
                f"shape {tuple(expected)} ({meaning}), got {got}"
            )

    def require_real(self, leaf: Leaf) -> None:
        for i, x in enumerate(leaf):
            if jnp.iscomplexobj(x):
                raise ValueError(
                    f"elements[{i}] ({self.leaf_names[i]}) of {type(self).__name__} must be real, "
                    f"got dtype {x.dtype}"
                )

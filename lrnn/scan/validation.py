"""Checks on the arguments of `scan`, so bad input fails with a message that names the
argument, what was expected and what was given — before anything is traced or compiled."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.scan.monoid import Monoid


def _inexact(x) -> bool:
    """Floating or complex."""
    return jnp.issubdtype(x.dtype, jnp.inexact)


def _as_array(label: str, x):
    """x as a jax array, or a TypeError naming `label` (None, strings and ragged lists are not arrays)."""
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be an array, got {type(x).__name__}") from None


def check_monoid(monoid) -> None:
    if not isinstance(monoid, Monoid):
        raise TypeError(f"monoid must be an lrnn.scan Monoid (e.g. DiagonalMonoid()), got {type(monoid).__name__}")


def check_elements(monoid: Monoid, elements) -> tuple:
    if not isinstance(elements, (tuple, list)):
        raise TypeError(
            f"elements must be a tuple of arrays ({', '.join(monoid.leaf_names)}) for "
            f"{type(monoid).__name__}, got {type(elements).__name__}"
        )
    if len(elements) != len(monoid.leaf_names):
        raise ValueError(
            f"elements: {type(monoid).__name__} takes {len(monoid.leaf_names)} arrays "
            f"({', '.join(monoid.leaf_names)}), got {len(elements)}"
        )
    leaves = tuple(_as_array(f"elements[{i}] ({name})", x) for i, (x, name) in enumerate(zip(elements, monoid.leaf_names)))
    for i, x in enumerate(leaves):
        if not _inexact(x):
            raise TypeError(f"elements[{i}] ({monoid.leaf_names[i]}) must be a floating or complex array, got dtype {x.dtype}")
    return leaves


def check_axis(monoid: Monoid, leaves: tuple, axis) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis < 0:
        raise ValueError(
            f"axis must be a non-negative int counted from the front (shared by all elements), got {axis!r}"
        )
    axis = int(axis)
    for i, x in enumerate(leaves):
        if x.ndim <= axis:
            raise ValueError(
                f"axis={axis} is out of range for elements[{i}] ({monoid.leaf_names[i]}) with shape {x.shape}"
            )
    lead = leaves[0].shape[: axis + 1]
    for i, x in enumerate(leaves[1:], start=1):
        if x.shape[: axis + 1] != lead:
            raise ValueError(
                f"elements[{i}] ({monoid.leaf_names[i]}) has leading shape {x.shape[:axis + 1]} but "
                f"elements[0] ({monoid.leaf_names[0]}) has {lead}: all elements share their dims up to and "
                f"including the scan axis {axis} (batch..., time)"
            )
    if lead[axis] < 1:
        raise ValueError(f"the scan axis {axis} must have length ≥ 1, got {lead[axis]}")
    return axis


def check_reverse(reverse) -> None:
    if not isinstance(reverse, (bool, np.bool_)):
        raise ValueError(f"reverse must be True or False, got {reverse!r}")


def check_method(method, chunk_size, known: tuple) -> None:
    if method != "auto" and method not in known:
        hint = " (the Pallas kernels register it when pallas_kernels imports)" if method == "pallas" else ""
        raise ValueError(f"method must be one of {('auto',) + known}, got {method!r}{hint}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size <= 0
    ):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")


def check_resets(resets, lead_shape: tuple, sharded_over: str | None = None):
    """`sharded_over`: the mesh axis time is split over, when `lead_shape` is one device's shard."""
    if resets is None:
        return None
    resets = _as_array("resets", resets)
    if resets.dtype != jnp.bool_:
        raise TypeError(
            f"resets must be a bool array of shape {lead_shape} (dims up to and including the scan axis), "
            f"got dtype {resets.dtype}"
        )
    try:
        if jnp.broadcast_shapes(resets.shape, lead_shape) != lead_shape:
            raise ValueError
    except ValueError:
        shard = f" on this device: its shard of the time axis split over {sharded_over!r}" if sharded_over else ""
        raise ValueError(
            f"resets must have shape {lead_shape} (dims up to and including the scan axis, or broadcastable "
            f"to it){shard}, got {resets.shape}"
        ) from None
    return jnp.broadcast_to(resets, lead_shape)


def check_initial(initial, layout):
    """`layout`: the state's ShapeDtypeStruct pytree."""
    if initial is None:
        return None
    expected = jax.tree_util.tree_structure(layout)
    try:
        given = jax.tree_util.tree_map(jnp.asarray, initial)
        if jax.tree_util.tree_structure(given) != expected:
            raise ValueError
        flat = expected.flatten_up_to(given)
    except (ValueError, TypeError):
        raise ValueError(
            f"initial must be structured like the state {expected}, got {jax.tree_util.tree_structure(initial)}"
        ) from None
    for x, want in zip(flat, jax.tree_util.tree_leaves(layout)):
        if x.shape != want.shape:
            raise ValueError(f"initial must have shape {want.shape} (the state: elements without the scan axis), "
                             f"got {x.shape}")
        if not _inexact(x):
            raise TypeError(f"initial must be floating or complex, got dtype {x.dtype}")
        if jnp.iscomplexobj(x) and not jnp.issubdtype(want.dtype, jnp.complexfloating):
            raise TypeError(f"initial is complex ({x.dtype}) but the monoid's state is real ({want.dtype})")
    return jax.tree_util.tree_unflatten(expected, [x.astype(w.dtype) for x, w in zip(flat, jax.tree_util.tree_leaves(layout))])

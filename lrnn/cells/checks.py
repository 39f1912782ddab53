"""Argument checks shared by the cells: bad input fails here, naming the argument, what
was expected and what was given, before anything is traced or compiled."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def in_range(name: str, value, low: float, high: float, *, closed_low=True, closed_high=True) -> None:
    """low ≤ value ≤ high, with either end open when asked."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        left, right = "[" if closed_low else "(", "]" if closed_high else ")"
        raise ValueError(f"{name} must be a number in {left}{low}, {high}{right}, got {value!r}")
    ok_low = value >= low if closed_low else value > low
    ok_high = value <= high if closed_high else value < high
    if not (ok_low and ok_high):
        left, right = "[" if closed_low else "(", "]" if closed_high else ")"
        raise ValueError(f"{name} must lie in {left}{low}, {high}{right}, got {value!r}")


def concrete(value) -> np.ndarray | None:
    """value as a numpy array, or None while it is traced (under jit, grad or vmap) and so
    has no value to check yet."""
    return None if isinstance(value, jax.core.Tracer) else np.asarray(value)


def flag(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def step_range(dt_min, dt_max) -> None:
    """0 < dt_min ≤ dt_max, the range a discretisation step Δ is drawn from (S4D, S5, Mamba)."""
    for name, value in (("dt_min", dt_min), ("dt_max", dt_max)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if dt_min > dt_max:
        raise ValueError(f"dt_min must not exceed dt_max, got dt_min={dt_min!r} > dt_max={dt_max!r}")


EIGENVALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))


def eigenvalue_range(value) -> tuple:
    """(0, 1) or (−1, 1) (a list or ints are fine) as a float pair: where a cell's transition
    eigenvalues lie; (−1, 1) is the negative-eigenvalue variant (Grazzi et al.)."""
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
          and tuple(value) in EIGENVALUE_RANGES)
    if not ok:
        raise ValueError(f"eigenvalue_range must be (0, 1) or (-1, 1), got {value!r}")
    return tuple(float(v) for v in value)


def head_sizes(cell, default_key: int, default_value: int) -> None:
    """Fill in a cell's d_key and d_value (widths summed over its n_heads heads) where they are
    None, and check that each is a positive int that n_heads divides."""
    positive_int("n_heads", cell.n_heads)
    for name, default in (("d_key", default_key), ("d_value", default_value)):
        given = getattr(cell, name)
        value = default if given is None else given
        object.__setattr__(cell, name, value)
        positive_int(name, value)
        if value % cell.n_heads and given is None:
            raise ValueError(f"n_heads must divide {name} = {value} (its default for d_in = {cell.d_in}), "
                             f"got n_heads = {cell.n_heads}")
        if value % cell.n_heads:
            raise ValueError(f"{name} must be divisible by n_heads = {cell.n_heads}, got {value}")


def one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def as_array(name: str, x, expected: str):
    """x as a jax array, or a TypeError naming `name` (None, strings, ragged lists)."""
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {expected}, got {type(x).__name__}") from None


def real_array(name: str, x, rank: int, width: int, layout: str):
    """x as a real floating array of `rank` dims whose last dim is `width`."""
    x = as_array(name, x, f"a real floating array {layout}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a real floating array {layout}, got dtype {x.dtype}")
    if x.ndim != rank or x.shape[-1] != width:
        expected = layout.replace("d_in", str(width))
        raise ValueError(f"{name} must have shape {expected}, got {_shape_text(x.shape)}")
    return x


def sequence(x, d_in: int):
    """A batch of input sequences (B, T, d_in), T ≥ 1."""
    x = real_array("x", x, 3, d_in, "(B, T, d_in)")
    if x.shape[1] < 1:
        raise ValueError(f"x must have at least one time step, got shape {_shape_text(x.shape)}")
    return x


def token(x_t, d_in: int):
    """One input step for a batch (B, d_in)."""
    return real_array("x_t", x_t, 2, d_in, "(B, d_in)")


def resets(value, lead_shape: tuple):
    """Reset flags (B, T) bool, or None."""
    if value is None:
        return None
    value = as_array("resets", value, f"a bool array of shape {_shape_text(lead_shape)} (B, T)")
    if value.dtype != jnp.bool_ or value.shape != tuple(lead_shape):
        raise ValueError(f"resets must be a bool array of shape {_shape_text(lead_shape)} (B, T), "
                         f"got {value.dtype} {_shape_text(value.shape)}")
    return value


def state(name: str, value, template):
    """A recurrent state shaped like `template` (an array or a tuple of them, e.g. from
    `jax.eval_shape(cell.initial_state)`): the same structure and shapes, complex exactly
    where the template is."""
    parts, structure = jax.tree_util.tree_flatten(template)
    given = value if isinstance(value, tuple) else (value,)
    if len(parts) > 1 and (not isinstance(value, tuple) or len(value) != len(parts)):
        raise ValueError(f"{name} must be a tuple of {len(parts)} arrays, got {type(value).__name__}")
    checked = []
    for i, (x, want) in enumerate(zip(given, parts)):
        label = name if len(parts) == 1 else f"{name}[{i}]"
        try:
            x = jnp.asarray(x)
        except (TypeError, ValueError):
            raise ValueError(f"{label} must be an array of shape {_shape_text(want.shape)} (batch, *state_shape), "
                             f"got {type(x).__name__}") from None
        is_complex = jnp.issubdtype(want.dtype, jnp.complexfloating)
        kind = "complex" if is_complex else "real floating"
        ok_kind = jnp.iscomplexobj(x) if is_complex else jnp.issubdtype(x.dtype, jnp.floating)
        if x.shape != want.shape or not ok_kind or (len(parts) == 1 and isinstance(value, tuple)):
            raise ValueError(
                f"{label} must be a {kind} array of shape {_shape_text(want.shape)} (batch, *state_shape), "
                f"got {x.dtype} {_shape_text(x.shape)}"
            )
        checked.append(x)
    return jax.tree_util.tree_unflatten(structure, checked)

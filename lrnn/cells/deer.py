"""DEER and quasi-DEER: a nonlinear recurrence solved in parallel over time by Newton iterations,
each iteration one linear recurrence through `lrnn.scan`.

Lim et al. 2024, "Parallelizing non-linear sequential models over the sequence length" (DEER);
Gonzalez et al. 2024, "Towards Scalable and Stable Parallelization of Nonlinear RNNs" (quasi-DEER).

The states h_0 … h_{T−1} of h_t = f(h_{t−1}, u_t) (h_{−1} given; states flattened to D numbers)
are the root of the residual r_t = h_t − f(h_{t−1}, u_t). Newton's method linearises f around the
current iterate h^{(i)}:

    J_t          = ∂f/∂h (h^{(i)}_{t−1}, u_t)                                            (D × D)
    h^{(i+1)}_t  = Ã_t h^{(i+1)}_{t−1} + (f(h^{(i)}_{t−1}, u_t) − Ã_t h^{(i)}_{t−1})

a linear recurrence in h^{(i+1)}, solved by ONE `lrnn.scan` (any method, chunk size, sequence axis):

    solver "deer"        Ã_t = (1 − k) J_t          DenseMonoid, the state a (D, 1) column
    solver "quasi_deer"  Ã_t = (1 − k) diag(J_t)    DiagonalMonoid: O(D) per combine, not O(D³)

with k the damping, k = 0 being Newton (DEER) or the diagonal quasi-Newton (quasi-DEER) itself.
Damping shrinks the linearised transition, so that an iterate far from the solution, where the
products of Jacobians grow (an unstable linearisation, whose scan overflows), stays bounded; it
costs convergence speed (linear, where undamped DEER's is quadratic near the solution). This is the
damping in Gonzalez, Linderman et al.'s code for quasi-DEER and DEER (the Jacobian scaled by 1 − k,
k ∈ [0, 1); lindermanlab/parallelizing_with_lds, with their 2025 "A Unifying Framework for
Parallelizing Sequential Models with Linear Dynamical Systems"). The 2024 paper's stabiliser,
(quasi-)ELK — a Levenberg–Marquardt trust region evaluated as a parallel Kalman filter — is not
implemented: it needs a second monoid (the filter's variances), and it gives up the bound below (it
moves even h_0 only part of the way to f(h_{−1}) per iteration).

Iterates start from h^{(0)} = 0 (every token). Whatever Ã is, an iteration computes h_t exactly
once h^{(i)}_{t−1} and h^{(i+1)}_{t−1} both are (then h^{(i+1)}_t = f(h_{t−1}, u_t)), and h_0 is exact
after the first iteration, so after i iterations the first i states are the loop's: T iterations
always suffice. The solve stops when

    |h^{(i+1)}_t − h^{(i)}_t| ≤ tolerance · (1 + |h^{(i+1)}_t|)      for every entry of every token

(absolute for entries of order one, relative for large ones — a state part that grows, as sLSTM's
stabiliser does, loosens the test for itself only; an iterate that is not finite never counts as
converged), or after min(max_iterations, T) iterations. Defaults: 1e-12 in float64 (agrees with the
loop to ≈1e-12), 1e-5 in float32. An iterate still not finite at the cap (an unstable linearisation
that overflows even on the exact prefix: use damping) is returned as it is.

Resets: at a reset f reads `empty` (the cell's zero state) in place of h_{t−1}, and Ã_t = 0.

Gradients, by the implicit function theorem (custom VJP; the iterations are never differentiated).
At the solution H, with ḡ_t the cotangent of h_t and J_t the exact Jacobians there (whatever solver
and damping ran forward), the adjoint is the reverse linear recurrence

    λ_{T−1} = ḡ_{T−1},    λ_t = ḡ_t + J_{t+1}ᵀ λ_{t+1}

one `lrnn.scan(DenseMonoid(), …, reverse=True)`; then the cotangents of the params, the inputs and
h_{−1} come from one vjp of f over every token at once, (θ̄, ū_t, h̄_{t−1}) = vjp(f)(λ_t) at
(h_{t−1}, u_t); h_{−1}'s is h̄_{−1} at t = 0. Residuals: the solution and the inputs, O(B·T·D).

Sequence parallelism (`sequence_axis`, time split over devices, inside shard_map): every scan takes
the axis, f at a shard's first token reads the previous device's last state
(`lrnn.cells.shards.from_previous`), the adjoint's J_{t+1} at a shard's last token is the next
device's first (`from_next`), and the convergence test is a max over the axis (`lax.pmax`), so every
device stops at the same iteration.

Cost: both solvers form the full Jacobian at every token by forward-mode autodiff (D Jacobian-vector
products of f; quasi-DEER then keeps its diagonal), since f is a black box; quasi-DEER saves the scan
(O(D) per combine in place of O(D³)) and iterations are then cheaper, DEER needs fewer of them.

Shapes: states (B, T, D); h_{−1} and `empty` (B, D); inputs a pytree of (B, T, …) arrays; resets
(B, T) bool or None. f(params, h (N, D), u (pytree of (N, …))) -> (N, D) is one step for N rows.

Why here, in lrnn.cells and not in lrnn.scan: the solver is no monoid and no scan method but a
client of the engine (it calls `lrnn.scan` once per iteration), and it needs the cells' sequence-
parallel exchange (`shards`) and their meaning of a reset; it knows nothing of any one cell
(`lrnn.cells.nonlinear` hands it the transition as f).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from lrnn.cells import checks, shards
from lrnn.scan import DenseMonoid, DiagonalMonoid, scan

DEER, QUASI_DEER = "deer", "quasi_deer"
SOLVERS = (DEER, QUASI_DEER)
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}

tree_map = jax.tree_util.tree_map


@dataclasses.dataclass(frozen=True)
class Options:
    """How to solve: the solver and its stopping rule, and the engine options of every scan."""

    solver: str = QUASI_DEER
    damping: float = 0.0
    tolerance: float | None = None  # None: TOLERANCE of the state's dtype
    max_iterations: int | None = None  # None: T
    method: str = "auto"
    chunk_size: int | None = None
    sequence_axis: str | None = None


def check_options(solver, damping, tolerance, max_iterations) -> None:
    """ValueErrors naming the solver option that is out of range."""
    checks.one_of("solver", solver, SOLVERS)
    checks.in_range("damping", damping, 0.0, 1.0, closed_high=False)
    if tolerance is not None:
        checks.in_range("tolerance", tolerance, 0.0, float("inf"))
    if max_iterations is not None:
        checks.positive_int("max_iterations", max_iterations)


def default_tolerance(dtype) -> float:
    return TOLERANCE["float64"] if jnp.dtype(dtype).itemsize >= 8 else TOLERANCE["float32"]


def solve(f: Callable, params, inputs, h0, empty, resets=None, *, options: Options = Options()):
    """(states (B, T, D), iterations): the states of h_t = f(h_{t−1}, u_t) from h_{−1} = h0 by
    Newton iterations (see the module docstring), and how many ran (an int32 scalar).

    Args:
      f: one step, f(params, h (N, D), u) -> (N, D), u a pytree of (N, …) arrays; hashable (a
        bound method of a frozen dataclass, or a module-level function).
      params: f's parameters (a pytree; differentiable).
      inputs: pytree of (B, T, …) arrays, u_t = inputs[:, t] leaf-wise (differentiable).
      h0: (B, D) the state before the first token (differentiable).
      empty: (B, D) the state a reset starts from (the cell's zero state).
      resets: (B, T) bool or None; at a reset f reads `empty`.
      options: `Options`; inside shard_map over `options.sequence_axis`, inputs and resets are this
        device's shard of time and so are the states.
    """
    return _solve(f, options, params, inputs, h0, empty, resets)


def _merge(x):
    """(B, T, …) -> (B·T, …)."""
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def _on_tokens(f, params, prev, inputs):
    """f at every token at once: prev (B, T, D) -> (B, T, D)."""
    return f(params, _merge(prev), tree_map(_merge, inputs)).reshape(prev.shape)


def _with_jacobians(f, params, prev, inputs):
    """(f, ∂f/∂h) at every token: (B, T, D) and (B, T, D, D)."""
    def one_row(h, u):
        out = f(params, h[None], tree_map(lambda a: a[None], u))[0]
        return out, out

    jacobians, values = jax.vmap(jax.jacfwd(one_row, has_aux=True))(_merge(prev), tree_map(_merge, inputs))
    batch, length, width = prev.shape
    return values.reshape(prev.shape), jacobians.reshape(batch, length, width, width)


def _previous(h, h0, sequence_axis):
    """h_{t−1} for every token: h shifted one step later, h0 (or the previous device's last state)
    first."""
    first = h0[:, None]
    if sequence_axis is not None:
        first = shards.from_previous(h, 1, sequence_axis, first=first, what="the Newton solve")
    return jnp.concatenate([first, h[:, :-1]], axis=1)


def _read(shifted, empty, resets):
    """What f reads at every token: `empty` at a reset, h_{t−1} elsewhere."""
    if resets is None:
        return shifted
    return jnp.where(resets[..., None], empty[:, None], shifted)


def _linearised(f, params, inputs, prev, resets, damping):
    """(f(prev), J) at every token, J zero at a reset."""
    values, jacobians = _with_jacobians(f, params, prev, inputs)
    if resets is not None:
        jacobians = jnp.where(resets[..., None, None], 0.0, jacobians)
    return values, (jacobians * (1.0 - damping) if damping else jacobians)


def _newton_step(f, options: Options, params, inputs, h0, empty, resets, h):
    """h^{(i+1)} from h^{(i)}: one linear recurrence, one `lrnn.scan`."""
    prev = _read(_previous(h, h0, options.sequence_axis), empty, resets)
    values, jacobians = _linearised(f, params, inputs, prev, resets, options.damping)
    engine = dict(method=options.method, chunk_size=options.chunk_size, sequence_axis=options.sequence_axis)
    if options.solver == QUASI_DEER:
        a = jnp.diagonal(jacobians, axis1=-2, axis2=-1)
        states, _ = scan(DiagonalMonoid(), (a, values - a * prev), initial=h0, **engine)
        return states
    b = values - jnp.einsum("btij,btj->bti", jacobians, prev)
    states, _ = scan(DenseMonoid(), (jacobians, b[..., None]), initial=h0[..., None], **engine)
    return states[..., 0]


def _iterate(f, options: Options, params, inputs, h0, empty, resets):
    batch, length = jax.tree_util.tree_leaves(inputs)[0].shape[:2]
    dtype = h0.dtype
    axis = options.sequence_axis
    whole = length * (lax.axis_size(axis) if axis is not None else 1)
    cap = whole if options.max_iterations is None else min(options.max_iterations, whole)
    tolerance = default_tolerance(dtype) if options.tolerance is None else options.tolerance

    def body(carry):
        h, count, _ = carry
        new = _newton_step(f, options, params, inputs, h0, empty, resets, h)
        # An explicit finiteness test: XLA's CPU max-reduction can skip NaNs (jax 0.10).
        finite = jnp.all(jnp.isfinite(new))
        error = jnp.where(finite, jnp.max(jnp.abs(new - h) / (1.0 + jnp.abs(new))), jnp.inf)
        return new, count + 1, error if axis is None else lax.pmax(error, axis)

    def going(carry):
        _, count, error = carry
        return (count < cap) & ~(error <= tolerance)  # a NaN error is not convergence

    start = (jnp.zeros((batch, length, h0.shape[-1]), dtype), jnp.int32(0), jnp.asarray(jnp.inf, dtype))
    h, count, _ = lax.while_loop(going, body, start)
    return h, count


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _solve(f, options, params, inputs, h0, empty, resets):
    return _iterate(f, options, params, inputs, h0, empty, resets)


def _solve_forward(f, options, params, inputs, h0, empty, resets):
    h, count = _iterate(f, options, params, inputs, h0, empty, resets)
    return (h, count), (params, inputs, h0, empty, resets, h)


def _solve_backward(f, options, residuals, cotangents):
    params, inputs, h0, empty, resets, h = residuals
    g, _ = cotangents
    axis = options.sequence_axis
    shifted = _previous(h, h0, axis)

    def on_tokens(params, inputs, shifted, empty):
        return _on_tokens(f, params, _read(shifted, empty, resets), inputs)

    _, pullback = jax.vjp(on_tokens, params, inputs, shifted, empty)
    _, jacobians = _linearised(f, params, inputs, _read(shifted, empty, resets), resets, 0.0)
    if axis is None:
        after_last = jnp.zeros_like(jacobians[:, :1])
    else:
        after_last = shards.from_next(jacobians, 1, axis, what="the Newton solve's adjoint")
    later = jnp.swapaxes(jnp.concatenate([jacobians[:, 1:], after_last], axis=1), -1, -2)  # J_{t+1}ᵀ
    adjoint, _ = scan(DenseMonoid(), (later, g[..., None]), reverse=True, method=options.method,
                      chunk_size=options.chunk_size, sequence_axis=axis)
    params_bar, inputs_bar, shifted_bar, empty_bar = pullback(adjoint[..., 0])
    h0_bar = shifted_bar[:, 0]
    if axis is not None:  # h_{−1} enters at the first device's first token only
        h0_bar = jnp.where(lax.axis_index(axis) == 0, h0_bar, 0.0)
    return params_bar, inputs_bar, h0_bar, empty_bar, None


_solve.defvjp(_solve_forward, _solve_backward)

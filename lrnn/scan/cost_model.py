"""A small cost model of a scan's run time, fitted to benchmark measurements.

For one backend, family, dtype, pass and candidate (e.g. "chunked64"), with x = log2 T (time
steps) and y = log2 L (lanes: scalar recurrences advanced per step, state entries × batch),
the model is piecewise linear in x, y and the log size s = x + y:

    log2 seconds ≈ c₀ + c_x·x + c_y·y + Σ_k a_k (x − κ_k)₊ + Σ_k b_k (y − λ_k)₊ + Σ_k d_k (s − σ_k)₊

The hinges (·)₊ let the slope change at knots κ, λ, σ placed on measured values (at least two
octaves apart, strictly inside the measured range), so the model follows a per-step overhead
that stops mattering once lanes are many (y), a tree depth or chunk count (x) and a working
set that outgrows a cache level (s), and it extends linearly beyond the measured range.

Fitting is ridge regression towards the prior "time ∝ T·L" (c_x = c_y = 1, no bends), so a
candidate measured at a few sizes only still scales sensibly. The ridge weight is the one of
RIDGE_WEIGHTS with the smallest leave-one-out error (closed form: eᵢ / (1 − Hᵢᵢ)), and that
error is recorded with the fit: it is the model's honest residual on sizes it did not see.

Candidates are compared, so they are modelled together (`fit_candidates`): the reference (of
the candidates measured at the most sizes, the typically fastest) by its time as above, every other candidate by its time
over the reference's at the same sizes, the same model with the prior "a constant ratio"
(c_x = c_y = 0). A timing disturbed at one size then moves every candidate's prediction
alike, and a choice follows the differences between candidates, which change slowly with size.
On the CPU grid of `experiments/bench_scan.py`, choosing by this model left out of each size in
turn comes within 1.15× of that size's best for 91% of sizes (worst 2.3×); separate absolute
fits of each candidate 87% (worst 3.0×).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

RIDGE_WEIGHTS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
KNOT_SPACING = 2.0  # octaves


def _knots(values: Sequence[float]) -> tuple[float, ...]:
    """Measured values strictly inside their range, thinned to at least KNOT_SPACING apart."""
    inside = sorted(set(values))[1:-1]
    knots: list[float] = []
    for v in inside:
        if not knots or v - knots[-1] >= KNOT_SPACING:
            knots.append(v)
    return tuple(knots)


@dataclasses.dataclass(frozen=True)
class Fit:
    """One candidate's fitted model: `seconds(length, lanes)` predicts its run time."""

    knots_t: tuple[float, ...]
    knots_lanes: tuple[float, ...]
    knots_size: tuple[float, ...]
    coef: tuple[float, ...]
    ridge: float
    points: int
    loo_rms: float  # leave-one-out residual, root mean square, in log2 seconds
    loo_max: float  # the largest leave-one-out residual, in log2 seconds

    def log2_seconds(self, length: float, lanes: float) -> float:
        x, y = np.array([math.log2(length)]), np.array([math.log2(max(lanes, 1))])
        features = _features(x, y, self.knots_t, self.knots_lanes, self.knots_size)
        return float(features[0] @ np.array(self.coef))

    def seconds(self, length: float, lanes: float) -> float:
        return 2.0 ** self.log2_seconds(length, lanes)

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def _features(x, y, knots_t, knots_lanes, knots_size) -> np.ndarray:
    s = x + y
    columns = [np.ones_like(x), x, y]
    columns += [np.maximum(x - k, 0.0) for k in knots_t]
    columns += [np.maximum(y - k, 0.0) for k in knots_lanes]
    columns += [np.maximum(s - k, 0.0) for k in knots_size]
    return np.stack(columns, axis=-1)


def _ridge(features, target, prior, penalty, weight):
    """argmin ‖F c − z‖² + weight·Σ penalty·(c − prior)², and the leave-one-out residuals."""
    shifted = target - features @ prior
    gram = features.T @ features + weight * np.diag(penalty)
    inverse = np.linalg.inv(gram)
    delta = inverse @ features.T @ shifted
    hat_diagonal = np.einsum("ij,jk,ik->i", features, inverse, features)
    residual = shifted - features @ delta
    loo = residual / np.maximum(1.0 - hat_diagonal, 1e-9)
    return prior + delta, loo


def fit(lengths: Sequence[float], lanes: Sequence[float], seconds: Sequence[float], *,
        prior_slopes: tuple[float, float] = (1.0, 1.0), ridge_weights: Sequence[float] = RIDGE_WEIGHTS) -> Fit:
    """The model of one candidate from its measured (length, lanes, seconds) points: `seconds`
    may be a ratio to another candidate's, with `prior_slopes` (0, 0) (a constant ratio)."""
    if not len(seconds) or len(seconds) != len(lengths) or len(seconds) != len(lanes):
        raise ValueError(f"fit needs equally many lengths, lanes and seconds (at least one), got "
                         f"{len(lengths)}, {len(lanes)}, {len(seconds)}")
    x = np.log2(np.asarray(lengths, float))
    y = np.log2(np.maximum(np.asarray(lanes, float), 1.0))
    z = np.log2(np.asarray(seconds, float))
    knots = _knots(x), _knots(y), _knots(x + y)
    features = _features(x, y, *knots)
    n_columns = features.shape[1]
    prior = np.zeros(n_columns)
    prior[1:3] = prior_slopes
    penalty = np.ones(n_columns)
    penalty[0] = 0.0  # the level is free
    best = None
    for weight in ridge_weights:
        coef, loo = _ridge(features, z, prior, penalty, weight)
        rms = float(np.sqrt(np.mean(loo**2))) if len(z) > 1 else float("nan")
        if best is None or rms < best[2]:
            best = (weight, coef, rms, float(np.max(np.abs(loo))) if len(z) > 1 else float("nan"))
    weight, coef, rms, worst = best
    return Fit(*knots, coef=tuple(float(c) for c in coef), ridge=weight, points=len(z),
               loo_rms=rms, loo_max=worst)


@dataclasses.dataclass(frozen=True)
class Relative:
    """A candidate's time as the reference candidate's times its fitted ratio to it."""

    reference: str
    reference_fit: Fit
    ratio: Fit

    def seconds(self, length: float, lanes: float) -> float:
        return self.reference_fit.seconds(length, lanes) * self.ratio.seconds(length, lanes)

    def describe(self) -> dict:
        return {"reference": self.reference, **self.ratio.describe()}


def fit_candidates(measured: dict[str, Sequence[tuple[float, float, float]]]) -> dict[str, Fit | Relative]:
    """Models of every candidate from its (length, lanes, seconds) points: the reference (of the
    candidates measured at the most sizes, the fastest in geometric mean) absolutely; the others
    relative to it."""
    most = max(len(points) for points in measured.values())
    widest = sorted(c for c, points in measured.items() if len(points) == most)
    reference = min(widest, key=lambda c: sum(math.log(seconds) for _, _, seconds in measured[c]))
    base = measured[reference]
    at = {(length, lanes): seconds for length, lanes, seconds in base}
    models: dict[str, Fit | Relative] = {reference: fit(*zip(*base))}
    for candidate, points in measured.items():
        shared = [(length, lanes, seconds / at[length, lanes]) for length, lanes, seconds in points
                  if (length, lanes) in at]
        if candidate != reference and shared:
            models[candidate] = Relative(reference, models[reference], fit(*zip(*shared), prior_slopes=(0.0, 0.0)))
    return models

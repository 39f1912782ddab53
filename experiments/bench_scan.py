"""Benchmark of the scan engine (`lrnn.scan.scan`): its methods over a grid of sizes, the cost
model `method="auto"` fits to them, and that model checked on shapes it was not fitted on.

    python experiments/bench_scan.py                   # full grid + validation: results JSON, BENCHMARKS.md
    python experiments/bench_scan.py --write-auto      # also rewrite lrnn/scan/auto_methods.json
    python experiments/bench_scan.py --grid coarse --validate 0 --write-auto    # a short run (GPU/TPU)
    python experiments/bench_scan.py --quick           # smoke test, tiny sizes; touches no BENCHMARKS.md

Families (one per monoid kind auto tells apart), each at T steps over L lanes (scalar
recurrences per step, the largest leaf's size / T, as the engine counts them):

  diagonal  DiagonalMonoid, a and b (B, T, D): D = min(L, 256), B = L / D
  matrix    MatrixDecayMonoid, per-key decay (B, T, K), update (B, T, K, V)
  dense     DenseMonoid, transition (B, T, K, K), update (B, T, K, V)
  delta     IdentityMinusRankOneMonoid, u = βk and w = k (B, T, K), update (B, T, K, V)
            (matrix, dense, delta: K = V = 16 and B = L / 256, or B = 1 and K = V = √L below that)

Candidates: the engine's sequential, associative, chunked16/64/256 (chunked64 only on the coarse
grid). Passes, as `auto` chooses for them:

  forward           jit of the scan returning all states
  backward          (diagonal) the reverse scan of the diagonal VJP alone, `diagonal_vjp.gradient`
                    from saved states: the VJP's method is chosen apart from the forward's
  forward+backward  (the others) jit of the gradient of Σ states·c w.r.t. every leaf through
                    the method (c a fixed random cotangent): what auto picks when differentiated

1. Grid (fit): T ∈ 64 … 2^17 and L ∈ 64 … 2^16 in steps of 4×, B·T·L ≤ 2^23, float32; a coarser
   grid in bf16 (T, L ∈ 64, 512, 4096, 32768). Each size's candidates are timed interleaved.
2. Fit: `lrnn.scan.cost_model` per family, dtype, pass and candidate; its leave-one-out error.
3. Validation: ≥ 30 random shapes off the grid (T and L log-uniform, non-powers of two, both
   dtypes, every family; plus the two diagonal shapes of issue 18), where `auto`, with the model
   just fitted, is timed against every candidate, forward and forward+backward (auto's forward
   and backward methods may differ there). Targets: auto within 1.15× of the best candidate for
   ≥ 90% of shapes, never worse than 1.5×, both passes.
4. Layout: the diagonal scan batch-first (B, T, D) with time on axis 1 against time-major (T, B, D)
   on axis 0, both through auto, at model-like sizes: which layout a layer should hand the engine.

Memory: compiled temporary memory of forward+backward for the diagonal family at T = 4096.

Time: median per-call time over interleaved rounds (`benchlib.interleaved`; a shared CPU is
noisy). --write-auto writes the grid's points to `lrnn/scan/auto_methods.json` (this backend's
four families replaced, other backends and families kept); without it the fit is validated in
memory (`auto.stand_in`) and the file is untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import pathlib
import random
import sys
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from experiments import benchlib  # noqa: E402
from lrnn.scan import (DenseMonoid, DiagonalMonoid, IdentityMinusRankOneMonoid, MatrixDecayMonoid,  # noqa: E402
                       Monoid, auto, diagonal_vjp, scan)

FORWARD, BACKWARD, TRAIN = auto.FORWARD, auto.BACKWARD, auto.TRAIN
AUTO, PEER = "auto", "recurrentgemma"
MAX_ELEMENTS = 2**23  # B·T·L of the full grid and the validation shapes (CPU-sized)
GRID_ELEMENTS = {"full": MAX_ELEMENTS, "coarse": 2**26, "quick": MAX_ELEMENTS}
GRIDS = {  # name: {dtype: (lengths, lanes)}
    "full": {"float32": ((64, 256, 1024, 4096, 16384, 65536, 131072), (64, 256, 1024, 4096, 16384, 65536)),
             "bfloat16": ((64, 512, 4096, 32768), (64, 512, 4096, 32768))},
    "coarse": {"float32": ((256, 4096, 65536), (256, 4096, 65536))},  # B·T·L ≤ 2^26: for a GPU/TPU
    "quick": {"float32": ((64, 256), (64, 256))},
}
CHUNKS = {"full": (16, 64, 256), "coarse": (64,), "quick": (16,)}
VALIDATION_SHAPES, VALIDATION_SEED = 32, 18
ISSUE_SHAPES = ((2, 65536, 64), (8, 4096, 256))  # diagonal (B, T, D) of issue 18's table
LAYOUT_SHAPES = ((8, 1024, 512), (8, 4096, 256), (32, 1024, 256), (2, 65536, 64))
WITHIN, NEVER_WORSE, SHARE = 1.15, 1.5, 0.9
MEMORY_LENGTH = 4096
SECTION = "## Scan engine (experiments/bench_scan.py)"


# --- what is scanned ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    monoid: Monoid
    passes: tuple[str, ...]

    def dims(self, lanes: int) -> tuple[int, tuple[int, ...]]:
        """(batch, state dims) for about `lanes` lanes."""
        if isinstance(self.monoid, DiagonalMonoid):
            width = min(lanes, 256)
            return max(lanes // width, 1), (width,)
        if lanes >= 256:
            return max(lanes // 256, 1), (16, 16)
        k = 2 ** math.ceil(math.log2(lanes) / 2)
        return 1, (k, max(lanes // k, 1))

    def leaves(self, batch: int, length: int, dims: tuple[int, ...], dtype, key) -> tuple:
        keys = jax.random.split(key, 3)
        lead = (batch, length)
        if self.name == "diagonal":
            leaves = (jax.random.uniform(keys[0], lead + dims, minval=0.9, maxval=1.0),
                      jax.random.normal(keys[1], lead + dims))
        else:
            k, v = dims
            update = jax.random.normal(keys[2], lead + (k, v))
            if self.name == "matrix":
                leaves = (jax.random.uniform(keys[0], lead + (k,), minval=0.9, maxval=1.0), update)
            elif self.name == "dense":
                noise = jax.random.normal(keys[0], lead + (k, k)) * (0.3 / math.sqrt(k))
                leaves = (0.5 * jnp.eye(k) + noise, update)
            else:
                key_vector = jax.random.normal(keys[0], lead + (k,))
                key_vector = key_vector / jnp.linalg.norm(key_vector, axis=-1, keepdims=True)
                beta = jax.random.uniform(keys[1], lead + (1,))
                leaves = (beta * key_vector, key_vector, update)
        return tuple(x.astype(dtype) for x in leaves)


FAMILIES = (
    Family("diagonal", DiagonalMonoid(), (FORWARD, BACKWARD)),
    Family("matrix", MatrixDecayMonoid(), (FORWARD, TRAIN)),
    Family("dense", DenseMonoid(), (FORWARD, TRAIN)),
    Family("delta", IdentityMinusRankOneMonoid(), (FORWARD, TRAIN)),
)
FAMILY = {f.name: f for f in FAMILIES}


@dataclasses.dataclass(frozen=True)
class Shape:
    family: Family
    batch: int
    length: int
    dims: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, family: Family, length: int, lanes: int, dtype: str) -> "Shape":
        batch, dims = family.dims(lanes)
        return cls(family, batch, length, dims, dtype)

    def inputs(self, seed: int = 0):
        """(leaves, cotangent of the states)."""
        key, cotangent_key = jax.random.split(jax.random.PRNGKey(seed))
        leaves = self.family.leaves(self.batch, self.length, self.dims, jnp.dtype(self.dtype), key)
        states = (self.batch, self.length) + self.dims
        return leaves, jax.random.normal(cotangent_key, states).astype(self.dtype)

    @functools.cached_property
    def lanes(self) -> int:
        shapes = jax.eval_shape(lambda: self.family.leaves(self.batch, self.length, self.dims, jnp.float32,
                                                           jax.random.PRNGKey(0)))
        return auto.lanes_of(shapes, self.length)

    def describe(self) -> str:
        return f"B={self.batch} " + "×".join(map(str, self.dims))

    def record(self) -> dict:
        return {"family": self.family.name, "length": self.length, "lanes": self.lanes, "batch": self.batch,
                "dims": list(self.dims), "dtype": self.dtype, "shape": self.describe()}


# --- the functions timed ------------------------------------------------------------------------


def candidates(length: int, chunks: tuple[int, ...]) -> dict[str, tuple[str, int | None]]:
    """{candidate name: (method, chunk size)} of the engine's methods at this length."""
    named = {"sequential": ("sequential", None), "associative": ("associative", None)}
    named.update({auto.candidate_name("chunked", c): ("chunked", c) for c in chunks if c < length})
    return named


def engine(family: Family, method: str, chunk_size: int | None = None, axis: int = 1) -> Callable:
    return lambda *leaves: scan(family.monoid, leaves, method=method, chunk_size=chunk_size, axis=axis)[0]


def trained(fn: Callable, n_leaves: int) -> Callable:
    """The gradient of Σ fn(*leaves)·cotangent with respect to every leaf."""
    def loss(*args):
        *leaves, cotangent = args
        return jnp.sum((fn(*leaves) * cotangent).astype(jnp.float32))
    return jax.grad(loss, argnums=tuple(range(n_leaves)))


def backward_only(method: str, chunk_size: int | None) -> Callable:
    """The diagonal VJP's reverse scan by `method`, from saved states (all float32, as it runs)."""
    def run(a, states, states_bar):
        h0 = jnp.zeros_like(states[:, 0])
        return diagonal_vjp.gradient((method, chunk_size), a, states, h0, states_bar, h0, 1, False)
    return run


def pass_group(shape: Shape, pass_: str, named: dict[str, tuple[str, int | None]], with_auto: bool = False):
    """({name: jit-able function}, args) timing `pass_` of the named candidates at `shape`."""
    leaves, cotangent = shape.inputs()
    family = shape.family
    if pass_ == BACKWARD:
        a, b = (x.astype(jnp.float32) for x in leaves)
        states = scan(family.monoid, (a, b), method="sequential")[0]
        fns = {name: backward_only(*spec) for name, spec in named.items()}
        return fns, (a, states, cotangent.astype(jnp.float32))
    fns = {name: engine(family, *spec) for name, spec in named.items()}
    if with_auto:
        fns[AUTO] = engine(family, "auto")
        if family.name == "diagonal" and peer() is not None:
            fns[PEER] = peer()
    if pass_ == TRAIN:
        fns = {name: trained(fn, len(leaves)) for name, fn in fns.items()}
        return fns, (*leaves, cotangent)
    return fns, tuple(leaves)


def peer() -> Callable | None:
    """recurrentgemma's `linear_scan` (Griffin's JAX scan: lax.scan over time, vmapped over the
    batch) as `fn(a, b) -> states`, or None where it does not import. It is on PyPI; its pins
    (numpy < 2.4, absl < 2) are narrower than it needs: `pip install --no-deps recurrentgemma==1.0.1
    einops jaxtyping "typeguard<3" sentencepiece` brings it in beside lrnn."""
    try:
        from recurrentgemma.jax import scan as recurrentgemma_scan
    except Exception:  # noqa: BLE001 - any import failure means: no peer column
        return None
    return lambda a, b: recurrentgemma_scan.linear_scan(b, a)[0]


def timed(fns, args, timing: benchlib.Timing, seed: int) -> dict:
    return benchlib.compile_and_time(fns, args, timing, seed)


# --- 1. grid ------------------------------------------------------------------------------------


def grid_shapes(grid: str, families=FAMILIES) -> list[Shape]:
    shapes = []
    for family in families:
        for dtype, (lengths, lanes) in GRIDS[grid].items():
            for length in lengths:
                for width in lanes:
                    if length * width <= GRID_ELEMENTS[grid]:
                        shapes.append(Shape.of(family, length, width, dtype))
    return shapes


def measure_point(shape: Shape, pass_: str, chunks, timing, seed) -> dict:
    fns, args = pass_group(shape, pass_, candidates(shape.length, chunks))
    group = timed(fns, args, timing, seed)
    return {**shape.record(), "pass": pass_, **group}


def auto_points(records: list[dict]) -> dict[str, list[dict]]:
    """The grid's measurements in `lrnn.scan.auto`'s point format, per family."""
    rows: dict[str, list[dict]] = {}
    for r in records:
        rows.setdefault(r["family"], []).append(
            {"length": r["length"], "lanes": r["lanes"], "dtype": r["dtype"], "pass": r["pass"],
             "seconds": dict(r["median_s"])})
    return rows


# --- 2. fit -------------------------------------------------------------------------------------


def fit_summary(points: dict[str, list[dict]]) -> list[dict]:
    """Per family, dtype, pass and candidate: the fit's size, ridge weight and leave-one-out error."""
    rows = []
    with auto.stand_in(points):
        for family, pts in points.items():
            for dtype, pass_ in dict.fromkeys((p["dtype"], p["pass"]) for p in pts):
                for candidate, fit in auto.fits(family, dtype=dtype, pass_=pass_).items():
                    rows.append({"family": family, "dtype": dtype, "pass": pass_, "candidate": candidate,
                                 **fit.describe()})
    return rows


def held_out_choices(records: list[dict]) -> dict:
    """Each grid size left out in turn: the candidate the model fitted to the others picks there,
    its measured time over that size's best (the choice's regret), summarised."""
    regrets = []
    for i, left_out in enumerate(records):
        others = [r for j, r in enumerate(records) if j != i]
        with auto.stand_in(auto_points(others)):
            times = auto.predict(left_out["family"], left_out["length"], left_out["lanes"],
                                 dtype=left_out["dtype"], pass_=left_out["pass"])
        measured = left_out["median_s"]
        picked = min((c for c in times if c in measured), key=times.__getitem__)
        regrets.append(measured[picked] / min(measured.values()))
    always = [r["median_s"]["sequential"] / min(r["median_s"].values()) for r in records]
    return {"sizes": len(regrets), "within": sum(x <= WITHIN for x in regrets) / len(regrets),
            "within_1_5": sum(x <= NEVER_WORSE for x in regrets) / len(regrets), "worst": max(regrets),
            "mean": sum(regrets) / len(regrets),
            "always_sequential": {"within": sum(x <= WITHIN for x in always) / len(always), "worst": max(always),
                                  "mean": sum(always) / len(always)}}


# --- 3. validation ------------------------------------------------------------------------------


def validation_shapes(count: int, seed: int = VALIDATION_SEED) -> list[Shape]:
    """`count` random off-grid shapes (T and L log-uniform, B·T·L ≤ 2^23), the families in turn,
    a quarter of them bf16; then issue 18's two diagonal shapes."""
    rng = random.Random(seed)
    shapes = []
    while len(shapes) < count:
        family = FAMILIES[len(shapes) % len(FAMILIES)]
        length = round(2 ** rng.uniform(6, 17))
        lanes = round(2 ** rng.uniform(6, 16))
        if length * lanes > MAX_ELEMENTS:
            continue
        dtype = "bfloat16" if rng.random() < 0.25 else "float32"
        if family.name == "diagonal":
            width = rng.randint(32, 512)
            shapes.append(Shape(family, max(round(lanes / width), 1), length, (width,), dtype))
        else:
            batch, dims = family.dims(lanes)
            shapes.append(Shape(family, max(round(lanes / math.prod(dims)), 1), length, dims, dtype))
    diagonal = FAMILY["diagonal"]
    shapes += [Shape(diagonal, b, t, (d,), "float32") for b, t, d in ISSUE_SHAPES]
    return shapes


def auto_picks(shape: Shape) -> dict[str, str]:
    """What auto runs at `shape`: the forward's candidate and the gradient's."""
    family, key, lanes = shape.family.monoid.family, shape.dtype, shape.lanes
    forward = auto.choose(family, shape.length, lanes, dtype=key)
    gradient_pass = BACKWARD if shape.family.name == "diagonal" else TRAIN
    gradient = auto.choose(family, shape.length, lanes, dtype=key, pass_=gradient_pass)
    name = lambda spec: auto.candidate_name(*spec) if spec[0] == "chunked" else spec[0]  # noqa: E731
    return {FORWARD: name(forward), TRAIN: f"{name(forward)} / {name(gradient)}"}


def validate(shape: Shape, chunks, timing, seed) -> dict:
    record = {**shape.record(), "auto_picks": auto_picks(shape)}
    for pass_ in (FORWARD, TRAIN):
        fns, args = pass_group(shape, pass_, candidates(shape.length, chunks), with_auto=True)
        group = timed(fns, args, timing, seed)
        times = group["median_s"]
        best = benchlib.fastest(times, among=[n for n in times if n not in (AUTO, PEER)])
        record[pass_] = {**group, "best": best, "ratio": times[AUTO] / times[best]}
        if PEER in times:
            record[pass_]["peer_ratio"] = times[PEER] / times[AUTO]
    return record


def verdict(validation: list[dict]) -> list[dict]:
    rows = []
    for pass_ in (FORWARD, TRAIN):
        ratios = [r[pass_]["ratio"] for r in validation]
        share = sum(x <= WITHIN for x in ratios) / len(ratios)
        worst = max(ratios)
        rows.append({"pass": pass_, "shapes": len(ratios), "within": share, "worst": worst,
                     "median": benchlib.median(ratios),
                     "met": share >= SHARE and worst <= NEVER_WORSE})
    return rows


# --- 4. layout ----------------------------------------------------------------------------------


def measure_layout(shape_bt_d: tuple[int, int, int], timing, seed) -> dict:
    """The diagonal scan through auto batch-first (axis 1) and time-major (axis 0), both passes."""
    batch, length, width = shape_bt_d
    family = FAMILY["diagonal"]
    leaves, cotangent = Shape(family, batch, length, (width,), "float32").inputs()
    time_major = tuple(jnp.swapaxes(x, 0, 1) for x in leaves)
    record = {"shape": list(shape_bt_d)}
    for pass_ in (FORWARD, TRAIN):
        fns = {"batch_first": engine(family, "auto", axis=1), "time_major": engine(family, "auto", axis=0)}
        if pass_ == TRAIN:
            fns = {name: trained(fn, 2) for name, fn in fns.items()}
        args = {"batch_first": (*leaves, cotangent), "time_major": (*time_major, jnp.swapaxes(cotangent, 0, 1))}
        n = len(leaves) + (pass_ == TRAIN)
        runs, compile_s = {}, {}
        for name, fn in fns.items():
            compiled, compile_s[name] = benchlib.compile_timed(fn, *args[name][:n])
            runs[name] = lambda c=compiled, a=args[name][:n]: c(*a)
        samples, once = benchlib.interleaved(runs, timing.rounds, min_seconds=timing.min_seconds,
                                             max_calls=timing.max_calls, seed=seed)
        record[pass_] = benchlib.medians(samples)
    return record


# --- memory -------------------------------------------------------------------------------------


def plain_associative(family: Family) -> Callable:
    monoid = family.monoid
    return lambda *leaves: monoid.state_of(lax.associative_scan(monoid.combine, monoid.expand(leaves), axis=1))


def naive_lax_scan(family: Family) -> Callable:
    def run(*leaves):
        steps = tuple(jnp.moveaxis(x, 1, 0) for x in leaves)

        def step(state, leaf):
            state = family.monoid.apply(leaf, state)
            return state, state

        start = family.monoid.empty_state(tuple(x[0] for x in steps))
        return jnp.moveaxis(lax.scan(step, start, steps)[1], 0, 1)
    return run


def measure_memory(length: int, elements: int) -> dict:
    family = FAMILY["diagonal"]
    shape = Shape.of(family, length, elements // length, "float32")
    leaves, cotangent = shape.inputs()
    variants = [("engine sequential (reverse-scan VJP)", engine(family, "sequential")),
                ("engine associative (JAX autodiff)", engine(family, "associative")),
                ("engine chunked64 (reverse-scan VJP)", engine(family, "chunked", 64)),
                ("engine auto (reverse-scan VJP)", engine(family, "auto")),
                ("lax.associative_scan (JAX autodiff)", plain_associative(family)),
                ("lax.scan (JAX autodiff)", naive_lax_scan(family))]
    rows = []
    elements = shape.batch * length * shape.dims[0]
    for name, fn in variants:
        compiled, _ = benchlib.compile_timed(trained(fn, 2), *leaves, cotangent)
        temp, source = benchlib.temp_bytes(compiled)
        rows.append({"variant": name, "temp_bytes": temp, "source": source,
                     "bytes_per_element": None if temp is None else temp / elements})
    return {"length": length, "shape": shape.describe(), "elements": elements, "rows": rows}


# --- reporting ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def best_map(records: list[dict], family: str, dtype: str, pass_: str) -> str:
    """T × L table of the fastest candidate (and its time) on the grid."""
    group = [r for r in records if r["family"] == family and r["dtype"] == dtype and r["pass"] == pass_]
    lengths = sorted({r["length"] for r in group})
    lanes = sorted({r["lanes"] for r in group})
    cell = {(r["length"], r["lanes"]): r for r in group}

    def entry(t, width):
        r = cell.get((t, width))
        if r is None:
            return ""
        best = benchlib.fastest(r["median_s"])
        second = sorted(r["median_s"].values())[1] if len(r["median_s"]) > 1 else r["median_s"][best]
        return f"{best} {_ms(r['median_s'][best])} ({second / r['median_s'][best]:.2f})"
    return benchlib.markdown_table(["T \\ L", *lanes], [[t, *(entry(t, w) for w in lanes)] for t in lengths])


def fit_table(fits: list[dict]) -> str:
    rows = [[f["family"], f["dtype"], f["pass"], f["candidate"], f.get("reference", "–"), f["points"], f"{f['ridge']:g}",
             f"{2 ** f['loo_rms']:.2f}" if f["points"] > 1 else "–",
             f"{2 ** f['loo_max']:.2f}" if f["points"] > 1 else "–"] for f in fits]
    return benchlib.markdown_table(["family", "dtype", "pass", "candidate", "reference", "points", "ridge",
                                    "LOO rms ×", "LOO max ×"], rows)


def validation_table(validation: list[dict]) -> str:
    def peer_ratio(x):
        return f"{x['peer_ratio']:.2f}" if "peer_ratio" in x else "–"
    rows = []
    for r in validation:
        f, t = r[FORWARD], r[TRAIN]
        rows.append([r["family"], r["dtype"], r["length"], r["shape"], r["lanes"],
                     r["auto_picks"][FORWARD], f["best"], _ms(f["median_s"][f["best"]]), f"{f['ratio']:.2f}",
                     peer_ratio(f),
                     r["auto_picks"][TRAIN], t["best"], _ms(t["median_s"][t["best"]]), f"{t['ratio']:.2f}",
                     peer_ratio(t)])
    return benchlib.markdown_table(
        ["family", "dtype", "T", "shape", "L", "fwd: auto", "fwd: best", "best ms", "auto/best", f"{PEER}/auto",
         "fwd+bwd: auto (fwd / grad)", "fwd+bwd: best", "best ms", "auto/best", f"{PEER}/auto"], rows)


def verdict_text(rows: list[dict]) -> str:
    lines = []
    for v in rows:
        lines.append(f"- {v['pass']}: auto within {WITHIN}× of the best for {v['within']:.0%} of {v['shapes']} "
                     f"shapes (target ≥ {SHARE:.0%}), worst {v['worst']:.2f}× (target ≤ {NEVER_WORSE}), median "
                     f"{v['median']:.2f}×: {'met' if v['met'] else 'missed'}.")
    return "\n".join(lines)


def layout_table(layout: list[dict]) -> str:
    rows = []
    for r in layout:
        f, t = r[FORWARD], r[TRAIN]
        rows.append(["×".join(map(str, r["shape"])), _ms(f["batch_first"]), _ms(f["time_major"]),
                     f"{f['time_major'] / f['batch_first']:.2f}", _ms(t["batch_first"]), _ms(t["time_major"]),
                     f"{t['time_major'] / t['batch_first']:.2f}"])
    return benchlib.markdown_table(["B×T×D", "fwd batch-first ms", "fwd time-major ms", "time-major / batch-first",
                                    "fwd+bwd batch-first ms", "fwd+bwd time-major ms", "time-major / batch-first"],
                                   rows)


def memory_table(memory: dict) -> str:
    rows = [[r["variant"], "–" if r["temp_bytes"] is None else f"{r['temp_bytes'] / 2**20:.1f}",
             "–" if r["bytes_per_element"] is None else f"{r['bytes_per_element']:.1f}"] for r in memory["rows"]]
    return benchlib.markdown_table(["forward+backward", "temp MiB", "bytes / element"], rows)


def report(results: dict) -> str:
    s = results["settings"]
    parts = [f"{benchlib.run_line(results)} {s['rounds']} interleaved rounds (fit grid), "
             f"{s['validation_rounds']} (validation); grid `{s['grid']}`."]
    if results.get("unfinished"):
        parts.append(f"**Unfinished run** (written as it went, then stopped): {results['unfinished']}.")
    if s.get("grid_from"):
        parts.append(f"The grid's measurements are read from `{s['grid_from']}`, measured by: {s['grid_command']}.")
    records = results["grid"]
    for family in dict.fromkeys(r["family"] for r in records):
        for dtype, pass_ in dict.fromkeys((r["dtype"], r["pass"]) for r in records if r["family"] == family):
            parts.append(f"### Grid: {family}, {dtype}, {pass_}: fastest candidate, its ms (runner-up / it)\n\n"
                         + best_map(records, family, dtype, pass_))
    parts.append("### Cost model fits (`lrnn.scan.cost_model`)\n\nOne reference candidate per family, dtype and "
                 "pass is fitted by its time, the others by their time over the reference's (`reference` column). "
                 "LOO: leave-one-out error of log2 time (or ratio) as a factor (1.10 = predictions 10% off on sizes "
                 "left out of the fit).\n\n" + fit_table(results["fits"]))
    held = results.get("held_out")
    if held:
        always = held["always_sequential"]
        parts.append(f"Choices on sizes left out of the fit (each of the {held['sizes']} grid measurements in turn): "
                     f"the pick within {WITHIN}× of that size's best for {held['within']:.0%}, within {NEVER_WORSE}× "
                     f"for {held['within_1_5']:.0%}, worst {held['worst']:.2f}×, mean {held['mean']:.3f}× (always "
                     f"\"sequential\": {always['within']:.0%}, worst {always['worst']:.2f}×, mean {always['mean']:.3f}×).")
    if results["validation"]:
        parts.append("### Validation: auto on shapes off the grid\n\n`auto/best`: auto's median time / the fastest "
                     "candidate's, in the same rounds (below 1: auto's forward and gradient methods differ and beat "
                     f"every single method). `{PEER}/auto`: that peer's time over auto's (diagonal rows, where "
                     "recurrentgemma imports: see `peer`). The last two rows are issue 18's shapes.\n\n"
                     + validation_table(results["validation"]) + "\n\n" + verdict_text(results["verdict"]))
    if results["layout"]:
        parts.append("### Layout: the diagonal scan through auto, batch-first (axis 1) vs time-major (axis 0)\n\n"
                     + layout_table(results["layout"]))
    memory = results["memory"]
    if memory:
        parts.append(f"### Forward+backward temporary memory, diagonal T={memory['length']} {memory['shape']}\n\n"
                     + memory_table(memory) + f"\n\nmeasured by {memory['rows'][0]['source']}.")
    if results.get("auto_table_written"):
        parts.append(f"`{auto.TABLE.relative_to(ROOT)}` rewritten from the grid above (`--write-auto`).")
    return "\n\n".join(parts)


# --- command line -------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny grid, 2 validation shapes")
    parser.add_argument("--grid", choices=sorted(GRIDS), help="fit grid (default full; quick with --quick)")
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILY), help="families to measure (default all)")
    parser.add_argument("--grid-from", type=pathlib.Path, metavar="JSON",
                        help="take the grid's measurements from an earlier run's results file instead of measuring")
    parser.add_argument("--validate", type=int, help=f"random validation shapes (default {VALIDATION_SHAPES})")
    parser.add_argument("--no-layout", action="store_true", help="skip the layout comparison")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory table")
    benchlib.add_output_arguments(parser, default_rounds=5, quick_rounds=2, results_name="bench_scan")
    parser.add_argument("--write-auto", action="store_true", help=f"rewrite {auto.TABLE.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.quick and args.write_auto:
        parser.error("--write-auto records measurements at the real sizes; it cannot be combined with --quick")
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    grid = args.grid or ("quick" if quick else "full")
    chunks = CHUNKS[grid]
    families = tuple(FAMILY[n] for n in args.families) if args.families else FAMILIES
    rounds = args.rounds or (2 if quick else 5)
    timing = benchlib.Timing(rounds=rounds, min_seconds=0.005 if quick else 0.05, max_calls=5 if quick else 20,
                             max_call_seconds=args.max_call_seconds)
    # Validation verdicts compare single shapes: longer samples (more calls averaged per round)
    # keep a shared machine's noise below the 1.15× they are judged by.
    check = benchlib.Timing(rounds=rounds if quick else rounds + 2, min_seconds=0.005 if quick else 0.25,
                            max_calls=5 if quick else 40, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "bench_scan")

    records, grid_command, validation, layout = [], None, [], []
    if args.grid_from:
        earlier = json.loads(args.grid_from.read_text())
        records = [r for r in earlier["grid"] if r["family"] in {f.name for f in families}]
        grid, chunks = earlier["settings"]["grid"], tuple(earlier["settings"]["chunks"])
        grid_command = earlier["command"]
    results = {
        **benchlib.run_header("experiments/bench_scan.py", argv, out, ROOT),
        "settings": {"grid": grid, "chunks": list(chunks), "grid_from": args.grid_from and str(args.grid_from),
                     "grid_command": grid_command, "families": [f.name for f in families],
                     "max_elements": MAX_ELEMENTS, "quick": quick, "validation_rounds": check.rounds,
                     **dataclasses.asdict(timing)},
        "grid": records, "fits": [], "held_out": None, "validation": validation, "verdict": [], "layout": layout,
        "memory": None, "auto_table_written": bool(args.write_auto), "unfinished": None,
    }

    def publish(unfinished: str | None) -> None:
        """Write what is measured so far: a run stopped at a time limit keeps its tables."""
        results.update(fits=fit_summary(auto_points(records)), verdict=verdict(validation) if validation else [],
                       unfinished=unfinished)
        benchlib.publish(results, report(results), out, markdown, SECTION)

    for family in [] if args.grid_from else families:
        for shape in grid_shapes(grid, (family,)):
            for pass_ in family.passes:
                benchlib.progress(f"grid {family.name} {shape.dtype} T={shape.length} {shape.describe()} {pass_}")
                records.append(measure_point(shape, pass_, chunks, timing, seed=len(records)))
        if args.write_auto:  # family by family: a run stopped early keeps what it finished
            auto.replace_families({family.name: auto_points(records)[family.name]})
        publish(f"measured the grid of {', '.join(dict.fromkeys(r['family'] for r in records))} so far")
    points = auto_points(records)
    if args.write_auto and args.grid_from:
        auto.replace_families(points)

    count = 2 if quick and args.validate is None else (VALIDATION_SHAPES if args.validate is None else args.validate)
    with auto.stand_in(points):
        shapes = [s for s in validation_shapes(count) if s.family in families][: count + len(ISSUE_SHAPES)]
        if quick:
            shapes = [dataclasses.replace(s, length=min(s.length, 300), batch=1) for s in shapes[:count]]
        for i, shape in enumerate(shapes if count else []):
            benchlib.progress(f"validate {shape.family.name} {shape.dtype} T={shape.length} {shape.describe()}")
            validation.append(validate(shape, chunks, check, seed=10_000 + i))
        if validation:
            publish("validated, before the layout, memory and held-out choices")
        if not args.no_layout and FAMILY["diagonal"] in families:
            for i, shape in enumerate(LAYOUT_SHAPES[:1] if quick else LAYOUT_SHAPES):
                benchlib.progress(f"layout {shape}")
                layout.append(measure_layout((1, 256, 64) if quick else shape, check, seed=20_000 + i))
    results["memory"] = None if args.no_memory else measure_memory(
        *((256, 4096) if quick else (MEMORY_LENGTH, MAX_ELEMENTS // 2)))
    results["held_out"] = held_out_choices(records) if len(records) > 2 else None
    publish(None)
    return results


if __name__ == "__main__":
    main()

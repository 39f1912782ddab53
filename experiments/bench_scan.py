"""Benchmark of the scan engine (`lrnn.scan.scan`): every method against a memory floor.

    python experiments/bench_scan.py                 # full run: writes results JSON + BENCHMARKS.md
    python experiments/bench_scan.py --quick         # smoke test, seconds; touches no BENCHMARKS.md
    python experiments/bench_scan.py --write-auto    # also rewrite lrnn/scan/auto_methods.json

What is measured. Two monoids, each at T ∈ {256, 1024, 4096, 16384, 65536} with the total element
count fixed (2^22 float32 per leaf, so every size moves the same bytes):

  diagonal  DiagonalMonoid, a and b (B, T, D): D = 256 and B = 2^22 / (T·D); once that would be
            below 1, B = 1 and D = 2^22 / T.
  matrix    MatrixDecayMonoid, per-key decay (B, T, K) and update (B, T, K, V): K = V = 16 and
            B = 2^22 / (T·K·V); once that would be below 1, B = 1 and K·V = 2^22 / T.

At each size, for the forward pass (jit of the scan returning all states) and for forward+backward
(jit of the gradient of sum(states · c) w.r.t. both leaves, c a fixed random cotangent):

  sequential, associative     the engine's methods
  chunked16/64/256            the engine's chunked method at that chunk size (only when C < T)
  auto                        method="auto": whatever the measured table picks (shown in the cell)
  floor                       one elementwise pass over the same bytes, `monoid.apply(leaf, update)`
                              (a·b + b; decay[..., None]·update + update for the matrix state):
                              what any scan must at least cost, reading the leaves and writing states
  naive_lax_scan              "naive JAX": moveaxis to time-major, lax.scan of monoid.apply, moveaxis
                              back (its gradient is JAX's autodiff through lax.scan)

Time: the median per-call time over interleaved rounds (all candidates of one size and pass timed
round-robin, `benchlib.interleaved`), because a shared CPU is noisy. Compile time: trace + lower +
compile of `jax.jit(f)` for those arguments. A candidate whose first call takes longer than
--max-call-seconds (default 5) is timed by that one call instead of in every round (marked †), so
a pathological candidate cannot stall the run.

Reading a table. One table per (monoid, pass), one row per T. Each method's column is its median as
a ratio to the fastest engine method of that row (sequential / associative / chunked*; auto and the
baselines are never "fastest"), so the best is 1.00. `best/floor`, `auto/floor` and `naive/floor` are
medians as a ratio to the memory floor: 1.0 would be a scan as cheap as one elementwise pass. The
compile-time tables give seconds.

Memory: for the diagonal monoid at T = 4096 (T = 256 with --quick) the compiled temporary memory of
forward+backward (`memory_analysis().temp_size_in_bytes`, per element of B·T·D) of the engine's
methods — each labelled with how the engine differentiates it: the reverse-scan custom VJP of
`lrnn.scan.diagonal_vjp`, or JAX autodiff — against plain autodiff through lax.associative_scan and
through lax.scan.

--write-auto. `method="auto"` reads `lrnn/scan/auto_methods.json`. This flag writes the current
backend's rows there (other backends in the file are kept): per monoid family and size, the method
fastest on the FORWARD pass (auto serves inference and training alike; forward is the pass both
share, and the forward+backward tables show what that choice costs in training), and the fastest
chunk size among the chunked variants (used whenever "chunked" runs without an explicit chunk
size). The auto cells measured before the table changes would be stale, so with this flag the
methods are measured first, the table is written and re-read, and only then is auto timed, in a
final interleaved round against the best method and the floor of each size and pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import sys
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from experiments import benchlib  # noqa: E402
from lrnn.scan import DiagonalMonoid, MatrixDecayMonoid, Monoid, auto, diagonal_vjp, scan  # noqa: E402

TOTAL = 2**22
QUICK_TOTAL = 2**16
SIZES = (256, 1024, 4096, 16384, 65536)
QUICK_SIZES = (256, 1024)
CHUNKS = (16, 64, 256)
MEMORY_LENGTH, QUICK_MEMORY_LENGTH = 4096, 256
FORWARD, TRAIN = "forward", "forward+backward"
PASSES = (FORWARD, TRAIN)
FLOOR, NAIVE, AUTO = "floor", "naive_lax_scan", "auto"
AUTO_TARGET, FLOOR_TARGET = 1.1, 1.5
SECTION = "## Scan engine (experiments/bench_scan.py)"


# --- what is scanned ----------------------------------------------------------------------------


def vector(lanes: int) -> tuple[int, ...]:
    return (lanes,)


def square(lanes: int) -> tuple[int, ...]:
    k = 2 ** math.ceil(math.log2(lanes) / 2)
    return (k, lanes // k)


@dataclasses.dataclass(frozen=True)
class Case:
    """A monoid and how its state is shaped: leaves are a decay (B, T, dims[0]) and an update
    (B, T, *dims), `dims` the state of one sequence with `lanes` entries."""

    name: str
    monoid: Monoid
    lanes: int  # state entries per sequence while the batch is at least 1
    state_dims: Callable[[int], tuple[int, ...]]
    dim_names: tuple[str, ...]


CASES = (
    Case("diagonal", DiagonalMonoid(), 256, vector, ("D",)),
    Case("matrix", MatrixDecayMonoid(), 256, square, ("K", "V")),
)


@dataclasses.dataclass(frozen=True)
class Size:
    case: Case
    length: int
    batch: int
    dims: tuple[int, ...]

    @classmethod
    def of(cls, case: Case, length: int, total: int) -> "Size":
        """`total` update elements: batch B of `case.lanes`-entry states, or B = 1 and fewer lanes."""
        batch = total // (length * case.lanes)
        if batch >= 1:
            return cls(case, length, batch, case.state_dims(case.lanes))
        return cls(case, length, 1, case.state_dims(max(total // length, 1)))

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        lead = (self.batch, self.length)
        return lead + self.dims[:1], lead + self.dims

    @property
    def elements(self) -> int:
        return math.prod(self.shapes[1])

    @property
    def lanes(self) -> int:
        """As the engine counts them for `auto`: largest leaf's size / T."""
        return self.elements // self.length

    def describe(self) -> str:
        dims = " ".join(f"{n}={d}" for n, d in zip(self.case.dim_names, self.dims))
        return f"B={self.batch} {dims}"

    def inputs(self, seed: int = 0):
        """(leaves, cotangent): decays in [0.9, 1), normal updates, a normal cotangent of the states."""
        decay_key, update_key, cotangent_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        decay_shape, state_shape = self.shapes
        decay = jax.random.uniform(decay_key, decay_shape, jnp.float32, 0.9, 1.0)
        update = jax.random.normal(update_key, state_shape, jnp.float32)
        return (decay, update), jax.random.normal(cotangent_key, state_shape, jnp.float32)


# --- the functions compared ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Method:
    name: str  # column name, e.g. "chunked64"
    method: str  # engine method
    chunk_size: int | None = None


def engine_methods(length: int) -> tuple[Method, ...]:
    chunked = tuple(Method(f"chunked{c}", "chunked", c) for c in CHUNKS if c < length)
    return (Method("sequential", "sequential"), Method("associative", "associative")) + chunked


def method_named(length: int, name: str) -> Method:
    return next(m for m in engine_methods(length) if m.name == name)


def engine(case: Case, method: str, chunk_size: int | None = None) -> Callable:
    return lambda *leaves: scan(case.monoid, leaves, method=method, chunk_size=chunk_size)[0]


def floor(case: Case) -> Callable:
    """One elementwise pass over the same bytes: the step's multiply-add applied to the update."""
    return lambda *leaves: case.monoid.apply(leaves, leaves[-1])


def naive_lax_scan(case: Case) -> Callable:
    def run(*leaves):
        steps = tuple(jnp.moveaxis(x, 1, 0) for x in leaves)
        start = case.monoid.empty_state(tuple(x[0] for x in steps))

        def step(state, leaf):
            state = case.monoid.apply(leaf, state)
            return state, state

        return jnp.moveaxis(lax.scan(step, start, steps)[1], 0, 1)

    return run


def plain_associative(case: Case) -> Callable:
    """lax.associative_scan of the monoid's combine, differentiated by plain autodiff."""
    monoid = case.monoid
    return lambda *leaves: monoid.state_of(lax.associative_scan(monoid.combine, monoid.expand(leaves), axis=1))


def gradient_of(method: str) -> str:
    """How the engine differentiates a diagonal scan through `method`."""
    uses_vjp = getattr(diagonal_vjp, "uses_reverse_scan_vjp", lambda _: True)(method)
    return "reverse-scan VJP" if uses_vjp else "JAX autodiff"


def candidates(case: Case, length: int, with_auto: bool) -> dict[str, Callable]:
    fns = {m.name: engine(case, m.method, m.chunk_size) for m in engine_methods(length)}
    if with_auto:
        fns[AUTO] = engine(case, "auto")
    fns[FLOOR] = floor(case)
    fns[NAIVE] = naive_lax_scan(case)
    return fns


def for_pass(fn: Callable, pass_: str, n_leaves: int = 2) -> Callable:
    """`fn(*leaves) -> states` as the forward pass, or the gradient of sum(states · cotangent)."""
    if pass_ == FORWARD:
        return fn

    def loss(*args):
        *leaves, cotangent = args
        return jnp.sum(fn(*leaves) * cotangent)

    return jax.grad(loss, argnums=tuple(range(n_leaves)))


def pass_args(leaves, cotangent, pass_: str) -> tuple:
    return tuple(leaves) if pass_ == FORWARD else (*leaves, cotangent)


def auto_label(size: Size) -> tuple[str, int]:
    """(column label, chunk size) of what `method="auto"` runs at this size, e.g. ("chunked64", 64)."""
    method, chunk = auto.choose(size.case.monoid.family, size.length, size.lanes)
    return (f"chunked{chunk}" if method == "chunked" else method), chunk


# --- measuring ----------------------------------------------------------------------------------


def time_group(size: Size, pass_: str, fns: dict[str, Callable], timing: benchlib.Timing, seed: int) -> dict:
    """Compile each function's `pass_` for this size's inputs, then time them all interleaved."""
    leaves, cotangent = size.inputs()
    args = pass_args(leaves, cotangent, pass_)
    fns = {name: for_pass(fn, pass_) for name, fn in fns.items()}
    return benchlib.compile_and_time(fns, args, timing, seed)


def measure(size: Size, pass_: str, timing: benchlib.Timing, with_auto: bool, seed: int) -> dict:
    group = time_group(size, pass_, candidates(size.case, size.length, with_auto), timing, seed)
    methods = [m.name for m in engine_methods(size.length)]
    record = {
        "case": size.case.name,
        "pass": pass_,
        "length": size.length,
        "shape": size.describe(),
        "shapes": {"decay": list(size.shapes[0]), "state": list(size.shapes[1])},
        "elements": size.elements,
        "lanes": size.lanes,
        "methods": methods,
        "best": benchlib.fastest(group["median_s"], among=methods),
        **group,
    }
    if with_auto:
        record["auto"] = auto_record(size, group, record["best"], "in the same rounds as the methods")
    return record


def auto_record(size: Size, group: dict, best: str, measured: str) -> dict:
    times = group["median_s"]
    label, chunk = auto_label(size)
    return {
        "method": label, "chunk_size": chunk, "measured": measured,
        "median_s": times[AUTO], "best_median_s": times[best], "floor_median_s": times[FLOOR],
        "ratio_to_best": times[AUTO] / times[best], "ratio_to_floor": times[AUTO] / times[FLOOR],
        "compile_s": group["compile_s"][AUTO], "timed_once": AUTO in group["timed_once"],
    }


def remeasure_auto(record: dict, size: Size, timing: benchlib.Timing, seed: int) -> None:
    """Time auto (with the table as it is now) against the row's best method and the floor."""
    best = method_named(size.length, record["best"])
    fns = {AUTO: engine(size.case, "auto"), best.name: engine(size.case, best.method, best.chunk_size),
           FLOOR: floor(size.case)}
    group = time_group(size, record["pass"], fns, timing, seed)
    record["auto"] = auto_record(size, group, best.name, "after --write-auto, against the best method")
    record["auto"]["rounds_s"] = group["rounds_s"]


def measure_memory(case: Case, length: int, total: int) -> dict:
    """Compiled temporary memory of forward+backward: the engine's methods against plain autodiff."""
    size = Size.of(case, length, total)
    leaves, cotangent = size.inputs()
    args = pass_args(leaves, cotangent, TRAIN)
    variants = [
        (f"engine sequential ({gradient_of('sequential')})", engine(case, "sequential")),
        (f"engine associative ({gradient_of('associative')})", engine(case, "associative")),
        (f"engine chunked64 ({gradient_of('chunked')})", engine(case, "chunked", 64)),
        ("lax.associative_scan (JAX autodiff)", plain_associative(case)),
        ("lax.scan, naive_lax_scan (JAX autodiff)", naive_lax_scan(case)),
    ]
    rows = []
    for name, fn in variants:
        compiled, _ = benchlib.compile_timed(for_pass(fn, TRAIN), *args)
        temp, source = benchlib.temp_bytes(compiled, run=lambda c=compiled: c(*args))
        rows.append({"variant": name, "temp_bytes": temp, "source": source,
                     "bytes_per_element": None if temp is None else temp / size.elements})
    return {"case": case.name, "length": length, "shape": size.describe(), "elements": size.elements,
            "rows": rows}


# --- auto_methods.json --------------------------------------------------------------------------


def auto_rows(records: list[dict], family_of: dict[str, str]) -> dict[str, list[dict]]:
    """Per family, one row per measured size: the forward pass's fastest method and chunk size."""
    rows: dict[str, list[dict]] = {}
    for record in records:
        if record["pass"] != FORWARD:
            continue
        times = record["median_s"]
        chunked = [m for m in engine_methods(record["length"]) if m.chunk_size is not None]
        best_chunk = min(chunked, key=lambda m: times[m.name]).chunk_size if chunked else auto.DEFAULT_CHUNK_SIZE
        best = method_named(record["length"], record["best"])
        rows.setdefault(family_of[record["case"]], []).append(
            {"length": record["length"], "lanes": record["lanes"], "method": best.method, "chunk_size": best_chunk})
    return {family: sorted(r, key=lambda row: (row["length"], row["lanes"])) for family, r in rows.items()}


# --- reporting ----------------------------------------------------------------------------------


ONCE = "†"


def ratio(x: float | None, once: bool = False) -> str:
    return "–" if x is None else f"{x:.2f}" + (ONCE if once else "")


def run_table(records: list[dict], columns: list[str]) -> str:
    header = ["T", "shape", "best", "best ms", "floor ms", *columns, NAIVE, AUTO,
              "best/floor", "auto/floor", "naive/floor"]
    rows = []
    for r in records:
        times, best, auto_ = r["median_s"], r["best"], r["auto"]
        to_best = {c: ratio(times[c] / times[best], c in r["timed_once"]) for c in times}
        rows.append([
            r["length"], r["shape"], best, f"{times[best] * 1e3:.3g}", f"{times[FLOOR] * 1e3:.3g}",
            *(to_best.get(c, "–") for c in columns), to_best[NAIVE],
            f"{ratio(auto_['ratio_to_best'], auto_['timed_once'])} ({auto_['method']})",
            ratio(times[best] / times[FLOOR]), ratio(auto_["ratio_to_floor"]), ratio(times[NAIVE] / times[FLOOR]),
        ])
    return benchlib.markdown_table(header, rows)


def compile_table(records: list[dict], columns: list[str]) -> str:
    header = ["T", *columns, AUTO, FLOOR, NAIVE]
    rows = [[r["length"], *(f"{r['compile_s'][c]:.2f}" if c in r["compile_s"] else "–" for c in columns),
             f"{r['auto']['compile_s']:.2f}", f"{r['compile_s'][FLOOR]:.2f}", f"{r['compile_s'][NAIVE]:.2f}"]
            for r in records]
    return benchlib.markdown_table(header, rows)


def memory_table(memory: dict) -> str:
    def cells(row):
        if row["temp_bytes"] is None:
            return ["–", "–", "–"]
        per = row["bytes_per_element"]
        return [f"{row['temp_bytes'] / 2**20:.1f}", f"{per:.1f}", f"{per / 4:.2f}"]

    rows = [[row["variant"], *cells(row)] for row in memory["rows"]]
    return benchlib.markdown_table(["forward+backward", "temp MiB", "bytes / element", "float32s / element"], rows)


def targets(records: list[dict]) -> list[dict]:
    """The issue's targets: auto ≤ 1.1× best everywhere; diagonal forward ≤ 1.5× floor at ≥ 2^22."""
    checks = []
    for r in records:
        where = f"{r['case']} {r['pass']} T={r['length']}"
        checks.append({"target": f"auto ≤ {AUTO_TARGET}× best", "where": where,
                       "value": r["auto"]["ratio_to_best"], "met": r["auto"]["ratio_to_best"] <= AUTO_TARGET})
        if r["case"] == "diagonal" and r["pass"] == FORWARD and r["elements"] >= 2**22:
            value = r["auto"]["ratio_to_floor"]
            checks.append({"target": f"diagonal forward (auto) ≤ {FLOOR_TARGET}× floor", "where": where,
                           "value": value, "met": value <= FLOOR_TARGET})
    return checks


def targets_text(checks: list[dict]) -> str:
    lines = []
    for target in dict.fromkeys(c["target"] for c in checks):
        group = [c for c in checks if c["target"] == target]
        missed = [f"{c['where']} ({c['value']:.2f})" for c in group if not c["met"]]
        worst = max(group, key=lambda c: c["value"])
        verdict = "met" if not missed else "missed at " + ", ".join(missed)
        lines.append(f"- {target}: {verdict}; worst {worst['value']:.2f} at {worst['where']}.")
    if not any("floor" in c["target"] for c in checks):
        lines.append(f"- diagonal forward ≤ {FLOOR_TARGET}× floor: not measured here "
                     "(no size with B·T·D ≥ 2^22).")
    return "\n".join(lines)


def any_once(records: list[dict]) -> bool:
    return any(r["timed_once"] or r["auto"]["timed_once"] for r in records)


def report(results: dict) -> str:
    records = results["records"]
    parts = [
        f"{benchlib.run_line(results)} {results['settings']['rounds']} interleaved rounds.",
        "Method columns: median time / the fastest engine method's (1.00 = best). `x/floor`: median / "
        "the memory floor (one elementwise multiply-add pass over the same bytes). `auto` shows what "
        f"it picked; auto measured {records[0]['auto']['measured']}."
        + (f" {ONCE}: timed by a single call, not in every round (one call took over "
           f"{results['settings']['max_call_seconds']} s)." if any_once(records) else ""),
    ]
    for case in dict.fromkeys(r["case"] for r in records):
        for pass_ in PASSES:
            group = [r for r in records if r["case"] == case and r["pass"] == pass_]
            if not group:
                continue
            columns = list(dict.fromkeys(m for r in group for m in r["methods"]))
            parts.append(f"### {case}, {pass_}: time / best\n\n" + run_table(group, columns))
            parts.append(f"### {case}, {pass_}: compile seconds\n\n" + compile_table(group, columns))
    memory = results["memory"]
    parts.append(
        f"### Forward+backward temporary memory, {memory['case']} T={memory['length']} {memory['shape']}\n\n"
        + memory_table(memory)
        + f"\n\nbytes / element: temp bytes / B·T·D ({memory['elements']}); "
        f"measured by {memory['rows'][0]['source']}.")
    parts.append("### Targets\n\n" + targets_text(results["targets"]))
    if results.get("auto_table_written"):
        parts.append(f"`{auto.TABLE.relative_to(ROOT)}` rewritten from the forward tables above "
                     f"(`--write-auto`).")
    return "\n\n".join(parts)


# --- command line -------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: T ∈ {QUICK_SIZES}, {QUICK_TOTAL} elements, 3 rounds, no BENCHMARKS.md")
    parser.add_argument("--sizes", type=int, nargs="+", help="sequence lengths T to measure")
    benchlib.add_output_arguments(parser, default_rounds=7, quick_rounds=3, results_name="bench_scan")
    parser.add_argument("--write-auto", action="store_true", help=f"rewrite {auto.TABLE.relative_to(ROOT)}")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    total = QUICK_TOTAL if quick else TOTAL
    sizes = tuple(args.sizes or (QUICK_SIZES if quick else SIZES))
    timing = benchlib.Timing(rounds=args.rounds or (3 if quick else 7), min_seconds=0.01 if quick else 0.1,
                    max_calls=10 if quick else 20, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "bench_scan")

    records, sized = [], []
    for case in CASES:
        for length in sizes:
            size = Size.of(case, length, total)
            for pass_ in PASSES:
                benchlib.progress(f"{case.name} T={length} {size.describe()} {pass_}")
                records.append(measure(size, pass_, timing, with_auto=not args.write_auto, seed=len(records)))
                sized.append(size)

    written = None
    if args.write_auto:
        written = auto_rows(records, {c.name: c.monoid.family for c in CASES})
        auto.replace_families(written)
        for record, size in zip(records, sized):
            benchlib.progress(f"auto {size.case.name} T={size.length} {record['pass']}")
            remeasure_auto(record, size, timing, seed=len(records) + size.length)

    benchlib.progress("memory")
    memory = measure_memory(CASES[0], QUICK_MEMORY_LENGTH if quick else MEMORY_LENGTH, total)
    results = {
        **benchlib.run_header("experiments/bench_scan.py", argv, out, ROOT),
        "settings": {"total_elements": total, "sizes": list(sizes), "chunks": list(CHUNKS), "quick": quick,
                     **dataclasses.asdict(timing)},
        "records": records,
        "memory": memory,
        "auto_table_written": written and {jax.default_backend(): written},
    }
    results["targets"] = targets(records)
    text = report(results)
    benchlib.publish(results, text, out, markdown, SECTION)
    return results


if __name__ == "__main__":
    main()

"""Benchmark of the scan-defined cells (the diagonal ones, and the block-diagonal LRNN on the
dense monoid): `cell.forward` through the engine against the same cell stepped by a plain
`lax.scan` loop.

    python experiments/bench_cells.py             # B=8, T ∈ {1024, 8192}, D=256; writes BENCHMARKS.md
    python experiments/bench_cells.py --quick     # smoke test, seconds; touches no BENCHMARKS.md
    python experiments/bench_cells.py --cells lru mamba --sizes 1024
    python experiments/bench_cells.py --write-auto    # also record where "auto" streams

What is measured, per registered cell (built at width D by `CONFIGS`, or `cls(d_in=D)`), at each
T, for the forward pass (jit of `forward` returning y and the final state) and for
forward+backward (jit of the gradient of sum(y·c) w.r.t. the params and x, c a fixed random
cotangent):

  sequential, associative         cell.forward(params, x, method=...): the whole sequence's
                                  elements and states through lrnn.scan at once
  streamed_C (C ∈ 32, 64, 128)    cell.forward(params, x, method="streamed", chunk_size=C):
                                  elements, scan and readout chunk by chunk (scan-defined cells;
                                  a matrix cell's forward is chunkwise already, so "–")
  whole                           the whole-sequence scan with the method the engine's "auto"
                                  picks for this size (a matrix cell: its chunkwise forward, "auto")
  auto                            what method="auto" runs, by the table after this run (with
                                  --write-auto, the new one): whole or one of the streamed_C; its
                                  time is that candidate's, from the same rounds
  step_loop                       the baseline: x moved to time-major, `lax.scan` over
                                  `cell.step` token by token, y moved back — what a user writes
                                  without the engine (its gradient is JAX's autodiff of lax.scan)

--write-auto records in `lrnn/scan/auto_methods.json`, for this backend and every scan-defined
cell measured, family "cell:<name>", the forward and forward+backward seconds of "whole" and of
each "streamed_C"; `method="auto"` streams where the cost model fitted to them predicts a stream's
forward plus forward+backward time below the whole scan's.

Memory: the compiled temporary memory (XLA's memory_analysis) of forward+backward with the
whole-sequence scan and streamed at C = 64, for the state-expanded cells (S4D, Mamba) at
T ∈ {2048, 8192}: the whole scan's grows with N·T, the stream's must not.

Time: the median per-call time over interleaved rounds (`benchlib.interleaved`; a shared CPU is
noisy). The table gives each engine method as a speed-up over the step loop (step_loop time /
method time: above 1 is faster than the loop) and the step loop's own milliseconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from experiments import benchlib  # noqa: E402
from lrnn import cells  # noqa: E402
from lrnn.cells import streamed  # noqa: E402
from lrnn.scan import DenseMonoid, DiagonalMonoid, LogDiagonalMonoid, auto  # noqa: E402

BATCH, WIDTH, SIZES = 8, 256, (1024, 8192)
QUICK_BATCH, QUICK_WIDTH, QUICK_SIZES = 2, 16, (64, 256)
WHOLE_METHODS = ("sequential", "associative")
STREAM_CHUNKS = (32, 64, 128)
STREAMED = tuple(f"streamed_{c}" for c in STREAM_CHUNKS)
AUTO, WHOLE = "auto", "whole"
METHODS = (AUTO, WHOLE, *WHOLE_METHODS, *STREAMED)  # the report's columns
LOOP = "step_loop"
MEMORY_CELLS, MEMORY_SIZES, MEMORY_CHUNK = ("s4d", "mamba"), (2048, 8192), 64
FORWARD, TRAIN = "forward", "forward+backward"
SECTION = "## Cells (experiments/bench_cells.py)"

# Sizes beyond the width for the cells that have them. S4D and Mamba keep N states per channel,
# so their per-token state is D·N: N = 16 (Mamba's default; 8 complex modes for S4D).
CONFIGS = {
    "lru": lambda d: cells.get_cell("lru")(d_in=d, d_state=d),
    "s4d": lambda d: cells.get_cell("s4d")(d_in=d, d_state=16),
    "s5": lambda d: cells.get_cell("s5")(d_in=d, d_state=d),
    "mingru": lambda d: cells.get_cell("mingru")(d_in=d, d_hidden=d),
    "minlstm": lambda d: cells.get_cell("minlstm")(d_in=d, d_hidden=d),
    "mamba": lambda d: cells.get_cell("mamba")(d_in=d, d_state=16),
}


def build(name: str, width: int):
    return CONFIGS[name](width) if name in CONFIGS else cells.get_cell(name)(d_in=width)


def default_cells() -> list[str]:
    """Every registered scan-defined cell on a diagonal or dense monoid (the diagonal cells and the
    block-diagonal LRNN; not Aaren's softmax monoid), then Mamba-2 (a matrix cell, beside Mamba)
    where it is registered."""
    scanned = (DiagonalMonoid, LogDiagonalMonoid, DenseMonoid)
    names = [name for name, cls in cells.registered_cells().items()
             if not issubclass(cls, cells.MatrixCell) and isinstance(build(name, 8).monoid, scanned)]
    return names + [name for name in ("mamba2",) if name in cells.registered_cells()]


def streams(cell) -> bool:
    return not isinstance(cell, cells.MatrixCell)


def step_loop(cell, params, x):
    """The cell stepped token by token with lax.scan: (y (B, T, d_out), final state)."""
    def body(state, x_t):
        y_t, state = cell.step(params, state, x_t)
        return state, y_t

    start = cell.initial_state((x.shape[0],), x.dtype)
    stepped = jax.eval_shape(lambda s: cell.step(params, s, x[:, 0])[1], start)  # the params' precision
    final, ys = lax.scan(body, start.astype(stepped.dtype), jnp.moveaxis(x, 1, 0))
    return jnp.moveaxis(ys, 0, 1), final


def engine_choice(cell, batch: int, length: int) -> tuple[str, int | None]:
    """(method, chunk_size) the engine's "auto" picks for the whole-sequence scan of `cell`."""
    if not streams(cell):
        return AUTO, None
    return auto.choose(cell.monoid.family, length, streamed.lanes(cell, batch))


def candidates(cell, batch: int, length: int):
    """{name: forward(params, x) -> (y, final)}."""
    method, chunk_size = engine_choice(cell, batch, length)
    runs = {WHOLE: lambda p, x: cell.forward(p, x, method=method, chunk_size=chunk_size)}
    runs.update({m: (lambda p, x, m=m: cell.forward(p, x, method=m)) for m in WHOLE_METHODS})
    if streams(cell):
        for name, c in zip(STREAMED, STREAM_CHUNKS):
            if length % c == 0:
                runs[name] = lambda p, x, c=c: cell.forward(p, x, method="streamed", chunk_size=c)
    runs[LOOP] = lambda p, x: step_loop(cell, p, x)
    return runs


def for_pass(forward, pass_: str):
    """fn(params, x, cotangent): the forward pass, or the gradient of sum(y·cotangent) w.r.t.
    params and x (the cotangent is an argument, not a constant baked into the program)."""
    if pass_ == FORWARD:
        return lambda params, x, cotangent: forward(params, x)

    def loss(params, x, cotangent):
        return jnp.sum(forward(params, x)[0] * cotangent)
    return jax.grad(loss, argnums=(0, 1))


def measure(name: str, cell, batch: int, length: int, timing: benchlib.Timing, seed: int) -> list[dict]:
    key_p, key_x, key_c = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = cell.init(key_p)
    x = jax.random.normal(key_x, (batch, length, cell.d_in), jnp.float32)
    cotangent = jax.random.normal(key_c, (batch, length, cell.d_out), jnp.float32)
    records = []
    for pass_ in (FORWARD, TRAIN):
        benchlib.progress(f"{name} T={length} {pass_}")
        fns = {method: for_pass(forward, pass_) for method, forward in candidates(cell, batch, length).items()}
        records.append({"cell": name, "config": repr(cell), "batch": batch, "length": length,
                        "width": cell.d_in, "pass": pass_, "lanes": streamed.lanes(cell, batch),
                        **benchlib.compile_and_time(fns, (params, x, cotangent), timing, seed)})
    return records


def stream_points(records: list[dict]) -> dict[str, list[dict]]:
    """{"cell:<name>": points} for --write-auto: per scan-defined cell, length and pass, the
    seconds of the whole-sequence scan and of each stream (`lrnn.scan.auto`'s point format);
    `streamed.choose` streams where its forward plus forward+backward time is predicted lower."""
    rows: dict[str, list[dict]] = {}
    for r in records:
        if not any(m in r["median_s"] for m in STREAMED):
            continue
        seconds = {m: r["median_s"][m] for m in (WHOLE, *STREAMED) if m in r["median_s"]}
        rows.setdefault(streamed.FAMILY_PREFIX + r["cell"], []).append(
            {"length": r["length"], "lanes": r["lanes"], "dtype": "float32", "pass": r["pass"], "seconds": seconds})
    return rows


def with_auto(records: list[dict]) -> None:
    """Each record's "auto" time: that of the candidate `method="auto"` now picks (same rounds)."""
    for r in records:
        cell = build(r["cell"], r["width"])
        method, chunk_size = streamed.choose(cell, (r["batch"], r["length"]), AUTO, None) if streams(cell) \
            else (AUTO, None)
        picked = f"streamed_{chunk_size}" if method == streamed.METHOD else WHOLE
        r["auto_picks"] = picked
        r["median_s"][AUTO] = r["median_s"].get(picked, r["median_s"][WHOLE])


def training_memory(name: str, width: int, batch: int, lengths) -> list[dict]:
    """Compiled temp bytes of forward+backward, whole-sequence scan vs streamed (C = 64)."""
    cell = build(name, width)
    params = cell.init(jax.random.PRNGKey(0))
    rows = []
    for length in lengths:
        args = (params, jax.ShapeDtypeStruct((batch, length, width), jnp.float32),
                jax.ShapeDtypeStruct((batch, length, cell.d_out), jnp.float32))
        method, chunk_size = engine_choice(cell, batch, length)
        forwards = {WHOLE: lambda p, x: cell.forward(p, x, method=method, chunk_size=chunk_size),
                    f"streamed_{MEMORY_CHUNK}": lambda p, x: cell.forward(p, x, method="streamed",
                                                                          chunk_size=MEMORY_CHUNK)}
        for label, forward in forwards.items():
            benchlib.progress(f"memory {name} T={length} {label}")
            compiled = jax.jit(for_pass(forward, TRAIN)).lower(*args).compile()
            temp, how = benchlib.temp_bytes(compiled)
            rows.append({"cell": name, "config": repr(cell), "length": length, "method": label,
                         "temp_bytes": temp, "measured_by": how,
                         "per_token_state_bytes": batch * streamed.lanes(cell, 1) * 4})
    return rows


def _speedup(record, method):
    if method not in record["median_s"]:
        return "–"
    loop = record["median_s"][LOOP]
    return f"{loop / record['median_s'][method]:.2f}" + ("†" if method in record["timed_once"] else "")


def report(results: dict) -> str:
    settings = results["settings"]
    parts = [
        f"{benchlib.run_line(results)} B={settings['batch']}, D={settings['width']}, float32; medians of "
        f"{settings['rounds']} interleaved rounds.",
        "Each column is the step loop's time divided by the method's (above 1: faster than stepping the "
        "cell with `lax.scan`); `step_loop ms` is the loop's own median; † timed once (slower than "
        f"{settings['max_call_seconds']} s a call). `whole`: the whole-sequence scan by the engine's "
        "auto choice; `streamed_C`: `method=\"streamed\", chunk_size=C`; `auto`: what `method=\"auto\"` "
        "runs after this run" + (" (with the table it wrote)" if settings.get("write_auto") else "")
        + ", its pick in the last column. Configurations: "
        + "; ".join(sorted({f"`{r['config']}`" for r in results["records"]})) + ".",
    ]
    for pass_ in (FORWARD, TRAIN):
        rows = [[r["cell"], r["length"], *(_speedup(r, m) for m in METHODS),
                 f"{1e3 * r['median_s'][LOOP]:.1f}", r["auto_picks"]]
                for r in results["records"] if r["pass"] == pass_]
        parts.append(f"**{pass_}**\n\n" + benchlib.markdown_table(
            ["cell", "T", *(f"{m} ×" for m in METHODS), f"{LOOP} ms", "auto runs"], rows))
    if results.get("memory"):
        rows = [[m["cell"], m["length"], m["method"], f"{m['temp_bytes'] / 2**20:.1f}",
                 f"{m['length'] * m['per_token_state_bytes'] / 2**20:.1f}"] for m in results["memory"]]
        parts.append(f"**compiled temp memory of forward+backward** (`memory_analysis`, B={settings['batch']}, "
                     f"float32; the last column is one copy of every token's state, B·T·state·4 bytes)\n\n"
                     + benchlib.markdown_table(["cell", "T", "method", "temp MiB", "per-token states MiB"], rows))
    return "\n\n".join(parts)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: B={QUICK_BATCH}, D={QUICK_WIDTH}, T ∈ {QUICK_SIZES}, no BENCHMARKS.md")
    parser.add_argument("--cells", nargs="+",
                        help="registered cell names (default: the diagonal ones, block_diagonal and mamba2)")
    parser.add_argument("--sizes", type=int, nargs="+", help="sequence lengths T")
    parser.add_argument("--write-auto", action="store_true",
                        help="record in lrnn/scan/auto_methods.json where method='auto' streams (not with --quick)")
    parser.add_argument("--no-memory", action="store_true", help="skip the compiled-memory table")
    benchlib.add_output_arguments(parser, default_rounds=5, quick_rounds=2, results_name="bench_cells")
    args = parser.parse_args(argv)
    if args.write_auto and args.quick:
        parser.error("--write-auto records measurements at the real sizes; it cannot be combined with --quick")
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    batch, width = (QUICK_BATCH, QUICK_WIDTH) if quick else (BATCH, WIDTH)
    sizes = tuple(args.sizes or (QUICK_SIZES if quick else SIZES))
    names = args.cells or default_cells()
    for name in names:
        cells.get_cell(name)  # an unknown name fails before anything is measured
    timing = benchlib.Timing(rounds=args.rounds or (2 if quick else 5), min_seconds=0.01 if quick else 0.1,
                    max_calls=5 if quick else 10, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "bench_cells")

    records = []
    for name in names:
        cell = build(name, width)
        for length in sizes:
            records += measure(name, cell, batch, length, timing, seed=len(records))
    if args.write_auto:
        auto.merge_points(stream_points(records))
    with_auto(records)
    memory = []
    if not args.no_memory:
        memory_sizes = (256, 1024) if quick else MEMORY_SIZES
        for name in (n for n in MEMORY_CELLS if n in names):
            memory += training_memory(name, width, batch, memory_sizes)
    results = {
        **benchlib.run_header("experiments/bench_cells.py", argv, out, ROOT),
        "settings": {"batch": batch, "width": width, "sizes": list(sizes), "quick": quick,
                     "write_auto": args.write_auto, **dataclasses.asdict(timing)},
        "records": records,
        "memory": memory,
    }
    text = report(results)
    benchlib.publish(results, text, out, markdown, SECTION)
    return results


if __name__ == "__main__":
    main()

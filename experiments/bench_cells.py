"""Benchmark of the diagonal cells: `cell.forward` through the engine against the same cell
stepped by a plain `lax.scan` loop.

    python experiments/bench_cells.py             # B=8, T ∈ {1024, 8192}, D=256; writes BENCHMARKS.md
    python experiments/bench_cells.py --quick     # smoke test, seconds; touches no BENCHMARKS.md
    python experiments/bench_cells.py --cells lru mamba --sizes 1024

What is measured, per registered cell (built at width D by `CONFIGS`, or `cls(d_in=D)`), at each
T, for the forward pass (jit of `forward` returning y and the final state) and for
forward+backward (jit of the gradient of sum(y·c) w.r.t. the params and x, c a fixed random
cotangent):

  auto, sequential, associative   cell.forward(params, x, method=...) through lrnn.scan
  step_loop                       the baseline: x moved to time-major, `lax.scan` over
                                  `cell.step` token by token, y moved back — what a user writes
                                  without the engine (its gradient is JAX's autodiff of lax.scan)

Time: the median per-call time over interleaved rounds (`benchlib.interleaved`; a shared CPU is
noisy). The table gives each engine method as a speed-up over the step loop (step_loop time /
method time: above 1 is faster than the loop) and the step loop's own milliseconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from experiments import benchlib  # noqa: E402
from lrnn import cells  # noqa: E402

BATCH, WIDTH, SIZES = 8, 256, (1024, 8192)
QUICK_BATCH, QUICK_WIDTH, QUICK_SIZES = 2, 16, (64, 256)
METHODS = ("auto", "sequential", "associative")
LOOP = "step_loop"
FORWARD, TRAIN = "forward", "forward+backward"
SECTION = "## Cells (experiments/bench_cells.py)"
RESULTS = ROOT / "experiments" / "results"

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


def step_loop(cell, params, x):
    """The cell stepped token by token with lax.scan: (y (B, T, d_out), final state)."""
    def body(state, x_t):
        y_t, state = cell.step(params, state, x_t)
        return state, y_t

    start = cell.initial_state((x.shape[0],), x.dtype)
    stepped = jax.eval_shape(lambda s: cell.step(params, s, x[:, 0])[1], start)  # the params' precision
    final, ys = lax.scan(body, start.astype(stepped.dtype), jnp.moveaxis(x, 1, 0))
    return jnp.moveaxis(ys, 0, 1), final


def candidates(cell):
    """{name: forward(params, x) -> (y, final)}."""
    runs = {m: (lambda p, x, m=m: cell.forward(p, x, method=m)) for m in METHODS}
    runs[LOOP] = lambda p, x: step_loop(cell, p, x)
    return runs


def training(forward, cotangent):
    def loss(params, x):
        return jnp.sum(forward(params, x)[0] * cotangent)
    return jax.grad(loss, argnums=(0, 1))


@dataclasses.dataclass(frozen=True)
class Timing:
    rounds: int
    min_seconds: float
    max_calls: int
    max_call_seconds: float


def measure(name: str, cell, batch: int, length: int, timing: Timing, seed: int) -> list[dict]:
    key_p, key_x, key_c = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = cell.init(key_p)
    x = jax.random.normal(key_x, (batch, length, cell.d_in), jnp.float32)
    cotangent = jax.random.normal(key_c, (batch, length, cell.d_out), jnp.float32)
    records = []
    for pass_ in (FORWARD, TRAIN):
        progress(f"{name} T={length} {pass_}")
        runs, compile_seconds = {}, {}
        for method, forward in candidates(cell).items():
            fn = forward if pass_ == FORWARD else training(forward, cotangent)
            compiled, compile_seconds[method] = benchlib.compile_timed(fn, params, x)
            runs[method] = lambda compiled=compiled: compiled(params, x)
        samples, once = benchlib.interleaved(runs, timing.rounds, min_seconds=timing.min_seconds,
                                             max_calls=timing.max_calls,
                                             max_call_seconds=timing.max_call_seconds, seed=seed)
        records.append({"cell": name, "config": repr(cell), "batch": batch, "length": length,
                        "width": cell.d_in, "pass": pass_, "seconds": benchlib.medians(samples),
                        "samples": samples, "timed_once": once, "compile_seconds": compile_seconds})
    return records


def report(results: dict) -> str:
    env, settings = results["environment"], results["settings"]
    parts = [
        f"Setup: {env['cpu']}, {env['cores']} cores, jax {env['jax']} ({env['backend']}), "
        f"B={settings['batch']}, D={settings['width']}, float32; medians of {settings['rounds']} "
        f"interleaved rounds. Command: `{results['command']}`; raw numbers: `{results['results_file']}`.",
        "Each engine column is the step loop's time divided by the method's (above 1: faster than "
        "stepping the cell with `lax.scan`); `step_loop ms` is the loop's own median. Configurations: "
        + "; ".join(sorted({f"`{r['config']}`" for r in results["records"]})) + ".",
    ]
    for pass_ in (FORWARD, TRAIN):
        rows = []
        for r in (r for r in results["records"] if r["pass"] == pass_):
            loop = r["seconds"][LOOP]
            speedups = [f"{loop / r['seconds'][m]:.2f}" + ("†" if m in r["timed_once"] else "") for m in METHODS]
            rows.append([r["cell"], r["length"], *speedups, f"{1e3 * loop:.1f}"])
        parts.append(f"**{pass_}**\n\n" + benchlib.markdown_table(
            ["cell", "T", *(f"{m} ×" for m in METHODS), f"{LOOP} ms"], rows))
    return "\n\n".join(parts)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: B={QUICK_BATCH}, D={QUICK_WIDTH}, T ∈ {QUICK_SIZES}, no BENCHMARKS.md")
    parser.add_argument("--cells", nargs="+", help="registered cell names (default: all)")
    parser.add_argument("--sizes", type=int, nargs="+", help="sequence lengths T")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 5; 2 with --quick)")
    parser.add_argument("--out", type=pathlib.Path, help="results JSON (default experiments/results/bench_cells.json)")
    parser.add_argument("--markdown", type=pathlib.Path,
                        help="markdown file whose cells section to replace (default BENCHMARKS.md; none with --quick)")
    parser.add_argument("--max-call-seconds", type=float, default=5.0,
                        help="a candidate slower than this per call is timed once instead of every round")
    return parser.parse_args(argv)


def progress(what: str, _start=time.perf_counter()) -> None:
    print(f"[{time.perf_counter() - _start:6.1f}s] {what}", file=sys.stderr, flush=True)


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    batch, width = (QUICK_BATCH, QUICK_WIDTH) if quick else (BATCH, WIDTH)
    sizes = tuple(args.sizes or (QUICK_SIZES if quick else SIZES))
    names = args.cells or list(cells.registered_cells())
    for name in names:
        cells.get_cell(name)  # an unknown name fails before anything is measured
    timing = Timing(rounds=args.rounds or (2 if quick else 5), min_seconds=0.01 if quick else 0.1,
                    max_calls=5 if quick else 10, max_call_seconds=args.max_call_seconds)
    out = args.out or RESULTS / ("bench_cells_quick.json" if quick else "bench_cells.json")
    markdown = args.markdown or (None if quick else ROOT / "BENCHMARKS.md")

    records = []
    for name in names:
        cell = build(name, width)
        for length in sizes:
            records += measure(name, cell, batch, length, timing, seed=len(records))
    results = {
        "command": " ".join(["python experiments/bench_cells.py", *(argv if argv is not None else sys.argv[1:])]),
        "results_file": str(out.resolve().relative_to(ROOT)) if out.resolve().is_relative_to(ROOT) else str(out),
        "environment": benchlib.environment(),
        "settings": {"batch": batch, "width": width, "sizes": list(sizes), "quick": quick,
                     **dataclasses.asdict(timing)},
        "records": records,
    }
    text = report(results)
    print(text)
    benchlib.write_json(out, results)
    if markdown is not None:
        benchlib.replace_section(markdown, SECTION, text)
    return results


if __name__ == "__main__":
    main()

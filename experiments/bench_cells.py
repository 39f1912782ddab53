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
        fns = {method: for_pass(forward, pass_) for method, forward in candidates(cell).items()}
        records.append({"cell": name, "config": repr(cell), "batch": batch, "length": length,
                        "width": cell.d_in, "pass": pass_,
                        **benchlib.compile_and_time(fns, (params, x, cotangent), timing, seed)})
    return records


def report(results: dict) -> str:
    settings = results["settings"]
    parts = [
        f"{benchlib.run_line(results)} B={settings['batch']}, D={settings['width']}, float32; medians of "
        f"{settings['rounds']} interleaved rounds.",
        "Each engine column is the step loop's time divided by the method's (above 1: faster than "
        "stepping the cell with `lax.scan`); `step_loop ms` is the loop's own median. Configurations: "
        + "; ".join(sorted({f"`{r['config']}`" for r in results["records"]})) + ".",
    ]
    for pass_ in (FORWARD, TRAIN):
        rows = []
        for r in (r for r in results["records"] if r["pass"] == pass_):
            loop = r["median_s"][LOOP]
            speedups = [f"{loop / r['median_s'][m]:.2f}" + ("†" if m in r["timed_once"] else "") for m in METHODS]
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
    benchlib.add_output_arguments(parser, default_rounds=5, quick_rounds=2, results_name="bench_cells")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    batch, width = (QUICK_BATCH, QUICK_WIDTH) if quick else (BATCH, WIDTH)
    sizes = tuple(args.sizes or (QUICK_SIZES if quick else SIZES))
    names = args.cells or list(cells.registered_cells())
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
    results = {
        **benchlib.run_header("experiments/bench_cells.py", argv, out, ROOT),
        "settings": {"batch": batch, "width": width, "sizes": list(sizes), "quick": quick,
                     **dataclasses.asdict(timing)},
        "records": records,
    }
    text = report(results)
    benchlib.publish(results, text, out, markdown, SECTION)
    return results


if __name__ == "__main__":
    main()

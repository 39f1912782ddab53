"""Benchmark of the nonlinear cells' Newton solves (DEER and quasi-DEER, `lrnn.cells.deer`) against
their step loop: iterations to converge, accuracy, and time.

    python experiments/bench_deer.py            # B=4, D=16, T ∈ {256, 4096}; writes BENCHMARKS.md
    python experiments/bench_deer.py --quick    # smoke test, seconds; touches no BENCHMARKS.md
    python experiments/bench_deer.py --cells gru --lengths 1024 --scan-method chunked

For every registered nonlinear cell asked for (default gru, lstm and slstm, the last only if it is
registered), built with d_in = d_hidden = D, at each T, for each solver:

  iterations (f64)   Newton iterations `cell.solve` ran to converge, in float64 (default
                     tolerance 1e-12), on random inputs (x ~ N(0, 1)) from the zero state, with
                     the cell's init params (key 0)
  max |error|        max over y and the final state of |solve − step loop|, both in float64
  iterations (f32)   the same solve in float32 (tolerance 1e-5), the one timed
  solve / loop ms    median per-call time of the jitted float32 solve (`cell.solve(method=
                     --scan-method)`, "associative" by default: the parallel-in-time scan) and of
                     the jitted step loop (`cell.forward(method="sequential")`), timed side by side
                     in interleaved rounds (`benchlib.interleaved`; a shared CPU is noisy)
  loop / solve       the speed-up of the solve over the loop (above 1: the solve is faster)

Every iteration costs a Jacobian of the transition at every token (D Jacobian-vector products,
both solvers) and one scan: for DEER a dense D×D one (O(D³) per combine), for quasi-DEER a
diagonal one. T iterations always suffice (after i iterations the first i states are exact).
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

from experiments import benchlib  # noqa: E402
from lrnn.cells import registered_cells  # noqa: E402
from lrnn.cells.deer import SOLVERS  # noqa: E402

CELLS = ("gru", "lstm", "slstm")
BATCH, WIDTH, LENGTHS = 4, 16, (256, 4096)
QUICK_BATCH, QUICK_WIDTH, QUICK_LENGTHS = 2, 4, (16,)
SECTION = "## Nonlinear cells: DEER and quasi-DEER (experiments/bench_deer.py)"
LOOP = "step_loop"


def build(name: str, width: int, solver: str):
    return registered_cells()[name](d_in=width, d_hidden=width, solver=solver)


def _as(tree, dtype):
    return jax.tree_util.tree_map(lambda a: a.astype(dtype), tree)


def _max_error(got, expected) -> float:
    return max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(got),
                                                             jax.tree_util.tree_leaves(expected)))


def measure(name: str, batch: int, width: int, length: int, scan_method: str, timing: benchlib.Timing,
            seed: int) -> list[dict]:
    """One record per solver: iterations and error in float64, iterations and time in float32."""
    cells = {solver: build(name, width, solver) for solver in SOLVERS}
    params = _as(cells[SOLVERS[0]].init(jax.random.PRNGKey(0)), jnp.float32)  # x64 is on: an init may give float64
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, length, width), jnp.float32)

    def loop(p, x):
        return cells[SOLVERS[0]].forward(p, x, method="sequential")

    def solve(solver):
        return lambda p, x: cells[solver].solve(p, x, method=scan_method)

    loop64 = jax.jit(loop)(_as(params, jnp.float64), x.astype(jnp.float64))
    records = []
    for solver in SOLVERS:
        y64, final64, iterations64 = jax.jit(solve(solver))(_as(params, jnp.float64), x.astype(jnp.float64))
        *_, iterations32 = jax.jit(solve(solver))(params, x)
        records.append({"cell": name, "length": length, "solver": solver, "iterations_float64": int(iterations64),
                        "max_abs_error_float64": _max_error((y64, final64), loop64),
                        "iterations_float32": int(iterations32)})
    timed = {LOOP: loop, **{solver: (lambda p, x, f=solve(solver): f(p, x)[:2]) for solver in SOLVERS}}
    times = benchlib.compile_and_time(timed, (params, x), timing, seed)
    for record in records:
        record.update(solve_s=times["median_s"][record["solver"]], loop_s=times["median_s"][LOOP],
                      compile_s=times["compile_s"][record["solver"]], rounds_s=times["rounds_s"][record["solver"]])
    return records


def report(results: dict) -> str:
    s = results["settings"]
    rows = [[r["cell"], r["length"], r["solver"], r["iterations_float64"], f"{r['max_abs_error_float64']:.1e}",
             r["iterations_float32"], f"{1e3 * r['solve_s']:.2f}", f"{1e3 * r['loop_s']:.2f}",
             f"{r['loop_s'] / r['solve_s']:.2f}"] for r in results["records"]]
    header = ["cell", "T", "solver", "iterations (f64)", "max abs error (f64)", "iterations (f32)", "solve ms",
              "loop ms", "loop / solve"]
    return (f"{benchlib.run_line(results)}\n\n"
            f"B = {s['batch']}, d_in = d_hidden = {s['width']}, init params, x ~ N(0, 1), from the zero state. "
            f"Iterations until |Δh| ≤ tolerance·(1 + |h|) at every entry (1e-12 in float64, 1e-5 in float32); "
            f"the error is the float64 solve's against the float64 step loop (y and final state). Times: "
            f"float32, jitted, the median over {s['rounds']} interleaved rounds; the solve's scans use "
            f"method={s['scan_method']!r}.\n\n" + benchlib.markdown_table(header, rows))


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: B={QUICK_BATCH}, D={QUICK_WIDTH}, T ∈ {QUICK_LENGTHS}, no BENCHMARKS.md")
    parser.add_argument("--cells", nargs="+", help=f"registered nonlinear cells (default: those of {CELLS} registered)")
    parser.add_argument("--lengths", type=int, nargs="+", help="sequence lengths T")
    parser.add_argument("--batch", type=int, help=f"batch size (default {BATCH})")
    parser.add_argument("--width", type=int, help=f"d_in = d_hidden (default {WIDTH})")
    parser.add_argument("--scan-method", default="associative", help="the engine method of the solve's scans")
    benchlib.add_output_arguments(parser, default_rounds=5, quick_rounds=1, results_name="deer")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    jax.config.update("jax_enable_x64", True)  # the float64 runs; the timed ones are float32 explicitly
    quick = args.quick
    batch = args.batch or (QUICK_BATCH if quick else BATCH)
    width = args.width or (QUICK_WIDTH if quick else WIDTH)
    lengths = tuple(args.lengths or (QUICK_LENGTHS if quick else LENGTHS))
    names = args.cells or [name for name in CELLS if name in registered_cells()]
    for name in names:
        if name not in registered_cells():
            raise SystemExit(f"--cells: {name!r} is not a registered cell")
    timing = benchlib.Timing(rounds=args.rounds or (1 if quick else 5), min_seconds=0.01 if quick else 0.1,
                             max_calls=3 if quick else 10, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "deer")
    records = []
    for name in names:
        for length in lengths:
            benchlib.progress(f"{name} T={length}")
            records += measure(name, batch, width, length, args.scan_method, timing, seed=len(records))
    results = {
        **benchlib.run_header("experiments/bench_deer.py", argv, out, ROOT),
        "settings": {"batch": batch, "width": width, "lengths": list(lengths), "scan_method": args.scan_method,
                     "quick": quick, **dataclasses.asdict(timing)},
        "records": records,
    }
    benchlib.publish(results, report(results), out, markdown, SECTION)
    return results


if __name__ == "__main__":
    main()

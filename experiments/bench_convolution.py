"""Benchmark of S4's convolution mode (`forward(..., method="convolution")`, lrnn.cells.convolution)
against the scan methods, for the time-invariant cells.

    python experiments/bench_convolution.py            # B=1, D=32, T = 1K … 64K; writes BENCHMARKS.md
    python experiments/bench_convolution.py --quick    # smoke test, seconds; touches no BENCHMARKS.md
    python experiments/bench_convolution.py --cells s4d lru --sizes 4096

What is measured, per cell at width D (S4D with d_state = 16, i.e. 8 complex modes per channel;
LRU and S5 with D states; RetNet with 4 heads, its default key and value widths), at each T, for
the forward pass (jit of `forward` returning y and the final state) and for forward+backward (jit of
the gradient of sum(y·c) w.r.t. the params and x, c a fixed random cotangent passed as an argument):

  convolution   forward(method="convolution"): FFT of length 2T, no scan (RetNet: its chunkwise form
                with one chunk of T tokens, the parallel form (QKᵀ ⊙ D)V, O(T²) memory)
  associative, chunked, sequential
                forward(method=...): the engine's scan over every token's elements (RetNet: its
                chunkwise form at chunk size 64, the method for the scan across chunks)
  streamed      forward(method="streamed"), default chunk size (scan-defined cells only)
  auto          forward(method="auto")

Memory first: every candidate is compiled and its temporary memory read from XLA's buffer
assignment (`benchlib.temp_bytes`); one above --budget-gib (default 4) is not run ("–" in the
table; RetNet's O(T²) convolution at long T). The others are timed together, interleaved
(`benchlib.interleaved`; a shared CPU is noisy), and compared by their median per-call time. The
table gives the convolution's milliseconds and each scan method's time divided by the
convolution's (above 1: the convolution is faster). Each (cell, T) also records how far the
convolution's y is from the associative scan's, relative to max |y|.

The MIMO kernel (LRU, S5): `lrnn.cells.convolution` convolves each of the N state channels' inputs
B̄x_t with its Ā^k and reads out. The alternative, the full kernel K_k = Re(C diag(Ā^k) B̄) of shape
(T, d_out, d_in) applied by FFT (a d_out × d_in product per frequency), is timed against it for LRU
(`full_kernel_forward`, y only) at B = 8 and (d = N, T) ∈ {(64, 1024), (64, 4096), (256, 1024)}
(--no-kernel-choice skips it).
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
from lrnn import cells  # noqa: E402
from lrnn.cells import convolution  # noqa: E402

BATCH, WIDTH, SIZES = 1, 32, (1024, 4096, 16384, 65536)
QUICK_BATCH, QUICK_WIDTH, QUICK_SIZES = 2, 8, (64, 256)
BUDGET_GIB = 4.0
CONVOLUTION = "convolution"
SCANS = ("associative", "chunked", "sequential", "streamed", "auto")
CANDIDATES = (CONVOLUTION, *SCANS)
FORWARD, TRAIN = "forward", "forward+backward"
SECTION = "## Convolution mode (experiments/bench_convolution.py)"
ONCE = "†"
GIB = 2**30

KERNEL_BATCH, KERNEL_POINTS = 8, ((64, 1024), (64, 4096), (256, 1024))  # (d = N, T)
QUICK_KERNEL_POINTS = ((8, 64),)
FULL, STATES = "full_kernel", "state_channels"

CONFIGS = {
    "s4d": lambda d: cells.S4D(d_in=d, d_state=16),
    "lru": lambda d: cells.LRU(d_in=d, d_state=d),
    "s5": lambda d: cells.S5(d_in=d, d_state=d),
    "retnet": lambda d: cells.RetNet(d_in=d),
}


def candidates(cell) -> dict:
    """{name: forward(params, x) -> (y, final)}; no "streamed" for a matrix cell (chunkwise already)."""
    names = [m for m in CANDIDATES if not (m == "streamed" and isinstance(cell, cells.MatrixCell))]
    return {m: (lambda p, x, m=m: cell.forward(p, x, method=m)) for m in names}


def for_pass(forward, pass_: str):
    """fn(params, x, cotangent): the forward, or the gradient of sum(y·cotangent) w.r.t. params and x."""
    if pass_ == FORWARD:
        return lambda params, x, cotangent: forward(params, x)

    def loss(params, x, cotangent):
        return jnp.sum(forward(params, x)[0] * cotangent)
    return jax.grad(loss, argnums=(0, 1))


def arguments(cell, batch: int, length: int, seed: int) -> tuple:
    key_p, key_x, key_c = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (cell.init(key_p), jax.random.normal(key_x, (batch, length, cell.d_in), jnp.float32),
            jax.random.normal(key_c, (batch, length, cell.d_out), jnp.float32))


def agreement(cell, args) -> float:
    """max |y_convolution − y_associative| / max |y_associative| (forward, float32)."""
    params, x, _ = args
    y_conv, y_scan = jax.jit(lambda p, x: (cell.forward(p, x, method=CONVOLUTION)[0],
                                           cell.forward(p, x, method="associative")[0]))(params, x)
    return float(jnp.max(jnp.abs(y_conv - y_scan)) / jnp.max(jnp.abs(y_scan)))


def measure(name: str, cell, batch: int, length: int, pass_: str, budget_bytes: float, timing: benchlib.Timing,
            seed: int) -> dict:
    """Compile every candidate, read its temp memory, time those within the budget interleaved."""
    args = arguments(cell, batch, length, seed)
    compiled, compile_s, temp, source = {}, {}, {}, {}
    for method, forward in candidates(cell).items():
        benchlib.progress(f"{name} T={length} {pass_}: compile {method}")
        compiled[method], compile_s[method] = benchlib.compile_timed(for_pass(forward, pass_), *args)
        temp[method], source[method] = benchlib.temp_bytes(compiled[method])
    not_run = [m for m in compiled if temp[m] is not None and temp[m] > budget_bytes]
    runs = {m: (lambda c=c: c(*args)) for m, c in compiled.items() if m not in not_run}
    benchlib.progress(f"{name} T={length} {pass_}: time {', '.join(runs)}")
    samples, once = benchlib.interleaved(runs, timing.rounds, min_seconds=timing.min_seconds,
                                         max_calls=timing.max_calls, max_call_seconds=timing.max_call_seconds,
                                         seed=seed)
    record = {"cell": name, "config": repr(cell), "batch": batch, "length": length, "width": cell.d_in,
              "pass": pass_, "temp_bytes": temp, "memory_source": source, "not_run": not_run,
              "compile_s": compile_s, "median_s": benchlib.medians(samples), "rounds_s": samples,
              "timed_once": once}
    if pass_ == FORWARD and not {CONVOLUTION, "associative"} & set(not_run):
        record["relative_difference"] = agreement(cell, args)
    return record


def ratios(record: dict) -> dict:
    """Each scan method's median over the convolution's (above 1: the convolution is faster)."""
    times = record["median_s"]
    return {m: (times[m] / times[CONVOLUTION] if m in times and CONVOLUTION in times else None) for m in SCANS}


def fastest_scan(record: dict) -> str | None:
    scans = [m for m in SCANS if m in record["median_s"] and m != "auto"]
    return benchlib.fastest(record["median_s"], scans) if scans else None


def full_kernel_forward(cell, params, x):
    """LRU's y by its full kernel K_k = Re(C diag(λ^k) γB) (T, d_out, d_in): the FFT of every entry
    of K, one d_out × d_in product per frequency."""
    length, n = x.shape[1], 2 * x.shape[1]
    lam = convolution.powers(cell.convolution_kernel(params).log_decay, length)  # (T, N)
    b = jnp.exp(params["gamma_log"])[:, None] * (params["B_re"] + 1j * params["B_im"])
    kernel = jnp.einsum("dn,tn,ne->tde", params["C_re"] + 1j * params["C_im"], lam, b).real
    spectrum = jnp.einsum("fde,bfe->bfd", jnp.fft.rfft(kernel, n=n, axis=0), jnp.fft.rfft(x, n=n, axis=1))
    return jnp.fft.irfft(spectrum, n=n, axis=1)[:, :length] + params["D"] * x


def kernel_choice(width: int, length: int, batch: int, timing: benchlib.Timing, seed: int) -> list[dict]:
    """LRU (d = N = width): the full kernel against the state channels, forward and forward+backward."""
    cell = cells.LRU(d_in=width, d_state=width)
    args = arguments(cell, batch, length, seed)
    forwards = {FULL: lambda p, x: (full_kernel_forward(cell, p, x),),
                STATES: lambda p, x: (cell.forward(p, x, method=CONVOLUTION)[0],)}
    ys = jax.jit(lambda p, x: [f(p, x)[0] for f in forwards.values()])(*args[:2])
    difference = float(jnp.max(jnp.abs(ys[0] - ys[1])) / jnp.max(jnp.abs(ys[1])))
    records = []
    for pass_ in (FORWARD, TRAIN):
        benchlib.progress(f"kernel choice d=N={width} T={length} {pass_}")
        fns = {name: for_pass(forward, pass_) for name, forward in forwards.items()}
        records.append({"width": width, "length": length, "batch": batch, "pass": pass_,
                        "relative_difference": difference, **benchlib.compile_and_time(fns, args, timing, seed)})
    return records


# --- reporting ------------------------------------------------------------------------------------


def _ms(record, method) -> str:
    if method not in record["median_s"]:  # over the memory budget
        return f"– ({record['temp_bytes'][method] / GIB:.3g} GiB)" if method in record.get("not_run", ()) else "–"
    ms = 1e3 * record["median_s"][method]
    return (f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}") + (ONCE if method in record["timed_once"] else "")


def _ratio(record, method) -> str:
    value = ratios(record)[method]
    return "–" if value is None else f"{value:.2f}" + (ONCE if method in record["timed_once"] else "")


def report(results: dict) -> str:
    settings = results["settings"]
    configs = "; ".join(sorted({f"`{r['config']}`" for r in results["records"]}))
    parts = [
        f"{benchlib.run_line(results)} B={settings['batch']}, D={settings['width']}, float32; medians of "
        f"{settings['rounds']} interleaved rounds; candidates whose compiled temp memory exceeds "
        f"{settings['budget_gib']:g} GiB are not run (–, with that memory).",
        "`convolution ms` is `forward(method=\"convolution\")`'s median; every other column is that scan "
        "method's time divided by the convolution's (above 1: the convolution is faster); `fastest scan` "
        "is the fastest of associative / chunked / sequential / streamed; `rel. diff.` is max |y_conv − "
        f"y_associative| / max |y|; {ONCE} timed once (slower than {settings['max_call_seconds']} s a call). "
        f"Configurations: {configs}.",
    ]
    for pass_ in (FORWARD, TRAIN):
        rows = []
        for r in (r for r in results["records"] if r["pass"] == pass_):
            diff = f"{r['relative_difference']:.1e}" if "relative_difference" in r else ""
            rows.append([r["cell"], r["length"], _ms(r, CONVOLUTION), *(_ratio(r, m) for m in SCANS),
                         fastest_scan(r) or "–"] + ([diff] if pass_ == FORWARD else []))
        header = ["cell", "T", "convolution ms", *(f"{m} ×" for m in SCANS), "fastest scan"]
        parts.append(f"**{pass_}**\n\n" + benchlib.markdown_table(header + (["rel. diff."] if pass_ == FORWARD
                                                                             else []), rows))
    if results.get("kernel_choice"):
        rows = [[r["width"], r["length"], r["pass"], _ms(r, FULL), _ms(r, STATES),
                 f"{r['median_s'][FULL] / r['median_s'][STATES]:.1f}", f"{r['relative_difference']:.1e}"]
                for r in results["kernel_choice"]]
        parts.append(f"**the MIMO kernel: LRU's full (T, d_out, d_in) kernel against the state channels** (B = "
                     f"{results['kernel_choice'][0]['batch']}, float32; `full / state` above 1: the state channels, "
                     "which `lrnn.cells.convolution` runs, are faster)\n\n"
                     + benchlib.markdown_table(["d = N", "T", "pass", "full kernel ms", "state channels ms",
                                                "full / state", "rel. diff."], rows))
    return "\n\n".join(parts)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: B={QUICK_BATCH}, D={QUICK_WIDTH}, T ∈ {QUICK_SIZES}, no BENCHMARKS.md")
    parser.add_argument("--cells", nargs="+", choices=sorted(CONFIGS), help="cells (default: all of them)")
    parser.add_argument("--sizes", type=int, nargs="+", help="sequence lengths T")
    parser.add_argument("--batch", type=int, help=f"batch size (default {BATCH}; {QUICK_BATCH} with --quick)")
    parser.add_argument("--width", type=int, help=f"width D (default {WIDTH}; {QUICK_WIDTH} with --quick)")
    parser.add_argument("--no-kernel-choice", action="store_true",
                        help="skip the MIMO kernel comparison (LRU's full kernel against the state channels)")
    parser.add_argument("--budget-gib", type=float, default=BUDGET_GIB,
                        help="compiled temp memory above which a candidate is not run")
    benchlib.add_output_arguments(parser, default_rounds=5, quick_rounds=2, results_name="convolution")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    batch = args.batch or (QUICK_BATCH if quick else BATCH)
    width = args.width or (QUICK_WIDTH if quick else WIDTH)
    sizes = tuple(args.sizes or (QUICK_SIZES if quick else SIZES))
    names = args.cells or list(CONFIGS)
    timing = benchlib.Timing(rounds=args.rounds or (2 if quick else 5), min_seconds=0.01 if quick else 0.05,
                             max_calls=5 if quick else 10, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "convolution")
    records = []
    for name in names:
        cell = CONFIGS[name](width)
        for length in sizes:
            for pass_ in (FORWARD, TRAIN):
                records.append(measure(name, cell, batch, length, pass_, args.budget_gib * GIB, timing,
                                       seed=len(records)))
    choice = []
    if not args.no_kernel_choice:
        for d, length in QUICK_KERNEL_POINTS if quick else KERNEL_POINTS:
            choice += kernel_choice(d, length, batch if quick else KERNEL_BATCH, timing, seed=len(choice))
    results = {
        **benchlib.run_header("experiments/bench_convolution.py", argv, out, ROOT),
        "settings": {"batch": batch, "width": width, "sizes": list(sizes), "quick": quick,
                     "budget_gib": args.budget_gib, **dataclasses.asdict(timing)},
        "records": records,
        "kernel_choice": choice,
    }
    benchlib.publish(results, report(results), out, markdown, SECTION)
    return results


if __name__ == "__main__":
    main()

"""Small helpers the benchmarks in `experiments/` share: compile timing, interleaved timing rounds,
compiled memory, the environment a measurement ran in, and writing results (JSON and a section of
BENCHMARKS.md).

Timing on a shared or noisy machine: `interleaved` times every candidate of one comparison
round-robin — each round runs each candidate a few times, in a fresh random order — and keeps
one per-call time per round, so a burst of load from elsewhere hits all candidates alike rather
than whichever happened to run then. Compare candidates by the median over rounds.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import random
import resource
import statistics
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import jax


@dataclasses.dataclass(frozen=True)
class Timing:
    rounds: int
    min_seconds: float  # per sample: calls are repeated within a round up to this
    max_calls: int
    max_call_seconds: float  # a candidate slower than this per call is timed once, not per round


def compile_timed(fn: Callable, *args) -> tuple[Any, float]:
    """(compiled executable, seconds to trace, lower and compile `jax.jit(fn)` for `args`)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def seconds_per_call(run: Callable[[], Any], calls: int) -> float:
    """Mean wall time of `calls` calls of `run`, each waited on before the next starts."""
    start = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(run())
    return (time.perf_counter() - start) / calls


def calls_for(run: Callable[[], Any], min_seconds: float, max_calls: int) -> int:
    """Calls per sample so that one sample lasts about `min_seconds` (run warmed up already)."""
    once = seconds_per_call(run, 1)
    return max(1, min(max_calls, math.ceil(min_seconds / max(once, 1e-9))))


def interleaved(
    runs: Mapping[str, Callable[[], Any]],
    rounds: int,
    *,
    min_seconds: float = 0.05,
    max_calls: int = 20,
    max_call_seconds: float = math.inf,
    seed: int = 0,
) -> tuple[dict[str, list[float]], list[str]]:
    """(samples, once): per-call seconds of every run, one sample per round, all timed round-robin.

    `runs` maps a name to a no-argument callable (e.g. a compiled function with its arguments
    bound). Each run is warmed up and calibrated to `min_seconds` per sample first. A run whose
    warm-up call took longer than `max_call_seconds` is not repeated: its one sample is that call
    and its name is listed in `once` (so one pathologically slow candidate cannot stall a sweep).
    """
    first = {name: seconds_per_call(run, 1) for name, run in runs.items()}
    once = [name for name, seconds in first.items() if seconds > max_call_seconds]
    samples: dict[str, list[float]] = {name: [first[name]] if name in once else [] for name in runs}
    order = [name for name in runs if name not in once]
    calls = {name: calls_for(runs[name], min_seconds, max_calls) for name in order}
    shuffle = random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(order)
        for name in order:
            samples[name].append(seconds_per_call(runs[name], calls[name]))
    return samples, once


def compile_and_time(fns: Mapping[str, Callable], args: tuple, timing: Timing, seed: int) -> dict:
    """Compile every function for `args`, then time them all `interleaved`: compile seconds,
    median seconds per call, the per-round samples, and which were timed once."""
    compiled, compile_s = {}, {}
    for name, fn in fns.items():
        compiled[name], compile_s[name] = compile_timed(fn, *args)
    runs = {name: (lambda c=c: c(*args)) for name, c in compiled.items()}
    samples, once = interleaved(runs, timing.rounds, min_seconds=timing.min_seconds, max_calls=timing.max_calls,
                                max_call_seconds=timing.max_call_seconds, seed=seed)
    return {"compile_s": compile_s, "median_s": medians(samples), "rounds_s": samples, "timed_once": once}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def medians(samples: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {name: median(values) for name, values in samples.items()}


def fastest(times: Mapping[str, float], among: Sequence[str] | None = None) -> str:
    """The name with the smallest time, considering only `among` when given."""
    names = [name for name in times if among is None or name in among]
    return min(names, key=times.__getitem__)


def temp_bytes(compiled, run: Callable[[], Any] | None = None) -> tuple[int | None, str]:
    """(bytes, how measured): XLA's temporary-buffer size of a compiled executable.

    Falls back, where the backend reports no memory analysis, to the growth of the process's peak
    resident memory over one call of `run` (an upper bound that also counts the outputs, and zero
    if an earlier call already reached a higher peak).
    """
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        analysis = None
    if analysis is not None and getattr(analysis, "temp_size_in_bytes", None) is not None:
        return int(analysis.temp_size_in_bytes), "memory_analysis().temp_size_in_bytes"
    if run is None:
        return None, "unavailable"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    jax.block_until_ready(run())
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return grown * 1024, "peak RSS growth over one call (ru_maxrss)"


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """What a measurement depends on besides the code: versions, backend, hardware, date."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_json(path: pathlib.Path | str, data) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


BENCHMARKS_PREAMBLE = (
    "# Benchmarks\n\n"
    "Each section is written by the script named in its heading; rerun that script from the "
    "repository root (e.g. `python experiments/bench_scan.py`) to reproduce it. Every script also "
    "writes its raw numbers to `experiments/results/`.\n"
)


def replace_section(path: pathlib.Path | str, heading: str, body: str) -> pathlib.Path:
    """Write `heading` + `body` as a `## ` section of a markdown file, replacing the section of that
    heading if present (up to the next `## ` heading) and keeping every other section."""
    path = pathlib.Path(path)
    text = path.read_text() if path.exists() else BENCHMARKS_PREAMBLE
    section = f"{heading}\n\n{body.strip()}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(text)
    return path


# --- the command line every benchmark shares ------------------------------------------------------


def add_output_arguments(parser, *, default_rounds: int, quick_rounds: int, results_name: str) -> None:
    """--rounds, --out, --markdown and --max-call-seconds, the same for every benchmark script."""
    parser.add_argument("--rounds", type=int,
                        help=f"interleaved timing rounds (default {default_rounds}; {quick_rounds} with --quick)")
    parser.add_argument("--out", type=pathlib.Path,
                        help=f"results JSON (default experiments/results/{results_name}.json)")
    parser.add_argument("--markdown", type=pathlib.Path,
                        help="markdown file whose section to replace (default BENCHMARKS.md; none with --quick)")
    parser.add_argument("--max-call-seconds", type=float, default=5.0,
                        help="a candidate slower than this per call is timed once instead of every round")


def output_paths(args, root: pathlib.Path, results_name: str) -> tuple[pathlib.Path, pathlib.Path | None]:
    """(results JSON, markdown file or None) from the arguments of `add_output_arguments`."""
    out = args.out or root / "experiments" / "results" / (results_name + ("_quick" if args.quick else "") + ".json")
    markdown = args.markdown or (None if args.quick else root / "BENCHMARKS.md")
    return out, markdown


def run_header(script: str, argv, out: pathlib.Path, root: pathlib.Path) -> dict:
    """The first entries of a results file: the command, where the file is, the environment."""
    resolved = out.resolve()
    return {
        "command": " ".join([f"python {script}", *(argv if argv is not None else sys.argv[1:])]),
        "results_file": str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(out),
        "environment": environment(),
    }


def run_line(results: dict) -> str:
    """One sentence for a report: where and when it ran, the command, the raw numbers' file."""
    env = results["environment"]
    return (f"{env['cpu']}, {env['cores']} cores, jax {env['jax']} ({env['backend']}), {env['date']}. "
            f"Command: `{results['command']}`; raw numbers in `{results['results_file']}`.")


def progress(what: str, _start=time.perf_counter()) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.perf_counter() - _start:6.1f}s] {what}", file=sys.stderr, flush=True)


def publish(results: dict, text: str, out: pathlib.Path, markdown: pathlib.Path | None, section: str) -> None:
    """Print the report, write the results JSON, and replace `section` of the markdown file."""
    print(text)
    write_json(out, results)
    if markdown is not None:
        replace_section(markdown, section, text)

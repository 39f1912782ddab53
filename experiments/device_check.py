"""The first thing to run on any lent GPU or TPU: the Pallas kernels' tests compiled, the benchmarks
that need the device and the auto table for its backend, in one command of under 9 minutes, with
everything measured in one results file and one BENCHMARKS.md section. Commit what it wrote.

    python experiments/device_check.py                         # on a GPU/TPU, from the repository root
    python experiments/device_check.py --budget bench_scan=300  # a step's time limit in seconds
    python experiments/device_check.py --quick --out /tmp/dc    # smoke test at tiny sizes (CPU too)

Steps, in order, each a subprocess with its own time budget (seconds, the defaults add up to 510):
a step that fails is reported and the next one runs; one that runs past its budget is stopped
(its process group: it and anything it started) and reported "timed out".

  environment    (30)  jax, jaxlib and any jax plugin, the backend, device kind and count, and
                       torch / triton / fla versions, or "not importable" and why.
  kernel_tests  (100)  LRNN_PALLAS_INTERPRET=0 python -m pytest tests/pallas_kernels (-n 4 with
                       pytest-xdist): the kernel tests with compiled kernels.
                       tests/pallas_kernels/conftest.py skips, giving the reason, the tests of the
                       variant this backend cannot compile (on a GPU: the "tpu" variant's).
                       Recorded: pytest's counts, skip reasons and failed tests.
  bench_scan    (210)  python experiments/bench_scan.py --write-auto --grid coarse --validate 0
                       --no-layout --rounds 3: the engine's methods on this backend over the
                       coarse grid (T, L ∈ 256, 4096, 65536; sequential, associative, chunked64),
                       each family's points written to lrnn/scan/auto_methods.json as soon as it
                       is measured (a step stopped at its budget keeps the families it finished).
                       It runs before bench_kernels, whose points it would otherwise replace.
  bench_kernels (170)  python experiments/bench_kernels.py --write-auto: the copy bandwidth,
                       every kernel against its pure-JAX form and, where torch and fla import,
                       flash-linear-attention's chunk kernels (fla's column otherwise says why
                       not). --write-auto only if kernel_tests passed, so a kernel that fails
                       its tests never becomes what method="auto" runs.

What it writes, <key> being <backend>_<device kind>, e.g. gpu_nvidia-h200:

  experiments/results/device_check_<key>.json   the results file: environment, every step's
        command, status, exit code, wall and budget seconds and output tail, the test summary,
        the benchmarks' tables (markdown), and the report below.
  experiments/results/device_check_<key>/       each step's log, pytest.xml, and the benchmarks'
        raw numbers (bench_scan.json, bench_kernels.json; their tables also in *.md).
  BENCHMARKS.md, between `<!-- device_check: begin -->` and `<!-- device_check: end -->` under
        "## Device check": that run's step table, test summary and benchmark tables, replaced
        on every full run (the latest device). The benchmarks' own sections are left as they
        are: the engine's holds the CPU measurements.
  lrnn/scan/auto_methods.json                   this backend's measured points.

Then: git add experiments/results/device_check_<key>.json experiments/results/device_check_<key>
BENCHMARKS.md lrnn/scan/auto_methods.json, and commit. The script exits 1 if any step did not
pass, after writing everything.

--quick (any machine): two kernel tests in interpret mode, bench_scan and bench_kernels with
--quick at the smallest sizes and one round, no auto table; everything under --out (default a
new temporary directory), BENCHMARKS.md copied there and its section replaced in the copy. The
full mode refuses to run on CPU, where the kernels cannot compile and their timings mean nothing.

fla on a machine without internet: fla's kernels, `fla.ops`, are the PyPI package `fla-core`
(import name `fla`); `flash-linear-attention` itself holds only fla's layers and models, on top
of fla-core and transformers, which the benchmark does not need. With internet elsewhere:

    pip download fla-core einops packaging --no-deps -d wheels/          # ~1.2 MB, pure Python
    # carry wheels/ in with the checkout; on the device:
    pip install --no-index --find-links wheels/ fla-core einops packaging

fla also needs torch with CUDA and triton on the device (too large to carry in; fla-core
installs without them); without them everything else runs and fla's column says why not.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(ROOT))

from experiments import benchlib  # noqa: E402  (imports jax; the backend starts only in the steps)

PASSED, FAILED, TIMED_OUT, NOT_RUN = "passed", "failed", "timed out", "not run"
BUDGETS = {"environment": 30, "kernel_tests": 100, "bench_scan": 210, "bench_kernels": 170}
QUICK_BUDGETS = {"environment": 60, "kernel_tests": 180, "bench_scan": 300, "bench_kernels": 300}
KERNEL_TESTS = ("tests/pallas_kernels",)
QUICK_KERNEL_TESTS = ("tests/pallas_kernels/test_diagonal_scan.py::test_agrees_with_the_engines_sequential_method",
                      "tests/pallas_kernels/test_diagonal_scan.py::test_errors")
BENCH_ARGS = {"bench_scan": ("--write-auto", "--grid", "coarse", "--validate", "0", "--no-layout", "--rounds", "3"),
              "bench_kernels": ("--write-auto",)}
QUICK_BENCH_ARGS = {"bench_scan": ("--quick", "--families", "diagonal", "matrix", "--rounds", "1", "--validate", "1",
                                   "--no-layout", "--no-memory"),
                    "bench_kernels": ("--quick", "--rounds", "1")}
HEADING = "## Device check (experiments/device_check.py)"
BEGIN, END = "<!-- device_check: begin -->", "<!-- device_check: end -->"
TAIL_CHARS = 4000
TITLES = {"bench_kernels": "Pallas kernels", "bench_scan": "Scan engine"}


# --- the environment (run in its own process: it starts the backend) -----------------------------


def _import_version(module: str) -> str:
    try:
        imported = __import__(module, fromlist=["__name__"])
    except Exception as error:  # noqa: BLE001 - any failure to import means "not importable"
        return f"not importable ({type(error).__name__}: {error})"
    return str(getattr(imported, "__version__", "importable, no __version__"))


def _fla_version() -> str:
    """fla's version if its kernels (fla.ops, from fla-core) import, else why not."""
    ops = _import_version("fla.ops")
    return ops if ops.startswith("not importable") else _import_version("fla")


def probe_environment(path: str) -> None:
    """Write to `path` what a measurement here depends on: benchlib's environment, the device, the
    jax plugins, and torch / triton / fla."""
    import importlib.metadata

    import jax

    environment = benchlib.environment()
    device = jax.devices()[0]
    plugins = {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()
               if re.match(r"(jax[-_](cuda|rocm)|libtpu)", dist.metadata["Name"] or "")}
    environment.update(device_kind=device.device_kind, device_count=jax.device_count(),
                       compute_capability=getattr(device, "compute_capability", None), jax_plugins=plugins,
                       torch=_import_version("torch"), triton=_import_version("triton"), fla=_fla_version())
    if not environment["torch"].startswith("not importable"):
        import torch
        environment["torch_cuda"] = {"available": torch.cuda.is_available(), "cuda": torch.version.cuda}
    benchlib.write_json(path, environment)


def environment_key(environment: dict | None) -> str:
    """<backend>_<device kind>, e.g. gpu_nvidia-h200: the results file's name."""
    if not environment:
        return "unknown"
    kind = re.sub(r"[^a-z0-9]+", "-", environment["device_kind"].lower()).strip("-")
    return f"{environment['backend']}_{kind}"


# --- steps ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    description: str
    argv: tuple[str, ...]
    budget_s: float
    env: tuple[tuple[str, str], ...] = ()
    outputs: int = 0  # how many of argv's last words only say where to write (left out of `short`)

    @property
    def command(self) -> str:
        """The command as one would type it from the repository root."""
        return self._typed(self.argv)

    @property
    def short(self) -> str:
        """The command without its output paths, for the report."""
        return self._typed(self.argv[:len(self.argv) - self.outputs])

    def _typed(self, argv) -> str:
        words = ["python" if word == sys.executable else _shown(word) for word in argv]
        return " ".join([*(f"{key}={value}" for key, value in self.env), shlex.join(words)])


def _shown(path_or_word: str) -> str:
    path = pathlib.Path(path_or_word)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else path_or_word


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the step's process group (the step and what it started), SIGKILL 10 s later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def _tail(path: pathlib.Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-TAIL_CHARS:]


def run_step(step: Step, log: pathlib.Path) -> dict:
    """Run `step` from the repository root, its output to `log`, stopped at its budget."""
    benchlib.progress(f"{step.name}: {step.command} (budget {step.budget_s:g} s)")
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(step.argv, cwd=ROOT, env={**os.environ, **dict(step.env)}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=step.budget_s)
            status = PASSED if returncode == 0 else FAILED
        except subprocess.TimeoutExpired:
            _stop(process)
            returncode, status = None, TIMED_OUT
    wall = time.perf_counter() - start
    benchlib.progress(f"{step.name}: {status} in {wall:.0f} s")
    return _record(step, status, returncode, wall, _shown(str(log)), _tail(log))


def not_run(step: Step, why: str) -> dict:
    return _record(step, NOT_RUN, None, 0.0, None, why)


def _record(step: Step, status: str, returncode: int | None, wall_s: float, log: str | None, tail: str) -> dict:
    return {"name": step.name, "description": step.description, "command": step.command, "short": step.short,
            "status": status, "returncode": returncode, "wall_s": round(wall_s, 1), "budget_s": step.budget_s,
            "log": log, "output_tail": tail}


def environment_step(path: pathlib.Path, budget: float) -> Step:
    code = f'from experiments.device_check import probe_environment; probe_environment("{path}")'
    return Step("environment", "versions, backend and device; torch, triton, fla", (sys.executable, "-c", code),
                budget)


def kernel_tests_step(run_dir: pathlib.Path, quick: bool, budget: float) -> Step:
    tests = QUICK_KERNEL_TESTS if quick else KERNEL_TESTS
    workers = () if quick or not _has_xdist() else ("-n", "4")
    argv = (sys.executable, "-m", "pytest", *tests, "-p", "no:cacheprovider", "-q", "-rfEs",
            *workers, "--junitxml", str(run_dir / "pytest.xml"))
    if quick:
        return Step("kernel_tests", "kernel tests, interpret mode (quick subset)", argv, budget, outputs=2)
    return Step("kernel_tests", "kernel tests, compiled", argv, budget,
                env=(("LRNN_PALLAS_INTERPRET", "0"), ("XLA_PYTHON_CLIENT_PREALLOCATE", "false")), outputs=2)


def _has_xdist() -> bool:
    import importlib.util
    return importlib.util.find_spec("xdist") is not None


def bench_step(name: str, run_dir: pathlib.Path, quick: bool, budget: float, write_auto: bool = True) -> Step:
    args = (QUICK_BENCH_ARGS if quick else BENCH_ARGS)[name]
    if not write_auto:
        args = tuple(a for a in args if a != "--write-auto")
    description = {"bench_scan": "the engine's methods", "bench_kernels": "the kernels, pure JAX, fla, copy"}[name]
    argv = (sys.executable, str(ROOT / "experiments" / f"{name}.py"), *args,
            "--out", str(run_dir / f"{name}.json"), "--markdown", str(run_dir / f"{name}.md"))
    return Step(name, description + (", auto table" if "--write-auto" in args else ""), argv, budget, outputs=4)


# --- what the steps left -------------------------------------------------------------------------


def pytest_summary(junit_xml: pathlib.Path) -> dict | None:
    """Counts, skip reasons and failed tests from pytest's JUnit XML, or None if it wrote none."""
    if not junit_xml.exists():
        return None
    counts = dict.fromkeys(("passed", "failed", "errors", "skipped"), 0)
    skipped, failures = collections.Counter(), []
    for case in ElementTree.parse(junit_xml).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed" if case.find("failure") is not None else "errors"] += 1
            failures.append(test)
        elif (skip := case.find("skipped")) is not None:
            counts["skipped"] += 1
            skipped[skip.get("message", "")] += 1
        else:
            counts["passed"] += 1
    return {**counts, "skip_reasons": dict(skipped), "failures": failures}


def bench_tables(markdown: pathlib.Path) -> str | None:
    """The tables a benchmark wrote as its section of `markdown` (a file of its own), or None."""
    if not markdown.exists():
        return None
    _, section = markdown.read_text().split("\n## ", 1)
    return section.split("\n", 1)[1].strip()


def demoted(markdown: str) -> str:
    """Every heading one level down (### -> ####), so none reads as a BENCHMARKS.md section."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown, flags=re.MULTILINE)


# --- report --------------------------------------------------------------------------------------


def environment_line(environment: dict | None) -> str:
    if not environment:
        return "Environment unknown (the environment step did not pass)."
    versions = ", ".join(f"{name} {environment[name]}" for name in ("torch", "triton", "fla"))
    plugins = "".join(f", {name} {version}" for name, version in environment["jax_plugins"].items())
    return (f"{environment['device_count']} × {environment['device_kind']} ({environment['backend']}), "
            f"jax {environment['jax']}, jaxlib {environment['jaxlib']}{plugins}; {versions}; "
            f"{environment['date']}.")


def tests_text(step: dict) -> str:
    summary = step.get("summary")
    if summary is None:
        return f"No test summary: the step {step['status']} (see `{step['log']}`)."
    lines = [", ".join(f"{summary[k]} {k}" for k in ("passed", "skipped", "failed", "errors")) + "."]
    lines += [f"- skipped {n}: {reason}" for reason, n in summary["skip_reasons"].items()]
    lines += [f"- failed: `{test}`" for test in summary["failures"]]
    return "\n".join(lines)


def report(results: dict) -> str:
    steps = {step["name"]: step for step in results["steps"]}
    table = benchlib.markdown_table(
        ["step", "status", "wall s", "budget s", "what"],
        [[s["name"], s["status"], f"{s['wall_s']:.0f}", f"{s['budget_s']:g}", s["description"]]
         for s in results["steps"]])
    parts = [f"{environment_line(results['environment'])} Command: `{results['command']}`; everything in "
             f"`{results['results_file']}`.", table,
             f"### Kernel tests: `{steps['kernel_tests']['short']}`", tests_text(steps["kernel_tests"])]
    for name in ("bench_kernels", "bench_scan"):
        step = steps[name]
        parts.append(f"### {TITLES[name]}: `{step['short']}`")
        if step.get("write_auto_note"):
            parts.append(step["write_auto_note"])
        parts.append(demoted(step["tables"]) if step.get("tables")
                     else f"No tables: the step {step['status']} (see `{step['log']}`).")
    return "\n\n".join(parts)


def replace_marked_section(path: pathlib.Path, body: str) -> pathlib.Path:
    """Put `body` between the device-check markers of a markdown file, keeping every other byte;
    without markers, append them under HEADING (a new file starts with the BENCHMARKS preamble)."""
    text = path.read_text() if path.exists() else benchlib.BENCHMARKS_PREAMBLE
    block = f"{BEGIN}\n{body.strip()}\n{END}"
    start, end = text.find(BEGIN), text.find(END)
    if (start == -1) != (end == -1) or end < start:
        raise ValueError(f"{path}: {BEGIN} and {END} must both be there, in that order, or neither")
    if start == -1:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    else:
        text = text[:start] + block + text[end + len(END):]
    path.write_text(text)
    return path


# --- command line --------------------------------------------------------------------------------


def _budget(text: str) -> tuple[str, float]:
    name, _, seconds = text.partition("=")
    if name not in BUDGETS or not seconds:
        raise argparse.ArgumentTypeError(f"expected STEP=SECONDS with STEP one of {', '.join(BUDGETS)}, got {text!r}")
    return name, float(seconds)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="interpret-mode test subset, tiny benchmarks, no auto "
                                                             "table, all under --out (runs on CPU)")
    parser.add_argument("--out", type=pathlib.Path, help="directory for the results (default experiments/results; "
                                                         "with --quick a new temporary directory)")
    parser.add_argument("--markdown", type=pathlib.Path, help="markdown file for the section (default BENCHMARKS.md; "
                                                              "with --quick a copy of it in --out)")
    parser.add_argument("--budget", type=_budget, action="append", default=[], metavar="STEP=SECONDS",
                        help=f"a step's time limit (defaults: {BUDGETS})")
    return parser.parse_args(argv)


def output_paths(args) -> tuple[pathlib.Path, pathlib.Path]:
    """(results directory, markdown file); --quick never writes the repository's BENCHMARKS.md."""
    benchmarks = ROOT / "BENCHMARKS.md"
    if not args.quick:
        return args.out or ROOT / "experiments" / "results", args.markdown or benchmarks
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="device_check_"))
    markdown = args.markdown or out / "BENCHMARKS.md"
    if markdown.resolve() == benchmarks.resolve():
        raise SystemExit("device_check: --quick does not write the repository's BENCHMARKS.md; drop --markdown")
    if not markdown.exists():
        markdown.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(benchmarks, markdown)
    return out, markdown


def check_environment(budget: float) -> tuple[dict, dict | None, pathlib.Path]:
    """(the environment step's record, the environment or None, the directory holding its files)."""
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="device_check_"))
    step = run_step(environment_step(scratch / "environment.json", budget), scratch / "environment.log")
    environment = json.loads((scratch / "environment.json").read_text()) if step["status"] == PASSED else None
    return step, environment, scratch


def run_checks(run_dir: pathlib.Path, quick: bool, budgets: dict) -> list[dict]:
    """The kernel tests, then bench_scan, then bench_kernels (--write-auto only after passing tests)."""
    for stale in ("pytest.xml", "bench_scan.json", "bench_scan.md", "bench_kernels.json", "bench_kernels.md"):
        (run_dir / stale).unlink(missing_ok=True)
    tests = run_step(kernel_tests_step(run_dir, quick, budgets["kernel_tests"]), run_dir / "kernel_tests.log")
    tests.update(summary=pytest_summary(run_dir / "pytest.xml"), mode="interpret" if quick else "compiled")
    records = [tests]
    for name in ("bench_scan", "bench_kernels"):
        write_auto = not quick and (name == "bench_scan" or tests["status"] == PASSED)
        record = run_step(bench_step(name, run_dir, quick, budgets[name], write_auto), run_dir / f"{name}.log")
        record.update(tables=bench_tables(run_dir / f"{name}.md"), write_auto=write_auto)
        if not quick and not write_auto:
            record["write_auto_note"] = ("Run without --write-auto: the kernel tests did not pass, so the auto table "
                                         "does not send method=\"auto\" to the kernels.")
        records.append(record)
    return records


def main(argv=None) -> int:
    args = parse(argv)
    budgets = {**(QUICK_BUDGETS if args.quick else BUDGETS), **dict(args.budget)}
    out, markdown = output_paths(args)
    start = time.perf_counter()

    probe, environment, scratch = check_environment(budgets["environment"])
    if environment and environment["backend"] == "cpu" and not args.quick:
        shutil.rmtree(scratch)
        raise SystemExit("device_check: no GPU or TPU here (jax's backend is cpu): the kernels cannot compile and "
                         "the benchmarks' timings would say nothing about a device. Run it on a GPU or TPU, or pass "
                         "--quick for a smoke test.")
    key = environment_key(environment)
    run_dir = out / f"device_check_{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("environment.json", "environment.log"):
        if (scratch / name).exists():
            shutil.move(scratch / name, run_dir / name)
    shutil.rmtree(scratch)
    probe["log"] = _shown(str(run_dir / "environment.log"))

    if environment is None:
        later = (kernel_tests_step(run_dir, args.quick, budgets["kernel_tests"]),
                 *(bench_step(name, run_dir, args.quick, budgets[name]) for name in ("bench_scan", "bench_kernels")))
        steps = [probe, *(not_run(step, "the environment step did not pass") for step in later)]
    else:
        steps = [probe, *run_checks(run_dir, args.quick, budgets)]

    results_file = out / f"device_check_{key}.json"
    results = {
        "command": " ".join(["python experiments/device_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "results_file": _shown(str(results_file.resolve())),
        "environment": environment,
        "ok": all(step["status"] == PASSED for step in steps),
        "total_wall_s": round(time.perf_counter() - start, 1),
        "steps": steps,
    }
    results["report"] = report(results)
    benchlib.write_json(results_file, results)
    replace_marked_section(markdown, results["report"])

    print(benchlib.markdown_table(["step", "status", "wall s", "budget s"],
                                  [[s["name"], s["status"], f"{s['wall_s']:.0f}", f"{s['budget_s']:g}"] for s in steps]))
    print(f"\nresults: {results_file}\nsection: {markdown}")
    if not args.quick:
        print(f"commit: git add {_shown(str(results_file))} {_shown(str(run_dir))} {_shown(str(markdown))} "
              f"lrnn/scan/auto_methods.json")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

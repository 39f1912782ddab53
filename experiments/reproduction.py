"""What the paper-reproduction scripts (experiments/reproduce_*.py) share: a grid of training
runs, the best of seeds, markdown tables, and their section of RESULTS.md.

A grid is every (task, model, seed) of two tables of config overrides, `tasks` and `models`
({label: ["section.key=value", …]}), on top of `shared` overrides; each run trains through
`experiments.training.loop.train` into `out/<task>-<model>-seed<seed>/`, and a rerun continues
a run that has a checkpoint there. Scores are {(task, model): {seed: score}}.

RESULTS.md is "# Results" and then one section per script, each from its "## " heading to the
next one; a script's new section replaces its old one (found by the heading's start, `key`)
and leaves the others as they are.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import platform
import re
import shlex
import sys
from typing import Callable

from experiments.training import config as run_config

RESULTS_TITLE = "# Results\n\n"
ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Run:
    task: str          # the task's label (a table column)
    model: str         # the model's label (a table row)
    seed: int
    config: run_config.RunConfig


def add_grid_arguments(parser: argparse.ArgumentParser, name: str, sizes) -> None:
    """The options every reproduction script takes: --size (one of `sizes`), --seeds, --set,
    --out (runs/<name>), --results (RESULTS.md) and --json (experiments/results/<name>_<size>.json)."""
    parser.add_argument("--size", choices=sorted(sizes), default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the size's")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="config overrides for every run, after the size's (e.g. train.steps=20)")
    parser.add_argument("--out", default=f"runs/{name}", help="where the runs go")
    parser.add_argument("--results", default=str(ROOT / "RESULTS.md"), help="where the table goes")
    parser.add_argument("--json", help=f"where the raw scores go (default experiments/results/{name}_<size>.json)")


def raw_scores_path(args: argparse.Namespace, name: str) -> pathlib.Path:
    """--json, or experiments/results/<name>_<size>.json."""
    return pathlib.Path(args.json) if args.json else ROOT / "experiments" / "results" / f"{name}_{args.size}.json"


def grid(tasks: dict[str, list[str]], models: dict[str, list[str]], seeds: list[int],
         shared: list[str], out: pathlib.Path) -> list[Run]:
    """Every task × model × seed as a checked config (a bad override fails here, before training)."""
    runs = []
    for task, task_overrides in tasks.items():
        for model, model_overrides in models.items():
            for seed in seeds:
                directory = out / slug(f"{task}-{model}-seed{seed}")
                overrides = [*shared, *task_overrides, *model_overrides, f"train.seed={seed}",
                             f"train.out_dir={directory}", "train.progress=false"]
                runs.append(Run(task, model, seed, run_config.load(None, overrides)))
    return runs


def slug(text: str) -> str:
    """A directory name for a label: runs of anything but letters, digits, '.' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text.replace("−", "minus"))


def run_grid(runs: list[Run], score: Callable, score_name: str) -> tuple[dict, float]:
    """Trains every run (continuing any with a checkpoint) and prints a line per run.

    `score(run, result)` is a run's number. Returns ({(task, model): {seed: score}}, the
    seconds of training and evaluation summed over the runs)."""
    from experiments.training import cpu_numerics
    cpu_numerics.pin_if_asked(runs[0].config.train.cpu_threads if runs else None)  # before JAX's backend starts
    from experiments.training.checkpoint import has_run
    from experiments.training.loop import train

    scores: dict[tuple[str, str], dict[int, float]] = {}
    seconds = 0.0
    for run in runs:
        result = train(run.config, resume=has_run(run.config.train.out_dir))
        seconds += result.seconds
        value = score(run, result)
        scores.setdefault((run.task, run.model), {})[run.seed] = value
        print(f"{run.task:30s} {run.model:18s} seed {run.seed}: {score_name} {value:.3f} "
              f"({result.seconds:.0f} s)", flush=True)
    return scores, seconds


def best_of_seeds(scores: dict) -> dict:
    """{(task, model): the highest score over its seeds}."""
    return {key: max(values.values()) for key, values in scores.items()}


def markdown_table(rows: list[str], columns: list[str], cell: Callable[[str, str], str], *,
                   corner: str = "model") -> str:
    """A table with `rows` down the side, `columns` across, `cell(row, column)` in each place."""
    lines = [f"| {corner} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(cell(row, column) for column in columns) + " |")
    return "\n".join(lines)


def per_seed_lines(scores: dict, seeds: list[int], form: Callable[[float], str]) -> list[str]:
    """A task | model | seed … table (as lines), one row per (task, model) of `scores`."""
    lines = ["| task | model | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---:|" * len(seeds)]
    for (task, model), values in scores.items():
        lines.append(f"| {task} | {model} | " + " | ".join(form(values[s]) for s in seeds) + " |")
    return lines


def command_line(script: str, argv: list[str] | None) -> str:
    """How the script was run: `python <script> <its arguments>`."""
    return f"python {script} {shlex.join(argv if argv is not None else sys.argv[1:])}".strip()


def made_by(command: str, seconds: float) -> str:
    """The run line: the command, the machine, the date and the minutes it took."""
    return f"""Made by

    {command}

on {platform.processor() or platform.machine()} ({platform.system()}), {datetime.date.today()}, in
{seconds / 60:.0f} minutes of training and evaluation."""


def write_section(path: pathlib.Path, section: str, key: str) -> None:
    """Put `section` (text from its "## " heading on) into the results file at `path`, in place
    of the section whose heading starts with `key`, or after the others if there is none."""
    if not section.startswith(key) or not key.startswith("## "):
        raise ValueError(f"a section must start with its key, a '## ' heading; got key {key!r} "
                         f"and a section starting {section[:40]!r}")
    head, sections = split_sections(path.read_text() if path.exists() else "")
    head = head.rstrip("\n") + "\n\n" if head.strip() else RESULTS_TITLE
    for index, old in enumerate(sections):
        if old.startswith(key):
            sections[index] = section
            break
    else:
        sections.append(section)
    path.write_text(head + "\n".join(part if part.endswith("\n") else part + "\n" for part in sections))


def split_sections(text: str) -> tuple[str, list[str]]:
    """(the text before the first "## " heading, [each section from its heading on])."""
    starts = [match.start() for match in re.finditer(r"^## ", text, flags=re.MULTILINE)]
    if not starts:
        return text, []
    bounds = [*starts, len(text)]
    return text[:starts[0]], [text[a:b].rstrip("\n") + "\n" for a, b in zip(bounds, bounds[1:])]


def write_json(path: pathlib.Path, scores: dict) -> None:
    """The raw scores as {"task | model": {seed: score}}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = {f"{task} | {model}": values for (task, model), values in scores.items()}
    path.write_text(json.dumps(raw, indent=2) + "\n")

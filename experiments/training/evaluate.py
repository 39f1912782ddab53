"""Evaluation across lengths: accuracy at each test length, a table, and a plot.

For each length L, `eval_batches` seeded batches of exactly L tokens (the same for every model
and run with that seed) give the loss, the token accuracy and the final accuracy (whether the
answer for the whole sequence is right; see `objective`). The scaled final accuracy maps chance
to 0; averaged over the lengths beyond training it is the number the state-tracking papers report.
"""

from __future__ import annotations

import pathlib

from experiments.training.objective import scaled


def length_rows(results: dict[int, dict], n_classes: int) -> list[dict]:
    """[{length, loss, accuracy, final_accuracy, scaled_accuracy}] sorted by length."""
    return [{"length": length, **values, "scaled_accuracy": scaled(values["final_accuracy"], n_classes)}
            for length, values in sorted(results.items())]


def mean_scaled(rows: list[dict], beyond: int) -> float:
    """Mean scaled accuracy over the rows with length > `beyond` (all rows if none is)."""
    chosen = [row for row in rows if row["length"] > beyond] or rows
    return sum(row["scaled_accuracy"] for row in chosen) / len(chosen)


def markdown_table(runs: dict[str, list[dict]], *, metric: str = "final_accuracy") -> str:
    """Models as rows, lengths as columns: `metric` at each length."""
    lengths = sorted({row["length"] for rows in runs.values() for row in rows})
    lines = ["| model | " + " | ".join(f"L={length}" for length in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for name, rows in runs.items():
        by_length = {row["length"]: row[metric] for row in rows}
        cells = [f"{by_length[length]:.3f}" if length in by_length else "–" for length in lengths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], path: pathlib.Path, *, train_length: int, title: str,
         metric: str = "final_accuracy", chance: float | None = None) -> pathlib.Path:
    """A PNG of `metric` against length, one line per model, the training length marked."""
    from matplotlib.figure import Figure  # a bare Figure: the process's backend (a notebook's) stays

    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.subplots()
    for name, rows in runs.items():
        axes.plot([row["length"] for row in rows], [row[metric] for row in rows], marker="o", label=name)
    axes.axvline(train_length, color="grey", linestyle="--", linewidth=1, label="longest training length")
    if chance is not None:
        axes.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
    lengths = sorted({row["length"] for rows in runs.values() for row in rows})
    axes.set_xscale("log", base=2)
    axes.set_xticks(lengths, labels=[str(length) for length in lengths])
    axes.minorticks_off()
    axes.set_xlabel("sequence length")
    axes.set_ylabel(metric.replace("_", " "))
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path

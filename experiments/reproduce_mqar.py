"""Multi-query associative recall against model width, the Zoology protocol (Arora et al. 2023,
"Zoology: Measuring and improving recall in efficient language models", its Figure 2), for
GLA, DeltaNet and Mamba.

Protocol (the paper's): two-layer models of width d_model ∈ {64, 128, 256, 512} trained on MQAR
at sequence length 256 with 64 key-value pairs (a vocabulary of 8 192, query gaps drawn from
Zoology's power law), scored by the accuracy of the recalled values at the query positions of
held-out sequences of the same length; the best over learning rates (here: over seeds).

    python experiments/reproduce_mqar.py                 # the CPU-sized run; writes RESULTS.md
    python experiments/reproduce_mqar.py --size paper    # the paper-sized one (a GPU's work)

Sizes: "paper" as above (the cells' default head counts, 10 000 steps of 256 sequences, one
learning rate, 3 seeds). "cpu" recalls 8 pairs from a vocabulary of 64 in sequences of 64 tokens
with models of width 16, 32 and 64, 600 steps of 64 sequences: 9 runs in about 12 minutes on
two CPU cores. At the paper's length 256 (16 pairs, vocabulary 256) no model learned anything in
400–600 steps on a CPU (every accuracy at chance, 0.005–0.008), so the CPU size is where a CPU
sees the recall being learned. Based (Taylor-feature linear attention), in the paper's figure,
is not a cell of lrnn and is left out.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments import reproduction  # noqa: E402

SECTION_KEY = "## MQAR:"
LENGTHS = {"cpu": 64, "paper": 256}

MODELS = {
    "GLA": ["model.cell=gla", "model.cell_options={n_heads=2}"],
    "DeltaNet": ["model.cell=deltanet", "model.cell_options={n_heads=2}"],
    "Mamba": ["model.cell=mamba", "model.expand=2", "model.output_gate=true"],
}
WIDTHS = {"cpu": [16, 32, 64], "paper": [64, 128, 256, 512]}
COMMON = ["task.name=mqar", "model.n_layers=2", "model.conv_size=4", "model.ffn=glu", "optim.weight_decay=0.1",
          "optim.final_learning_rate_fraction=0.1"]
SIZES = {
    "cpu": ["task.options={n_pairs=8, vocab_size=64}", "task.train_length=64", "task.eval_lengths=[64]",
            "train.steps=600", "train.batch_size=64", "optim.learning_rate=3e-3", "optim.warmup_steps=40",
            "task.eval_batches=4"],
    "paper": ["task.options={n_pairs=64, vocab_size=8192}", "task.train_length=256", "task.eval_lengths=[256]",
              "train.steps=10000", "train.batch_size=256", "optim.learning_rate=1e-3", "optim.warmup_steps=500",
              "task.eval_batches=16"],
}
DEFAULT_SEEDS = {"cpu": [0], "paper": [0, 1, 2]}


def widths_table(widths: list[int]) -> dict[str, list[str]]:
    """The grid's columns: one model width each."""
    return {f"d_model={width}": [f"model.d_model={width}"] for width in widths}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    reproduction.add_grid_arguments(parser, "mqar", SIZES)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="a part of the grid (default: all)")
    parser.add_argument("--widths", type=int, nargs="+", help="model widths (default: the size's WIDTHS)")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or DEFAULT_SEEDS[args.size]
    args.models = args.models or list(MODELS)
    args.widths = args.widths or WIDTHS[args.size]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    models = {name: MODELS[name] for name in args.models}
    runs = reproduction.grid(widths_table(args.widths), models, args.seeds,
                             [*COMMON, *SIZES[args.size], *args.set], pathlib.Path(args.out) / args.size)
    scores, seconds = reproduction.run_grid(runs, lambda run, result: result.rows[-1]["accuracy"], "accuracy")
    table = results_table(scores, args)
    print("\n" + table)
    command = reproduction.command_line("experiments/reproduce_mqar.py", argv)
    reproduction.write_section(pathlib.Path(args.results), section(table, scores, args, command, seconds), SECTION_KEY)
    reproduction.write_json(reproduction.raw_scores_path(args, "mqar"), scores)
    return 0


def results_table(scores: dict, args) -> str:
    """Models as rows, widths as columns: the best seed's recall accuracy."""
    best = reproduction.best_of_seeds(scores)
    return reproduction.markdown_table(args.models, list(widths_table(args.widths)),
                                       lambda model, width: f"{best[width, model]:.3f}")


def section(table: str, scores: dict, args, command: str, seconds: float) -> str:
    task = next(o for o in SIZES[args.size] if o.startswith("task.options=")).split("=", 1)[1]
    cpu = ("CPU size: sequences of 64 tokens with 8 key-value pairs from a vocabulary of 64 (the paper: 256 "
           "tokens, 64 pairs from 8 192); widths 16–64 (the paper: 64–512); 600 steps of 64 sequences, one seed. "
           "At length 256 with 16 pairs from 256 no model learned anything in 400–600 CPU steps.")
    return f"""{SECTION_KEY} recall accuracy against width (Zoology, Arora et al. 2023), {args.size}-sized

Accuracy of the recalled values at the query positions of held-out sequences of length
{LENGTHS[args.size]} ({task}), two layers, best of seeds {", ".join(map(str, args.seeds))}.
{reproduction.made_by(command, seconds)} Settings: `experiments/reproduce_mqar.py` (COMMON, SIZES,
MODELS); every run is under `{args.out}/{args.size}/`.

{table}

Where this run differs from the paper's protocol:
- {cpu if args.size == "cpu" else "One learning rate and 3 seeds instead of the paper's learning-rate sweep."}
- The model is lrnn's (pre-norm residual blocks: short conv, cell, GLU), not Zoology's.
- Based is not an lrnn cell and is left out; the paper's attention baseline is not run.
"""


if __name__ == "__main__":
    sys.exit(main())

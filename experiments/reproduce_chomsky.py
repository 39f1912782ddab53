"""Reproduce the regular and deterministic context-free rows of Table 2 of Delétang et al.
(ICLR 2023), "Neural networks and the Chomsky hierarchy", with linear RNNs: LRU, Mamba and
DeltaNet with eigenvalues in [0, 1] and in [−1, 1], DeltaProduct, GLA, mLSTM and GateLoop.

Protocol (the paper's): train on input lengths 1–40 drawn uniformly, test on longer inputs;
a task's score is its accuracy averaged over the test lengths, the best over seeds.
Accuracy at a test length, pooled over that length's test sequences:
- a task with one answer (even pairs, modular arithmetic, parity check, cycle navigation):
  the fraction of sequences whose answer (after the whole input) is right;
- a task whose answer is a string (stack manipulation, reverse string): the fraction of the
  answer's tokens that are right (for stack manipulation the tokens up to and including its
  end-of-stack symbol), the paper's per-token accuracy.
The paper tests every input length 41–500; here the test lengths are a subset (TEST_LENGTHS:
41, 64, 128, 256 for "cpu"; 41 and every tenth length 50–500 for "paper").

A length is the paper's input length n; stack manipulation and reverse string append an
answer tape (see experiments/tasks/transduction.py), so their sequences hold 2n + 1 and 2n
tokens, and those are the lengths they are trained and tested at.

    python experiments/reproduce_chomsky.py                 # the CPU-sized run; writes RESULTS.md
    python experiments/reproduce_chomsky.py --size paper    # the larger one (a GPU's work)
    python experiments/reproduce_chomsky.py --models deltanet_neg --tasks parity_check \\
        --set train.steps=100                               # a part of the grid, settings changed

Sizes: "cpu" trains every model (d_model 32, one layer) for 300 steps of 32 sequences at a high
learning rate, one seed, so that the 63 runs take about 18 minutes on two CPU cores (compiling
and evaluating are about 10 of them; timed run by run, not as a whole);
"paper" trains a larger model (d_model 64, two layers with a GLU) on the paper's batch size
of 128 for 20 000 steps, best of 3 seeds. The paper trains each of its models 1 000 000 steps
and reports the best of 10 seeds and 3 learning rates.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments import reproduction  # noqa: E402
from experiments.tasks import make_task  # noqa: E402
from experiments.tasks.transduction import Transduction  # noqa: E402

SECTION_KEY = "## Chomsky hierarchy:"

# key: (label in the table, registered task, its options). The paper's order and its task names.
TASKS = {
    "even_pairs": ("Even Pairs (R)", "even_pairs", {}),
    "modular_arithmetic": ("Mod. Arithmetic (Simple) (R)", "modular_arithmetic", {"brackets": False}),
    "parity_check": ("Parity Check (R)", "parity", {}),
    "cycle_navigation": ("Cycle Navigation (R)", "cycle_navigation", {}),
    "stack_manipulation": ("Stack Manipulation (DCF)", "stack_manipulation", {}),
    "reverse_string": ("Reverse String (DCF)", "reverse_string", {}),
    "modular_arithmetic_brackets": ("Mod. Arithmetic (DCF)", "modular_arithmetic", {"brackets": True}),
}
# Table 2 of Delétang et al. (ICLR 2023): (Transformer, LSTM) scores in percent. Modular arithmetic
# (simple), parity check, stack manipulation and reverse string are checked against a copy of the
# table; even pairs, cycle navigation and modular arithmetic (DCF) are two readers' recollection of
# it that agree, not yet checked against a copy (UNCHECKED; the results section says so).
UNCHECKED = ("even_pairs", "cycle_navigation", "modular_arithmetic_brackets")
PAPER_SCORES = {
    "even_pairs": (96.4, 100.0), "modular_arithmetic": (24.2, 100.0), "parity_check": (52.0, 100.0),
    "cycle_navigation": (61.9, 100.0), "stack_manipulation": (57.5, 59.1),
    "reverse_string": (62.3, 60.9), "modular_arithmetic_brackets": (32.5, 59.2),
}
# Matrix-state cells train in chunks of 8 tokens: on a CPU 2–6× faster per step than the chunk
# "auto" picks at these lengths (DeltaProduct 155 → 29 ms). The chunk changes the speed only.
MATRIX_CHUNK = "model.chunk_size=8"
# key: (label in the table, overrides)
MODELS = {
    "lru": ("LRU", ["model.cell=lru", "model.cell_options={d_state=64}"]),
    "mamba": ("Mamba [0, 1]", ["model.cell=mamba", "model.cell_options={eigenvalue_range=[0, 1]}",
                               "model.expand=2", "model.output_gate=true"]),
    "mamba_neg": ("Mamba [−1, 1]", ["model.cell=mamba", "model.cell_options={eigenvalue_range=[-1, 1]}",
                                    "model.expand=2", "model.output_gate=true"]),
    "deltanet": ("DeltaNet [0, 1]", ["model.cell=deltanet", MATRIX_CHUNK,
                                     "model.cell_options={n_heads=4, eigenvalue_range=[0, 1]}"]),
    "deltanet_neg": ("DeltaNet [−1, 1]", ["model.cell=deltanet", MATRIX_CHUNK,
                                          "model.cell_options={n_heads=4, eigenvalue_range=[-1, 1]}"]),
    "deltaproduct": ("DeltaProduct₂ [−1, 1]", ["model.cell=deltaproduct", MATRIX_CHUNK,
                                               "model.cell_options={n_heads=4, n_h=2, eigenvalue_range=[-1, 1]}"]),
    "gla": ("GLA", ["model.cell=gla", MATRIX_CHUNK, "model.cell_options={n_heads=4}"]),
    "mlstm": ("mLSTM", ["model.cell=mlstm", MATRIX_CHUNK, "model.cell_options={n_heads=4}"]),
    "gateloop": ("GateLoop", ["model.cell=gateloop", MATRIX_CHUNK]),
}
COMMON = ["model.n_layers=1", "model.pooling=last", "model.conv_size=4", "optim.weight_decay=0.0",
          "optim.final_learning_rate_fraction=1e-3", "optim.clip_norm=1.0"]
SIZES = {
    "cpu": ["model.d_model=32", "model.ffn=none", "train.steps=300", "train.batch_size=32",
            "optim.learning_rate=5e-3", "optim.warmup_steps=30", "task.eval_batches=2"],
    "paper": ["model.d_model=64", "model.n_layers=2", "model.ffn=glu", "train.steps=20000",
              "train.batch_size=128", "optim.learning_rate=1e-3", "optim.warmup_steps=1000",
              "task.eval_batches=4"],
}
DEFAULT_SEEDS = {"cpu": [0], "paper": [0, 1, 2]}
TRAIN_LENGTH = 40  # the paper's longest training input
TEST_LENGTHS = {"cpu": [41, 64, 128, 256], "paper": [41, *range(50, 501, 10)]}


def main(argv=None) -> int:
    args = parse_args(argv)
    tasks = {TASKS[key][0]: task_overrides(key, args.test_lengths) for key in args.tasks}
    models = {MODELS[key][0]: MODELS[key][1] for key in args.models}
    runs = reproduction.grid(tasks, models, args.seeds, [*COMMON, *SIZES[args.size], *args.set],
                             pathlib.Path(args.out) / args.size)  # all checked first
    scores, seconds = reproduction.run_grid(runs, score, "accuracy")
    table = results_table(scores, args)
    print("\n" + table)
    command = reproduction.command_line("experiments/reproduce_chomsky.py", argv)
    write_results(pathlib.Path(args.results), table, scores, args, command, seconds)
    reproduction.write_json(reproduction.raw_scores_path(args, "chomsky"), scores)
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    reproduction.add_grid_arguments(parser, "chomsky", SIZES)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--test-lengths", type=int, nargs="+",
                        help="input lengths to test at, each above 40 (default: the size's)")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or DEFAULT_SEEDS[args.size]
    args.test_lengths = sorted(set(args.test_lengths or TEST_LENGTHS[args.size]))
    if args.test_lengths[0] <= TRAIN_LENGTH:
        parser.error(f"--test-lengths must be above the longest training length {TRAIN_LENGTH}, "
                     f"got {args.test_lengths[0]}")
    return args


def task_overrides(key: str, test_lengths: list[int]) -> list[str]:
    """The task's config, the paper's input lengths n as the lengths of its sequences (a
    Transduction task's sequence holds the input and its answer tape)."""
    _, name, options = TASKS[key]
    task = make_task(name, **options)
    tokens = task.sequence_length if isinstance(task, Transduction) else (lambda n: n)
    inline = ", ".join(f"{option}={json.dumps(value)}" for option, value in options.items())
    return [f"task.name={name}", f"task.options={{{inline}}}", f"task.train_length={tokens(TRAIN_LENGTH)}",
            f"task.min_train_length={tokens(1)}",
            f"task.eval_lengths=[{', '.join(str(tokens(n)) for n in test_lengths)}]"]


def score(run: reproduction.Run, result) -> float:
    """The paper's accuracy (see the module docstring), averaged over the test lengths: the
    token accuracy of an answer tape, else the accuracy of the answer after the whole input."""
    task = make_task(run.config.task.name, **run.config.task.options)
    metric = "accuracy" if isinstance(task, Transduction) else "final_accuracy"
    return sum(row[metric] for row in result.rows) / len(result.rows)


def results_table(scores: dict, args) -> str:
    """Models as rows (then the paper's Transformer and LSTM), tasks as columns: best of seeds, in %."""
    best = reproduction.best_of_seeds(scores)
    labels = {TASKS[key][0]: key for key in args.tasks}
    paper = {"Transformer (paper)": 0, "LSTM (paper)": 1}

    def cell(model: str, task: str) -> str:
        if model in paper:
            return f"{PAPER_SCORES[labels[task]][paper[model]]:.1f}"
        return f"{100 * best[task, model]:.1f}"

    return reproduction.markdown_table([MODELS[key][0] for key in args.models] + list(paper),
                                       list(labels), cell)


def write_results(path: pathlib.Path, table: str, scores: dict, args, command: str, seconds: float) -> None:
    per_seed = reproduction.per_seed_lines(scores, args.seeds, lambda value: f"{100 * value:.1f}")
    made_by = reproduction.made_by(command, seconds)
    lengths = ", ".join(map(str, args.test_lengths))
    section = f"""{SECTION_KEY} Delétang et al. (ICLR 2023), Table 2 protocol, {args.size}-sized

Accuracy in percent (100 = perfect; chance is 50 for the binary tasks, 20 for modular
arithmetic and cycle navigation) after training on input lengths 1–40, averaged over the test
input lengths {lengths}; best of seeds {", ".join(map(str, args.seeds))}. A test length's
accuracy is pooled over its test sequences: for a task with one answer, the fraction of
sequences whose answer after the whole input is right; for stack manipulation and reverse
string, the fraction of answer tokens that are right (for stack manipulation those up to and
including the end-of-stack symbol), the paper's per-token accuracy. The tasks are the paper's:
bit strings, a cycle of 5 positions, numbers mod 5 with +, − and ×.

{made_by} The settings are in `experiments/reproduce_chomsky.py` (SIZES, COMMON, MODELS,
TASKS); every run's config, metrics, plot and checkpoint are under `{args.out}/{args.size}/`.
The Transformer and LSTM rows are the paper's own scores (Delétang et al. 2023, Table 2), not
runs of this script; those for {", ".join(TASKS[key][0] for key in UNCHECKED)} are quoted from
memory of the table, not yet checked against a copy.

{table}

Per seed:

{chr(10).join(per_seed)}

Where this run differs from the paper's protocol:
- Test lengths: {lengths}, not every input length from 41 to 500.
- Even pairs, parity check and cycle navigation are trained with the answer for every prefix as
  a target (the project's tagging convention); the paper supervises only the answer after the
  whole input. The score is the same: the answer after the whole input.
- Stack manipulation: the loss counts the answer tokens up to the end-of-stack symbol, as the
  accuracy does; the paper's loss also counts the padding 0s after it.
- Modular arithmetic (simple) of an even length is an expression one token shorter and one
  padding token; the paper draws one token longer.
- The models are lrnn's (embedding, pre-norm residual block around the mixer: in-projection,
  short conv, cell, out-projection; final norm, linear head), trained with AdamW (no weight
  decay) and a warmup-cosine schedule at one learning rate, not the paper's Adam at three.
- Training: CPU size {", ".join(SIZES["cpu"])}; paper size {", ".join(SIZES["paper"])};
  the paper's: 1 000 000 steps of batch 128, best of 10 seeds × 3 learning rates.
"""
    reproduction.write_section(path, section, key=SECTION_KEY)


if __name__ == "__main__":
    sys.exit(main())

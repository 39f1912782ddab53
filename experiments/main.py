"""The main job: can DeltaNet track parity, and does it need negative eigenvalues to?

Trains the same small DeltaNet twice on parity, once with β = 2σ(·) (transition eigenvalues in
(−1, 1)) and once with β = σ(·) (eigenvalues in (0, 1)), on sequences of 3–40 bits, then tests
both on sequences of up to 256 bits. Grazzi et al. (ICLR 2025) prove that only the first can
represent parity at every length; this shows it on a CPU in a few minutes.

    python experiments/main.py                     # prints the table, writes runs/main/parity.png
    python experiments/main.py train.steps=300     # any override applies to both models
    python experiments/main.py --out /tmp/parity   # somewhere else than runs/main

Each model is an ordinary `experiments/train.py` run of the embedded default config (see
experiments/training/config.py), so `python experiments/train.py` reproduces either one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments.training import config as run_config  # noqa: E402

MODELS = {"DeltaNet, eigenvalues in (−1, 1)": (-1, 1), "DeltaNet, eigenvalues in (0, 1)": (0, 1)}


def configs(overrides: list[str], out: pathlib.Path) -> dict[str, run_config.RunConfig]:
    base = run_config.load(None, overrides)
    chosen = {}
    for name, (low, high) in MODELS.items():
        options = {**base.model.cell_options, "eigenvalue_range": (low, high)}
        slug = "negative" if low < 0 else "positive"
        chosen[name] = run_config.RunConfig(
            model=dataclasses.replace(base.model, cell_options=options), task=base.task, optim=base.optim,
            train=dataclasses.replace(base.train, out_dir=str(out / slug)))
        run_config.validate(chosen[name])
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", default="runs/main", help="where the two runs and the plot go")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    try:
        chosen = configs(args.overrides, out)
    except run_config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from experiments.training import cpu_numerics
    cpu_numerics.pin_if_asked(next(iter(chosen.values())).train.cpu_threads)
    from experiments.training import checkpoint, evaluate
    from experiments.training.loop import train

    # A run that already has checkpoints here continues from them (or is only evaluated again).
    try:
        results = {name: train(config, resume=checkpoint.has_run(config.train.out_dir)) for name, config in chosen.items()}
    except run_config.ConfigError as error:
        print(f"error: {error}; pass --out to start these runs elsewhere", file=sys.stderr)
        return 2
    config = next(iter(chosen.values()))
    rows = {name: result.rows for name, result in results.items()}
    print(f"\nParity, trained on lengths ≤ {config.task.train_length}: "
          "accuracy of the parity of the whole sequence, by length\n")
    print(evaluate.markdown_table(rows))
    print()
    for name, result in results.items():
        print(f"{name}: mean scaled accuracy beyond length {config.task.train_length} = "
              f"{result.mean_scaled_accuracy:.3f}  (trained in {result.seconds:.0f} s)")
    figure = evaluate.plot(rows, out / "parity.png", train_length=config.task.train_length,
                           title="DeltaNet on parity: accuracy vs length", chance=0.5)
    summary = {name: {"rows": result.rows, "mean_scaled_accuracy": result.mean_scaled_accuracy,
                      "seconds": result.seconds} for name, result in results.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nplot: {figure}\nruns: {out}/negative, {out}/positive (metrics.jsonl, tensorboard/, checkpoints/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train any lrnn model on any task from a config file plus overrides.

    python experiments/train.py                                    # the embedded default (parity)
    python experiments/train.py --config experiments/configs/parity.toml model.cell=mamba \
        'model.cell_options={eigenvalue_range=[-1, 1]}' train.steps=500
    python experiments/train.py --config ... --resume              # continue the latest checkpoint

Overrides are `section.key=value` (sections model, task, optim, train; see
experiments/training/config.py). Data parallel over every device by default; `train.mesh.data=N
train.mesh.seq=M` splits time over M devices too (sequence parallelism) and shards parameters and
optimizer state over the N of "data" (experiments/training/parallel.py). On several hosts run
the same command on each with `--distributed`, which calls `jax.distributed.initialize()`: under
a cluster manager it detects (Slurm, Open MPI, Kubernetes, Cloud TPU) that finds the coordinator,
the process count and this process's id by itself; elsewhere there is no environment variable
for the count and id (tests/experiments/test_multihost.py shows a launcher that passes them). Prints the accuracy-vs-length table at
the end; everything else is in train.out_dir.

Exit codes: 0 done; 2 a bad config, a missing or unusable checkpoint (one line on stderr); 75
(EX_TEMPFAIL) stopped by SIGTERM/SIGINT (or, with --distributed, JAX's preemption notice) after
finishing the step, saving a checkpoint and flushing the metrics: stderr names the step and the
command that continues the run. With --resume a damaged newest checkpoint (truncated or missing
file, unreadable metadata, an unfinished save) is reported, moved to
train.out_dir/damaged_checkpoints/ and the one before it restored.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments.training import config as run_config  # noqa: E402

EXIT_PREEMPTED = 75  # os.EX_TEMPFAIL: stopped on a signal, a checkpoint saved, rerun with --resume


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a TOML file with [model], [task], [optim], [train] tables")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in train.out_dir")
    parser.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() first")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = run_config.load(args.config, args.overrides)
    except run_config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from experiments.training import cpu_numerics
    cpu_numerics.pin_if_asked(config.train.cpu_threads)
    import jax

    if args.distributed:
        jax.distributed.initialize()
    from experiments.training import evaluate
    from experiments.training.checkpoint import CheckpointError
    from experiments.training.loop import Preempted, train

    try:
        result = train(config, resume=args.resume)
    except (FileNotFoundError, FileExistsError, run_config.ConfigError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Preempted as stopped:
        if jax.process_index() == 0:
            print(f"\n{stopped}\nto continue: {resume_command(argv)}", file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    if jax.process_index() == 0:
        name = f"{config.model.cell} {dict(config.model.cell_options) or ''}".strip()
        print(f"\n{config.task.name}: trained on lengths ≤ {config.task.train_length}, "
              f"{result.seconds:.0f} s; final accuracy by length:\n")
        print(evaluate.markdown_table({name: result.rows}))
        print(f"\nmean scaled accuracy beyond the training length: {result.mean_scaled_accuracy:.3f}")
        print(f"outputs: {result.out_dir}")
    return 0


def resume_command(argv=None) -> str:
    """The shell command that continues this run: the same arguments plus --resume, run from the
    same directory."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in args:
        args.append("--resume")
    command = shlex.join([sys.executable, __file__, *args])
    return f"cd {shlex.quote(os.getcwd())} && {command}"


if __name__ == "__main__":
    sys.exit(main())

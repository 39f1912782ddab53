"""Seeded, offline task generators for training and evaluating sequence models.

Every task is a frozen dataclass (its fields are its options) that draws a `Batch` of
`inputs`, `targets` and `mask` from a numpy Generator; see `base` for the contract and
each module's docstring for its definition.

    make_task("mqar", n_pairs=4, vocab_size=64).batch(np.random.default_rng(0), 8, 32)

Synthetic: parity, modular_arithmetic, group_word, mqar, selective_copy, induction_heads,
listops. Shipped data: digits (scikit-learn), char_lm (a local file). TensorFlow-Datasets
(lrnn[data]): smnist, scifar, imdb_bytes.
"""

from __future__ import annotations

import dataclasses

from experiments.tasks.base import Batch, Task
from experiments.tasks.char_lm import CharLM
from experiments.tasks.digits import SequentialDigits
from experiments.tasks.group_word import GroupWord
from experiments.tasks.induction_heads import InductionHeads
from experiments.tasks.listops import ListOps
from experiments.tasks.modular_arithmetic import ModularArithmetic
from experiments.tasks.mqar import MQAR
from experiments.tasks.parity import Parity
from experiments.tasks.selective_copy import SelectiveCopy
from experiments.tasks.tfds_loaders import IMDBBytes, SequentialCIFAR, SequentialMNIST

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    Parity, ModularArithmetic, GroupWord, MQAR, SelectiveCopy, InductionHeads, ListOps,
    SequentialDigits, CharLM, SequentialMNIST, SequentialCIFAR, IMDBBytes)}


def task_options(name: str) -> dict[str, dataclasses.Field]:
    """The options a task takes, by name (its dataclass fields that `__init__` accepts)."""
    return {f.name: f for f in dataclasses.fields(TASKS[name]) if f.init}


def make_task(name: str, **options) -> Task:
    """The task registered as `name` with `options` (the rest at their defaults)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    known = task_options(name)
    unknown = [option for option in options if option not in known]
    if unknown:
        listed = ", ".join(known) if known else "none"
        raise ValueError(f"task {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"its options: {listed}")
    missing = [option for option, field in known.items() if option not in options
               and field.default is dataclasses.MISSING
               and field.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"task {name!r} needs option {', '.join(map(repr, missing))}")
    return TASKS[name](**options)


__all__ = ["Batch", "Task", "TASKS", "make_task", "task_options"]

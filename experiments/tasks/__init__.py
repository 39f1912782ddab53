"""Seeded, offline task generators for training and evaluating sequence models.

Every task is a frozen dataclass (its fields are its options) that draws a `Batch` of
`inputs`, `targets` and `mask` from a numpy Generator; see `base` for the contract and
each module's docstring for its definition.

    make_task("mqar", n_pairs=4, vocab_size=64).batch(np.random.default_rng(0), 8, 32)

Synthetic: parity, modular_arithmetic, even_pairs, cycle_navigation, stack_manipulation,
reverse_string, group_word, mqar, selective_copy, induction_heads,
listops. Shipped data: digits (scikit-learn), char_lm (a local file). TensorFlow-Datasets
(lrnn[data]): smnist, scifar, imdb_bytes, and any labelled data set as tfds. One's own arrays
on disk (.npy / .npz): arrays.

A task of one's own: a `Task` subclass decorated with `register_task`, in a module that
`load_task_module` (the training config's `task.module`) imports; see `registry`.
"""

from __future__ import annotations

from experiments.tasks.arrays import ArrayData, save_arrays
from experiments.tasks.base import Batch, Task
from experiments.tasks.char_lm import CharLM
from experiments.tasks.cycle_navigation import CycleNavigation
from experiments.tasks.digits import SequentialDigits
from experiments.tasks.even_pairs import EvenPairs
from experiments.tasks.group_word import GroupWord
from experiments.tasks.induction_heads import InductionHeads
from experiments.tasks.listops import ListOps
from experiments.tasks.modular_arithmetic import ModularArithmetic
from experiments.tasks.mqar import MQAR
from experiments.tasks.parity import Parity
from experiments.tasks.registry import TASKS, load_task_module, make_task, register_task, task_options
from experiments.tasks.reverse_string import ReverseString
from experiments.tasks.selective_copy import SelectiveCopy
from experiments.tasks.stack_manipulation import StackManipulation
from experiments.tasks.tfds_loaders import IMDBBytes, SequentialCIFAR, SequentialMNIST, TFDSDataset

for _builtin in (
    Parity, ModularArithmetic, EvenPairs, CycleNavigation, StackManipulation, ReverseString,
    GroupWord, MQAR, SelectiveCopy, InductionHeads, ListOps,
    SequentialDigits, CharLM, SequentialMNIST, SequentialCIFAR, IMDBBytes, TFDSDataset, ArrayData):
    register_task(_builtin)

__all__ = ["Batch", "Task", "TASKS", "load_task_module", "make_task", "register_task", "save_arrays", "task_options"]

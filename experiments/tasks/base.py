"""What every task is: a frozen dataclass whose fields are its hyperparameters, and which
draws one `Batch` at a time from a numpy `Generator`.

A batch has three arrays, batch-first:

    inputs   (B, T) int32 token ids in [0, vocab_size)   or   (B, T, F) float32 features
    targets  kind "classify": (B,) int32        kind "tag" / "lm": (B, T) int32
    mask     (B, T) bool
             "classify": which input positions are real (padding only ever at the end);
             "tag" / "lm": the positions whose target counts.

Determinism: every random draw comes from the generator passed in, so the same seed gives
the same batch. Generators are pure numpy.

Held-out data: a task with a `split` option ("train" / "test") is evaluated on its "test"
split (`evaluation_task`); a synthetic task is evaluated on fresh draws of the same generator.

Bad options and impossible lengths raise ValueError naming the task, the option or length,
what is allowed and what was given, before anything is drawn.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import ClassVar

import numpy as np

KINDS = ("classify", "tag", "lm")


@dataclasses.dataclass(frozen=True, eq=False)
class Batch:
    inputs: np.ndarray   # (B, T) int32 or (B, T, F) float32
    targets: np.ndarray  # (B,) int32 for "classify", (B, T) int32 for "tag" / "lm"
    mask: np.ndarray     # (B, T) bool


class Task:
    """Base of every task; subclasses are frozen dataclasses and implement `_sample`."""

    name: ClassVar[str]
    kind: ClassVar[str]

    def __post_init__(self):
        self._check_options()
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}")

    def _check_options(self) -> None:
        """Raise ValueError (via `option_error`) for an option value the task cannot use."""

    @property
    def vocab_size(self) -> int | None:
        """Number of input token ids; None when inputs are float features."""
        return None

    @property
    def n_features(self) -> int | None:
        """F for float feature inputs (B, T, F); None when inputs are token ids."""
        return None

    @property
    def n_classes(self) -> int:
        raise NotImplementedError

    @property
    def min_length(self) -> int:
        return 1

    @property
    def max_length(self) -> int | None:
        return None

    @property
    def fixed_length(self) -> int | None:
        """The only length the task has (an image's pixel count), or None."""
        return None

    def allowed_lengths(self) -> str:
        if self.fixed_length is not None:
            return f"exactly {self.fixed_length}"
        if self.max_length is not None:
            return f"from {self.min_length} to {self.max_length}"
        return f"at least {self.min_length}"

    def check_length(self, length) -> None:
        """Raise ValueError naming the task and the allowed lengths if `length` is impossible."""
        if isinstance(length, bool) or not isinstance(length, numbers.Integral):
            raise ValueError(f"task {self.name!r}: length must be an int, got {length!r}")
        fixed, low, high = self.fixed_length, self.min_length, self.max_length
        ok = length == fixed if fixed is not None else (
            length >= low and (high is None or length <= high))
        if not ok:
            raise ValueError(f"task {self.name!r} ({self.describe()}): length must be "
                             f"{self.allowed_lengths()}, got {length}")

    def describe(self) -> str:
        """The task's options as `name=value` pairs, for messages."""
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}"
                         for f in dataclasses.fields(self) if f.repr)

    def batch(self, rng: np.random.Generator, batch_size: int, length: int) -> Batch:
        """One batch of `batch_size` sequences whose input length is exactly `length`."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"task {self.name!r}: rng must be a numpy.random.Generator "
                            f"(np.random.default_rng(seed)), got {type(rng).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"task {self.name!r}: batch_size must be a positive int, "
                             f"got {batch_size!r}")
        self.check_length(length)
        return self._sample(rng, int(batch_size), int(length))

    def _sample(self, rng: np.random.Generator, batch_size: int, length: int) -> Batch:
        raise NotImplementedError

    def evaluation_task(self) -> "Task":
        """The task evaluation draws from: the "test" split of a task trained on "train", else itself."""
        if getattr(self, "split", None) == "train":
            return dataclasses.replace(self, split="test")
        return self

    def option_error(self, option: str, expected: str, value) -> ValueError:
        return ValueError(f"task {self.name!r}: option {option!r} must be {expected}, "
                          f"got {value!r}")


# Option checks shared by the tasks: each raises `task.option_error(...)`.

def check_int(task: Task, option: str, *, minimum: int, maximum: int | None = None) -> None:
    value = getattr(task, option)
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and (
        value >= minimum and (maximum is None or value <= maximum))
    if not ok:
        expected = f"an int ≥ {minimum}" if maximum is None else \
            f"an int from {minimum} to {maximum}"
        raise task.option_error(option, expected, value)


def check_real(task: Task, option: str, *, low: float, high: float,
               open_low: bool = False) -> None:
    value = getattr(task, option)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
        (value > low if open_low else value >= low) and value <= high)
    if not ok:
        raise task.option_error(option, f"a number in {'(' if open_low else '['}{low}, {high}]",
                                value)


def check_flag(task: Task, option: str) -> None:
    value = getattr(task, option)
    if not isinstance(value, (bool, np.bool_)):
        raise task.option_error(option, "True or False", value)


def check_choice(task: Task, option: str, choices) -> None:
    value = getattr(task, option)
    if not isinstance(value, str) or value not in choices:
        raise task.option_error(option, f"one of {', '.join(map(repr, choices))}", value)


def split_rows(n_rows: int, split: str, split_seed: int, test_fraction: float) -> np.ndarray:
    """The sorted rows of `split` in a fixed split of `n_rows`: one permutation drawn from
    `split_seed`, its first ⌈test_fraction · n_rows⌉ rows "test", the rest "train"."""
    order = np.random.default_rng(split_seed).permutation(n_rows)
    n_test = math.ceil(test_fraction * n_rows)
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def set_option(task: Task, option: str, value) -> None:
    """Store a normalised option value on the frozen task (e.g. a list made a tuple)."""
    object.__setattr__(task, option, value)

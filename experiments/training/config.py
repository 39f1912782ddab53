"""A training run's configuration: TOML files, `section.key=value` overrides, and checks that
fail before anything is built or compiled.

    [model]  lrnn.models.ModelConfig       cell, sizes, mixer and block options
    [task]   TaskConfig                    which generator, its options, train/eval lengths
    [optim]  OptimConfig                   AdamW, warmup-cosine, clipping, the recurrent group
    [train]  TrainConfig                   steps, batch, seed, logging, checkpoints, output dir

A value on the command line is read as a TOML value where it parses as one (`train.steps=200`,
`model.cell_options={eigenvalue_range=[-1, 1]}`, `task.eval_lengths=[40, 128]`) and as a plain
string otherwise (`model.cell=mamba`). TOML arrays become tuples, and the string "none" is None
(TOML has no null: `model.ffn=none`). A key of `train.mesh` can be set alone
(`train.mesh.seq=4`); the keys not set keep their defaults.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
from typing import Any

from lrnn.models import ModelConfig


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    name: str = "parity"
    options: dict = dataclasses.field(default_factory=dict)
    module: str | None = None         # a Python file's path or a module name that registers tasks (register_task)
    train_length: int = 40            # the longest training sequence
    min_train_length: int | None = None  # shorter sequences are padded to train_length; None = all at train_length
    eval_lengths: tuple = (40, 64, 128, 256)
    eval_batches: int = 4             # batches of train.batch_size per eval length
    eval_seed: int = 1234             # the same test sequences for every model and training seed


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-3
    recurrent_learning_rate: float | None = None  # None = learning_rate; no weight decay either way
    weight_decay: float = 0.1
    warmup_steps: int = 100
    final_learning_rate_fraction: float = 0.1     # cosine decays to this fraction of the peak
    clip_norm: float = 1.0
    b1: float = 0.9
    b2: float = 0.999


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64              # global, split across every device
    seed: int = 0
    log_every: int = 10               # progress bar, JSONL and TensorBoard
    checkpoint_every: int = 0         # 0: only at the end
    keep_checkpoints: int = 2
    out_dir: str = "runs/default"
    progress: bool = True
    check_finite: bool = False        # jax_debug_nans around the training step: slow, names the first non-finite op
    # CPU runs from experiments/train.py and main.py: this many cores and portable code generation,
    # so the numbers are the same on any x86-64 machine with as many cores (cpu_numerics.py); none:
    # every core, fastest, numbers depend on the machine.
    cpu_threads: int | None = 2
    # The device mesh (experiments/training/parallel.py): "data" splits the batch and, FSDP-style,
    # the parameters and optimizer state; "seq" splits time (sequence parallelism). data × seq
    # must be the device count; data none = every device seq leaves (so by default, all of them).
    mesh: dict = dataclasses.field(default_factory=lambda: {"data": None, "seq": 1})


# The embedded default run (the main job's model): one DeltaNet layer with eigenvalues in (−1, 1)
# at the size of Grazzi et al.'s parity configs (d_model 16, 4 heads, short conv, no FFN), on
# parity with lengths ≤ 40, trained at a high learning rate so that it converges within a few
# hundred steps on a CPU.
def default_model() -> ModelConfig:
    return ModelConfig(cell="deltanet", cell_options={"n_heads": 4, "eigenvalue_range": (-1, 1)},
                       d_model=16, n_layers=1, conv_size=4, ffn=None)


def default_optim() -> OptimConfig:
    return OptimConfig(learning_rate=1e-2, weight_decay=0.0, warmup_steps=100, final_learning_rate_fraction=1e-3)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = dataclasses.field(default_factory=default_model)
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    optim: OptimConfig = dataclasses.field(default_factory=default_optim)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


_SECTION_TYPES = {"model": ModelConfig, "task": TaskConfig, "optim": OptimConfig, "train": TrainConfig}
# Tables whose keys are set one at a time (`train.mesh.seq=4`, or `mesh = {seq = 4}` in a file),
# the others keeping their defaults.
_MERGED_TABLES = {("train", "mesh")}


class ConfigError(ValueError):
    """A configuration that cannot run, with the offending key named."""


def load(path: str | pathlib.Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """The embedded defaults, updated by the TOML file at `path` and then by `overrides`."""
    tree: dict[str, dict] = {name: {} for name in _SECTION_TYPES}
    if path is not None:
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            from_file = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None
        for section, values in from_file.items():
            _check_section(section, f"{path}")
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: [{section}] must be a table, got {values!r}")
            tree[section].update(values)
    for override in overrides:
        section, key, value = parse_override(override)
        table, _, entry = key.partition(".")
        if entry and (section, table) in _MERGED_TABLES and isinstance(tree[section].get(table, {}), dict):
            tree[section][table] = {**tree[section].get(table, {}), entry: value}
        else:
            tree[section][key] = value
    return build(tree)


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' -> (section, key, value)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"an override must look like section.key=value (e.g. train.steps=200), got {text!r}")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    _check_section(section, "override")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def build(tree: dict[str, dict]) -> RunConfig:
    """RunConfig from {section: {key: value}}; unknown keys and bad values raise ConfigError."""
    sections, defaults = {}, RunConfig()
    for section, cls in _SECTION_TYPES.items():
        values = {key: _tuples(value) for key, value in tree.get(section, {}).items()}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown key {section}.{unknown[0]}; [{section}] takes {', '.join(sorted(known))}")
        default = getattr(defaults, section)
        if section == "model" and values.get("cell", default.cell) != default.cell:
            values.setdefault("cell_options", {})  # the default's options belong to the default's cell
        for table in (table for merged_section, table in _MERGED_TABLES if merged_section == section):
            if isinstance(values.get(table), dict):
                values[table] = {**getattr(default, table), **values[table]}
        try:
            sections[section] = dataclasses.replace(default, **values)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"[{section}]: {error}") from None
    config = RunConfig(**sections)
    validate(config)
    return config


def validate(config: RunConfig) -> None:
    """Checks across fields and against the task, before any array exists."""
    task_config, train, optim = config.task, config.train, config.optim
    _check_types(config)
    if set(train.out_dir) & set("[]*?{}"):
        # orbax finds a save's pieces by glob: in such a directory it writes checkpoints it cannot read back
        raise ConfigError(f"train.out_dir must not contain any of [ ] * ? {{ }}, got {train.out_dir!r}")
    _positive("train.steps", train.steps)
    _positive("train.batch_size", train.batch_size)
    _positive("train.log_every", train.log_every)
    _positive("train.keep_checkpoints", train.keep_checkpoints)
    _non_negative("train.checkpoint_every", train.checkpoint_every)
    _positive("task.train_length", task_config.train_length)
    _positive("task.eval_batches", task_config.eval_batches)
    _positive("optim.learning_rate", optim.learning_rate)
    if optim.recurrent_learning_rate is not None:
        _positive("optim.recurrent_learning_rate", optim.recurrent_learning_rate)
    _non_negative("optim.weight_decay", optim.weight_decay)
    _non_negative("optim.warmup_steps", optim.warmup_steps)
    _positive("optim.clip_norm", optim.clip_norm)
    if not 0 <= optim.final_learning_rate_fraction <= 1:
        raise ConfigError(f"optim.final_learning_rate_fraction must be in [0, 1], got {optim.final_learning_rate_fraction}")
    if optim.warmup_steps >= train.steps:
        raise ConfigError(f"optim.warmup_steps ({optim.warmup_steps}) must be below train.steps ({train.steps})")
    low = task_config.min_train_length
    if low is not None:
        _positive("task.min_train_length", low)
        if low > task_config.train_length:
            raise ConfigError(f"task.min_train_length ({low}) must be ≤ task.train_length ({task_config.train_length})")
    if not task_config.eval_lengths:
        raise ConfigError("task.eval_lengths must name at least one length")
    for length in task_config.eval_lengths:
        if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
            raise ConfigError(f"task.eval_lengths must be positive integers, got {task_config.eval_lengths!r}")
    shortest_eval = min(task_config.eval_lengths)
    if shortest_eval < (low or task_config.train_length):
        raise ConfigError(
            f"task.eval_lengths start at {shortest_eval}, below the shortest training length "
            f"{low or task_config.train_length}: evaluation is on the training length and longer")
    if task_config.module is not None and not isinstance(task_config.module, str):
        raise ConfigError(f"task.module must be a Python file's path or a module name, got {task_config.module!r}")
    try:
        task = make_configured_task(task_config)
        for length in {task_config.train_length, low or task_config.train_length, *task_config.eval_lengths}:
            task.check_length(length)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"[task]: {error}") from None
    if config.model.bidirectional and task.kind != "classify":
        raise ConfigError(f"model.bidirectional needs a classification task; task {task.name!r} is {task.kind!r}")


def make_configured_task(task_config: TaskConfig):
    """The task `task_config` names, after importing `task.module` (which registers it) if set."""
    from experiments.tasks import load_task_module, make_task

    if task_config.module is not None:
        load_task_module(task_config.module)
    return make_task(task_config.name, **task_config.options)


# Fields whose value must be an int (not a float or a string), before any range check reads them.
_INT_FIELDS = ("train.steps", "train.batch_size", "train.seed", "train.log_every", "train.checkpoint_every",
               "train.keep_checkpoints", "task.train_length", "task.eval_batches", "task.eval_seed",
               "optim.warmup_steps")
_NUMBER_FIELDS = ("optim.learning_rate", "optim.weight_decay", "optim.final_learning_rate_fraction",
                  "optim.clip_norm", "optim.b1", "optim.b2")


def _check_types(config: RunConfig) -> None:
    """Each field of the right kind, so the range checks compare numbers with numbers."""
    def value(dotted):
        section, key = dotted.split(".")
        return getattr(getattr(config, section), key)

    for name in _INT_FIELDS:
        if not _is_int(value(name)):
            raise ConfigError(f"{name} must be an int, got {value(name)!r}")
    threads = config.train.cpu_threads
    if threads is not None and (not _is_int(threads) or threads < 1):
        raise ConfigError(f"train.cpu_threads must be a positive int or none, got {threads!r}")
    if config.task.min_train_length is not None and not _is_int(config.task.min_train_length):
        raise ConfigError(f"task.min_train_length must be an int or none, got {config.task.min_train_length!r}")
    for name in _NUMBER_FIELDS:
        if not _is_number(value(name)):
            raise ConfigError(f"{name} must be a number, got {value(name)!r}")
    if config.optim.recurrent_learning_rate is not None and not _is_number(config.optim.recurrent_learning_rate):
        raise ConfigError(f"optim.recurrent_learning_rate must be a number or none, "
                          f"got {config.optim.recurrent_learning_rate!r}")
    if config.train.seed < 0:
        raise ConfigError(f"train.seed must be ≥ 0, got {config.train.seed!r}")
    for name in ("optim.b1", "optim.b2"):
        if not 0 <= value(name) < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {value(name)!r}")
    if not isinstance(config.train.progress, bool):
        raise ConfigError(f"train.progress must be true or false, got {config.train.progress!r}")
    if not isinstance(config.train.out_dir, str) or not config.train.out_dir:
        raise ConfigError(f"train.out_dir must be a non-empty path string, got {config.train.out_dir!r}")
    if not isinstance(config.task.name, str):
        raise ConfigError(f"task.name must be a string, got {config.task.name!r}")
    if not isinstance(config.task.options, dict):
        raise ConfigError(f"task.options must be a table of the task's options (e.g. {{n_pairs=4}}), "
                          f"got {config.task.options!r}")
    if not isinstance(config.task.eval_lengths, (tuple, list)):
        raise ConfigError(f"task.eval_lengths must be an array of lengths (e.g. [40, 128]), "
                          f"got {config.task.eval_lengths!r}")
    _check_mesh(config.train.mesh)


def _check_mesh(mesh) -> None:
    """train.mesh is {data = positive int or none, seq = positive int}; the device count is
    checked when the mesh is built (parallel.make_mesh)."""
    if not isinstance(mesh, dict):
        raise ConfigError(f"train.mesh must be a table with keys data and seq (e.g. {{data = 2, seq = 4}}), "
                          f"got {mesh!r}")
    unknown = sorted(set(mesh) - {"data", "seq"})
    if unknown:
        raise ConfigError(f"unknown key train.mesh.{unknown[0]}; train.mesh takes data, seq")
    if mesh["data"] is not None and (not _is_int(mesh["data"]) or mesh["data"] < 1):
        raise ConfigError(f"train.mesh.data must be a positive int or none, got {mesh['data']!r}")
    if not _is_int(mesh["seq"]) or mesh["seq"] < 1:
        raise ConfigError(f"train.mesh.seq must be a positive int, got {mesh['seq']!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_dict(config: RunConfig) -> dict:
    """The config as plain data (for run records and TOML-like display)."""
    return dataclasses.asdict(config)


def _check_section(section: str, where: str) -> None:
    if section not in _SECTION_TYPES:
        raise ConfigError(f"{where}: unknown section [{section}]; sections are {', '.join(_SECTION_TYPES)}")


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    if isinstance(value, str) and value.lower() == "none":
        return None
    return value


def _positive(name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _non_negative(name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name} must be ≥ 0, got {value!r}")

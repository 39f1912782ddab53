"""The task registry: every task by name, and the public way to add one's own.

    @register_task
    @dataclasses.dataclass(frozen=True)
    class MyTask(Task):
        name = "my_task"
        kind = "classify"
        ...

A module holding such classes is imported by name or by file path with `load_task_module`
(the training config's `task.module`), which is all `experiments/train.py` needs to train on
them: `task.module="my_tasks.py" task.name=my_task`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import pathlib
import sys

from experiments.tasks.base import KINDS, Task

TASKS: dict[str, type[Task]] = {}


def register_task(task_class: type[Task]) -> type[Task]:
    """Add `task_class` to the registry under its `name` (usable as a class decorator).

    The class must be a dataclass subclass of `Task` with a `name`, a `kind` in KINDS (or a
    property giving one, where an option decides) and its own
    `_sample`. A name already taken by another class is refused; the same class registered again
    (its module imported a second time) replaces the earlier one."""
    where = getattr(task_class, "__qualname__", repr(task_class))
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise TypeError(f"register_task takes a subclass of experiments.tasks.Task, got {where}")
    if not dataclasses.is_dataclass(task_class):
        raise TypeError(f"task {where} must be a dataclass (@dataclasses.dataclass(frozen=True)): "
                        "its fields are its options")
    name = getattr(task_class, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"task {where} needs a class attribute `name`, a Python identifier "
                         f"such as \"my_task\", got {name!r}")
    kind = getattr(task_class, "kind", None)
    if not isinstance(kind, property) and kind not in KINDS:  # a property: an option decides, checked per task
        raise ValueError(f"task {name!r} ({where}): `kind` must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if task_class._sample is Task._sample:
        raise TypeError(f"task {name!r} ({where}) must implement _sample(self, rng, batch_size, length) -> Batch")
    earlier = TASKS.get(name)
    if earlier is not None and _origin(earlier) != _origin(task_class):
        raise ValueError(f"task name {name!r} is already registered by {_origin(earlier)}; "
                         f"pick another name for {_origin(task_class)}")
    TASKS[name] = task_class
    return task_class


def _origin(task_class: type) -> str:
    return f"{task_class.__module__}.{task_class.__qualname__}"


def task_options(name: str) -> dict[str, dataclasses.Field]:
    """The options a task takes, by name (its dataclass fields that `__init__` accepts)."""
    return {f.name: f for f in dataclasses.fields(TASKS[name]) if f.init}


def make_task(name: str, **options) -> Task:
    """The task registered as `name` with `options` (the rest at their defaults)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}. A task of your own: "
                         "decorate it with experiments.tasks.register_task and name its module in task.module")
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


def load_task_module(module: str):
    """Import `module`, a Python file's path (relative to the current directory) or an importable
    module name, so that the tasks it registers are known. A file is imported once per path."""
    if not isinstance(module, str) or not module.strip():
        raise ValueError(f"task.module must be a Python file's path or a module name, got {module!r}")
    if module.endswith(".py") or "/" in module or "\\" in module:
        return _import_file(pathlib.Path(module))
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and module.startswith(error.name):
            raise ValueError(f"task.module {module!r}: no such module (not importable from sys.path; "
                             "a file needs its path, e.g. path/to/my_tasks.py)") from None
        raise


def _import_file(path: pathlib.Path):
    path = path.resolve()
    if not path.is_file():
        raise ValueError(f"task.module {str(path)!r}: no such file")
    name = f"lrnn_user_tasks.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    return loaded

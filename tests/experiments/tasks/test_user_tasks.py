"""A user's own task without editing lrnn: `register_task`, `task.module` (a file or a module
name) in the config, and the clear errors for a class or module that cannot serve."""

import dataclasses

import numpy as np
import pytest

from experiments.tasks import Batch, Task, load_task_module, make_task, register_task, registry
from experiments.training import config as run_config
from tests.experiments.tasks.contract import check_batch

TASK_FILE = '''
import dataclasses
import numpy as np
from experiments.tasks import Batch, Task, register_task


@register_task
@dataclasses.dataclass(frozen=True)
class {cls}(Task):
    shift: int = 1
    name = "{name}"
    kind = "tag"
    vocab_size = property(lambda self: 10)
    n_classes = property(lambda self: 10)

    def _sample(self, rng, batch_size, length):
        tokens = rng.integers(0, 10, size=(batch_size, length)).astype(np.int32)
        return Batch(tokens, (tokens + self.shift) % 10, np.ones((batch_size, length), bool))
'''


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Registrations made by a test are gone after it."""
    monkeypatch.setattr(registry, "TASKS", dict(registry.TASKS))


def write_task_file(directory, stem="my_tasks", cls="ShiftByOne", name="shift_by_one"):
    path = directory / f"{stem}.py"
    path.write_text(TASK_FILE.format(cls=cls, name=name))
    return path


def test_a_task_file_named_in_the_config_is_trained_on(tmp_path):
    path = write_task_file(tmp_path)
    config = run_config.load(None, [f"task.module={path}", "task.name=shift_by_one", "task.options={shift=3}",
                                    "task.train_length=8", "task.eval_lengths=[8]"])
    assert config.task.module == str(path)
    task = run_config.make_configured_task(config.task)
    batch = task.batch(np.random.default_rng(0), 4, 8)
    check_batch(task, batch, 4, 8)
    np.testing.assert_array_equal(batch.targets, (batch.inputs + 3) % 10)


def test_a_file_is_imported_once_and_a_module_name_through_sys_path(tmp_path, monkeypatch):
    path = write_task_file(tmp_path)
    first = load_task_module(str(path))
    assert load_task_module(str(path)) is first
    package = tmp_path / "pkg"
    package.mkdir()
    write_task_file(package, stem="named_tasks", cls="Named", name="named_task")
    monkeypatch.syspath_prepend(str(package))
    load_task_module("named_tasks")
    assert make_task("named_task").shift == 1


def test_unknown_modules_and_tasks_are_config_errors(tmp_path):
    with pytest.raises(run_config.ConfigError, match=r"task.module .*no_such_file.py.*no such file"):
        run_config.load(None, [f"task.module={tmp_path / 'no_such_file.py'}", "task.name=x"])
    with pytest.raises(run_config.ConfigError, match=r"task.module 'no_such_module_here': no such module"):
        run_config.load(None, ["task.module=no_such_module_here", "task.name=x"])
    path = write_task_file(tmp_path)
    with pytest.raises(run_config.ConfigError, match=r"unknown task 'shift_by_two'.*shift_by_one.*register_task"):
        run_config.load(None, [f"task.module={path}", "task.name=shift_by_two"])
    with pytest.raises(run_config.ConfigError, match=r"task.module must be a Python file's path or a module name"):
        run_config.load(None, ["task.module=3", "task.name=parity"])


def test_an_error_in_the_users_module_is_raised_as_it_is(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('my mistake')\n")
    with pytest.raises(RuntimeError, match="my mistake"):
        load_task_module(str(path))


def test_register_task_refuses_what_cannot_serve():
    def sample(self, rng, batch_size, length):
        return Batch(np.zeros((batch_size, length), np.int32), np.zeros(batch_size, np.int32),
                     np.ones((batch_size, length), bool))

    def task_class(name="ok_task", kind="classify", dataclass=True, with_sample=True):
        body = {"name": name, "kind": kind, **({"_sample": sample} if with_sample else {})}
        cls = type("UserTask", (Task,), body)
        return dataclasses.dataclass(frozen=True)(cls) if dataclass else cls

    with pytest.raises(TypeError, match="subclass of experiments.tasks.Task"):
        register_task(dict)
    with pytest.raises(TypeError, match="must be a dataclass"):
        register_task(task_class(dataclass=False))
    with pytest.raises(ValueError, match="class attribute `name`, a Python identifier.*'my task'"):
        register_task(task_class(name="my task"))
    with pytest.raises(ValueError, match="`kind` must be one of 'classify', 'tag', 'lm', got 'regress'"):
        register_task(task_class(kind="regress"))
    with pytest.raises(TypeError, match="must implement _sample"):
        register_task(task_class(with_sample=False))
    with pytest.raises(ValueError, match="task name 'parity' is already registered by experiments.tasks.parity.Parity"):
        register_task(task_class(name="parity"))
    registered = register_task(task_class())
    assert make_task("ok_task").__class__ is registered
    assert register_task(task_class()) is not registered  # the same class re-imported replaces it


def test_synthetic_tasks_evaluate_on_themselves_and_split_tasks_on_test():
    parity = make_task("parity")
    assert parity.evaluation_task() is parity
    digits = make_task("digits", split_seed=3)
    assert digits.evaluation_task() == make_task("digits", split="test", split_seed=3)
    held_out = make_task("digits", split="test")
    assert held_out.evaluation_task() is held_out


def test_the_trainer_evaluates_a_split_task_on_its_test_split(tmp_path):
    from experiments.training.loop import Trainer

    config = run_config.load(None, ["task.name=digits", "task.train_length=64", "task.eval_lengths=[64]",
                                    "model.cell=lru", "model.d_model=8", "train.batch_size=4", "train.steps=2",
                                    "optim.warmup_steps=1", f"train.out_dir={tmp_path}"])
    trainer = Trainer(config)
    assert trainer.task.split == "train" and trainer.evaluation_task.split == "test"

"""The registry and the contract every offline task shares: make_task's errors, determinism
by seed, shapes and dtypes, and clear errors for a bad rng, batch size or length."""

import numpy as np
import pytest

from experiments.tasks import TASKS, make_task
from tests.experiments.tasks.contract import check_batch

# name, options, a valid length, an impossible length and a piece of the message it gets
OFFLINE = {
    "parity": ({}, 12, 0, "at least 1"),
    "modular_arithmetic": ({"modulus": 7, "brackets": True}, 12, 0, "at least 1"),
    "even_pairs": ({}, 12, 0, "at least 1"),
    "cycle_navigation": ({"cycle_length": 7}, 12, 0, "at least 1"),
    "stack_manipulation": ({}, 13, 2, "at least 3"),
    "reverse_string": ({"alphabet_size": 3}, 12, 1, "at least 2"),
    "group_word": ({"group": "A5"}, 12, 0, "at least 1"),
    "mqar": ({"n_pairs": 3, "vocab_size": 32}, 16, 8, "at least 3 × n_pairs = 9"),
    "selective_copy": ({"n_tokens": 4, "n_symbols": 5}, 16, 7, "at least 2 × n_tokens = 8"),
    "induction_heads": ({"n_symbols": 6}, 12, 2, "at least 3"),
    "listops": ({"max_depth": 4, "max_args": 4}, 24, 3, "at least 4"),
    "digits": ({"split": "test"}, 64, 32, "exactly 64"),
    "char_lm": ({}, 12, 100, "from 1 to 59"),
}
TFDS = ("smnist", "scifar", "imdb_bytes", "tfds")
USER_DATA = ("arrays",)  # tests/experiments/tasks/test_arrays.py


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size=60, dtype=np.uint8)
                     .tobytes())
    return str(path)


def offline_task(name, text_file):
    options = dict(OFFLINE[name][0])
    if name == "char_lm":
        options["path"] = text_file
    return make_task(name, **options)


def test_registry_holds_every_task_under_its_name():
    assert set(TASKS) == set(OFFLINE) | set(TFDS) | set(USER_DATA)
    for name, task_class in TASKS.items():
        assert task_class.name == name
        assert isinstance(task_class.kind, property) or task_class.kind in ("classify", "tag", "lm")


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_batches_keep_the_contract_and_follow_the_seed(name, text_file):
    task = offline_task(name, text_file)
    length = OFFLINE[name][1]
    first = task.batch(np.random.default_rng(7), 5, length)
    check_batch(task, first, 5, length)
    again = task.batch(np.random.default_rng(7), 5, length)
    other = task.batch(np.random.default_rng(8), 5, length)
    for field in ("inputs", "targets", "mask"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not all(np.array_equal(getattr(first, field), getattr(other, field))
                   for field in ("inputs", "targets", "mask"))


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_an_impossible_length_names_the_task_and_the_allowed_lengths(name, text_file):
    task = offline_task(name, text_file)
    bad_length, allowed = OFFLINE[name][2], OFFLINE[name][3]
    with pytest.raises(ValueError, match=name) as error:
        task.batch(np.random.default_rng(0), 2, bad_length)
    assert allowed in str(error.value) and f"got {bad_length}" in str(error.value)
    with pytest.raises(ValueError, match="length must be an int"):
        task.check_length(12.0)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'sorting'") as error:
        make_task("sorting")
    assert all(name in str(error.value) for name in TASKS)


def test_unknown_option_is_named_with_the_options_there_are():
    with pytest.raises(ValueError, match=r"task 'mqar' has no option 'n_keys'") as error:
        make_task("mqar", n_keys=4)
    assert "n_pairs, vocab_size, power_a" in str(error.value)
    with pytest.raises(ValueError, match="task 'parity' has no option 'length'.*none"):
        make_task("parity", length=4)


def test_a_missing_required_option_is_named():
    with pytest.raises(ValueError, match="task 'char_lm' needs option 'path'"):
        make_task("char_lm")


@pytest.mark.parametrize("name, option, value, expected", [
    ("modular_arithmetic", "modulus", 1, "an int ≥ 2"),
    ("modular_arithmetic", "modulus", 5.0, "an int ≥ 2"),
    ("modular_arithmetic", "brackets", "yes", "True or False"),
    ("group_word", "group", "S6", "one of 'S5', 'A5', 'Z60', 'S5_swaps'"),
    ("mqar", "power_a", 0.0, "a number in (0.0, 1.0]"),
    ("selective_copy", "n_tokens", 0, "an int ≥ 1"),
    ("induction_heads", "n_symbols", True, "an int ≥ 1"),
    ("listops", "max_args", 1, "an int ≥ 2"),
    ("listops", "min_fraction", 1.5, "a number in [0.0, 1.0]"),
    ("digits", "split", "validation", "one of 'train', 'test'"),
    ("smnist", "split", "valid", "one of 'train', 'test'"),
])
def test_an_invalid_option_value_is_named(name, option, value, expected):
    with pytest.raises(ValueError, match=rf"task '{name}': option '{option}' must be") as error:
        make_task(name, **{option: value})
    assert expected in str(error.value) and repr(value) in str(error.value)


def test_bad_rng_and_batch_size_are_refused_before_drawing():
    task = make_task("parity")
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        task.batch(0, 2, 8)
    for batch_size in (0, 2.0, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            task.batch(np.random.default_rng(0), batch_size, 8)

"""Modular arithmetic: every label against Python's own parser and evaluator, mod m."""

import ast

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


def as_text(task, ids):
    """The expression the token ids spell, with the symbols Python reads."""
    symbols = {task.modulus + i: s for i, s in enumerate(["+", "-", "*", "(", ")"])}
    return " ".join(symbols[i] if i in symbols else str(i) for i in ids)


def evaluate(text: str) -> int:
    """Value of the expression as Python parses it (usual precedence, unary minus)."""
    def value(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = value(node.left), value(node.right)
            return {ast.Add: left + right, ast.Sub: left - right,
                    ast.Mult: left * right}[type(node.op)]
        raise AssertionError(f"unexpected {ast.dump(node)} in {text!r}")
    return value(ast.parse(text, mode="eval").body)


def operators_in(text: str) -> set[str]:
    tree = ast.parse(text, mode="eval")
    symbols = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.USub: "unary -"}
    return {symbols[type(node.op)] for node in ast.walk(tree)
            if isinstance(node, (ast.BinOp, ast.UnaryOp))}


def left_to_right(text: str) -> int:
    tokens = text.split()
    total = int(tokens[0])
    for op, number in zip(tokens[1::2], tokens[2::2]):
        total = {"+": total + int(number), "-": total - int(number),
                 "*": total * int(number)}[op]
    return total


@pytest.mark.parametrize("options, length", [
    ({}, 31),                                                # odd: no padding
    ({"modulus": 7, "operators": "+*"}, 20),                 # even: one padding token
    ({"brackets": True}, 30),                                # every length exact
    ({"brackets": True, "operators": ["+", "-"], "modulus": 3}, 17),  # Deletang's brackets
    ({"brackets": True, "operators": "*+"}, 24),             # no unary minus: odd only
])
def test_labels_are_the_values_python_computes(options, length):
    task = make_task("modular_arithmetic", **options)
    batch = task.batch(np.random.default_rng(11), 24, length)
    check_batch(task, batch, 24, length)
    allowed = set(options.get("operators", "+-*"))
    exact = task.brackets and "-" in allowed
    expression_length = length if exact or length % 2 else length - 1
    assert (batch.mask.sum(axis=1) == expression_length).all()
    assert (batch.inputs[:, expression_length:] == task.vocab_size - 1).all()  # padding id
    for ids, label in zip(batch.inputs[:, :expression_length].tolist(), batch.targets):
        text = as_text(task, ids)
        assert operators_in(text) <= allowed | ({"unary -"} if "-" in allowed else set()), text
        if not task.brackets:
            assert "(" not in text
        assert label == evaluate(text) % task.modulus, text


def test_multiplication_binds_tighter_than_addition():
    """Deletang's regular task uses precedence, which differs from left to right on some rows."""
    task = make_task("modular_arithmetic")
    batch = task.batch(np.random.default_rng(5), 64, 9)
    texts = [as_text(task, ids) for ids in batch.inputs.tolist()]
    assert [evaluate(t) % 5 for t in texts] == batch.targets.tolist()
    assert any(left_to_right(t) % 5 != label for t, label in zip(texts, batch.targets))


def test_vocabulary_and_classes():
    task = make_task("modular_arithmetic", modulus=7)
    assert (task.vocab_size, task.n_classes, task.operators) == (13, 7, ("+", "-", "*"))


@pytest.mark.parametrize("operators", ["", "+/", "++", 3])
def test_operators_must_be_distinct_and_known(operators):
    with pytest.raises(ValueError, match="option 'operators' must be a non-empty set"):
        make_task("modular_arithmetic", operators=operators)


@pytest.mark.parametrize("options, length", [({}, 21), ({"modulus": 7, "operators": "+-"}, 30)])
def test_every_prefix_targets_each_prefix_value_python_computes(options, length):
    task = make_task("modular_arithmetic", every_prefix=True, **options)
    assert task.kind == "tag"
    batch = task.batch(np.random.default_rng(5), 16, length)
    check_batch(task, batch, 16, length)
    n = length if length % 2 else length - 1
    numbers = np.zeros(length, bool)
    numbers[:n:2] = True
    assert (batch.mask == numbers).all()
    for ids, targets in zip(batch.inputs.tolist(), batch.targets):
        for end in range(0, n, 2):
            assert targets[end] == evaluate(as_text(task, ids[:end + 1])) % task.modulus
    classify = make_task("modular_arithmetic", **options).batch(np.random.default_rng(5), 16, length)
    np.testing.assert_array_equal(classify.inputs, batch.inputs)
    np.testing.assert_array_equal(classify.targets, batch.targets[:, n - 1])
    with pytest.raises(ValueError, match="option 'every_prefix' must be False with brackets"):
        make_task("modular_arithmetic", every_prefix=True, brackets=True)

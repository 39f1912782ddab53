"""`method="auto"`'s choice (`lrnn.scan.auto`): the candidate the fitted cost model predicts
fastest for the pass that runs, off the measured sizes too.

Measurements here are synthetic points made from known per-candidate times, handed to auto
with `auto.stand_in` (the table file is never read or written, except by the writer tests,
which write to a temporary file).
"""

from __future__ import annotations

import itertools
import json
import math

import jax
import jax.numpy as jnp
import pytest

from lrnn.scan import auto

BACKEND = jax.default_backend()
SIZES = [(2**x, 2**y) for x, y in itertools.product(range(6, 18, 2), range(6, 17, 2)) if x + y <= 23]


def _points(times: dict, *, dtype="float32", pass_=auto.FORWARD, sizes=SIZES) -> list[dict]:
    """Points whose candidates take times[c](T, L) seconds."""
    return [{"length": t, "lanes": n, "dtype": dtype, "pass": pass_,
             "seconds": {c: f(t, n) for c, f in times.items()}} for t, n in sizes]


# The sequential loop pays a per-step overhead that many lanes hide; the chunked one does not
# but streams its lanes twice: sequential wins where L is large.
SEQUENTIAL = {"sequential": lambda t, n: t * (2e-6 + 1e-9 * n)}
CHUNKED = {"chunked64": lambda t, n: 2e-9 * t * n + 1e-7 * t / 64 + 1e-5}
CROSSING = 2e-6 / 1e-9  # L where the two cost the same (about; chunked's small terms aside)


def _truth(t, n):
    times = {c: f(t, n) for c, f in {**SEQUENTIAL, **CHUNKED}.items()}
    return min(times, key=times.get)


@pytest.mark.parametrize("length,lanes", [(100, 100), (3000, 700), (900, 5000), (20000, 300),
                                          (300, 30000), (2**19, 10), (50, 2**17)])
def test_choice_follows_the_truth_off_the_grid(length, lanes):
    assert abs(math.log2(lanes / CROSSING)) > 0.5  # the case is not a near tie
    with auto.stand_in({"diagonal": _points({**SEQUENTIAL, **CHUNKED})}):
        method, chunk = auto.choose("diagonal", length, lanes)
    assert (auto.candidate_name(method, chunk) if method == "chunked" else method) == _truth(length, lanes)


def test_each_pass_has_its_own_choice():
    forward = _points({"sequential": lambda t, n: 1.0, "associative": lambda t, n: 2.0})
    train = _points({"sequential": lambda t, n: 3.0, "associative": lambda t, n: 1.0}, pass_=auto.TRAIN)
    with auto.stand_in({"matrix": forward + train}):
        assert auto.choose("matrix", 1000, 1000)[0] == "sequential"
        assert auto.choose("matrix", 1000, 1000, pass_=auto.TRAIN)[0] == "associative"
        assert auto.choose("matrix", 1000, 1000, pass_=auto.BACKWARD)[0] == "sequential"  # none: the forward's


def test_a_dtype_without_measurements_uses_float32s():
    f32 = _points({"sequential": lambda t, n: 1.0, "associative": lambda t, n: 2.0})
    bf16 = _points({"sequential": lambda t, n: 2.0, "associative": lambda t, n: 1.0}, dtype="bfloat16")
    backward = _points({"sequential": lambda t, n: 2.0, "associative": lambda t, n: 1.0}, pass_=auto.BACKWARD)
    with auto.stand_in({"diagonal": f32 + bf16 + backward}):
        assert auto.choose("diagonal", 1000, 1000, dtype="bfloat16")[0] == "associative"
        assert auto.choose("diagonal", 1000, 1000, dtype="float16")[0] == "sequential"
        # bf16 has no backward points: float32's backward, not bf16's forward
        assert auto.choose("diagonal", 1000, 1000, dtype="bfloat16", pass_=auto.BACKWARD)[0] == "associative"


def test_only_usable_candidates_are_chosen():
    with auto.stand_in({"diagonal": _points({"pallas": lambda t, n: 1.0, "chunked16": lambda t, n: 2.0,
                                             "chunked64": lambda t, n: 3.0})}):
        assert auto.choose("diagonal", 500, 500) == ("pallas", auto.DEFAULT_CHUNK_SIZE)
        assert auto.choose("diagonal", 500, 500, usable=lambda m, c: m != "pallas") == ("chunked", 16)
        assert auto.chunk_size_for("diagonal", 500, 500) == 16
        assert auto.choose("diagonal", 500, 500, usable=lambda m, c: False) == (auto.unmeasured(), 64)


def test_total_over_passes_decides_once_for_both():
    forward = _points({"whole": lambda t, n: 1.0, "streamed_32": lambda t, n: 1.5})
    train = _points({"whole": lambda t, n: 4.0, "streamed_32": lambda t, n: 2.0}, pass_=auto.TRAIN)
    with auto.stand_in({"cell:x": forward + train}):
        assert auto.choose("cell:x", 1000, 1000)[0] == "whole"
        assert auto.choose_total("cell:x", 1000, 1000) == ("streamed", 32)


def test_nothing_measured_falls_back():
    with auto.stand_in({"diagonal": []}):
        assert auto.choose("diagonal", 1000, 1000) == (auto.unmeasured(), auto.DEFAULT_CHUNK_SIZE)
        assert auto.choose_total("diagonal", 1000, 1000)[0] == auto.unmeasured()
    assert auto.unmeasured("cpu") == "sequential" and auto.unmeasured("gpu") == "associative"


@pytest.mark.parametrize("name,parsed", [("chunked64", ("chunked", 64)), ("streamed_32", ("streamed", 32)),
                                         ("pallas", ("pallas", None)), ("pure_jax", ("pure_jax", None))])
def test_candidate_names(name, parsed):
    assert auto.parse_candidate(name) == parsed
    if name != "streamed_32":
        assert auto.candidate_name(*parsed) == name


def test_lanes_count_the_largest_leaf():
    leaves = (jnp.zeros((2, 10, 4)), jnp.zeros((2, 10, 4, 8)))
    assert auto.lanes_of(leaves, 10) == 2 * 4 * 8


def test_writers_replace_and_merge_points_keeping_other_backends(tmp_path, monkeypatch):
    path = tmp_path / "auto_methods.json"
    other = {"length": 64, "lanes": 64, "dtype": "float32", "pass": auto.FORWARD, "seconds": {"x": 1.0}}
    path.write_text(json.dumps({"tpu": {"diagonal": [other]}, BACKEND: {"cell:lru": [other]}}))
    monkeypatch.setattr(auto, "TABLE", path)
    auto._table.cache_clear()
    try:
        first = _points({"sequential": lambda t, n: 1.0}, sizes=[(64, 64), (256, 64)])
        auto.replace_families({"diagonal": first})
        newer = _points({"sequential": lambda t, n: 5.0}, sizes=[(256, 64)])
        auto.merge_points({"diagonal": newer})
        table = json.loads(path.read_text())
        assert table["tpu"] == {"diagonal": [other]} and table[BACKEND]["cell:lru"] == [other]
        assert [p["seconds"]["sequential"] for p in table[BACKEND]["diagonal"]] == [1.0, 5.0]
        assert auto.points("diagonal") == table[BACKEND]["diagonal"]  # the cache was refreshed
    finally:
        auto._table.cache_clear()


def test_stand_in_is_undone():
    before = auto.points("diagonal")
    with auto.stand_in({"diagonal": _points({"x": lambda t, n: 1.0})}):
        assert auto.points("diagonal") != before
    assert auto.points("diagonal") == before

"""`method="auto"`: the method a fitted cost model predicts fastest for this size and pass.

`auto_methods.json` holds, per backend and family (a monoid's: "diagonal", "matrix", "dense",
"delta"; a chunk kernel's: "decay_attention", "delta_rule"; a cell's streamed forward:
"cell:<name>"), the benchmarks' measurements as points

    {"length": T, "lanes": L, "dtype": "float32", "pass": "forward",
     "seconds": {"sequential": 0.012, "chunked64": 0.009, ...}}

`lanes` being the scalar recurrences advanced per step (the largest leaf's size / T) and each
candidate a method with its chunk size in the name ("chunked64", "streamed32", "pallas").
The passes are what runs: "forward"; "backward", the diagonal scan's reverse-scan VJP alone
(`diagonal_vjp`), whose method is chosen apart from the forward's; and "forward+backward",
autodiff through one method, for the other monoids. `cost_model.fit_candidates` models every
candidate's log time in (log T, log L) (one reference absolutely, the others as ratios to it),
so a shape between or beyond the measured ones is predicted rather than matched to its
nearest row, and `choose` takes the candidate predicted fastest among those the caller can
run. A dtype with no measurements uses float32's, a pass with none the forward's; a backend or
family with none falls back to "sequential" on CPU and "associative" elsewhere, the only
choices not taken from a measurement.

Writers: `experiments/bench_scan.py`, `bench_kernels.py` and `bench_cells.py` with
`--write-auto`, through `replace_families` / `merge_points`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import re
from typing import Callable, Iterable

import jax
import jax.numpy as jnp

from lrnn.scan import cost_model

TABLE = pathlib.Path(__file__).with_name("auto_methods.json")
DEFAULT_CHUNK_SIZE = 64
FORWARD, BACKWARD, TRAIN = "forward", "backward", "forward+backward"
FALLBACK_DTYPE = "float32"
_UNMEASURED = {"cpu": "sequential"}
_CANDIDATE = re.compile(r"([a-z_]+?)_?(\d*)")


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE.read_text()) if TABLE.exists() else {}


def candidate_name(method: str, chunk_size: int | None = None) -> str:
    """The table's name for `method` at `chunk_size`, e.g. ("chunked", 64) -> "chunked64"."""
    return method if chunk_size is None else f"{method}{chunk_size}"


def parse_candidate(name: str) -> tuple[str, int | None]:
    """(method, chunk size or None) of a candidate name, e.g. "chunked64" -> ("chunked", 64)."""
    method, digits = _CANDIDATE.fullmatch(name).groups()
    return method, int(digits) if digits else None


def lanes_of(leaves, length: int) -> int:
    """Scalar recurrences a scan advances per step: the largest leaf's size over its length."""
    return max(x.size for x in jax.tree_util.tree_leaves(leaves)) // max(length, 1)


def dtype_key(dtype) -> str:
    return jnp.dtype(dtype).name


def unmeasured(backend: str | None = None) -> str:
    """The method for a backend, family or size nothing was measured for."""
    return _UNMEASURED.get(backend or jax.default_backend(), "associative")


_STAND_INS: list[tuple[str, dict]] = []


def points(family: str, backend: str | None = None) -> list[dict]:
    """The family's measured points on the backend (the innermost `stand_in`'s, if it has them)."""
    backend = backend or jax.default_backend()
    for where, families in reversed(_STAND_INS):
        if where == backend and family in families:
            return families[family]
    return _table().get(backend, {}).get(family, [])


@contextlib.contextmanager
def stand_in(families: dict[str, list[dict]], backend: str | None = None):
    """Within the block, `families` ({family: points}) replace the table's for those families on
    the backend, in memory only (a benchmark validates a fit before writing it; tests choose)."""
    _STAND_INS.append((backend or jax.default_backend(), families))
    try:
        yield
    finally:
        _STAND_INS.pop()


def _matching(family, dtype, pass_, backend) -> list[dict]:
    """The family's points for this dtype and pass, falling back to float32's for the pass, then
    to the forward's (the backward's reverse scan, for one, runs in float32 whatever the input)."""
    rows = points(family, backend)
    for p in dict.fromkeys((pass_, FORWARD)):
        for d in dict.fromkeys((dtype, FALLBACK_DTYPE)):
            chosen = [row for row in rows if row.get("dtype", FALLBACK_DTYPE) == d and row["pass"] == p]
            if chosen:
                return chosen
    return []


@functools.lru_cache(maxsize=1024)
def _fit(measured: tuple[tuple[str, tuple[tuple[float, float, float], ...]], ...]):
    return cost_model.fit_candidates(dict(measured))


def fits(family: str, *, dtype: str = FALLBACK_DTYPE, pass_: str = FORWARD,
         backend: str | None = None) -> dict[str, cost_model.Fit | cost_model.Relative]:
    """Per candidate, its cost model fitted to the family's points for this dtype and pass."""
    by_candidate: dict[str, list] = {}
    for row in _matching(family, dtype, pass_, backend):
        for candidate, seconds in row["seconds"].items():
            if seconds is not None and seconds > 0:
                by_candidate.setdefault(candidate, []).append((row["length"], row["lanes"], seconds))
    if not by_candidate:
        return {}
    return _fit(tuple(sorted((c, tuple(sorted(m))) for c, m in by_candidate.items())))


def predict(family: str, length: int, lanes: int, *, dtype: str = FALLBACK_DTYPE, pass_: str = FORWARD,
            backend: str | None = None) -> dict[str, float]:
    """Predicted seconds of every measured candidate at (length, lanes)."""
    return {c: f.seconds(length, lanes) for c, f in fits(family, dtype=dtype, pass_=pass_, backend=backend).items()}


def choose(family: str, length: int, lanes: int, *, dtype: str = FALLBACK_DTYPE, pass_: str = FORWARD,
           usable: Callable[[str, int | None], bool] | None = None,
           backend: str | None = None) -> tuple[str, int]:
    """(method, chunk_size) predicted fastest for `pass_` among the candidates `usable(method,
    chunk_size)` accepts; the unmeasured default where no candidate was measured."""
    backend = backend or jax.default_backend()
    times = predict(family, length, lanes, dtype=dtype, pass_=pass_, backend=backend)
    allowed = [c for c in times if usable is None or usable(*parse_candidate(c))]
    if not allowed:
        return unmeasured(backend), DEFAULT_CHUNK_SIZE
    method, chunk_size = parse_candidate(min(allowed, key=times.__getitem__))
    return method, chunk_size or DEFAULT_CHUNK_SIZE


def choose_total(family: str, length: int, lanes: int, *, dtype: str = FALLBACK_DTYPE,
                 passes: tuple[str, ...] = (FORWARD, TRAIN), backend: str | None = None) -> tuple[str, int]:
    """(method, chunk_size) of the candidate whose predicted times summed over `passes` are
    lowest (for choices made once for evaluation and training alike: a cell's stream, a chunk
    kernel); the unmeasured default where no candidate was measured in every pass."""
    backend = backend or jax.default_backend()
    predicted = [predict(family, length, lanes, dtype=dtype, pass_=p, backend=backend) for p in passes]
    totals = {c: sum(times[c] for times in predicted) for c in predicted[0] if all(c in t for t in predicted)}
    if not totals:
        return unmeasured(backend), DEFAULT_CHUNK_SIZE
    return parse_candidate(min(totals, key=totals.__getitem__))


def chunk_size_for(family: str, length: int, lanes: int, *, dtype: str = FALLBACK_DTYPE,
                   backend: str | None = None) -> int:
    """The chunk size of the chunked candidate predicted fastest forward."""
    return choose(family, length, lanes, dtype=dtype, backend=backend,
                  usable=lambda method, chunk: method == "chunked")[1]


def _write(update) -> dict:
    """Apply `update` to this backend's families in the table file, write it, re-read it."""
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    update(table.setdefault(jax.default_backend(), {}))
    TABLE.write_text(json.dumps(table, indent=1) + "\n")
    _table.cache_clear()
    return table


def _where(row) -> tuple:
    return row["length"], row["lanes"], row.get("dtype", FALLBACK_DTYPE), row["pass"]


def _sorted(rows: Iterable[dict]) -> list[dict]:
    return sorted(rows, key=_where)


def replace_families(rows: dict[str, list[dict]]) -> dict:
    """This backend's measured families replaced by `rows` ({family: points}); all else kept."""
    return _write(lambda families: families.update({f: _sorted(r) for f, r in rows.items()}))


def merge_points(rows: dict[str, list[dict]]) -> dict:
    """`rows` merged into this backend's families: a point replaces the one measured at the same
    (length, lanes, dtype, pass); every other point is kept."""
    def update(families):
        for family, new in rows.items():
            measured = {_where(row) for row in new}
            kept = [row for row in families.get(family, []) if _where(row) not in measured]
            families[family] = _sorted(kept + list(new))
    return _write(update)

"""`method="auto"`: pick the method the benchmark measured fastest for the nearest size.

`auto_methods.json` (written by the benchmarks' `--write-auto`: `experiments/bench_scan.py`,
`bench_kernels.py`, `bench_cells.py`, through `replace_families` / `merge_rows`) holds, per backend
and family (a monoid's, a chunk kernel's, or "cell:<name>" for a cell's streamed forward), rows
{length, lanes, method, chunk_size}: the fastest method measured at that
size, `lanes` being the scalar recurrences advanced per step (state entries × batch). A call is
matched to the nearest measured row in (log2 length, log2 lanes). A backend with no
measurements yet falls back to "sequential" on CPU and "associative" elsewhere; those two
lines are the only choices not taken from a measurement.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

import jax

TABLE = pathlib.Path(__file__).with_name("auto_methods.json")
DEFAULT_CHUNK_SIZE = 64
_UNMEASURED = {"cpu": "sequential"}


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE.read_text()) if TABLE.exists() else {}


def _nearest(rows, length, lanes):
    def distance(row):
        return (math.log2(row["length"]) - math.log2(length)) ** 2 + (
            math.log2(row["lanes"]) - math.log2(max(lanes, 1))) ** 2
    return min(rows, key=distance) if rows else None


def unmeasured(backend: str | None = None) -> str:
    """The method for a backend, family or size nothing was measured for."""
    return _UNMEASURED.get(backend or jax.default_backend(), "associative")


def measured(family: str, length: int, lanes: int, backend: str | None = None) -> dict | None:
    """The row measured nearest to (length, lanes) for `family` on the backend, or None."""
    return _nearest(_table().get(backend or jax.default_backend(), {}).get(family, []), length, lanes)


def choose(family: str, length: int, lanes: int, backend: str | None = None) -> tuple[str, int]:
    """(method, chunk_size) for a scan of `length` steps over `lanes` independent entries."""
    backend = backend or jax.default_backend()
    row = measured(family, length, lanes, backend)
    if row is None:
        return unmeasured(backend), DEFAULT_CHUNK_SIZE
    return row["method"], row.get("chunk_size") or DEFAULT_CHUNK_SIZE


def chunk_size_for(family: str, length: int, lanes: int, backend: str | None = None) -> int:
    """The measured best chunk size for the chunked method at the nearest size."""
    return choose(family, length, lanes, backend)[1]


def _write(update) -> dict:
    """Apply `update` to this backend's families in the table file, write it, re-read it."""
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    update(table.setdefault(jax.default_backend(), {}))
    TABLE.write_text(json.dumps(table, indent=2) + "\n")
    _table.cache_clear()
    return table


def replace_families(rows: dict[str, list[dict]]) -> dict:
    """This backend's measured families replaced by `rows` ({family: rows}); all else kept."""
    return _write(lambda families: families.update(rows))


def merge_rows(rows: dict[str, list[dict]]) -> dict:
    """`rows` merged into this backend's families: a row replaces the one measured at the same
    (length, lanes); every other row is kept."""
    def update(families):
        for family, new in rows.items():
            measured = {(row["length"], row["lanes"]) for row in new}
            kept = [row for row in families.get(family, []) if (row["length"], row["lanes"]) not in measured]
            families[family] = sorted(kept + new, key=lambda row: (row["length"], row["lanes"]))
    return _write(update)

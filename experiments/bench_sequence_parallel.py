"""Sequence parallelism: per-device memory and bytes exchanged as the time axis is split over M devices.

    python experiments/bench_sequence_parallel.py            # T = 2^16, M ∈ {1, 2, 4, 8}; writes BENCHMARKS.md
    python experiments/bench_sequence_parallel.py --quick    # T = 256, M ∈ {1, 2, 4}, toy widths; no BENCHMARKS.md
    python experiments/bench_sequence_parallel.py --length 16384 --devices 1 4 --workloads lru

Runs on forced CPU devices: unless XLA_FLAGS already sets a device count, this script sets
`--xla_force_host_platform_device_count=8` before JAX starts (so run it as its own process).

Workloads, each one layer of a real cell, B = 1, inputs x (B, T, d_in) float32:

  lru        LRU (d_in = d_state = 32): a complex diagonal state, DiagonalMonoid
  gla        GLA (d_in = 32, 2 heads, K = V = 16): MatrixDecayMonoid, per-key decay
  deltanet   DeltaNet (d_in = 32, 2 heads, K = V = 16): IdentityMinusRankOneMonoid, expanded by
             the associative method and by the shard summary to dense K×K transitions

each run per token through the engine: `cell.elements(params, x)`, one
`lrnn.scan.scan(cell.monoid, …, method=--method, sequence_axis="seq")`, `cell.readout` — the
`Cell.forward` path, i.e. GLA's and DeltaNet's `forward_materialised` (every token's K×V state),
not their chunkwise training forward. Where a cell's `forward` itself takes `sequence_axis`, the
chunkwise forms run too, as `gla_chunkwise` and `deltanet_chunkwise` (`cell.forward(…,
sequence_axis="seq")`, chunk 64).

For M = 1 the layer is plain (one device, no `sequence_axis`, no shard_map). For M > 1 the layer
runs inside `jax.shard_map` over a 1-D mesh ("seq", M devices, AxisType.Auto, check_vma=False):
x and the cotangent split along time, the params replicated; the scan is called with the axis
bound. Two programs are compiled per (workload, M): the forward (x -> y) and forward+backward
(`value_and_grad` of sum(y·c) w.r.t. the params and x, c a random cotangent argument; the sum
is taken outside the shard_map, so XLA adds a scalar all-reduce for it).

Reported per (workload, pass, M):

  memory     `compiled.memory_analysis()` of the SPMD-partitioned program, i.e. per device:
             temp_size_in_bytes (XLA's temporary buffers), argument and output sizes, and their
             ratios to M = 1 (the hope: ~1/M).
  exchange   bytes moved per device by the collectives in the optimized HLO
             (`compiled.as_text()`, see `collectives`), against the analytic count: the forward
             all-gathers M shard summaries of one step's element each (the monoid's `expand`ed
             element with time removed, in the scan's float32/complex64 work dtype), so each device
             receives (M − 1)·S bytes, S = that element's bytes; the backward reduce-scatters
             their cotangents, another (M − 1)·S. Everything else is counted separately as "other",
             analytic too: the chunkwise forms' ppermute of one (B, H, K, V) state from the
             previous device (`chunkwise.tiles.entering`) and its transpose, the params'
             gradient all-reduce and the loss's scalar all-reduce.
  wall time  median over interleaved rounds. The M forced CPU devices are threads sharing this
             machine's cores: the times are NOT a measure of sequence-parallel speed.
"""

from __future__ import annotations

import os
import sys

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "") and "jax" not in sys.modules:
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                                     "--xla_force_host_platform_device_count=8"]))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import inspect  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
from typing import Callable  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from experiments import benchlib  # noqa: E402
from lrnn import cells  # noqa: E402
from lrnn.scan import scan, timeaxis  # noqa: E402

AXIS = "seq"
LENGTH, DEVICES = 2**16, (1, 2, 4, 8)
QUICK_LENGTH, QUICK_DEVICES = 256, (1, 2, 4)
BATCH, WIDTH, HEADS = 1, 32, 2
QUICK_WIDTH = 8
FORWARD, TRAIN = "forward", "forward+backward"
PASSES = (FORWARD, TRAIN)
SUMMARY_OPS = ("all-gather", "reduce-scatter")  # the exchange of shard summaries and its transpose
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "collective-permute", "all-to-all")
SECTION = "## Sequence parallelism: memory vs devices (experiments/bench_sequence_parallel.py)"
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[int], object]  # width -> cell
    chunkwise: bool  # cell.forward(…, sequence_axis=) rather than elements / scan / readout


WORKLOADS = {
    "lru": Workload("lru", lambda d: cells.get_cell("lru")(d_in=d, d_state=d), False),
    "gla": Workload("gla", lambda d: cells.get_cell("gla")(d_in=d, n_heads=HEADS, d_key=d, d_value=d), False),
    "deltanet": Workload("deltanet", lambda d: cells.get_cell("deltanet")(d_in=d, n_heads=HEADS), False),
    "gla_chunkwise": Workload("gla_chunkwise", lambda d: WORKLOADS["gla"].build(d), True),
    "deltanet_chunkwise": Workload("deltanet_chunkwise", lambda d: WORKLOADS["deltanet"].build(d), True),
}


def available(workload: Workload) -> bool:
    """Whether this checkout can run it: a chunkwise workload needs `forward(…, sequence_axis=)`."""
    if not workload.chunkwise:
        return True
    return "sequence_axis" in inspect.signature(type(workload.build(8)).forward).parameters


# --- the layer ------------------------------------------------------------------------------------


def layer(workload: Workload, cell, method: str, sequence_axis: str | None) -> Callable:
    """fn(params, x) -> y: one layer on this device's x (the whole of it when sequence_axis is None)."""
    if workload.chunkwise:
        options = {} if sequence_axis is None else {"sequence_axis": sequence_axis}
        return lambda params, x: cell.forward(params, x, method=method, **options)[0]

    def per_token(params, x):
        states, _ = scan(cell.monoid, cell.elements(params, x), axis=1, method=method, sequence_axis=sequence_axis)
        return cell.readout(params, cell.from_scan_state(states), x)
    return per_token


def mesh_of(devices: int):
    return jax.make_mesh((devices,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:devices])


def programs(workload: Workload, cell, method: str, devices: int) -> tuple[dict, Callable]:
    """({pass: fn(params, x, c)}, place): the forward and forward+backward of the layer with time
    over `devices` devices, and place(params, x, c) putting real arguments where they belong."""
    if devices == 1:
        forward = layer(workload, cell, method, None)
        place = lambda *args: jax.device_put(args, jax.devices()[0])  # noqa: E731
    else:
        mesh = mesh_of(devices)
        time, replicated = PartitionSpec(None, AXIS), PartitionSpec()
        forward = jax.shard_map(layer(workload, cell, method, AXIS), mesh=mesh, in_specs=(replicated, time),
                                out_specs=time, check_vma=False)
        shardings = (NamedSharding(mesh, replicated), NamedSharding(mesh, time), NamedSharding(mesh, time))
        place = lambda *args: tuple(jax.device_put(a, s) for a, s in zip(args, shardings))  # noqa: E731

    def loss(params, x, c):
        return jnp.sum(forward(params, x) * c)

    return {FORWARD: lambda params, x, c: forward(params, x),
            TRAIN: jax.value_and_grad(loss, argnums=(0, 1))}, place


def arguments(cell, batch: int, length: int, seed: int = 0):
    key_p, key_x, key_c = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = cell.init(key_p)
    x = jax.random.normal(key_x, (batch, length, cell.d_in), jnp.float32)
    c = jax.random.normal(key_c, (batch, length, cell.d_out), jnp.float32)
    return params, x, c


# --- analytic exchange ----------------------------------------------------------------------------


def summary_bytes(cell, params, batch: int) -> dict:
    """The element one device all-gathers: the monoid's expanded element of one step (time
    removed), in the scan's work dtype (float32 / complex64 at least) — its leaves and bytes."""
    x = jax.ShapeDtypeStruct((batch, 1, cell.d_in), jnp.float32)
    leaves = jax.eval_shape(lambda p, x: cell.elements(p, x), params, x)
    work = jnp.promote_types(jnp.result_type(*leaves), jnp.float32)
    element = jax.eval_shape(lambda l: cell.monoid.expand(timeaxis.at(l, 0, 1)),
                             tuple(jax.ShapeDtypeStruct(l.shape, work) for l in leaves))
    shapes = [(str(e.dtype), list(e.shape)) for e in element]
    return {"leaves": shapes, "bytes": sum(math.prod(e.shape) * e.dtype.itemsize for e in element)}


def param_bytes(params) -> int:
    return sum(p.size * p.dtype.itemsize for p in jax.tree_util.tree_leaves(params))


def analytic_exchange(summary: int, params: int, devices: int, pass_: str, halo: int = 0) -> dict:
    """Bytes each device receives, by a ring model (see `collectives`): the summaries' all-gather,
    (and in the backward) their cotangents' reduce-scatter, and the other collectives: `halo`
    bytes from the previous device (a chunkwise form's ppermute of the state after that device's
    last chunk, `lrnn.cells.chunkwise.tiles.entering`), once more for its transpose in the
    backward, and in forward+backward the params' gradient all-reduce and the loss's float32 scalar."""
    if devices == 1:
        return {"summary": 0, "other": 0}
    gathers = devices - 1
    if pass_ == FORWARD:
        return {"summary": gathers * summary, "other": halo}
    return {"summary": 2 * gathers * summary, "other": 2 * halo + round(2 * (devices - 1) / devices * (params + 4))}


def halo_bytes(workload: Workload, cell, batch: int) -> int:
    """A chunkwise form sends one state (B, H, K, V) float32 to the next device; the per-token path nothing."""
    return batch * math.prod(cell.state_shape) * 4 if workload.chunkwise else 0


# --- measured exchange: the collectives of the compiled HLO ---------------------------------------

_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
          "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_ARRAY = re.compile(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]")
_COMMENT = re.compile(r"/\*.*?\*/")
_DEFINITION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")


def type_bytes(text: str) -> int:
    """Bytes of an HLO type (an array type or a tuple of them), e.g. "(f32[4,16]{1,0}, c64[2])"."""
    return sum(_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
               for dtype, dims in _ARRAY.findall(text) if dtype in _BYTES)


def _split_type(rest: str) -> tuple[str, str]:
    """(the result type, what follows it) of an instruction's right-hand side."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                return rest[: i + 1], rest[i + 1:].lstrip()
    head, _, tail = rest.partition(" ")
    return head, tail


def _operands(call: str) -> list[str]:
    """The operand list of "op(a, b), attrs…" split at top-level commas."""
    start = call.index("(") + 1
    depth, current, parts = 1, "", []
    for ch in call[start:]:
        depth += {"(": 1, ")": -1, "{": 1, "}": -1, "[": 1, "]": -1}.get(ch, 0)
        if depth == 0:
            break
        if ch == "," and depth == 1:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [p for p in parts + [current.strip()] if p]


def _group_size(line: str, default: int) -> int:
    explicit = re.search(r"replica_groups=\{\{([0-9,]*)\}", line)
    if explicit:
        return len(explicit.group(1).split(","))
    iota = re.search(r"replica_groups=\[[0-9]+,([0-9]+)\]<=", line)
    if iota:
        return int(iota.group(1))
    mesh = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", line)  # mesh['a'=1,'b'=4] {'b'}
    if mesh:
        sizes = {name: int(size) for name, size in re.findall(r"'([^']+)'=([0-9]+)", mesh.group(1))}
        return math.prod(sizes[name] for name in re.findall(r"'([^']+)'", mesh.group(2)))
    return default


def moved_bytes(op: str, operand: int, result: int, group: int) -> float:
    """Bytes one device receives for one collective, by the ring algorithm: an all-gather brings the
    (group − 1) parts it lacks, result − operand; a reduce-scatter the same of its operand,
    operand − result; an all-reduce is both, 2·(group − 1)/group·operand; an all-to-all
    (group − 1)/group·operand; a collective-permute its operand."""
    if group <= 1:
        return 0.0
    if op == "all-gather":
        return float(result - operand)
    if op == "reduce-scatter":
        return float(operand - result)
    if op == "all-reduce":
        return 2 * (group - 1) / group * operand
    if op == "all-to-all":
        return (group - 1) / group * operand
    return float(operand)  # collective-permute


def collectives(hlo: str, devices: int) -> list[dict]:
    """Every collective instruction of an HLO module's text: op, result and operand bytes (operands
    looked up by name where the text gives no type), the group size, bytes moved per device
    (`moved_bytes`), and the computation it sits in. An async pair (…-start / …-done) counts once,
    at its start, whose result tuple ends with the collective's result. A collective inside a loop
    body runs once per iteration: its `computation` is not the ENTRY one then (none here is)."""
    types, found, computation, entry = {}, [], None, None
    for line in hlo.splitlines():
        line = _COMMENT.sub("", line)
        stripped = line.strip()
        if stripped.endswith("{") and " = " not in stripped:
            computation = stripped.split()[1 if stripped.startswith("ENTRY") else 0].lstrip("%")
            entry = computation if stripped.startswith("ENTRY") else entry
            continue
        match = _DEFINITION.match(line)
        if not match:
            continue
        name, rest = match.groups()
        result_type, call = _split_type(rest)
        types[name] = result_type
        op = call.split("(", 1)[0]
        base = op.removesuffix("-start")
        if base not in COLLECTIVES or op.endswith("-done"):
            continue
        operand = 0
        for token in _operands(call):
            typed = type_bytes(token)
            operand += typed if typed else type_bytes(types.get(token.split()[-1].lstrip("%"), ""))
        result = type_bytes(result_type)
        if op.endswith("-start") and result_type.startswith("("):
            result = type_bytes(result_type[1:-1].rsplit(", ", 1)[-1])
        group = _group_size(stripped, devices)
        found.append({"op": base, "name": name, "result_bytes": result, "operand_bytes": operand, "group": group,
                      "moved_bytes": moved_bytes(base, operand, result, group), "computation": computation})
    for c in found:
        c["in_entry"] = c["computation"] == entry
    return found


def measured_exchange(found: list[dict]) -> dict:
    summary = sum(c["moved_bytes"] for c in found if c["op"] in SUMMARY_OPS)
    other = sum(c["moved_bytes"] for c in found if c["op"] not in SUMMARY_OPS)
    return {"summary": round(summary), "other": round(other)}


# --- one measurement ------------------------------------------------------------------------------


def memory(compiled) -> dict:
    analysis = compiled.memory_analysis()
    names = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
             "generated_code_size_in_bytes")
    return {name.removesuffix("_size_in_bytes"): int(getattr(analysis, name)) for name in names
            if getattr(analysis, name, None) is not None}


def measure(workload: Workload, width: int, batch: int, length: int, devices_list, method: str,
            timing: benchlib.Timing | None, seed: int) -> list[dict]:
    cell = workload.build(width)
    params, x, c = arguments(cell, batch, length, seed)
    summary = summary_bytes(cell, params, batch)
    n_params = param_bytes(params)
    halo = halo_bytes(workload, cell, batch)
    records, runs = [], {pass_: {} for pass_ in PASSES}
    for devices in devices_list:
        fns, place = programs(workload, cell, method, devices)
        placed = place(params, x, c)
        for pass_ in PASSES:
            benchlib.progress(f"{workload.name} T={length} M={devices} {pass_}: compile")
            compiled, compile_s = benchlib.compile_timed(fns[pass_], *placed)
            found = collectives(compiled.as_text(), devices)
            records.append({
                "workload": workload.name, "config": repr(cell), "chunkwise": workload.chunkwise, "method": method,
                "batch": batch, "length": length, "devices": devices, "pass": pass_,
                "memory_bytes": memory(compiled), "compile_s": compile_s,
                "summary_element": summary, "param_bytes": n_params,
                "halo_bytes": halo,
                "exchange_analytic_bytes": analytic_exchange(summary["bytes"], n_params, devices, pass_, halo),
                "exchange_hlo_bytes": measured_exchange(found), "collectives": found,
            })
            runs[pass_][devices] = (lambda compiled=compiled, placed=placed: compiled(*placed))
    for pass_ in PASSES:
        if timing is None:
            continue
        benchlib.progress(f"{workload.name} T={length} {pass_}: timing M ∈ {list(devices_list)}")
        samples, once = benchlib.interleaved({str(m): run for m, run in runs[pass_].items()}, timing.rounds,
                                             min_seconds=timing.min_seconds, max_calls=timing.max_calls,
                                             max_call_seconds=timing.max_call_seconds, seed=seed)
        for r in records:
            if r["pass"] == pass_:
                r["wall_median_s"] = benchlib.median(samples[str(r["devices"])])
                r["wall_rounds_s"] = samples[str(r["devices"])]
                r["timed_once"] = str(r["devices"]) in once
    with_ratios(records)
    return records


def with_ratios(records: list[dict]) -> None:
    """Each record's memory as a fraction of the same workload's and pass's at M = 1."""
    base = {(r["workload"], r["pass"]): r["memory_bytes"] for r in records if r["devices"] == 1}
    for r in records:
        one = base.get((r["workload"], r["pass"]))
        if one:
            r["memory_ratio_to_one_device"] = {k: (v / one[k] if one.get(k) else None)
                                               for k, v in r["memory_bytes"].items() if k in ("temp", "argument",
                                                                                              "output")}


# --- report ---------------------------------------------------------------------------------------


def _mib(n) -> str:
    return f"{n / MIB:.2f}" if n >= 0.01 * MIB else f"{n / MIB:.4f}"


def _ratio(r, key) -> str:
    value = (r.get("memory_ratio_to_one_device") or {}).get(key)
    return "–" if value is None else f"{value:.3f}"


def report(results: dict) -> str:
    s = results["settings"]
    records = results["records"]
    parts = [
        f"{benchlib.run_line(results)} T = {s['length']}, B = {s['batch']}, width {s['width']}, float32, engine "
        f"method `{s['method']}`; M forced CPU devices (`--xla_force_host_platform_device_count`), time split over "
        f"mesh axis \"seq\" (M = 1: plain, no shard_map). Configurations: "
        + "; ".join(sorted({f"`{r['config']}`" + (" (chunkwise forward)" if r["chunkwise"] else " (per token)")
                            for r in records})) + ".",
        "Reproduce: `python experiments/bench_sequence_parallel.py` (its own process: it forces 8 CPU devices "
        "before JAX starts; `--length`, `--devices`, `--workloads`, `--method`, `--quick`). Per token = "
        "`cell.elements` → `lrnn.scan.scan(…, sequence_axis=\"seq\")` → `cell.readout` (GLA's and DeltaNet's "
        "`forward_materialised`: every token's K×V state); chunkwise = `cell.forward(…, sequence_axis=\"seq\")`, "
        "chunk 64.",
        "Memory: XLA's per-device `memory_analysis()` of the partitioned program, MiB; `temp / M=1` against 1/M. "
        "Exchange: KiB received per device. `summary` = the all-gather of the M shard summaries, analytic "
        "(M − 1)·S with S the bytes of one step's expanded element (column `S B`), and again for the backward's "
        "reduce-scatter, against the all-gather/reduce-scatter ops of `compiled.as_text()` by the ring model "
        "(all-gather: result − operand; reduce-scatter: operand − result). `other` = every other collective: "
        "the chunkwise forms' ppermute of one state from the previous device (and its transpose), the params' "
        "gradient all-reduce (2(M − 1)/M of params + the loss scalar). "
        "**Wall time: the M forced CPU devices share this machine's cores — not meaningful as a parallel speed.**",
    ]
    for pass_ in PASSES:
        rows = []
        for r in (r for r in records if r["pass"] == pass_):
            mem, analytic, hlo = r["memory_bytes"], r["exchange_analytic_bytes"], r["exchange_hlo_bytes"]
            wall = r.get("wall_median_s")
            rows.append([r["workload"], r["devices"], _mib(mem["temp"]), _ratio(r, "temp"),
                         f"{1 / r['devices']:.3f}", _mib(mem["argument"]), _mib(mem["output"]),
                         r["summary_element"]["bytes"], f"{analytic['summary'] / 1024:.2f}",
                         f"{hlo['summary'] / 1024:.2f}", f"{analytic['other'] / 1024:.2f}",
                         f"{hlo['other'] / 1024:.2f}",
                         "–" if wall is None else f"{1e3 * wall:.1f}" + ("†" if r.get("timed_once") else "")])
        parts.append(f"**{pass_}**\n\n" + benchlib.markdown_table(
            ["workload", "M", "temp MiB", "temp / M=1", "1/M", "args MiB", "out MiB", "S B",
             "summary KiB analytic", "summary KiB HLO", "other KiB analytic", "other KiB HLO",
             "wall ms (not meaningful)"], rows))
    parts.append(findings(records))
    return "\n\n".join(parts)


def findings(records: list[dict]) -> str:
    """What the run shows, from its numbers: where temp memory falls 1/M, where not, and whether
    the HLO's exchange is the analytic one."""
    top = max(r["devices"] for r in records)
    lines = []
    mismatched = [f"{r['workload']} M={r['devices']} {r['pass']}" for r in records
                  if r["exchange_analytic_bytes"] != r["exchange_hlo_bytes"]]
    lines.append("* Exchange: the HLO's collectives move exactly the analytic bytes in "
                 + ("every record" if not mismatched else "all records but " + ", ".join(mismatched))
                 + ": one all-gather per leaf of the summary element ((M − 1)·S a device, S a few KiB, however "
                 "long T), its reduce-scatter in the backward; nothing else crosses devices but the chunkwise "
                 "forms' one-state ppermute and the replicated params' gradient all-reduce.")
    lines.append("* Arguments and outputs fall exactly 1/M but for the replicated params (a few KiB).")
    if top > 1:
        at_top = {(r["workload"], r["pass"]): r for r in records if r["devices"] == top}
        second = min((r["devices"] for r in records if r["devices"] > 1), default=top)
        at_two = {(r["workload"], r["pass"]): r for r in records if r["devices"] == second}
        one = {(r["workload"], r["pass"]): r["memory_bytes"]["temp"] for r in records if r["devices"] == 1}
        cells = []
        for key, r in at_top.items():
            if key not in one:
                continue
            excess = [(m, x["memory_bytes"]["temp"] - one[key] / m) for m, x in ((second, at_two[key]), (top, r))]
            cells.append(f"{key[0]} {key[1]} {r['memory_ratio_to_one_device']['temp']:.3f} (M = {second}: "
                         f"{at_two[key]['memory_ratio_to_one_device']['temp']:.3f}; above temp(M=1)/M by "
                         + ", ".join(f"{x / MIB:.1f} MiB at M = {m}" for m, x in excess) + ")")
        lines.append(f"* Temp memory at M = {top} as a fraction of M = 1 (1/M = {1 / top:.3f}): " + "; ".join(cells)
                     + ".")
    lines.append("* Where temp does not fall exactly 1/M, the excess is the shard summary's (`sequence_parallel.product`), "
                 "which the plain M = 1 scan never computes: the pairwise-halving tree's intermediates (GLA per token: "
                 "matrix elements) and, in the backward, the cotangents of the leaves it reads (DeltaNet per token, "
                 "whose identity-minus-rank-one elements it expands to dense K×K only 64 steps at a time). That "
                 "excess itself shrinks with M (per workload above). The chunkwise forms compose one element per "
                 "64-token chunk, so theirs is negligible and temp falls 1/M.")
    return "What it shows:\n\n" + "\n".join(lines)


# --- command line ---------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: T={QUICK_LENGTH}, M ∈ {QUICK_DEVICES}, width {QUICK_WIDTH}, "
                             "no BENCHMARKS.md")
    parser.add_argument("--length", type=int,
                        help=f"sequence length T (default {LENGTH}; {QUICK_LENGTH} with --quick)")
    parser.add_argument("--devices", type=int, nargs="+", help=f"device counts M (default {DEVICES})")
    parser.add_argument("--width", type=int, help=f"d_in (default {WIDTH}; {QUICK_WIDTH} with --quick)")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS),
                        help="default: every one this checkout can run")
    parser.add_argument("--method", default="sequential",
                        help="the engine's method (default sequential: the same at every M, so memory compares "
                             "like with like; 'auto' may pick differently for each shard length)")
    parser.add_argument("--no-time", action="store_true", help="compile and analyse only")
    benchlib.add_output_arguments(parser, default_rounds=3, quick_rounds=1, results_name="sequence_parallel")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    length = args.length or (QUICK_LENGTH if quick else LENGTH)
    width = args.width or (QUICK_WIDTH if quick else WIDTH)
    devices_list = tuple(args.devices or (QUICK_DEVICES if quick else DEVICES))
    if max(devices_list) > jax.device_count():
        raise SystemExit(f"M = {max(devices_list)} needs that many devices; JAX has {jax.device_count()} "
                         f"(run this script as its own process: it forces 8 CPU devices before JAX starts)")
    for m in devices_list:
        if length % m:
            raise SystemExit(f"T = {length} is not divisible by M = {m}")
    names = args.workloads or [name for name, w in WORKLOADS.items() if available(w)]
    for name in names:
        if not available(WORKLOADS[name]):
            raise SystemExit(f"{name}: this checkout's {name.split('_')[0]} forward takes no sequence_axis yet")
    timing = None if args.no_time else benchlib.Timing(
        rounds=args.rounds or (1 if quick else 3), min_seconds=0.01 if quick else 0.05,
        max_calls=3 if quick else 5, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "sequence_parallel")

    records = []
    for name in names:
        records += measure(WORKLOADS[name], width, args.batch, length, devices_list, args.method, timing,
                           seed=len(records))
    results = {
        **benchlib.run_header("experiments/bench_sequence_parallel.py", argv, out, ROOT),
        "settings": {"length": length, "devices": list(devices_list), "width": width, "batch": args.batch,
                     "heads": HEADS, "method": args.method, "workloads": names, "quick": quick,
                     "timing": None if timing is None else dataclasses.asdict(timing)},
        "records": records,
    }
    text = report(results)
    benchlib.publish(results, text, out, markdown, SECTION)
    return results


if __name__ == "__main__":
    main()

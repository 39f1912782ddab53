"""Benchmark of the chunkwise matrix-state training path against the per-token alternatives.

    python experiments/bench_matrix.py              # B=4, H=4, K=V=64, T ∈ {1024, 4096, 16384}; writes BENCHMARKS.md
    python experiments/bench_matrix.py --quick      # smoke test, seconds; touches no BENCHMARKS.md
    python experiments/bench_matrix.py --ops delta_rule --sizes 4096 --budget-gib 4

What is measured, for the two chunkwise ops of `lrnn.cells.chunkwise` (layout (B, H, T, K)):

  decay_attention   S_t = Diag(α_t) S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ q_t (GLA-style per-key decay;
                    inputs q, k, v normal, log α_t = log u, u ~ U(0.9, 1) per key)
  delta_rule        S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, o_t = S_tᵀ q_t (DeltaNet;
                    q, k L2-normalised, β_t = sigmoid of a normal draw)

three candidates, each returning (o (B, H, T, V), final state (B, H, K, V)) from a zero state:

  chunked       the op itself at chunk_size 64, the engine's method "auto" across chunks: matmuls
                inside chunks, one K×V (delta rule: K×K and K×V) summary per chunk
  materialised  every token's state through `lrnn.scan(..., axis=2, method="associative")`:
                MatrixDecayMonoid leaves (exp(log α), k vᵀ) resp. IdentityMinusRankOneMonoid leaves
                (βk, k, βk vᵀ), which the engine expands to dense K×K transitions; then
                o_t = S_tᵀ q_t. Keeps a (B, H, T, K, V) state tensor (and (B, H, T, K, K)
                transitions for the delta rule)
  step_loop     `lax.scan` over time of the O(K·V) per-token update, written here: what a user
                writes without a chunkwise form (its gradient is JAX's autodiff of lax.scan,
                which keeps every token's state for the backward)

for the forward pass (jit of the op) and for forward+backward (jit of the gradient of sum(o·c)
w.r.t. q, k, v and the gate, c a fixed random cotangent passed as an argument).

Memory first: every candidate is compiled and its temporary memory read from XLA's buffer
assignment (`benchlib.temp_bytes`: `compiled.memory_analysis().temp_size_in_bytes`). A candidate
whose temp memory exceeds --budget-gib (default 8) is not run (the table says "not run: needs X
GiB"); the others are timed together, `benchlib.interleaved` (a shared CPU is noisy), and compared
by their median per-call time. A candidate whose first call takes over --max-call-seconds is timed
by that one call (marked †). The memory table gives every candidate's compiled temp memory,
whether it ran or not.

Targets (from the issue, checked at T = 4096 for both ops and both passes): chunked ≥ 10× faster
than the materialised scan and ≥ 3× faster than the step loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from experiments import benchlib  # noqa: E402
from lrnn.cells.chunkwise import decay_attention, delta_rule  # noqa: E402
from lrnn.scan import IdentityMinusRankOneMonoid, MatrixDecayMonoid, scan  # noqa: E402

BATCH, HEADS, KEY, VALUE, SIZES = 4, 4, 64, 64, (1024, 4096, 16384)
QUICK_BATCH, QUICK_HEADS, QUICK_KEY, QUICK_VALUE, QUICK_SIZES = 1, 2, 8, 8, (128, 256)
CHUNK = 64
BUDGET_GIB = 8.0
CHUNKED, MATERIALISED, LOOP = "chunked", "materialised", "step_loop"
CANDIDATES = (CHUNKED, MATERIALISED, LOOP)
FORWARD, TRAIN = "forward", "forward+backward"
PASSES = (FORWARD, TRAIN)
TARGET_LENGTH = 4096
TARGETS = {MATERIALISED: 10.0, LOOP: 3.0}  # chunked at least this many times faster, at TARGET_LENGTH
SECTION = "## Matrix-state cells (experiments/bench_matrix.py)"
ONCE = "†"
GIB = 2**30


# --- the three candidates -------------------------------------------------------------------------


def outputs(states, q):
    """o_t = S_tᵀ q_t for per-token states (B, H, T, K, V) and q (B, H, T, K)."""
    return jnp.einsum("bhtkv,bhtk->bhtv", states, q)


def outer(k, v):
    return k[..., :, None] * v[..., None, :]


def step_loop(update: Callable, q, k, v, gate, initial):
    """(o, final): `lax.scan` over time of S ← update(S, k_t, v_t, gate_t), o_t = S_tᵀ q_t."""
    def body(state, token):
        q_t, k_t, v_t, gate_t = token
        state = update(state, k_t, v_t, gate_t)
        return state, jnp.einsum("bhkv,bhk->bhv", state, q_t)

    final, o = lax.scan(body, initial, tuple(jnp.moveaxis(x, 2, 0) for x in (q, k, v, gate)))
    return jnp.moveaxis(o, 0, 2), final


def decay_step(state, k, v, log_decay):
    return jnp.exp(log_decay)[..., None] * state + outer(k, v)


def delta_step(state, k, v, beta):
    """S + β k (v − Sᵀk)ᵀ = (I − β k kᵀ) S + β k vᵀ in O(K·V)."""
    error = v - jnp.einsum("bhk,bhkv->bhv", k, state)
    return state + outer(beta[..., None] * k, error)


def decay_materialised(q, k, v, log_decay, initial):
    states, final = scan(MatrixDecayMonoid(), (jnp.exp(log_decay), outer(k, v)), axis=2, initial=initial,
                         method="associative")
    return outputs(states, q), final


def delta_materialised(q, k, v, beta, initial):
    u = beta[..., None] * k
    states, final = scan(IdentityMinusRankOneMonoid(), (u, k, outer(u, v)), axis=2, initial=initial,
                         method="associative")
    return outputs(states, q), final


def decay_inputs(key, batch, heads, length, dk, dv):
    """q, k, v normal (q, k scaled by K^-1/2), log α = log U(0.9, 1) per key."""
    kq, kk, kv, ka = jax.random.split(key, 4)
    q = jax.random.normal(kq, (batch, heads, length, dk), jnp.float32) * dk**-0.5
    k = jax.random.normal(kk, (batch, heads, length, dk), jnp.float32) * dk**-0.5
    v = jax.random.normal(kv, (batch, heads, length, dv), jnp.float32)
    log_decay = jnp.log(jax.random.uniform(ka, (batch, heads, length, dk), jnp.float32, 0.9, 1.0))
    return q, k, v, log_decay


def delta_inputs(key, batch, heads, length, dk, dv):
    """q, k L2-normalised (as DeltaNet does, so that I − β k kᵀ is a contraction), β = sigmoid(normal)."""
    kq, kk, kv, kb = jax.random.split(key, 4)
    unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    q = unit(jax.random.normal(kq, (batch, heads, length, dk), jnp.float32))
    k = unit(jax.random.normal(kk, (batch, heads, length, dk), jnp.float32))
    v = jax.random.normal(kv, (batch, heads, length, dv), jnp.float32)
    beta = jax.nn.sigmoid(jax.random.normal(kb, (batch, heads, length), jnp.float32))
    return q, k, v, beta


@dataclasses.dataclass(frozen=True)
class Op:
    """One chunkwise op with its inputs (q, k, v, gate), its materialised scan and its step."""

    name: str
    inputs: Callable
    chunked: Callable  # (q, k, v, gate, initial, chunk_size) -> (o, final)
    materialised: Callable  # (q, k, v, gate, initial) -> (o, final)
    step: Callable  # (state, k_t, v_t, gate_t) -> state

    def candidates(self, chunk_size: int) -> dict[str, Callable]:
        """{name: fn(q, k, v, gate, initial) -> (o, final)}."""
        return {
            CHUNKED: lambda q, k, v, g, s0: self.chunked(q, k, v, g, s0, chunk_size),
            MATERIALISED: self.materialised,
            LOOP: lambda q, k, v, g, s0: step_loop(self.step, q, k, v, g, s0),
        }


OPS = {
    "decay_attention": Op(
        "decay_attention", decay_inputs,
        lambda q, k, v, g, s0, c: decay_attention(q, k, v, g, s0, chunk_size=c, method="auto"),
        decay_materialised, decay_step),
    "delta_rule": Op(
        "delta_rule", delta_inputs,
        lambda q, k, v, g, s0, c: delta_rule(q, k, v, g, s0, chunk_size=c, method="auto"),
        delta_materialised, delta_step),
}


def for_pass(fn: Callable, pass_: str) -> Callable:
    """fn(q, k, v, gate, initial, cotangent): the forward pass, or the gradient of sum(o·cotangent)
    w.r.t. q, k, v and the gate."""
    if pass_ == FORWARD:
        return lambda q, k, v, g, s0, cotangent: fn(q, k, v, g, s0)

    def loss(q, k, v, g, s0, cotangent):
        return jnp.sum(fn(q, k, v, g, s0)[0] * cotangent)
    return jax.grad(loss, argnums=(0, 1, 2, 3))


# --- measuring ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Shape:
    batch: int
    heads: int
    key: int
    value: int

    def describe(self) -> str:
        return f"B={self.batch}, H={self.heads}, K={self.key}, V={self.value}"


def arguments(op: Op, shape: Shape, length: int, seed: int) -> tuple:
    key_in, key_c = jax.random.split(jax.random.PRNGKey(seed))
    q, k, v, gate = op.inputs(key_in, shape.batch, shape.heads, length, shape.key, shape.value)
    initial = jnp.zeros((shape.batch, shape.heads, shape.key, shape.value), jnp.float32)
    cotangent = jax.random.normal(key_c, v.shape, jnp.float32)
    return q, k, v, gate, initial, cotangent


def measure(op: Op, shape: Shape, length: int, pass_: str, chunk_size: int, budget_bytes: float,
            timing: benchlib.Timing, seed: int) -> dict:
    """Compile all candidates, read their temp memory, time those within the budget interleaved."""
    args = arguments(op, shape, length, seed)
    compiled, compile_s, temp, source = {}, {}, {}, {}
    for name, fn in op.candidates(chunk_size).items():
        compiled[name], compile_s[name] = benchlib.compile_timed(for_pass(fn, pass_), *args)
        # No fallback run: an over-budget candidate must not run. Unknown memory runs (not on CPU).
        temp[name], source[name] = benchlib.temp_bytes(compiled[name])
    not_run = [name for name in compiled if temp[name] is not None and temp[name] > budget_bytes]
    runs = {name: (lambda c=c: c(*args)) for name, c in compiled.items() if name not in not_run}
    samples, once = benchlib.interleaved(runs, timing.rounds, min_seconds=timing.min_seconds,
                                         max_calls=timing.max_calls, max_call_seconds=timing.max_call_seconds,
                                         seed=seed)
    return {"op": op.name, "pass": pass_, "length": length, **dataclasses.asdict(shape), "chunk_size": chunk_size,
            "temp_bytes": temp, "memory_source": source, "not_run": not_run, "compile_s": compile_s,
            "median_s": benchlib.medians(samples), "rounds_s": samples, "timed_once": once}


def ratios(record: dict) -> dict[str, float | None]:
    """Each other candidate's median over chunked's (above 1: chunked is faster); None if not run."""
    times = record["median_s"]
    return {name: (times[name] / times[CHUNKED] if name in times and CHUNKED in times else None)
            for name in CANDIDATES if name != CHUNKED}


def targets(records: list[dict]) -> list[dict]:
    checks = []
    for r in records:
        if r["length"] != TARGET_LENGTH:
            continue
        for name, value in ratios(r).items():
            checks.append({"target": f"chunked ≥ {TARGETS[name]:g}× faster than {name}",
                           "where": f"{r['op']} {r['pass']} T={r['length']}", "value": value,
                           "met": None if value is None else value >= TARGETS[name]})  # None: not run
    return checks


# --- reporting ------------------------------------------------------------------------------------


def gib(n: int | None) -> str:
    return "–" if n is None else f"{n / GIB:.3g}"


def time_cell(record: dict, name: str) -> str:
    if name in record["not_run"]:
        return f"not run: needs {gib(record['temp_bytes'][name])} GiB"
    ms = 1e3 * record["median_s"][name]
    return (f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}") + (ONCE if name in record["timed_once"] else "")


def ratio_cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def time_table(records: list[dict]) -> str:
    rows = []
    for r in records:
        rel = ratios(r)
        rows.append([r["op"], r["length"], *(time_cell(r, name) for name in CANDIDATES),
                     ratio_cell(rel[MATERIALISED]), ratio_cell(rel[LOOP])])
    return benchlib.markdown_table(
        ["op", "T", *(f"{name} ms" for name in CANDIDATES), "materialised / chunked", "step_loop / chunked"], rows)


def memory_table(records: list[dict]) -> str:
    rows = []
    for r in sorted(records, key=lambda r: (r["op"], r["length"], PASSES.index(r["pass"]))):
        temp = r["temp_bytes"]
        rel = temp[MATERIALISED] / temp[CHUNKED] if temp[MATERIALISED] and temp[CHUNKED] else None
        rows.append([r["op"], r["length"], r["pass"], *(gib(temp[name]) for name in CANDIDATES), ratio_cell(rel)])
    return benchlib.markdown_table(
        ["op", "T", "pass", *(f"{name} GiB" for name in CANDIDATES), "materialised / chunked"], rows)


def targets_text(checks: list[dict]) -> str:
    if not checks:
        return f"- not measured here (no T = {TARGET_LENGTH})."
    lines = []
    for c in checks:
        if c["met"] is None:
            lines.append(f"- {c['target']}, {c['where']}: not measured (over the memory budget).")
        else:
            lines.append(f"- {c['target']}, {c['where']}: {c['value']:.1f}× — {'met' if c['met'] else 'missed'}.")
    return "\n".join(lines)


def report(results: dict) -> str:
    settings = results["settings"]
    records = results["records"]
    parts = [
        f"{benchlib.run_line(results)} {settings['shape']}, float32, chunk size {settings['chunk_size']}; "
        f"medians of {settings['rounds']} interleaved rounds; memory budget {settings['budget_gib']:g} GiB.",
        "Candidates: `chunked` = the chunkwise op (`lrnn.cells.chunkwise`, engine method \"auto\" across "
        "chunks); `materialised` = every token's K×V state through `lrnn.scan(method=\"associative\")` "
        "(MatrixDecayMonoid for decay_attention; IdentityMinusRankOneMonoid for delta_rule, whose leaves the "
        "engine expands to dense K×K transitions), then o_t = S_tᵀ q_t; `step_loop` = `lax.scan` over time "
        "of the O(K·V) per-token update. Ratios: the candidate's median over chunked's (above 1: chunked is "
        "faster). \"not run\": its compiled temp memory exceeds the budget."
        + (f" {ONCE}: one call took over {settings['max_call_seconds']:g} s, timed by that call alone."
           if any(r["timed_once"] for r in records) else ""),
    ]
    for pass_ in PASSES:
        group = [r for r in records if r["pass"] == pass_]
        if group:
            parts.append(f"### {pass_}: median ms\n\n" + time_table(group))
    parts.append("### Compiled temporary memory (GiB)\n\n" + memory_table(records)
                 + f"\n\nMeasured by {records[0]['memory_source'][CHUNKED]} of each compiled candidate, "
                 "before running it.")
    parts.append(f"### Targets (T = {TARGET_LENGTH})\n\n" + targets_text(results["targets"]))
    return "\n\n".join(parts)


# --- command line ---------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: B={QUICK_BATCH}, H={QUICK_HEADS}, K=V={QUICK_KEY}, T ∈ {QUICK_SIZES}, "
                             "no BENCHMARKS.md")
    parser.add_argument("--ops", nargs="+", choices=sorted(OPS), help="ops to measure (default: both)")
    parser.add_argument("--sizes", type=int, nargs="+", help="sequence lengths T")
    parser.add_argument("--chunk-size", type=int, default=CHUNK, help=f"the chunked op's chunk size (default {CHUNK})")
    parser.add_argument("--budget-gib", type=float, default=BUDGET_GIB,
                        help=f"do not run a candidate whose compiled temp memory exceeds this (default {BUDGET_GIB:g})")
    benchlib.add_output_arguments(parser, default_rounds=5, quick_rounds=2, results_name="bench_matrix")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    quick = args.quick
    shape = Shape(QUICK_BATCH, QUICK_HEADS, QUICK_KEY, QUICK_VALUE) if quick else Shape(BATCH, HEADS, KEY, VALUE)
    sizes = tuple(args.sizes or (QUICK_SIZES if quick else SIZES))
    ops = [OPS[name] for name in (args.ops or OPS)]
    timing = benchlib.Timing(rounds=args.rounds or (2 if quick else 5), min_seconds=0.01 if quick else 0.1,
                             max_calls=5 if quick else 10, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "bench_matrix")

    records = []
    for op in ops:
        for length in sizes:
            for pass_ in PASSES:
                benchlib.progress(f"{op.name} T={length} {pass_}")
                records.append(measure(op, shape, length, pass_, args.chunk_size, args.budget_gib * GIB, timing,
                                       seed=len(records)))
    results = {
        **benchlib.run_header("experiments/bench_matrix.py", argv, out, ROOT),
        "settings": {"shape": shape.describe(), **dataclasses.asdict(shape), "sizes": list(sizes),
                     "chunk_size": args.chunk_size, "budget_gib": args.budget_gib, "quick": quick,
                     **dataclasses.asdict(timing)},
        "records": records,
    }
    results["targets"] = targets(records)
    text = report(results)
    benchlib.publish(results, text, out, markdown, SECTION)
    return results


if __name__ == "__main__":
    main()

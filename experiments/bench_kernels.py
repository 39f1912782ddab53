"""Benchmark of the Pallas kernels on a GPU (or TPU): the diagonal scan against the memory floor,
the chunk kernels against the pure-JAX chunkwise path and flash-linear-attention's Triton kernels.

    python experiments/bench_kernels.py                  # on a GPU: writes BENCHMARKS.md + results JSON
    python experiments/bench_kernels.py --write-auto     # also record the winners for method="auto"
    python experiments/bench_kernels.py --quick          # smoke test at tiny sizes (runs on CPU too)

What is measured, all in one run so the ratios share the machine's state:

  copy floor   a jitted y = c·x over 2^28 float32 (1 GiB each way): bytes moved / median time is
               the copy bandwidth. The diagonal scan's floor is the time to move 12 bytes per
               element forward (read a, b; write h, float32) and 32 forward+backward (adding: read
               a, h, ȳ; write ā, b̄) at that bandwidth; with bf16, half of that.
  diagonal     (B, T, D) = (8, 8192, 4096) float32 and bf16, `pallas_kernels.diagonal_scan`, the
               engine's "pallas" method through `lrnn.scan.scan`, and the engine's pure-JAX methods
               (associative, chunked, sequential), forward and forward+backward: median time, the
               floor's time / the kernel's (the fraction of the floor reached; target ≥ 0.80
               forward) and every method's time / the kernel's.
  chunk        B = 8, H = 16, K = V = 128, T ∈ {2048, 8192}, bf16 inputs, chunk 64:
               decay_attention (GLA: per-key log decay log σ(·)/16) and delta_rule (DeltaNet, unit
               keys, β = σ(·); and gated, scalar log decay), each as the Pallas kernel, the pure-JAX
               chunkwise form (`lrnn.cells.chunkwise`, the engine's associative scan across chunks) and fla's
               `chunk_gla` / `chunk_delta_rule` / `chunk_gated_delta_rule` (PyTorch + Triton; "not
               available" when fla or torch does not import), forward and forward+backward (the
               gradient of Σ o·c for a fixed random c with respect to every input). Target: the
               kernel no slower than fla's (ratio kernel / fla ≤ 1).

--write-auto (GPU/TPU): records in `lrnn/scan/auto_methods.json`, for this backend, the chunk
kernels' and the pure-JAX forms' seconds (forward and forward+backward) and the diagonal
family's forward seconds of the engine's methods and the kernel at the size measured here, so
`method="auto"` uses the kernels where the cost model fitted to them predicts them faster.

Timing: `benchlib.interleaved` (every candidate of one comparison round-robin, fresh order each
round), medians over rounds; a torch candidate synchronises the device after each call. JAX is told
not to preallocate GPU memory so that PyTorch can run beside it.

On CPU the kernels run in Pallas interpret mode, whose timings say nothing about a GPU: without
--quick the script refuses to run there, and the BENCHMARKS.md section stays "not measured".
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
from typing import Callable, Iterator

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments import benchlib  # noqa: E402
from lrnn.cells import chunkwise  # noqa: E402
from lrnn.scan import DiagonalMonoid, auto, scan  # noqa: E402
from pallas_kernels import decay_attention, delta_rule, diagonal_scan  # noqa: E402

SECTION = "## Pallas kernels (experiments/bench_kernels.py)"
FORWARD, TRAIN = "forward", "forward+backward"
PASSES = (FORWARD, TRAIN)
COPY_ELEMENTS, QUICK_COPY_ELEMENTS = 2**28, 2**12
DIAGONAL_SHAPE, QUICK_DIAGONAL_SHAPE = (8, 8192, 4096), (2, 64, 16)
CHUNK_SHAPE, QUICK_CHUNK_SHAPE = dict(batch=8, heads=16, key=128, value=128), dict(batch=1, heads=2, key=16, value=16)
LENGTHS, QUICK_LENGTHS = (2048, 8192), (64,)
CHUNK_SIZE = 64
KERNEL, PURE, FLA = "pallas", "pure_jax", "fla"
FLOOR_BYTES = {FORWARD: 12, TRAIN: 32}  # per float32 element; bf16 moves half


# --- candidates ------------------------------------------------------------------------------


def train_step(fn: Callable, n_inputs: int) -> Callable:
    """The gradient of Σ o·c with respect to the first `n_inputs` arguments of fn(*args) -> (o, ...)."""
    def loss(*args):
        *inputs, cotangent = args
        return jnp.vdot(fn(*inputs)[0].astype(jnp.float32), cotangent)
    return jax.grad(loss, argnums=tuple(range(n_inputs)))


def diagonal_candidates() -> dict[str, Callable]:
    """The kernel called directly, and the engine's "pallas" and pure-JAX methods."""
    def engine(method):
        return lambda a, b: scan(DiagonalMonoid(), (a, b), method=method)
    return {KERNEL: lambda a, b: diagonal_scan(a, b),
            **{f"engine_{m}": engine(m) for m in ("pallas", "associative", "chunked", "sequential")}}


@dataclasses.dataclass(frozen=True)
class ChunkOp:
    name: str
    kernel: Callable
    pure: Callable
    fla_name: str  # fla.ops function
    gated: bool

    def inputs(self, key, batch, heads, length, width_k, width_v, dtype):
        """(q, k, v, gate[, log_decay]) in the (B, H, T, ·) layout, in `dtype`."""
        kq, kk, kv, kg, kb = jax.random.split(key, 5)
        q = jax.random.normal(kq, (batch, heads, length, width_k)) * width_k**-0.5
        k = jax.random.normal(kk, (batch, heads, length, width_k))
        v = jax.random.normal(kv, (batch, heads, length, width_v))
        if self.name == "decay_attention":
            gate = jax.nn.log_sigmoid(jax.random.normal(kg, (batch, heads, length, width_k))) / 16
            return tuple(x.astype(dtype) for x in (q, k, v, gate))
        k = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
        beta = jax.nn.sigmoid(jax.random.normal(kb, (batch, heads, length)))
        arrays = (q, k, v, beta)
        if self.gated:
            arrays += (jax.nn.log_sigmoid(jax.random.normal(kg, (batch, heads, length)) + 4),)
        return tuple(x.astype(dtype) for x in arrays)


def _zero_state(q, v):
    return jnp.zeros(q.shape[:2] + (q.shape[3], v.shape[3]), jnp.float32)


def _delta(fn, gated, **method):
    if gated:
        return lambda q, k, v, beta, g: fn(q, k, v, beta, _zero_state(q, v), log_decay=g, chunk_size=CHUNK_SIZE,
                                           **method)
    return lambda q, k, v, beta: fn(q, k, v, beta, _zero_state(q, v), chunk_size=CHUNK_SIZE, **method)


def _decay(fn, **method):
    return lambda q, k, v, g: fn(q, k, v, g, _zero_state(q, v), chunk_size=CHUNK_SIZE, **method)


# The pure-JAX forms with an explicit engine method across chunks: "auto" would run the kernel
# itself once --write-auto has recorded it as faster.
ACROSS_CHUNKS = dict(method="associative")
CHUNK_OPS = (
    ChunkOp("decay_attention", _decay(decay_attention), _decay(chunkwise.decay_attention, **ACROSS_CHUNKS),
            "chunk_gla", False),
    ChunkOp("delta_rule", _delta(delta_rule, False), _delta(chunkwise.delta_rule, False, **ACROSS_CHUNKS),
            "chunk_delta_rule", False),
    ChunkOp("gated_delta_rule", _delta(delta_rule, True), _delta(chunkwise.delta_rule, True, **ACROSS_CHUNKS),
            "chunk_gated_delta_rule", True),
)


def fla_runner(op: ChunkOp, arrays, pass_: str):
    """A no-argument callable running fla's kernel on the same values (torch, (B, T, H, ·)), or the
    reason it cannot run."""
    try:
        import torch
        import fla.ops as fla_ops
        fn = getattr(fla_ops, op.fla_name)
    except Exception as error:  # noqa: BLE001 - any import failure means "not available"
        return f"not available ({type(error).__name__}: {error})"
    if not torch.cuda.is_available():
        return "not available (no CUDA device for torch)"
    as_torch = [torch.from_numpy(np.asarray(x.astype(jnp.float32))).cuda().to(torch.bfloat16) for x in arrays]
    q, k, v = (x.transpose(1, 2).contiguous() for x in as_torch[:3])
    rest = [x.transpose(1, 2).contiguous() for x in as_torch[3:]]
    if op.name == "decay_attention":
        kwargs = dict(g=rest[0])
    elif op.gated:
        kwargs = dict(beta=rest[0], g=rest[1])
    else:
        kwargs = dict(beta=rest[0])
    scale = 1.0  # our q already carries any scaling
    train = pass_ == TRAIN
    leaves = [q, k, v, *rest]
    if train:
        for x in leaves:
            x.requires_grad_(True)
    cotangent = torch.randn_like(v)

    def run():
        o, _ = fn(q, k, v, scale=scale, output_final_state=True, **kwargs)
        if train:
            torch.autograd.grad((o * cotangent).sum(), leaves)
        torch.cuda.synchronize()
    try:
        run()
    except Exception as error:  # noqa: BLE001 - a peer failing is reported, not fatal
        return f"failed ({type(error).__name__}: {str(error)[:120]})"
    return run


# --- measurements ----------------------------------------------------------------------------


def copy_bandwidth(elements: int, timing: benchlib.Timing) -> dict:
    x = jnp.ones((elements,), jnp.float32)
    scale = jnp.float32(1.0001)
    copy = jax.jit(lambda x, c: x * c)
    result = benchlib.compile_and_time({"copy": copy}, (x, scale), timing, seed=0)
    seconds = result["median_s"]["copy"]
    return {"elements": elements, "median_s": seconds, "bytes_per_s": 8 * elements / seconds}


def diagonal_records(shape, bandwidth: float, timing: benchlib.Timing) -> list[dict]:
    records = []
    for dtype in (jnp.float32, jnp.bfloat16):
        key_a, key_b = jax.random.split(jax.random.PRNGKey(len(records)))
        a = jax.random.uniform(key_a, shape, jnp.float32, 0.5, 1.0).astype(dtype)
        b = jax.random.normal(key_b, shape, jnp.float32).astype(dtype)
        elements = a.size
        for pass_ in PASSES:
            benchlib.progress(f"diagonal {jnp.dtype(dtype).name} {pass_}")
            fns = diagonal_candidates()
            args = (a, b)
            if pass_ == TRAIN:
                fns = {name: train_step(fn, 2) for name, fn in fns.items()}
                args = (a, b, jax.random.normal(key_b, shape, jnp.float32))
            result = benchlib.compile_and_time(fns, args, timing, seed=len(records))
            floor_s = FLOOR_BYTES[pass_] * jnp.dtype(dtype).itemsize / 4 * elements / bandwidth
            records.append({"dtype": jnp.dtype(dtype).name, "pass": pass_, "shape": list(shape), "floor_s": floor_s,
                            **result})
    return records


def chunk_records(shape: dict, lengths, timing: benchlib.Timing) -> Iterator[dict]:
    """One record per op, length and pass, as each is measured."""
    seed = 0
    for op in CHUNK_OPS:
        for length in lengths:
            arrays = op.inputs(jax.random.PRNGKey(length), shape["batch"], shape["heads"], length, shape["key"],
                               shape["value"], jnp.bfloat16)
            cotangent = jax.random.normal(jax.random.PRNGKey(1), arrays[2].shape, jnp.float32)
            for pass_ in PASSES:
                benchlib.progress(f"{op.name} T={length} {pass_}")
                fns = {KERNEL: op.kernel, PURE: op.pure}
                args = arrays
                if pass_ == TRAIN:
                    fns = {name: train_step(fn, len(arrays)) for name, fn in fns.items()}
                    args = arrays + (cotangent,)
                compiled, failed = {}, {}
                for name, fn in fns.items():
                    try:
                        compiled[name] = benchlib.compile_timed(fn, *args)
                    except Exception as error:  # noqa: BLE001 - e.g. a kernel over the shared-memory limit
                        failed[name] = compile_failure(error)
                        benchlib.progress(f"{name} does not compile: {failed[name]}")
                runs = {name: (lambda c=c: c(*args)) for name, (c, _) in compiled.items()}
                peer = fla_runner(op, arrays, pass_)
                if callable(peer):
                    runs[FLA] = peer
                samples, once = benchlib.interleaved(runs, timing.rounds, min_seconds=timing.min_seconds,
                                                     max_calls=timing.max_calls,
                                                     max_call_seconds=timing.max_call_seconds, seed=seed)
                seed += 1
                yield {"op": op.name, "length": length, "pass": pass_, **shape,
                       "compile_s": {name: s for name, (_, s) in compiled.items()},
                       "median_s": benchlib.medians(samples), "rounds_s": samples, "timed_once": once,
                       "fla": "measured" if callable(peer) else peer, "does_not_compile": failed}


def compile_failure(error: Exception) -> str:
    """The first line of a compile error, e.g. "JaxRuntimeError: RESOURCE_EXHAUSTED: Shared memory ..."."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:200]}"


# --- report ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g}"


def diagonal_table(records: list[dict]) -> str:
    names = list(records[0]["median_s"])
    header = ["dtype", "pass", "pallas ms", "floor ms", "floor / pallas"] + [f"{n} / pallas" for n in names[1:]]
    rows = []
    for r in records:
        t = r["median_s"]
        rows.append([r["dtype"], r["pass"], _ms(t[KERNEL]), _ms(r["floor_s"]), f"{r['floor_s'] / t[KERNEL]:.2f}"]
                    + [f"{t[n] / t[KERNEL]:.2f}" for n in names[1:]])
    return benchlib.markdown_table(header, rows)


def chunk_table(records: list[dict]) -> str:
    header = ["op", "T", "pass", "pallas ms", "pure JAX ms", "fla ms", "pallas / pure JAX", "pallas / fla"]
    rows = []
    for r in records:
        t, failed = r["median_s"], r.get("does_not_compile", {})
        kernel, pure, fla = t.get(KERNEL), t.get(PURE), t.get(FLA)
        shown = {name: _ms(t[name]) if name in t else f"does not compile ({failed[name]})" for name in (KERNEL, PURE)}
        rows.append([r["op"], r["length"], r["pass"], shown[KERNEL], shown[PURE], _ms(fla) if fla else r["fla"],
                     f"{kernel / pure:.2f}" if kernel and pure else "–", f"{kernel / fla:.2f}" if kernel and fla else "–"])
    return benchlib.markdown_table(header, rows)


def report(results: dict) -> str:
    copy = results["copy"]
    parts = [
        benchlib.run_line(results) + f" Device: {results['environment']['devices'][0]}."
        + (f" **Unfinished run** (written as it went, then stopped): {results['unfinished']}."
           if results.get("unfinished") else ""),
        f"Copy bandwidth: {copy['bytes_per_s'] / 1e9:.0f} GB/s ({copy['elements']} float32 each way, median "
        f"{_ms(copy['median_s'])} ms).",
        "### Diagonal scan, (B, T, D) = " + " × ".join(map(str, results["diagonal"][0]["shape"])),
        "`floor / pallas`: the memory floor's time over the kernel's (1.00 = at the copy bandwidth; target ≥ 0.80 "
        "forward). Other columns: that candidate's median time / the kernel's.",
        diagonal_table(results["diagonal"]),
        "### Chunk kernels, B={batch} H={heads} K={key} V={value}, bf16, chunk 64".format(**results["chunk_shape"]),
        "`pallas / fla` ≤ 1 meets the target (no slower than flash-linear-attention's Triton kernels).",
        chunk_table(results["chunk"]),
    ]
    return "\n\n".join(parts)


# --- auto ------------------------------------------------------------------------------------


def auto_points(results: dict) -> dict[str, list[dict]]:
    """Points for `lrnn.scan.auto` (its format: seconds per candidate at a length, lanes, dtype
    and pass): per chunk form, length and pass the kernel's ("pallas") and the pure-JAX form's
    ("pure_jax") seconds, and for the diagonal family the forward seconds of the engine's methods
    with the kernel among them."""
    shape = results["chunk_shape"]
    lanes = shape["batch"] * shape["heads"] * shape["key"] * shape["value"]
    rows: dict[str, list[dict]] = {}
    for r in results["chunk"]:
        if r["op"] != "gated_delta_rule":  # gated shares delta_rule's points
            seconds = {name: r["median_s"][name] for name in (KERNEL, PURE) if name in r["median_s"]}
            rows.setdefault(r["op"], []).append({"length": r["length"], "lanes": lanes, "dtype": "bfloat16",
                                                 "pass": r["pass"], "seconds": seconds})
    for r in results["diagonal"]:
        if r["pass"] == FORWARD:
            batch, length, width = r["shape"]
            engine = {name.removeprefix("engine_"): s for name, s in r["median_s"].items() if name.startswith("engine_")}
            rows.setdefault("diagonal", []).append(
                {"length": length, "lanes": batch * width, "dtype": r["dtype"], "pass": FORWARD, "seconds": engine})
    return rows


# --- command line ----------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test (allowed on CPU)")
    parser.add_argument("--write-auto", action="store_true", help="record the chunk kernels' wins for method='auto'")
    benchlib.add_output_arguments(parser, default_rounds=7, quick_rounds=2, results_name="bench_kernels")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    if jax.default_backend() == "cpu" and not args.quick:
        raise SystemExit("bench_kernels: no GPU or TPU here; on CPU the kernels run in Pallas interpret mode and "
                         "their timings mean nothing. Run it on a GPU, or pass --quick for a smoke test.")
    quick = args.quick
    timing = benchlib.Timing(rounds=args.rounds or (2 if quick else 7), min_seconds=0.001 if quick else 0.05,
                             max_calls=2 if quick else 20, max_call_seconds=args.max_call_seconds)
    out, markdown = benchlib.output_paths(args, ROOT, "bench_kernels")
    chunk_shape = QUICK_CHUNK_SHAPE if quick else CHUNK_SHAPE
    results = {
        **benchlib.run_header("experiments/bench_kernels.py", argv, out, ROOT),
        "settings": {"quick": quick, **dataclasses.asdict(timing)},
        "copy": copy_bandwidth(QUICK_COPY_ELEMENTS if quick else COPY_ELEMENTS, timing),
        "diagonal": [], "chunk_shape": chunk_shape, "chunk": [], "unfinished": "measuring the diagonal scan",
    }

    def publish(unfinished: str | None) -> None:
        """Write what is measured so far: a run stopped at a time limit keeps its tables."""
        results["unfinished"] = unfinished
        benchlib.publish(results, report(results), out, markdown, SECTION)

    results["diagonal"] = diagonal_records(QUICK_DIAGONAL_SHAPE if quick else DIAGONAL_SHAPE,
                                           results["copy"]["bytes_per_s"], timing)
    lengths = QUICK_LENGTHS if quick else LENGTHS
    publish("measured the diagonal scan, not yet the chunk kernels")
    for record in chunk_records(chunk_shape, lengths, timing):
        results["chunk"].append(record)
        publish(f"measured {len(results['chunk'])} of the chunk kernels' {len(CHUNK_OPS) * len(lengths) * len(PASSES)} "
                "rows")
    publish(None)
    if args.write_auto and not quick:
        auto.merge_points(auto_points(results))  # bench_scan.py --write-auto replaces whole families: run it first
    return results


if __name__ == "__main__":
    main()

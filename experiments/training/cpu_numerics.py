"""The same numbers on any machine: pinning what XLA:CPU's float results depend on.

Measured on jax 0.10.2 (a 2-core AMD EPYC with AVX-512; tests/experiments/test_reproducibility.py
keeps the 65,536 × 64 probe): the bits of a float32 sum or matrix product that
XLA:CPU computes depend on

- the number of cores the process may use. XLA:CPU sizes its intra-op thread pool by it, and
  Eigen's matrix products and YNNPACK's reductions split their work, the summed dimension
  included, across that pool: a sum of 2,560 floats, xᵀy for x, y of 2,560 × 16 and × 64, and
  xᵀx for x of 65,536 × 64 differ between one and two cores (on jax 0.12 only the last one
  still does). `--xla_cpu_multi_thread_eigen=false` changes nothing here;
- the CPU's vector instructions. XLA compiles reductions for the host CPU (AVX-512 and AVX2
  sum in different orders), and YNNPACK / XNNPACK choose their kernels by the CPU at run time.

Nothing else in a run varies: every batch is drawn from a generator seeded by (seed, step),
parameters from `train.seed`, and no draw is unseeded. A training run's last-bit differences
grow (a learning rate of 1e-2 over a thousand steps) into different accuracy tables.

`pin(threads)`, called before JAX starts its CPU backend, removes both: the process runs on
`threads` of the cores it may use, and XLA compiles for AVX2 without the YNNPACK and XNNPACK
library fusions. The same run then gives the same bits on any x86-64 machine with AVX2 and at
least `threads` cores. On other architectures only the core count is pinned.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

X86_FLAGS = ("--xla_cpu_max_isa=AVX2",)
PORTABLE_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=", "--xla_cpu_use_xnnpack=false")


def backend_started() -> bool:
    """Whether JAX has created its backends (after which XLA_FLAGS and the thread pool are fixed)."""
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()


def portable_flags() -> tuple[str, ...]:
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return (X86_FLAGS if x86 else ()) + PORTABLE_FLAGS


def accelerator_plugins() -> list[str]:
    """The installed JAX plugins for a GPU or TPU (jax-cuda*, jax-rocm*, libtpu)."""
    names = (dist.metadata["Name"] or "" for dist in importlib.metadata.distributions())
    return sorted({name for name in names if name.startswith(("jax-cuda", "jax_cuda", "jax-rocm", "libtpu"))})


def pin(threads: int) -> str:
    """Run this process on `threads` cores with portable CPU code generation; returns what was
    done, or why the numbers may still differ from another machine's (one line, for the log).
    Nothing is pinned where a GPU or TPU plugin is installed (the run's numbers are the
    accelerator's) or where the OS cannot restrict a process to some cores."""
    plugins = accelerator_plugins()
    if plugins:
        return f"train.cpu_threads not applied: an accelerator plugin is installed ({', '.join(plugins)})"
    if not hasattr(os, "sched_setaffinity"):
        return f"train.cpu_threads not applied: {platform.system()} cannot restrict a process to some cores"
    if backend_started():
        return (f"train.cpu_threads={threads} not applied: JAX's backend had started already (pin before any JAX "
                "computation, as experiments/train.py does); numbers depend on this machine's cores and CPU")
    available = sorted(os.sched_getaffinity(0))
    chosen = available[:threads]
    os.sched_setaffinity(0, chosen)
    flags = " ".join(portable_flags())
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()  # the last of a flag wins
    if len(chosen) < threads:
        return (f"train.cpu_threads={threads}, but only {len(chosen)} core(s) are available: running on "
                f"{len(chosen)}, so numbers differ from a machine with {threads} or more")
    return f"CPU numerics pinned: {threads} core(s) (of {len(available)}), XLA_FLAGS += {flags}"


def pin_if_asked(threads: int | None) -> None:
    """`pin(threads)` unless `threads` is None (train.cpu_threads=none), its line to stderr: what
    experiments/train.py, main.py and the reproduction scripts call before JAX starts."""
    if threads is not None:
        print(pin(threads), file=sys.stderr)

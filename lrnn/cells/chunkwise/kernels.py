"""Which implementation a chunkwise form runs: a registered chunk kernel or the pure-JAX form.

`method="pallas"` asks for the kernel registered under the form's name (`pallas_kernels`
registers "decay_attention" and "delta_rule"); a case the kernels do not cover (resets, complex
decays, float64, time split over devices) is then an error that says so, never a silent switch.
`method="auto"` runs a kernel only where the cost model of the measurements (`lrnn.scan.auto`,
written by `experiments/bench_kernels.py --write-auto`) predicts it faster than the pure-JAX form
for this backend and size, forward plus forward+backward time, and the kernel covers the inputs;
otherwise the pure-JAX form runs with "auto" across chunks. Any other method is the engine's, across chunks.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from lrnn.scan import auto
from lrnn.scan.methods import chunk_kernel


def select(form: str, method: str, *, length: int, lanes: int, resets, arrays, sharded: bool = False
           ) -> Callable | None:
    """The kernel for `form` to run, or None for the pure-JAX chunkwise form (`sharded`: time is
    split over devices, whose summaries the kernels do not exchange)."""
    given = [x for x in arrays if x is not None]
    uncovered = ("a sequence_axis (time split over devices)" if sharded
                 else "resets" if resets is not None
                 else "complex inputs" if any(jnp.iscomplexobj(x) for x in given)
                 else "float64 inputs (they compute in float32)" if any(x.dtype == jnp.float64 for x in given)
                 else None)
    if method == "auto":
        measured, _ = auto.choose_total(form, length, lanes, dtype=auto.dtype_key(given[0].dtype))
        kernel = chunk_kernel(form, measured)
        return kernel if kernel is not None and uncovered is None else None
    kernel = chunk_kernel(form, method)
    if kernel is not None and uncovered is not None:
        raise ValueError(f"method={method!r}: the {form} kernel does not take {uncovered}; "
                         "use method 'auto', 'sequential', 'associative' or 'chunked' (the pure-JAX chunkwise form)")
    return kernel

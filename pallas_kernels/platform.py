"""What every kernel decides the same way: interpret or compile, which lowering's layout to
use, and padding a shape up to whole blocks.

- interpret: None means "interpret where Pallas cannot compile", i.e. on CPU. On CPU every
  kernel runs with `interpret=True` (the kernel body evaluated as ordinary JAX, grid steps in
  order), which is how CI checks the kernels without an accelerator.
- variant: "gpu" or "tpu". GPU grid programs run in parallel, so a recurrence loops over time
  inside one program (the whole time axis in one block, read row by row from global memory).
  The TPU grid runs in order, so time is the last grid axis, one tile per step, and the carry
  stays in a resident output block between steps; TPU blocks are whole (8, 128) tiles.
  None picks the backend's; on CPU both run in interpret mode (the tests cover both).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

VARIANTS = ("gpu", "tpu")
TPU_SUBLANES, TPU_LANES = 8, 128


def interpret_mode(interpret: bool | None) -> bool:
    """`interpret` as given, or True on a backend Pallas cannot compile for (CPU)."""
    if interpret is None:
        return jax.default_backend() not in ("gpu", "tpu")
    if not isinstance(interpret, bool):
        raise TypeError(f"interpret must be True, False or None (interpret on CPU only), got {interpret!r}")
    return interpret


def kernel_variant(variant: str | None) -> str:
    """`variant` as given ("gpu" | "tpu"), or the default backend's ("gpu" off TPU)."""
    if variant is None:
        return "tpu" if jax.default_backend() == "tpu" else "gpu"
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS} or None (the backend's), got {variant!r}")
    return variant


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_axis(x: jax.Array, axis: int, size: int, value=0) -> jax.Array:
    """x with `axis` padded at the end up to `size` entries of `value` (no copy if already there)."""
    extra = size - x.shape[axis]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths, constant_values=value)


def compiler_params(variant: str, interpret: bool, tpu_semantics: tuple[str, ...]) -> dict:
    """The `pallas_call` keyword that picks the lowering for a kernel of `variant`.

    TPU: Mosaic, with the grid's dimension semantics ("arbitrary" for the axis that carries a
    recurrence). GPU: the Triton lowering, chosen explicitly because JAX ≥ 0.10 lowers a bare
    `pallas_call` through Mosaic GPU, whose programming model (warpgroups, shared-memory
    pipelines) these whole-block kernels are not written for. Nothing when interpreting."""
    if variant == "tpu":
        from jax.experimental.pallas import tpu as pltpu
        return {"compiler_params": pltpu.CompilerParams(dimension_semantics=tpu_semantics)}
    if interpret:
        return {}
    from jax.experimental.pallas import triton as pltriton
    return {"compiler_params": pltriton.CompilerParams()}

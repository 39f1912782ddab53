"""Lowering a kernel for a real accelerator without one: `jax.export` for "cuda" or "tpu" on CPU.

`jax.export.export(fn, platforms=[p])` traces `fn` and runs the whole lowering pipeline for
platform p — for a `pallas_call`, Pallas → Triton IR (GPU) or Pallas → Mosaic (TPU), with every
block-shape, layout and dtype check those lowerings make — and serialises the result. Nothing is
compiled to machine code or run, so this needs no device; a kernel that would fail to lower on a
GPU or TPU fails here, on CPU.

Two details make this work for Pallas:
- The Triton kernel is embedded as the custom call `__gpu$xla.gpu.triton`, which `jax.export`
  refuses by default (its serialisation is not guaranteed stable across versions); we disable
  exactly that safety check. Mosaic's `tpu_custom_call` is on export's allow-list.
- JAX ≥ 0.11 lowers for a concrete target GPU (compute capability, core count), which export
  takes from the abstract mesh in context: we lower under a one-device abstract mesh whose
  abstract device is the GPU named in `gpu_kind` (default an H200). Older JAX has no abstract
  devices and lowers for a generic GPU.

    exported = export_for("tpu", fn, jax.ShapeDtypeStruct((8, 1024, 256), jnp.float32), ...)
    assert KERNEL_CALL["tpu"] in exported.mlir_module()
"""

from __future__ import annotations

import contextlib
from typing import Callable

import jax
from jax import export

PLATFORMS = ("cuda", "tpu")
# the custom-call target each platform's Pallas lowering embeds in the exported module
KERNEL_CALL = {"cuda": "__gpu$xla.gpu.triton", "tpu": "tpu_custom_call"}
# the kernel variant (pallas_kernels.platform.VARIANTS) each platform runs
KERNEL_VARIANT = {"cuda": "gpu", "tpu": "tpu"}

_H200 = {"device_kind": "NVIDIA H200", "num_cores": 132}


def _target_device(platform: str, gpu_kind: dict) -> contextlib.AbstractContextManager:
    """The abstract mesh naming the target GPU, where this JAX lowers for one (≥ 0.11)."""
    sharding = jax.sharding
    if platform != "cuda" or not hasattr(sharding, "AbstractDevice"):
        return contextlib.nullcontext()
    device = sharding.AbstractDevice(platform="gpu", **gpu_kind)
    mesh = sharding.AbstractMesh((1,), ("x",), axis_types=(sharding.AxisType.Auto,), abstract_device=device)
    return sharding.use_abstract_mesh(mesh)


def export_for(platform: str, fn: Callable, *args, gpu_kind: dict | None = None) -> export.Exported:
    """`fn` (jitted here) exported for `platform` ("cuda" | "tpu") at the shapes of `args`
    (arrays or `jax.ShapeDtypeStruct`s). Raises whatever the platform's lowering raises."""
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
    checks = [export.DisabledSafetyCheck.custom_call(KERNEL_CALL["cuda"])] if platform == "cuda" else []
    with _target_device(platform, gpu_kind or _H200):
        return export.export(jax.jit(fn), platforms=[platform], disabled_checks=checks)(*args)

"""Matmuls inside the kernels: float32 results at full precision (no TF32 or bf16 passes),
whatever the operands' dtype. `_nt` and `_tn` contract with the second operand, resp. the first,
transposed, so no transpose is materialised."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def _dot(a, b, a_axis: int, b_axis: int):
    return lax.dot_general(a, b, (((a_axis,), (b_axis,)), ((), ())), precision=lax.Precision.HIGHEST,
                           preferred_element_type=jnp.float32)


def matmul(a, b):
    """a @ b."""
    return _dot(a, b, a.ndim - 1, 0)


def matmul_nt(a, b):
    """a @ bᵀ."""
    return _dot(a, b, a.ndim - 1, b.ndim - 1)


def matmul_tn(a, b):
    """aᵀ @ b."""
    return _dot(a, b, 0, 0)

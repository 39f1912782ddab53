"""Pallas GPU/TPU kernels for lrnn's hot paths, each beside the pure-JAX reference it is
tested against:

  diagonal_scan     h_t = a_t ⊙ h_{t−1} + b_t (real, or complex as two real planes), forward and
                    a fused reverse-scan backward; the engine's method "pallas"
  decay_attention   chunked S_t = Diag(α_t) S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ q_t (GLA, HGRN2),
                    forward and backward; reference `lrnn.cells.chunkwise.decay_attention`
  delta_rule        chunked S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ (DeltaNet, gated
                    DeltaNet; both eigenvalue ranges), forward and backward; reference
                    `lrnn.cells.chunkwise.delta_rule`

Importing this package (`import lrnn` does) registers them: `lrnn.scan.scan(..., method="pallas")`
runs the diagonal kernel, and the matrix cells' `forward(..., method="pallas")` run the chunk
kernels; `method="auto"` picks them where `experiments/bench_kernels.py --write-auto` measured
them fastest. On CPU every kernel runs in Pallas interpret mode. Depends only on JAX and on
`lrnn.scan`.
"""

from lrnn.scan import register_method
from lrnn.scan.methods import register_chunk_kernel
from pallas_kernels.decay_attention import decay_attention
from pallas_kernels.delta_rule import delta_rule
from pallas_kernels.diagonal_scan import diagonal_scan
from pallas_kernels.engine_method import has_kernel, pallas_method

register_method("pallas", pallas_method, native=True, accepts=has_kernel)
register_chunk_kernel("decay_attention", "pallas", decay_attention)
register_chunk_kernel("delta_rule", "pallas", delta_rule)

__all__ = ["diagonal_scan", "decay_attention", "delta_rule", "pallas_method"]

"""lrnn — linear recurrent networks in JAX, on one scan engine.

Layers (imports point down): experiments → lrnn.models → lrnn.nn → lrnn.cells → lrnn.scan,
with pallas_kernels registered into lrnn.scan as methods. The engine's entry point is
`lrnn.scan.scan` (`from lrnn.scan import scan`).
"""

__version__ = "0.1.0"

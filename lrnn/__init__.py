"""lrnn — linear recurrent networks in JAX, on one scan engine.

Layers (imports point down): experiments → lrnn.models → lrnn.nn → lrnn.cells → lrnn.scan,
with pallas_kernels registered into lrnn.scan as methods. The engine's entry point is
`lrnn.scan.scan` (`from lrnn.scan import scan`). Importing lrnn registers the Pallas kernels,
so `method="pallas"` is available wherever a scan method is taken.
"""

__version__ = "0.1.0"

import pallas_kernels  # noqa: E402,F401  (registers method "pallas" and the chunk kernels)
from lrnn.debug import debug_nans  # noqa: E402,F401  (name the scan where a NaN/inf first appears)

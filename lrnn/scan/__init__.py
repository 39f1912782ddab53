"""lrnn.scan — the engine: monoids of linear-recurrence elements and one `scan` over them.

    from lrnn.scan import scan, DiagonalMonoid
    states, final = scan(DiagonalMonoid(), (a, b))          # h_t = a_t ⊙ h_{t-1} + b_t

See `engine.scan` for the options, `monoid` for the protocol a monoid implements, and
`sequence_parallel` for `sequence_axis`: the time axis split over the devices of a mesh axis.
"""

from lrnn.scan.diagonal import DiagonalMonoid, LogDiagonalMonoid
from lrnn.scan.engine import scan
from lrnn.scan.matrix import DenseMonoid, IdentityMinusRankOneMonoid, MatrixDecayMonoid
from lrnn.scan.methods import register_method, registered_methods
from lrnn.scan.monoid import Monoid
from lrnn.scan.segmented import Segmented
from lrnn.scan.softmax import SoftmaxMonoid
from lrnn.scan.stabilised import StabilisedDecayMonoid

__all__ = [
    "scan",
    "Monoid",
    "DiagonalMonoid",
    "LogDiagonalMonoid",
    "MatrixDecayMonoid",
    "DenseMonoid",
    "IdentityMinusRankOneMonoid",
    "SoftmaxMonoid",
    "StabilisedDecayMonoid",
    "Segmented",
    "register_method",
    "registered_methods",
]

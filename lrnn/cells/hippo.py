"""HiPPO-LegS and the diagonalisation of its normal part (S5's initialisation), in numpy
float64: this runs once at init, on a size-N matrix.

    A_nk = −√(2n+1)·√(2k+1)   n > k
           −(n + 1)           n = k                       HiPPO-LegS, N × N
           0                  n < k
    S = A + p pᵀ,  p_n = √(n + ½)                          the normal part of A

S_nn = −½ and S_nk = −p_n p_k·sign(n − k) off the diagonal, so S = −½ I + K with K real
skew-symmetric; −iK is Hermitian, and its eigendecomposition −iK = V diag(ω) V* gives

    S = V diag(Λ) V*,   Λ = −½ + iω,   V unitary,

with ω real, ascending, in ± pairs (for even N none is zero), and the eigenvector of −ω
the conjugate of that of ω (up to phase).
"""

from __future__ import annotations

import numpy as np


def hippo_legs(n: int) -> np.ndarray:
    """A (n, n), the HiPPO-LegS state matrix."""
    q = np.sqrt(2 * np.arange(n) + 1.0)
    return -(np.tril(np.outer(q, q)) - np.diag(np.arange(n)))


def hippo_legs_normal(n: int) -> np.ndarray:
    """S = A + p pᵀ (n, n) with p_n = √(n + ½)."""
    p = np.sqrt(np.arange(n) + 0.5)
    return hippo_legs(n) + np.outer(p, p)


def hippo_legs_normal_eig(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(Λ (n,), V (n, n)) complex128 with S = V diag(Λ) V*, Λ = −½ + iω, ω ascending."""
    s = hippo_legs_normal(n)
    omega, v = np.linalg.eigh(-0.5j * (s - s.T))
    return -0.5 + 1j * omega, v

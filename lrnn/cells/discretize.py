"""Discretisations of the continuous diagonal SSM  h'(t) = Λ h(t) + B u(t)  with step Δ
(S4D, S5). Each returns (Λ̄, scale) with Λ̄ the discrete transition and B̄ = scale ⊙ B:

    zero-order hold:  Λ̄ = exp(ΔΛ)                      scale = (Λ̄ − 1) / Λ
    bilinear:         Λ̄ = (1 + ΔΛ/2) / (1 − ΔΛ/2)      scale = Δ / (1 − ΔΛ/2)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def zero_order_hold(lam: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
    lam_bar = jnp.exp(step * lam)
    return lam_bar, (lam_bar - 1.0) / lam


def bilinear(lam: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
    denominator = 1.0 - 0.5 * step * lam
    return (1.0 + 0.5 * step * lam) / denominator, step / denominator


DISCRETISATIONS = {"zoh": zero_order_hold, "bilinear": bilinear}

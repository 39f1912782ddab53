"""HGRN — the token mixer (HGRU) of the Hierarchically Gated Recurrent Neural Network
(Qin, Yang & Zhong 2023, "Hierarchically Gated Recurrent Neural Network for Sequence Modeling").

    μ_t = σ(W_f x_t + b_f)                          forget gate
    λ_t = γ + (1 − γ) ⊙ μ_t                         γ ∈ [0, 1): the layer's lower bound
    c_t = SiLU(W_c x_t + b_c)                       real;  complex: Re c_t = SiLU(W_c_re x_t + b_c_re),
                                                           Im c_t = SiLU(W_c_im x_t + b_c_im)
    h_t = λ_t ⊙ h_{t−1} + (1 − λ_t) ⊙ c_t           real
    h_t = λ_t e^{iθ} ⊙ h_{t−1} + (1 − λ_t) ⊙ c_t    complex (the paper's), θ a learnable angle per channel
    y_t = W_o (LayerNorm(z_t) ⊙ SiLU(W_g x_t + b_g)) + b_o,   z_t = h_t, or [Re h_t, Im h_t] when complex

The lower bound is a per-call input, `forward(params, x, lower_bound=γ)` and
`step(params, state, x_t, lower_bound=γ)`: a scalar or a (width,) array in [0, 1) (values are
checked when concrete). A stack of L layers gets its bounds from shared logits by
`lower_bounds(logits)`: γ^k = Σ_{1≤i≤k} softmax(logits, axis=0)_i, i.e. the paper's
Cumsum(softmax)_k minus its first term, so layer 0 has bound 0, the bounds rise with depth and
stay below 1. The paper's code initialises the logits to a constant (ones), giving γ^k = k/L.

Initialisation: every projection as PyTorch's nn.Linear (lrnn.cells.linear), as the paper's
code; θ_i = 10000^(−2i/width), i = 0..width−1 (the paper's code, RoPE-like frequencies);
LayerNorm scale 1, bias 0, ε = 1e−5. W_f, b_f and θ are the recurrent params.

Choices where the paper's text is loose, taken from its official code (hgru-pytorch):
the output gate is SiLU, not a sigmoid, and the LayerNorm comes before the gate,
W_o(LN(z) ⊙ g) rather than the paper's LN(g ⊙ z); the complex output concatenates
[Re h, Im h] (normalised over 2·width). `width` (default d_in) is the number of recurrent
channels; the paper has width = d_in.

Shapes: x (B, T, d_in); h (B, T, width), complex when complex_valued; y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lrnn.cells import checks
from lrnn.cells.base import Cell
from lrnn.cells.linear import init_linear, linear

LAYER_NORM_EPS = 1e-5


def lower_bounds(logits) -> jax.Array:
    """Forget-gate lower bounds of L stacked layers from shared logits (L, width).

    γ^k = Σ_{i=1..k} p_i with p = softmax(logits, axis=0): the paper's Cumsum(p)_k − p_1
    (its code: `softmax(0).cumsum(0) − softmax(0)[0]`). γ^0 = 0, γ^k rises with k, γ^{L−1} =
    1 − p_0 < 1.
    """
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or logits.shape[0] < 1:
        raise ValueError(f"logits must have a leading layer axis (L, width), got shape {logits.shape}")
    p = jax.nn.softmax(logits, axis=0)
    return jnp.concatenate([jnp.zeros_like(p[:1]), jnp.cumsum(p[1:], axis=0)], axis=0)


def layer_norm(z: jax.Array, scale: jax.Array, bias: jax.Array, eps: float = LAYER_NORM_EPS) -> jax.Array:
    """(z − mean) / √(var + eps) · scale + bias over the last axis."""
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    return (z - mean) * jax.lax.rsqrt(var + eps) * scale + bias


@dataclasses.dataclass(frozen=True)
class HGRN(Cell):
    d_in: int
    width: int | None = None
    complex_valued: bool = False

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        if self.width is None:
            object.__setattr__(self, "width", self.d_in)
        checks.positive_int("width", self.width)
        checks.flag("complex_valued", self.complex_valued)

    @property
    def state_shape(self) -> tuple:
        return (self.width,)

    @property
    def complex_state(self) -> bool:
        return self.complex_valued

    @property
    def recurrent_params(self) -> frozenset:
        return frozenset({"W_f", "b_f", "theta"} if self.complex_valued else {"W_f", "b_f"})

    @property
    def _features(self) -> int:
        return 2 * self.width if self.complex_valued else self.width

    def init(self, key: jax.Array) -> dict:
        k_f, k_c, k_c_im, k_g, k_o = jax.random.split(key, 5)
        d, n, m = self.d_in, self.width, self._features
        params = {**init_linear(k_f, d, n, "f"), **init_linear(k_g, d, m, "g"), **init_linear(k_o, m, d, "o"),
                  "norm_scale": jnp.ones((m,)), "norm_bias": jnp.zeros((m,))}
        if self.complex_valued:
            params.update({**init_linear(k_c, d, n, "c_re"), **init_linear(k_c_im, d, n, "c_im")})
            params["theta"] = 10000.0 ** (-2.0 * jnp.arange(n, dtype=jnp.float32) / n)
        else:
            params.update(init_linear(k_c, d, n, "c"))
        return params

    def _check_lower_bound(self, lower_bound, dtype) -> jax.Array:
        """lower_bound as an array of `dtype`, scalar or (width,), with values in [0, 1)."""
        shape = jnp.shape(lower_bound)
        if shape not in ((), (self.width,)):
            raise ValueError(f"lower_bound must be a scalar or have shape (width,) = ({self.width},), got shape {shape}")
        values = checks.concrete(lower_bound)
        if values is not None:
            if not np.all((values >= 0) & (values < 1)):
                raise ValueError(f"lower_bound must lie in [0, 1), got {lower_bound!r}")
        return jnp.asarray(lower_bound).astype(dtype)

    def elements(self, params, x, lower_bound=0.0):
        lb = self._check_lower_bound(lower_bound, x.dtype)
        z = linear(params, "f", x)
        lam = lb + (1 - lb) * jax.nn.sigmoid(z)
        one_minus_lam = (1 - lb) * jax.nn.sigmoid(-z)
        if self.complex_valued:
            c = jax.nn.silu(linear(params, "c_re", x)) + 1j * jax.nn.silu(linear(params, "c_im", x))
            return lam * jnp.exp(1j * params["theta"]), one_minus_lam * c
        return lam, one_minus_lam * jax.nn.silu(linear(params, "c", x))

    def readout(self, params, h, x, **_):
        z = jnp.concatenate([h.real, h.imag], axis=-1) if self.complex_valued else h
        gate = jax.nn.silu(linear(params, "g", x))
        return linear(params, "o", layer_norm(z, params["norm_scale"], params["norm_bias"]) * gate)

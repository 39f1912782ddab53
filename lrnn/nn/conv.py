"""Short causal depthwise convolution over time (the width-4 conv of Mamba, DeltaNet, Griffin).

For inputs x (B, T, D), a kernel w (k, D) and a bias b (D,), each channel on its own:

    y_t = b + Σ_{j=0..k−1} w_j ⊙ x_{t−(k−1)+j}          x_s = 0 for s < 0 (or the cache)

so w_{k−1} weighs the current token and y_t reads only x_{≤t}. The step-wise path keeps the
cache, the last k−1 inputs (B, k−1, D) (zeros at the start): one token is the same sum over
[cache, x_t]. A parallel pass can start from a cache too and return the cache to continue
from (`prefill`), so a prompt runs in parallel and decoding continues token by token.

Init as PyTorch's Conv1d with groups = D (what those models use): w, b ~ U[−1/√k, 1/√k].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks, shards


def causal_conv(x, kernel, bias, cache=None, *, sequence_axis: str | None = None) -> tuple[jax.Array, jax.Array]:
    """(y (B, T, D), the last k − 1 inputs) of the causal depthwise conv of x (B, T, D) with
    kernel (k, D) and bias (D,) or None, continuing from `cache` (B, k − 1, D) (None: zeros).

    With time split over `sequence_axis` (bound by an enclosing shard_map), x is this device's
    shard: its first outputs read the previous device's last k − 1 inputs (device 0 reads the
    cache), and the returned window is the whole sequence's last k − 1 inputs."""
    window = kernel.shape[0] - 1
    if sequence_axis is not None and not shards.is_bound(sequence_axis):
        raise ValueError(f"sequence_axis {sequence_axis!r} must be bound by an enclosing jax.shard_map over it "
                         f"for the short conv (x is then this device's shard of time)")
    if cache is None:
        cache = jnp.zeros((x.shape[0], window, x.shape[2]), x.dtype)
    cache = cache.astype(x.dtype)
    if sequence_axis is not None and window:
        cache = shards.from_previous(x, window, sequence_axis, first=cache, what="the short conv")
    padded = jnp.concatenate([cache, x], axis=1)  # B (k−1+T) D
    length = x.shape[1]
    y = sum(padded[:, j:j + length] * kernel[j] for j in range(window + 1))
    last = padded[:, length:] if sequence_axis is None or not window else shards.last_steps(x, window, sequence_axis)
    return (y if bias is None else y + bias), last


class ShortConv(nnx.Module):
    """Depthwise causal conv of kernel size `kernel_size` over (B, T, D) sequences."""

    def __init__(self, features: int, kernel_size: int, *, use_bias: bool = True, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        checks.positive_int("features", features)
        checks.positive_int("kernel_size", kernel_size)
        self.features = features
        self.kernel_size = kernel_size
        bound = 1.0 / kernel_size ** 0.5
        self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (kernel_size, features), param_dtype, -bound, bound))
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (features,), param_dtype, -bound, bound)) \
            if use_bias else None

    def init_cache(self, batch: int, dtype=jnp.float32) -> jax.Array:
        """The cache before any token: zeros (B, k−1, D)."""
        checks.positive_int("batch", batch)
        return jnp.zeros((batch, self.kernel_size - 1, self.features), dtype)

    def __call__(self, x: jax.Array, cache: jax.Array | None = None) -> jax.Array:
        """y (B, T, D) for x (B, T, D), continuing from `cache` (B, k−1, D) when given."""
        return self.prefill(x, cache)[0]

    def prefill(self, x: jax.Array, cache: jax.Array | None = None, *, sequence_axis: str | None = None
                ) -> tuple[jax.Array, jax.Array]:
        """(y (B, T, D), the cache after the last token) in one parallel pass; with a bound
        `sequence_axis`, x is this device's shard of time (see `causal_conv`)."""
        x = checks.sequence(x, self.features)
        if cache is not None:
            cache = self.check_cache(cache, x.shape[0])
        bias = None if self.bias is None else self.bias[...]
        return causal_conv(x, self.kernel[...], bias, cache, sequence_axis=sequence_axis)

    def step(self, x_t: jax.Array, cache: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One token x_t (B, D): (y_t (B, D), the new cache)."""
        x_t = checks.token(x_t, self.features)
        cache = self.check_cache(cache, x_t.shape[0])
        window = jnp.concatenate([cache.astype(x_t.dtype), x_t[:, None]], axis=1)  # B k D
        y_t = jnp.einsum("bkd,kd->bd", window, self.kernel[...])
        return self._add_bias(y_t), window[:, 1:]

    def _add_bias(self, y: jax.Array) -> jax.Array:
        return y if self.bias is None else y + self.bias[...]

    def check_cache(self, cache, batch: int) -> jax.Array:
        """`cache` as an array, checked: real floating (B, kernel_size − 1, D)."""
        cache = jnp.asarray(cache)
        want = (batch, self.kernel_size - 1, self.features)
        if cache.shape != want or not jnp.issubdtype(cache.dtype, jnp.floating):
            raise ValueError(f"cache must be a real floating array of shape {want} (B, kernel_size − 1, D), "
                             f"got {cache.dtype} {cache.shape}")
        return cache

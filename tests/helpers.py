"""Small helpers the test packages share (nothing here imports lrnn)."""

import zlib

import jax
import jax.numpy as jnp


def seed_of(*key) -> int:
    """A stable PRNG seed for a test's parameters (the same on every run and worker)."""
    return zlib.crc32(repr(key).encode())


def to64(tree):
    """Every array of `tree` in float64 (complex128 where complex)."""
    def widen(x):
        x = jnp.asarray(x)
        return x.astype(jnp.complex128 if jnp.iscomplexobj(x) else jnp.float64)
    return jax.tree_util.tree_map(widen, tree)

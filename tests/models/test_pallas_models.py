"""A model built with `scan_method="pallas"` runs its cells through the Pallas kernels (interpret
mode here) and computes what the pure-JAX path computes: the logits and the gradient of a loss
with respect to every parameter, in float32, for a diagonal cell (the engine's diagonal kernel)
and the two chunk kernels' cells (Mamba-2 with eigenvalues in (−1, 1): its sign trick). Tolerance
1e-4: float32 through one layer of projections, norms and a 20-token recurrence, both sides;
measured ~1e-6."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from lrnn.models import CausalLM, ModelConfig
from lrnn.scan import methods as scan_methods
from tests.helpers import seed_of

D, V, B, T = 16, 13, 2, 20
CELLS = {"lru": {"d_state": 8}, "gla": {"n_heads": 2, "gate_rank": 4}, "gated_deltanet": {"n_heads": 2},
         "mamba2": {"n_heads": 2, "d_state": 8, "eigenvalue_range": (-1, 1)}}  # its sign trick through the kernel


def lm(cell: str, method: str) -> CausalLM:
    config = ModelConfig(cell=cell, cell_options=CELLS[cell], d_model=D, n_layers=1, ffn=None, chunk_size=16,
                         scan_method=method)
    return CausalLM(config, vocab_size=V, param_dtype=jnp.float32, rngs=nnx.Rngs(seed_of("pallas-lm", cell)))


KERNEL_OF = {"lru": None, "gla": "decay_attention", "gated_deltanet": "delta_rule",  # None: the engine's method
             "mamba2": "decay_attention"}


@pytest.mark.parametrize("cell", list(CELLS))
def test_pallas_model_matches_the_pure_jax_model(cell, monkeypatch):
    calls = []
    form = KERNEL_OF[cell]
    registry, key = ((scan_methods._REGISTRY, "pallas") if form is None
                     else (scan_methods._CHUNK_KERNELS, (form, "pallas")))
    kernel = registry[key]
    monkeypatch.setitem(registry, key, lambda *a, **k: calls.append(1) or kernel(*a, **k))
    tokens = jax.random.randint(jax.random.key(seed_of("tokens", cell)), (B, T), 0, V, jnp.int32)
    weights = jax.random.normal(jax.random.key(seed_of("weights", cell)), (B, T, V), jnp.float32)

    @nnx.jit
    def logits_and_grads(model):
        def loss(model):
            return jnp.sum(model(tokens) * weights)
        return model(tokens), nnx.grad(loss)(model)

    with_kernels = logits_and_grads(lm(cell, "pallas"))
    assert calls, f"scan_method='pallas' did not reach the {form or 'diagonal'} kernel"
    pure = logits_and_grads(lm(cell, "sequential"))
    chex.assert_tree_all_finite(with_kernels)
    chex.assert_trees_all_close(jax.tree_util.tree_leaves(with_kernels), jax.tree_util.tree_leaves(pure),
                                rtol=1e-4, atol=1e-4)

"""Every registered cell in a tiny CausalLM: decoding step by step after a prefill gives the
logits of the full parallel forward, and greedy `generate` equals a plain greedy loop that
re-runs the full forward on the growing sequence.

float64 params (x64 is on in tests), so the paths must agree to rounding. Sizes: d_model 8,
one layer, T = 6 (prompt 3, 3 new tokens), chunk size 2 for the chunked matrix cells.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrnn.cells import registered_cells
from lrnn.models import CausalLM, ModelConfig
from tests.helpers import seed_of

D, V, B, T, PROMPT = 8, 11, 2, 6, 3
TOL = dict(rtol=1e-8, atol=1e-8)
# Small sizes where a cell's defaults are large; anything unlisted runs at its defaults.
CELL_OPTIONS = {
    "lru": {"d_state": 8}, "s4d": {"d_state": 4}, "s5": {"d_state": 8}, "mingru": {"d_hidden": 8},
    "minlstm": {"d_hidden": 8}, "mamba": {"d_state": 4}, "retnet": {"n_heads": 2}, "gla": {"n_heads": 2, "gate_rank": 4},
    "mamba2": {"n_heads": 2, "d_state": 4},
    "gateloop": {"n_heads": 2}, "mlstm": {"n_heads": 2}, "deltanet": {"n_heads": 2},
    "gated_deltanet": {"n_heads": 2}, "deltaproduct": {"n_heads": 2}, "aaren": {"n_heads": 2},
    "rwkv6": {"n_heads": 2, "mix_rank": 4, "decay_rank": 4},
    "block_diagonal": {"block_size": 4},
    "gru": {"d_hidden": 8}, "lstm": {"d_hidden": 8},
    "slstm": {"n_heads": 2},
}


def tiny_lm(cell: str) -> CausalLM:
    config = ModelConfig(cell=cell, cell_options=CELL_OPTIONS.get(cell, {}), d_model=D, n_layers=1, conv_size=None,
                         ffn=None, chunk_size=2)
    return CausalLM(config, vocab_size=V, param_dtype=jnp.float64, rngs=nnx.Rngs(seed_of("lm", cell)))


def forward_and_decode(model, tokens):
    """The full forward's logits (B, T, V); the prefill's over the prompt (B, PROMPT, V); and
    the step logits after each later token, fed the true tokens (B, T − PROMPT, V)."""
    full = model(tokens)
    prefill_logits, cache = model.prefill(tokens[:, :PROMPT])

    def feed(cache, token):
        logits, cache = model.step(token, cache)
        return cache, logits

    _, stepped = jax.lax.scan(feed, cache, tokens[:, PROMPT:].T)
    return full, prefill_logits, jnp.moveaxis(stepped, 0, 1)


@pytest.mark.parametrize("cell", list(registered_cells()))
def test_step_and_generate_match_the_parallel_forward(cell):
    check_decoding(tiny_lm(cell), jax.random.randint(jax.random.key(seed_of("tokens", cell)), (B, T), 0, V, jnp.int32))


def check_decoding(model, tokens):
    """Prefill + step logits equal the full forward's, and greedy `generate` equals a greedy loop
    re-running the forward, for tokens (B, T) with the first PROMPT as the prompt."""
    length = tokens.shape[1]
    run = nnx.jit(forward_and_decode)
    full, prefill_logits, stepped = run(model, tokens)
    chex.assert_shape(full, tokens.shape + (model.vocab_size,))
    chex.assert_trees_all_close(prefill_logits, full[:, :PROMPT], **TOL)
    chex.assert_trees_all_close(stepped, full[:, PROMPT:], **TOL)

    generated = model.generate(tokens[:, :PROMPT], length - PROMPT)
    expected = np.array(tokens)
    for t in range(PROMPT, length):  # positions ≥ t of the buffer do not reach logits[:, t − 1] (causal)
        expected[:, t] = np.argmax(np.asarray(run(model, jnp.asarray(expected))[0][:, t - 1]), axis=-1)
    np.testing.assert_array_equal(np.asarray(generated), expected)

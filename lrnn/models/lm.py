"""Causal language model with step-wise decoding.

    x = E[tokens]                                   (B, T, D)
    logits = Norm(Block_{L−1}(… Block_0(x))) W      (B, T, V)    logits at t read tokens ≤ t

Paths: `__call__` (parallel, training), `prefill(tokens)` (parallel, and the cache after the
last token), `step(token, cache)` (one token for a batch, O(state) memory), and
`generate`, which prefills the prompt through the parallel path and then decodes
max_new_tokens tokens by `step` in one jitted `lax.scan` (the model is split into its graph
and state, `nnx.split`, and merged inside the jitted function). Sampling: greedy at
temperature 0, else softmax(logits / temperature) over the top_k largest logits
(lrnn.models.sampling). The layers must be causal (not bidirectional).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks
from lrnn.models.backbone import Backbone
from lrnn.models.config import ModelConfig
from lrnn.models.inputs import InputEncoder, check_tokens
from lrnn.models.sampling import check_sampling, sample_next_token


class CausalLM(nnx.Module):
    def __init__(self, config: ModelConfig, *, vocab_size: int, param_dtype=jnp.float32, rngs: nnx.Rngs):
        """
        Args:
          config: the architecture; must be causal (no bidirectional mixer or cell).
          vocab_size: V.
          param_dtype: dtype of every param (float32).
          rngs: nnx.Rngs.
        """
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        checks.positive_int("vocab_size", vocab_size)
        if not config.causal:
            raise ValueError(f"a causal LM needs causal layers, got bidirectional={config.bidirectional} and "
                             f"cell_options={config.cell_options!r}")
        self.vocab_size = vocab_size
        self.encoder = InputEncoder(config.d_model, vocab_size=vocab_size, param_dtype=param_dtype, rngs=rngs)
        self.backbone = Backbone(config, param_dtype=param_dtype, rngs=rngs)
        self.head = nnx.Linear(config.d_model, vocab_size, use_bias=False, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """logits (B, T, V) for tokens (B, T) int."""
        return self.head(self.backbone(self.encoder(tokens)))

    def prefill(self, tokens: jax.Array, cache: tuple | None = None) -> tuple[jax.Array, tuple]:
        """(logits (B, T, V), the cache after the last token), continuing from `cache` if given."""
        features, cache = self.backbone.prefill(self.encoder(tokens), cache)
        return self.head(features), cache

    def init_cache(self, batch: int) -> tuple:
        """The cache before the first token, one entry per layer."""
        return self.backbone.init_cache(batch)

    def step(self, token: jax.Array, cache: tuple) -> tuple[jax.Array, tuple]:
        """One token per row, token (B,) int: (logits (B, V) for the next token, the new cache)."""
        token = check_tokens(token, self.vocab_size, rank=1, layout="(B,)")
        features, cache = self.backbone.step(self.encoder(token[:, None])[:, 0], cache)
        return self.head(features), cache

    def generate(self, prompt: jax.Array, max_new_tokens: int, *, key: jax.Array | None = None,
                 temperature: float = 0.0, top_k: int | None = None) -> jax.Array:
        """Continue `prompt` (B, T0) int by max_new_tokens tokens: (B, T0 + max_new_tokens).

        key: a PRNG key (needed when temperature > 0). temperature: 0 is greedy.
        top_k: sample among the k largest logits only (None: all).
        """
        prompt = check_tokens(prompt, self.vocab_size)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int ≥ 0, got {max_new_tokens!r}")
        check_sampling(temperature, top_k, self.vocab_size)
        if temperature > 0 and key is None:
            raise ValueError("key must be a PRNG key when temperature > 0, got None")
        if max_new_tokens == 0:
            return prompt
        key = jax.random.key(0) if key is None else key
        graphdef, state = nnx.split(self)
        new = _decode(graphdef, state, prompt, key, max_new_tokens=max_new_tokens, temperature=float(temperature),
                      top_k=top_k)
        return jnp.concatenate([prompt, new.astype(prompt.dtype)], axis=1)


@functools.partial(jax.jit, static_argnums=0, static_argnames=("max_new_tokens", "temperature", "top_k"))
def _decode(graphdef, state, prompt, key, *, max_new_tokens: int, temperature: float, top_k: int | None):
    """The new tokens (B, max_new_tokens): prefill, then a lax.scan of steps."""
    model = nnx.merge(graphdef, state)
    sample = functools.partial(sample_next_token, temperature=temperature, top_k=top_k)
    logits, cache = model.prefill(prompt)
    keys = jax.random.split(key, max_new_tokens)
    first = sample(logits[:, -1], keys[0])

    def decode_one(carry, step_key):
        token, cache = carry
        logits, cache = model.step(token, cache)
        token = sample(logits, step_key)
        return (token, cache), token

    _, rest = jax.lax.scan(decode_one, (first, cache), keys[1:])  # rest: (max_new_tokens − 1, B)
    return jnp.concatenate([first[:, None], rest.T], axis=1)

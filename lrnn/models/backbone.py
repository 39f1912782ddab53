"""The body every model shares: n_layers residual blocks and a final norm.

    h^0 = inputs (B, T, D)      h^{l+1} = Block_l(h^l)      features = Norm(h^L)

Block l mixes tokens with the config's cell or with local attention, as `config.layer_kinds`
says (Griffin's pattern: two recurrent blocks, then one attention block). The backbone has the
blocks' paths (parallel `__call__`, `prefill`, `init_cache`, `step`); a model's cache is the
tuple of its blocks' caches.

HGRN's one special case lives here: its forget-gate lower bound rises with depth, from
logits (L, width) the model owns over its L recurrent layers (a `RecurrentParam`, ones at init
as the paper's code, so γ^l = l / L), and the l-th recurrent layer's mixer gets
`lower_bound = lower_bounds(logits)[l]` (`lrnn.cells.hgrn`). Every other cell, and attention,
takes no per-call inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import lower_bounds
from lrnn.models.config import ModelConfig
from lrnn.nn import Block, RecurrentParam, make_norm

LOWER_BOUND_CELL = "hgrn"


class Backbone(nnx.Module):
    """The blocks and the final norm of a model built from `config`."""

    def __init__(self, config: ModelConfig, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.kinds = config.layer_kinds
        self.blocks = nnx.List([Block(**config.block_options(kind), param_dtype=param_dtype, rngs=rngs)
                                for kind in self.kinds])
        self.final_norm = make_norm(config.norm, config.d_model, param_dtype=param_dtype, rngs=rngs)
        recurrent = [block for block, kind in zip(self.blocks, self.kinds) if kind == "recurrent"]
        has_bounds = config.cell == LOWER_BOUND_CELL and bool(recurrent)
        self.lower_bound_logits = RecurrentParam(jnp.ones((len(recurrent), recurrent[0].mixer.cell.width),
                                                          param_dtype)) if has_bounds else None

    def layer_inputs(self) -> list[dict]:
        """The extra cell inputs of every layer: HGRN's lower bounds to its recurrent layers, else nothing."""
        if self.lower_bound_logits is None:
            return [{} for _ in self.blocks]
        bounds = iter(lower_bounds(self.lower_bound_logits[...]))
        return [{"lower_bound": next(bounds)} if kind == "recurrent" else {} for kind in self.kinds]

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """features (B, T, D) for x (B, T, D); mask (B, T) bool marks real positions."""
        for block, inputs in zip(self.blocks, self.layer_inputs()):
            x = block(x, mask=mask, **inputs)
        return self.final_norm(x)

    def prefill(self, x: jax.Array, cache: tuple | None = None) -> tuple[jax.Array, tuple]:
        """(features (B, T, D), the cache after the last token), from `cache` when given."""
        caches = self._check_cache(cache) if cache is not None else (None,) * len(self.blocks)
        new = []
        for block, inputs, block_cache in zip(self.blocks, self.layer_inputs(), caches):
            x, block_cache = block.prefill(x, block_cache, **inputs)
            new.append(block_cache)
        return self.final_norm(x), tuple(new)

    def init_cache(self, batch: int) -> tuple:
        return tuple(block.init_cache(batch) for block in self.blocks)

    def step(self, x_t: jax.Array, cache: tuple) -> tuple[jax.Array, tuple]:
        """One position x_t (B, D): (features (B, D), the new cache)."""
        new = []
        for block, inputs, block_cache in zip(self.blocks, self.layer_inputs(), self._check_cache(cache)):
            x_t, block_cache = block.step(x_t, block_cache, **inputs)
            new.append(block_cache)
        return self.final_norm(x_t), tuple(new)

    def _check_cache(self, cache) -> tuple:
        if not isinstance(cache, (tuple, list)) or len(cache) != len(self.blocks):
            raise ValueError(f"cache must be a tuple of {len(self.blocks)} layer caches (from init_cache or "
                             f"prefill), got {type(cache).__name__}")
        return tuple(cache)

"""One constructor for the three model kinds, by name (what the CLI calls)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks
from lrnn.models.classifier import SequenceClassifier
from lrnn.models.config import ModelConfig
from lrnn.models.lm import CausalLM
from lrnn.models.tagger import SequenceTagger

KINDS = ("classify", "tag", "lm")


def build_model(kind: str, config: ModelConfig, *, vocab_size: int | None = None, n_features: int | None = None,
                n_classes: int | None = None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    """A SequenceClassifier ("classify"), SequenceTagger ("tag") or CausalLM ("lm").

    "classify" and "tag" take exactly one of vocab_size (token inputs) and n_features
    (real-valued inputs), and n_classes. "lm" takes vocab_size only (n_classes is not used).
    """
    checks.one_of("kind", kind, KINDS)
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"rngs must be a flax.nnx.Rngs (e.g. nnx.Rngs(0)), got {type(rngs).__name__} {rngs!r}")
    if kind == "lm":
        if n_features is not None:
            raise ValueError(f"a causal LM reads tokens: n_features must be None, got {n_features!r}")
        if vocab_size is None:
            raise ValueError("a causal LM needs vocab_size, got None")
        return CausalLM(config, vocab_size=vocab_size, param_dtype=param_dtype, rngs=rngs)
    if n_classes is None:
        raise ValueError(f"kind {kind!r} needs n_classes, got None")
    model = SequenceClassifier if kind == "classify" else SequenceTagger
    return model(config, vocab_size=vocab_size, n_features=n_features, n_classes=n_classes, param_dtype=param_dtype,
                 rngs=rngs)

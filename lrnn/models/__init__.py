"""lrnn.models — models built from `lrnn.nn` blocks: classifier, tagger, causal LM.

    import jax, jax.numpy as jnp
    from flax import nnx
    from lrnn.models import CausalLM, ModelConfig, build_model

    config = ModelConfig(cell="deltanet", cell_options={"n_heads": 2}, d_model=32, n_layers=2)
    lm = CausalLM(config, vocab_size=100, rngs=nnx.Rngs(0))
    logits = lm(jnp.zeros((4, 16), jnp.int32))                          # (4, 16, 100)
    tokens = lm.generate(jnp.zeros((4, 3), jnp.int32), 8, key=jax.random.key(1),
                         temperature=0.8, top_k=10)                     # (4, 11)

    classifier = build_model("classify", config, n_features=3, n_classes=10, rngs=nnx.Rngs(0))
    x = jnp.ones((4, 16, 3)); mask = jnp.arange(16) < jnp.array([[16], [9], [5], [12]])
    logits = classifier(x, mask)                                        # (4, 10)

`ModelConfig` holds every architectural choice and checks it; `build_model(kind, config, ...)`
builds a "classify", "tag" or "lm" model. `hawk(d_model, n_layers)` and `griffin(...)` return
the ModelConfigs of De et al. (2024)'s Hawk and Griffin (`lrnn.models.presets`). Params are
float32 unless param_dtype says otherwise; the cells' recurrent params are
`lrnn.nn.RecurrentParam`s (filter on that type to give them their own learning rate and no
weight decay).
"""

from lrnn.models.backbone import Backbone
from lrnn.models.build import KINDS, build_model
from lrnn.models.classifier import SequenceClassifier
from lrnn.models.config import ModelConfig
from lrnn.models.lm import CausalLM
from lrnn.models.pooling import POOLINGS, pool
from lrnn.models.presets import griffin, hawk
from lrnn.models.sampling import sample_next_token
from lrnn.models.tagger import SequenceTagger

__all__ = ["Backbone", "CausalLM", "KINDS", "ModelConfig", "POOLINGS", "SequenceClassifier", "SequenceTagger",
           "build_model", "griffin", "hawk", "pool", "sample_next_token"]

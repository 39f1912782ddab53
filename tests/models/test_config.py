"""ModelConfig and build_model reject bad settings with a ValueError that names the setting,
before any param is drawn; the defaults build every model kind."""

from __future__ import annotations

import pytest
from flax import nnx

from lrnn.models import CausalLM, ModelConfig, SequenceClassifier, SequenceTagger, build_model

BAD = [
    (dict(cell="transformer"), "cell must be one of"),
    (dict(d_model=0), "d_model"),
    (dict(n_layers=-1), "n_layers"),
    (dict(expand=1.5), "expand"),
    (dict(conv_size=0), "conv_size"),
    (dict(ffn="moe"), "ffn"),
    (dict(ffn_ratio=-2.0), "ffn_ratio"),
    (dict(norm="batchnorm"), "norm"),
    (dict(output_gate="yes"), "output_gate"),
    (dict(dropout=1.5), "dropout"),
    (dict(pooling="sum"), "pooling"),
    (dict(scan_method="fastest"), "method"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(cell_options={"n_heads": 3}), "n_heads"),  # deltanet at d_inner 64: 3 heads do not divide it
    (dict(cell_options={"heads": 2}), "heads"),
    (dict(cell_options={"d_in": 8}), "d_in"),
    (dict(cell="lru", cell_options={"d_state": -4}), "d_state"),
]


@pytest.mark.parametrize("overrides, match", BAD, ids=[str(o) for o, _ in BAD])
def test_bad_config_raises_value_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**overrides)


def test_build_model_kinds_and_bad_arguments():
    config = ModelConfig(d_model=8, n_layers=1, cell_options={"n_heads": 2})

    def abstract(kind, **sizes):  # the model's structure and shapes, no params drawn
        return nnx.eval_shape(lambda: build_model(kind, config, **sizes, rngs=nnx.Rngs(0)))

    classifier = abstract("classify", n_features=3, n_classes=2)
    assert isinstance(classifier, SequenceClassifier) and classifier.head.kernel.shape == (8, 2)
    assert isinstance(abstract("tag", vocab_size=5, n_classes=2), SequenceTagger)
    lm = abstract("lm", vocab_size=5)
    assert isinstance(lm, CausalLM) and lm.head.kernel.shape == (8, 5)
    with pytest.raises(ValueError, match="kind"):
        build_model("regress", config, n_features=3, n_classes=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_features"):
        build_model("lm", config, vocab_size=5, n_features=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_classes"):
        build_model("classify", config, vocab_size=5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="causal"):
        build_model("lm", ModelConfig(d_model=8, n_layers=1, bidirectional=True, cell_options={"n_heads": 2}),
                    vocab_size=5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="causal"):
        CausalLM(ModelConfig(cell="s5", cell_options={"d_state": 4, "bidirectional": True}, d_model=8, n_layers=1),
                 vocab_size=5, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="ModelConfig"):
        CausalLM({"cell": "lru"}, vocab_size=5, rngs=nnx.Rngs(0))


def test_default_config_is_valid():
    config = ModelConfig()
    assert config.cell == "deltanet" and config.cell_options == {} and config.causal

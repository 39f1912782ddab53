"""Hawk and Griffin (De et al. 2024, "Griffin: Mixing Gated Linear Recurrences with Local Attention
for Efficient Language Models") as `ModelConfig`s.

Both stack pre-norm residual blocks, each a temporal-mixing block and then the gated MLP block:

    h = x + Temporal(RMSNorm(x))            y = h + W_2 (GELU(h' W_g) ⊙ h' W_1),  h' = RMSNorm(h)

with the MLP's hidden width 3D (ffn "geglu", ratio 3). Hawk's temporal block is always the
recurrent block, a `lrnn.nn.Mixer` around the "rglru" cell (`lrnn.cells.rglru`):

    out = W_out (GELU(x W_gate) ⊙ RG-LRU(Conv1D(x W_in)))      W_in, W_gate: D → E,  E ≈ 4D/3

a width-4 causal conv with no activation after it, RG-LRU gates block-diagonal with H blocks
(one per head, as the released code). Griffin replaces every third block's recurrent block by
local multi-query attention (`lrnn.nn.LocalAttention`): the pattern (recurrent, recurrent,
attention) repeated over the depth, H = D / 128 heads (the paper's head width 128; one head
below D = 128), a window of 1024 tokens (the paper's at training length 2048), RoPE on half of
each head (the released code). E is H · round(4D / 3H), a multiple of H.

Not here: the paper ties the output layer to the input embedding (CausalLM has its own head),
and the released code adds biases to the projections, scales the embeddings by √D and soft-caps
the logits.
"""

from __future__ import annotations

from lrnn.cells import checks
from lrnn.models.config import ModelConfig

HEAD_WIDTH = 128
RNN_WIDTH_RATIO = 4 / 3
WINDOW = 1024
GRIFFIN_PATTERN = ("recurrent", "recurrent", "attention")


def default_heads(d_model: int) -> int:
    """H = d_model / 128 when 128 divides d_model, else 1."""
    return d_model // HEAD_WIDTH if d_model % HEAD_WIDTH == 0 else 1


def hawk(d_model: int = 256, n_layers: int = 4, *, n_heads: int | None = None, d_inner: int | None = None,
         **overrides) -> ModelConfig:
    """Hawk: every block recurrent.

    Args:
      d_model: D. n_layers: the number of blocks.
      n_heads: H, the RG-LRU gates' blocks (and Griffin's attention heads); None: `default_heads`.
      d_inner: E, the recurrent block's width; None: H · round(4D / 3H).
      overrides: any other ModelConfig field (e.g. dropout, sequence_axis), winning over the preset.
    """
    checks.positive_int("d_model", d_model)
    n_heads = default_heads(d_model) if n_heads is None else n_heads
    checks.positive_int("n_heads", n_heads)
    if d_inner is None:
        d_inner = n_heads * max(1, round(RNN_WIDTH_RATIO * d_model / n_heads))
    settings = dict(cell="rglru", cell_options={"num_blocks": n_heads}, d_model=d_model, n_layers=n_layers,
                    d_inner=d_inner, conv_size=4, conv_activation=None, output_gate=True, gate_activation="gelu",
                    ffn="geglu", ffn_ratio=3.0, norm="rmsnorm", layers=("recurrent",), attention_heads=n_heads)
    return ModelConfig(**{**settings, **overrides})


def griffin(d_model: int = 256, n_layers: int = 6, *, n_heads: int | None = None, d_inner: int | None = None,
            window: int = WINDOW, **overrides) -> ModelConfig:
    """Griffin: blocks recurrent, recurrent, attention, … (n_layers ≥ 3).

    Args:
      d_model, n_layers, n_heads, d_inner, overrides: as `hawk`'s; n_heads is also the number of
        attention heads (of width D / H, so H must divide D).
      window: the attention window (tokens a query sees, itself included).
    """
    return hawk(d_model, n_layers, n_heads=n_heads, d_inner=d_inner,
                **{"layers": GRIFFIN_PATTERN, "attention_window": window, "attention_rope_fraction": 0.5,
                   **overrides})

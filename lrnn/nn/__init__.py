"""lrnn.nn — Flax NNX modules around the functional cells of `lrnn.cells`.

    mixer = Mixer(d_model, "deltanet", {"n_heads": 2}, conv_size=4, rngs=nnx.Rngs(0))
    y = mixer(x)                                 # x (B, T, D), the parallel path
    y, cache = mixer.prefill(prompt)             # parallel, and the cache to continue from
    y_t, cache = mixer.step(x_t, cache)          # one token (B, D)

`LocalAttention` (Griffin's local multi-query attention) has the same paths; `Block` is the
pre-norm residual layer (a mixer or local attention, then an MLP/GLU) with them too. A cell's
params are `RecurrentParam`s where the cell labels them recurrent, `nnx.Param`s otherwise.
Modules: params (variable types), conv (ShortConv), norms, ffn, cell_factory (a cell by
name), mixer, local_attention, block.
"""

from lrnn.nn.block import Block
from lrnn.nn.cell_factory import build_cell
from lrnn.nn.conv import ShortConv
from lrnn.nn.ffn import FeedForward
from lrnn.nn.local_attention import LocalAttention
from lrnn.nn.mixer import Mixer
from lrnn.nn.norms import NORMS, make_norm
from lrnn.nn.params import RecurrentParam

__all__ = ["Block", "FeedForward", "LocalAttention", "Mixer", "NORMS", "RecurrentParam", "ShortConv", "build_cell",
           "make_norm"]

"""lrnn.nn — Flax NNX modules around the functional cells of `lrnn.cells`.

    mixer = Mixer(d_model, "deltanet", {"n_heads": 2}, conv_size=4, rngs=nnx.Rngs(0))
    y = mixer(x)                                 # x (B, T, D), the parallel path
    y, cache = mixer.prefill(prompt)             # parallel, and the cache to continue from
    y_t, cache = mixer.step(x_t, cache)          # one token (B, D)

`Block` is the pre-norm residual layer (mixer, then MLP/GLU) with the same paths. A cell's
params are `RecurrentParam`s where the cell labels them recurrent, `nnx.Param`s otherwise.
Modules: params (variable types), conv (ShortConv), norms, ffn, cell_factory (a cell by
name), mixer, block.
"""

from lrnn.nn.block import Block
from lrnn.nn.cell_factory import build_cell
from lrnn.nn.conv import ShortConv
from lrnn.nn.ffn import FeedForward
from lrnn.nn.mixer import Mixer
from lrnn.nn.norms import NORMS, make_norm
from lrnn.nn.params import RecurrentParam

__all__ = ["Block", "FeedForward", "Mixer", "NORMS", "RecurrentParam", "ShortConv", "build_cell", "make_norm"]

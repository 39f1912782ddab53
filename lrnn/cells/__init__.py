"""lrnn.cells — functional recurrent cells on the `lrnn.scan` engine.

Each cell is a frozen dataclass of hyperparameters (sizes included) with pure functions

    params = cell.init(key)
    y, final = cell.forward(params, x, state=None, method="auto")    # x (B, T, d_in)
    y_t, state = cell.step(params, state, x_t)                        # x_t (B, d_in)
    state = cell.initial_state((B,))
    labels = cell.param_labels(params)                                # recurrent / regular

`forward(..., method="streamed")` runs a scan-defined cell chunk by chunk without per-token
states (`streamed`). `forward(..., sequence_axis="seq")` splits time over a mesh axis (sequence
parallelism; `shards` holds the exchanges besides the engine's). Matrix-state cells (`MatrixCell`:
RetNet, GLA, HGRN2, GateLoop, mLSTM, Mamba-2, the DeltaNet family, RWKV-6) train chunkwise through
`lrnn.cells.chunkwise` and keep the per-token scan as `forward_materialised`. The block-diagonal LRNN
scans dense b×b blocks per head. Nonlinear cells (`NonlinearCell`: GRU, LSTM, sLSTM) run a step loop
or Newton iterations whose every iteration is one scan (`deer`: DEER / quasi-DEER).
`forward(..., method="convolution")` runs S4's convolution mode for the time-invariant cells (LRU,
S4D, S5, RetNet; `convolution`).
See `base` and `matrix` for the contract and each module for its paper's equations. Every cell
registered below is run by the contract suite in tests/cells against a float64 loop of its
equations.
"""

from lrnn.cells.aaren import Aaren
from lrnn.cells.base import RECURRENT, REGULAR, Cell
from lrnn.cells.block_diagonal import BlockDiagonalLRNN
from lrnn.cells.deltanet import DeltaNet
from lrnn.cells.deltaproduct import DeltaProduct
from lrnn.cells.gated_deltanet import GatedDeltaNet
from lrnn.cells.gateloop import GateLoop
from lrnn.cells.gla import GLA
from lrnn.cells.gru import GRU
from lrnn.cells.hgrn import HGRN, lower_bounds
from lrnn.cells.hgrn2 import HGRN2
from lrnn.cells.lru import LRU
from lrnn.cells.lstm import LSTM
from lrnn.cells.mamba import Mamba
from lrnn.cells.mamba2 import Mamba2
from lrnn.cells.matrix import MatrixCell
from lrnn.cells.min_rnn import MinGRU, MinLSTM
from lrnn.cells.mlstm import MLSTM
from lrnn.cells.nonlinear import NonlinearCell
from lrnn.cells.registry import get_cell, register_cell, registered_cells
from lrnn.cells.retnet import RetNet
from lrnn.cells.rglru import RGLRU
from lrnn.cells.rwkv6 import RWKV6
from lrnn.cells.s4d import S4D
from lrnn.cells.s5 import S5
from lrnn.cells.slstm import SLSTM

register_cell("lru", LRU)
register_cell("s4d", S4D)
register_cell("s5", S5)
register_cell("hgrn", HGRN)
register_cell("mingru", MinGRU)
register_cell("minlstm", MinLSTM)
register_cell("mamba", Mamba)
register_cell("rglru", RGLRU)
register_cell("retnet", RetNet)
register_cell("gla", GLA)
register_cell("hgrn2", HGRN2)
register_cell("gateloop", GateLoop)
register_cell("mlstm", MLSTM)
register_cell("mamba2", Mamba2)
register_cell("deltanet", DeltaNet)
register_cell("gated_deltanet", GatedDeltaNet)
register_cell("deltaproduct", DeltaProduct)
register_cell("aaren", Aaren)
register_cell("gru", GRU)
register_cell("lstm", LSTM)
register_cell("slstm", SLSTM)
register_cell("rwkv6", RWKV6)
register_cell("block_diagonal", BlockDiagonalLRNN)

__all__ = [
    "Aaren",
    "BlockDiagonalLRNN",
    "Cell",
    "DeltaNet",
    "DeltaProduct",
    "GLA",
    "GRU",
    "GateLoop",
    "GatedDeltaNet",
    "HGRN2",
    "MLSTM",
    "RetNet",
    "HGRN",
    "LRU",
    "LSTM",
    "Mamba",
    "Mamba2",
    "MatrixCell",
    "MinGRU",
    "MinLSTM",
    "NonlinearCell",
    "RGLRU",
    "RWKV6",
    "RECURRENT",
    "REGULAR",
    "S4D",
    "S5",
    "SLSTM",
    "get_cell",
    "lower_bounds",
    "register_cell",
    "registered_cells",
]

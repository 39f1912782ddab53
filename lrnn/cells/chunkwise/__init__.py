"""Chunkwise closed forms of the matrix-state recurrences: the training path of GLA, RetNet,
HGRN2, GateLoop (`decay`), DeltaNet and its gated and product forms (`delta`) and the
mLSTM (`stabilised`).

Time is cut into chunks of C tokens. Inside a chunk the recurrence is solved in closed form
with matmuls; across chunks a K×V summary per chunk goes through `lrnn.scan`, so the
engine's methods (sequential, associative, chunked) all apply and no K×V state is ever kept
per token. Layout: heads before time, q/k (B, H, T, K), v (B, H, T, V), per-token gates
(B, H, T) or (B, H, T, K), states (B, H, K, V).
"""

from lrnn.cells.chunkwise.decay import decay_attention
from lrnn.cells.chunkwise.delta import delta_rule
from lrnn.cells.chunkwise.stabilised import stabilised_attention

__all__ = ["decay_attention", "delta_rule", "stabilised_attention"]

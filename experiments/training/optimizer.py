"""AdamW with linear warmup, cosine decay and global-norm clipping, and a separate group for
the recurrent parameters.

    lr(t) = peak · t / warmup                                          t < warmup
    lr(t) = peak · (f + (1 − f) · ½(1 + cos(π (t − warmup) / (steps − warmup))))   after

Recurrent parameters (eigenvalues, step sizes, input normalisations: the leaves a cell labels
"recurrent", held as `lrnn.nn.RecurrentParam`) follow the same schedule with their own peak and
no weight decay, as the LRU, S4/S5 and Mamba papers train them. Weight decay touches matrices
only (not biases, norm scales or per-channel vectors). Clipping is over all gradients.
"""

from __future__ import annotations

import jax
import optax
from flax import nnx

from experiments.training.config import OptimConfig
from lrnn.nn import RecurrentParam

RECURRENT, REGULAR = "recurrent", "regular"


def schedule(config: OptimConfig, steps: int, peak: float) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak, warmup_steps=config.warmup_steps, decay_steps=steps,
        end_value=peak * config.final_learning_rate_fraction)


def param_labels(params: nnx.State):
    """'recurrent' for every RecurrentParam leaf of `params`, 'regular' for the rest, as a pure dict."""
    labels = jax.tree.map(lambda v: RECURRENT if isinstance(v, RecurrentParam) else REGULAR, params,
                          is_leaf=lambda v: isinstance(v, nnx.Variable))
    return nnx.to_pure_dict(labels)


def make_optimizer(config: OptimConfig, steps: int, labels) -> optax.GradientTransformation:
    recurrent_peak = config.recurrent_learning_rate or config.learning_rate
    adam = dict(b1=config.b1, b2=config.b2)
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.multi_transform({
            REGULAR: optax.adamw(schedule(config, steps, config.learning_rate), weight_decay=config.weight_decay,
                                 mask=_matrices, **adam),
            RECURRENT: optax.adam(schedule(config, steps, recurrent_peak), **adam),
        }, labels),
    )


def _matrices(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)

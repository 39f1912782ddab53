"""The recurrent parameter group: its own learning rate, no weight decay; decay on matrices only."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.training.config import OptimConfig
from experiments.training.optimizer import RECURRENT, REGULAR, make_optimizer, param_labels
from lrnn.models import ModelConfig, build_model
from lrnn.cells import LRU


def find(tree: dict, key: str) -> list:
    found = [tree[key]] if key in tree else []
    return found + [hit for value in tree.values() if isinstance(value, dict) for hit in find(value, key)]


def test_a_models_labels_are_the_cells_own_labels_and_regular_elsewhere():
    model = build_model("tag", ModelConfig(cell="lru", cell_options={"d_state": 4}, d_model=4, n_layers=2),
                        vocab_size=3, n_classes=2, rngs=nnx.Rngs(0))
    labels = param_labels(nnx.split(model, nnx.Param, ...)[1])
    cell = LRU(d_in=4, d_state=4)
    expected = cell.param_labels(cell.init(jax.random.PRNGKey(0)))
    assert RECURRENT in expected.values() and REGULAR in expected.values()
    in_cells = find(labels, "cell_params")
    assert len(in_cells) == 2 and all(found == expected for found in in_cells)
    outside = [label for path, label in jax.tree_util.tree_leaves_with_path(labels)
               if "cell_params" not in jax.tree_util.keystr(path)]
    assert outside and set(outside) == {REGULAR}


def test_recurrent_params_get_their_own_rate_and_no_weight_decay():
    config = OptimConfig(learning_rate=0.1, recurrent_learning_rate=0.01, weight_decay=0.5, warmup_steps=0,
                         final_learning_rate_fraction=1.0, clip_norm=1e9)
    params = {"nu": jnp.ones(3), "w": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    labels = {"nu": RECURRENT, "w": REGULAR, "bias": REGULAR}
    optimizer = make_optimizer(config, steps=10, labels=labels)
    state = optimizer.init(params)

    zero = jax.tree.map(jnp.zeros_like, params)
    updates, state = optimizer.update(zero, state, params)
    chex.assert_trees_all_close(updates["nu"], jnp.zeros(3))             # no decay on recurrent params
    chex.assert_trees_all_close(updates["bias"], jnp.zeros(2))           # nor on vectors
    chex.assert_trees_all_close(updates["w"], -0.1 * 0.5 * jnp.ones((2, 2)), rtol=1e-6)  # lr · wd · w

    grads = {"nu": jnp.full(3, 2.0), "w": jnp.zeros((2, 2)), "bias": jnp.full(2, -3.0)}
    fresh = optimizer.init(params)
    updates, _ = optimizer.update(grads, fresh, params)
    # Adam's first step moves every coordinate by lr · sign(g) (up to ε).
    np.testing.assert_allclose(updates["nu"], -0.01 * np.ones(3), rtol=1e-5)
    np.testing.assert_allclose(updates["bias"], 0.1 * np.ones(2), rtol=1e-5)


def test_warmup_then_cosine_to_the_final_fraction():
    config = OptimConfig(learning_rate=1.0, warmup_steps=10, final_learning_rate_fraction=0.1)
    from experiments.training.optimizer import schedule
    rate = schedule(config, steps=110, peak=1.0)
    np.testing.assert_allclose([rate(0), rate(5), rate(10), rate(60), rate(110)],
                               [0.0, 0.5, 1.0, 0.1 + 0.9 * 0.5, 0.1], rtol=1e-6, atol=1e-7)
    assert isinstance(optax.clip_by_global_norm(1.0), optax.GradientTransformation)

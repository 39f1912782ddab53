"""Training on a ("data", "seq") mesh of 8 forced CPU devices (tests/conftest.py): a step on a
2 × 4 mesh (FSDP over "data", time split over "seq") equals the single-device step, the
parameters and optimizer state really are split, sharded checkpoints restore onto the same and
onto another mesh, a run resumed on its mesh continues exactly, and meshes that cannot hold the
run are refused."""

import dataclasses
import json
import shutil

import chex
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from experiments.training import checkpoint, data, parallel
from experiments.training import config as run_config
from experiments.training.loop import Trainer, train
from experiments.training.metrics import read
from tests.conftest import SHARDED_DEVICES
from tests.experiments.training_helpers import write_tiny

# d_model 64: the mixer's and the FFN's 64 × 64 kernels are above parallel.MIN_SHARDED_SIZE
# (so they are split), the cell's per-channel vectors and the norms below it (replicated).
# No warmup: the first step moves the parameters by the full learning rate.
WIDER = ["model.d_model=64", "model.dropout=0.1", "task.train_length=16", "task.eval_lengths=[16, 32]",
         "optim.warmup_steps=0"]
MESH_2X4 = ["train.mesh.data=2", "train.mesh.seq=4"]


def load(tmp_path, *overrides):
    return run_config.load(write_tiny(tmp_path), [*WIDER, *overrides])


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return load(tmp_path_factory.mktemp("config"), *MESH_2X4)


@pytest.fixture(scope="module")
def sharded(config):
    return Trainer(config)


def initial(trainer: Trainer):
    """A copy of the trainer's initial state (the step donates its input's buffers)."""
    return jax.tree.map(lambda x: x.copy(), trainer.initial_state)


def first_step(trainer: Trainer):
    config = trainer.config
    host = data.training_batch(trainer.task, config.train.seed, 1, config.train.batch_size, config.task.train_length)
    return trainer.train_step(initial(trainer), trainer.batch(host))


def test_the_mesh_is_data_by_seq_over_every_device(sharded):
    assert jax.device_count() == SHARDED_DEVICES
    assert dict(sharded.mesh.shape) == {"data": 2, "seq": 4}
    assert sharded.mesh.axis_types == (jax.sharding.AxisType.Auto,) * 2
    assert sharded.model_config.sequence_axis == "seq"  # the mixers scan their shard of time


@pytest.mark.parametrize("shape, spec", [
    ((64, 64), P("data")),
    ((8, 256), P(None, "data")),        # the largest dimension "data" divides
    ((3, 1024), P(None, "data")),
    ((1025, 4), P(None, "data")),       # 1025 is odd: the next largest
    ((1023,), P()),                     # below MIN_SHARDED_SIZE
    ((33, 35), P()),                    # no dimension divisible by 2
    ((), P()),
])
def test_fsdp_splits_the_largest_dimension_data_divides(sharded, shape, spec):
    assert parallel.MIN_SHARDED_SIZE == 1024
    assert parallel.fsdp_sharding(shape, sharded.mesh).spec == spec


def test_a_step_on_a_2x4_mesh_equals_the_single_device_step(config, sharded):
    single = Trainer(dataclasses.replace(config, train=dataclasses.replace(config.train, mesh={"data": 1, "seq": 1})),
                     devices=jax.devices()[:1])
    host = data.training_batch(sharded.task, 0, 1, config.train.batch_size, config.task.train_length)
    batch = sharded.batch(host)
    assert batch["inputs"].sharding.spec == P("data", "seq")
    assert batch["inputs"].addressable_shards[0].data.shape == (config.train.batch_size // 2, 16 // 4)
    got_state, got = sharded.train_step(initial(sharded), batch)
    want_state, want = single.train_step(initial(single), single.batch(host))
    got_params, want_params = jax.device_get(got_state.params), jax.device_get(want_state.params)
    # the step moved the parameters (Adam's first step: by about the learning rate), so 1e-5 is a real check
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), want_params,
                                             jax.device_get(single.initial_state.params))))
    assert moved > 1e-4, moved
    chex.assert_trees_all_close(got_params, want_params, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(jax.device_get(got), jax.device_get(want), atol=1e-5, rtol=1e-5)


def assert_same_shardings(tree, like):
    chex.assert_trees_all_equal_structs(tree, like)
    for leaf, reference in zip(jax.tree.leaves(tree), jax.tree.leaves(like)):
        assert leaf.sharding.is_equivalent_to(reference.sharding, leaf.ndim), (leaf.sharding, reference.sharding)


def per_device_and_total_bytes(tree):
    leaves = jax.tree.leaves(tree)
    return (sum(leaf.addressable_shards[0].data.nbytes for leaf in leaves), sum(leaf.nbytes for leaf in leaves))


def test_parameters_and_optimizer_state_are_split_over_data(sharded):
    state = sharded.initial_state
    kernel = state.params["backbone"]["blocks"][0]["mixer"]["in_proj"]["kernel"]
    assert kernel.shape == (64, 64) and kernel.sharding.spec == P("data")
    assert {shard.data.shape for shard in kernel.addressable_shards} == {(32, 64)}
    norm = state.params["backbone"]["final_norm"]["scale"]
    assert norm.sharding.is_fully_replicated and norm.addressable_shards[0].data.shape == (64,)
    # Adam's moments are split like their parameters
    moments = [leaf for leaf in jax.tree.leaves(state.opt_state) if getattr(leaf, "shape", None) == (64, 64)]
    assert moments and all(leaf.sharding.spec == P("data") for leaf in moments)
    for tree in (state.params, state.opt_state):
        per_device, total = per_device_and_total_bytes(tree)
        assert per_device < 0.7 * total, (per_device, total)  # 1/2 for the kernels, all of the small rest
    stepped, _ = first_step(sharded)  # the step keeps the layout
    assert_same_shardings(stepped, sharded.initial_state)


def test_a_sharded_checkpoint_restores_onto_its_mesh_and_onto_another(config, sharded, tmp_path):
    stepped, _ = first_step(sharded)
    saved = jax.device_get(stepped)
    checkpoints = checkpoint.Checkpoints(tmp_path, every=1, keep=1, steps=1)
    checkpoints.save(1, stepped, force=True)
    same = checkpoints.restore(1, sharded.initial_state)
    assert_same_shardings(same, sharded.initial_state)
    chex.assert_trees_all_equal(jax.device_get(same), saved)
    other = Trainer(dataclasses.replace(config, train=dataclasses.replace(config.train, mesh={"data": 8, "seq": 1})))
    moved = checkpoints.restore(1, other.initial_state)
    checkpoints.close()
    kernel = moved.params["backbone"]["blocks"][0]["ffn"]["up"]["kernel"]
    assert {shard.data.shape[0] for shard in kernel.addressable_shards} == {64 // 8}
    chex.assert_trees_all_equal(jax.device_get(moved), saved)


def test_a_run_resumed_on_its_mesh_continues_exactly(tmp_path):
    out = tmp_path / "run"
    config = load(tmp_path, *MESH_2X4, "train.steps=4", "train.checkpoint_every=2", "task.eval_lengths=[16]",
                  f"train.out_dir={out}")
    whole = train(config)
    losses = {r["step"]: r["loss"] for r in read(out / "metrics.jsonl") if r["split"] == "train"}
    assert (out / "checkpoints" / "4").is_dir()
    shutil.rmtree(out / "checkpoints" / "4")
    resumed = train(config, resume=True)
    again = {r["step"]: r["loss"] for r in read(out / "metrics.jsonl") if r["split"] == "train"}
    assert sorted(again) == [1, 2, 3, 4]
    np.testing.assert_array_equal([again[s] for s in (3, 4)], [losses[s] for s in (3, 4)])
    assert resumed.rows == whole.rows
    assert json.loads((out / "results.json").read_text())["mesh"] == {"data": 2, "seq": 4}


@pytest.mark.parametrize("overrides, message", [
    (["train.mesh.data=3", "train.mesh.seq=2"], "train.mesh.data × train.mesh.seq = 3 × 2 = 6 must equal the device count 8"),
    (["train.mesh.seq=3"], "train.mesh.seq=3 does not divide the device count 8"),
    (["train.mesh.data=1", "train.mesh.seq=8", "task.train_length=12", "task.eval_lengths=[16]"],
     "task.train_length 12 must be a multiple of train.mesh.seq (8)"),
    (["train.mesh.seq=4", "task.eval_lengths=[16, 30]"], "task.eval_lengths entry 30 must be a multiple of train.mesh.seq (4)"),
    (["train.mesh.data=8", "train.batch_size=4"], "train.batch_size (4) must be a multiple of train.mesh.data (8)"),
])
def test_a_mesh_that_cannot_hold_the_run_is_refused(tmp_path, overrides, message):
    with pytest.raises(run_config.ConfigError) as error:
        Trainer(load(tmp_path, *overrides))
    assert message in str(error.value) and "\n" not in str(error.value)

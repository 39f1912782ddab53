"""Checkpoints with orbax: every N steps and at the end, atomic, resumable exactly.

A checkpoint holds the training state as plain pytrees: the model's parameters and its other
variables (dropout RNG streams) as pure dicts, the optax state, and the step. Orbax writes each
save into a temporary directory and renames it when complete, so a run killed mid-save leaves the
previous checkpoint intact and `latest_step` never names a partial one. PRNG key arrays are
stored as their raw key data and re-wrapped on restore.
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, directory: str | pathlib.Path, *, every: int, keep: int, steps: int):
        self.directory = pathlib.Path(directory).absolute()
        policies = ocp.checkpoint_managers
        save_on = policies.FixedIntervalPolicy(every) if every else policies.SpecificStepsPolicy([steps])
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False,
                save_decision_policy=policies.AnySavePolicy([save_on, policies.SpecificStepsPolicy([steps])])))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> bool:
        """Saves `state` if the policy says so at `step`; True if it did."""
        return self.manager.save(step, args=ocp.args.StandardSave(_unwrap_keys(state)))

    def restore(self, step: int, like):
        """The state saved at `step`, shaped, typed and sharded like the arrays of `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unwrap_keys(like))
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return _rewrap_keys(restored, like)

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def saved_steps(directory: str | pathlib.Path) -> list[int]:
    """The complete checkpoints' steps under `directory` (orbax renames a save's temporary
    directory to its step number only once it is complete)."""
    directory = pathlib.Path(directory)
    return sorted(int(path.name) for path in directory.iterdir() if path.name.isdigit()) if directory.is_dir() else []


def has_run(out_dir: str | pathlib.Path) -> bool:
    """Whether a run's output directory holds a complete checkpoint to continue from."""
    return bool(saved_steps(pathlib.Path(out_dir) / "checkpoints"))


def require_checkpoint(directory: str | pathlib.Path) -> int:
    """The latest complete step under `directory`, or a clear error when there is none."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"--resume: checkpoint directory {str(directory)!r} does not exist")
    steps = saved_steps(directory)
    if not steps:
        raise FileNotFoundError(f"--resume: no complete checkpoint in {str(directory)!r}")
    return steps[-1]


def refuse_to_overwrite(directory: str | pathlib.Path) -> None:
    """A fresh run must not mix its checkpoints with an earlier run's."""
    steps = saved_steps(directory)
    if steps:
        raise FileExistsError(f"{str(directory)!r} already holds checkpoints of a run (up to step {steps[-1]}): "
                              "pass --resume to continue it, or choose another train.out_dir")


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _rewrap_keys(tree, like):
    return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref)) if _is_key(ref) else x,
                        tree, like)

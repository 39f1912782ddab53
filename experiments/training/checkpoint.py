"""Checkpoints with orbax: every N steps and at the end, atomic, resumable exactly.

A checkpoint holds the training state as plain pytrees: the model's parameters and its other
variables (dropout RNG streams) as pure dicts, the optax state, and the step. Orbax writes each
save into a temporary directory and renames it when complete, so a run killed mid-save leaves the
previous checkpoint intact and `latest_step` never names a partial one. PRNG key arrays are
stored as their raw key data and re-wrapped on restore.

On resume `Checkpoints.restore_latest` takes the newest checkpoint that restores: one without
orbax's commit marker, with unreadable metadata or with damaged data files is reported in one
warning line, moved out of the way (to `damaged_checkpoints/` beside `checkpoints/`) and the one
before it tried. A checkpoint that reads but does not fit the model (another width or cell) is
an error naming the first parameter whose saved and expected shapes differ.
"""

from __future__ import annotations

import gc
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

# Orbax writes this file into a save's temporary directory just before renaming that directory
# to the step number (on a local disk; on object stores the file alone marks completion).
COMMIT_MARKER = "commit_success.txt"
TEMPORARY = ".orbax-checkpoint-tmp"   # the suffix of a save orbax has not finished


class CheckpointError(RuntimeError):
    """No checkpoint restores, or the checkpoint does not fit the model; the message says which."""


class _Damaged(Exception):
    """A checkpoint that cannot be restored; the message is the reason."""


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

    def save(self, step: int, state, *, force: bool = False) -> bool:
        """Saves `state` if the policy says so at `step` (always if `force`, unless `step` is
        already saved); True if it did."""
        if force and step in self.manager.all_steps():
            return False
        return self.manager.save(step, args=ocp.args.StandardSave(_unwrap_keys(state)), force=force)

    def restore(self, step: int, like):
        """The state saved at `step`, shaped, typed and sharded like the arrays of `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unwrap_keys(like))
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return _rewrap_keys(restored, like)

    def restore_latest(self, like, *, set_aside: pathlib.Path):
        """(state, step) from the newest checkpoint that restores, shaped like `like`.

        Each newer one that does not restore gets a warning line on stderr and, once an older one
        has restored, is moved under `set_aside` (so new saves can take its step). Raises
        CheckpointError when none restores, or when one reads but does not fit `like`."""
        damaged, warnings, restored, mismatch = [], [], None, None
        with _quiet_stderr() as noise:
            for step, path in reversed(_step_directories(self.directory)):
                try:
                    _check_complete(path)
                    _check_fits(self._saved_shapes(path), like)
                    restored = self.restore(step, like), step
                except _Damaged as error:
                    reason = str(error)
                except CheckpointError as error:  # another model's checkpoint: older ones are no better
                    mismatch = error
                    break
                except Exception as error:  # noqa: BLE001 (orbax and tensorstore raise many kinds for a damaged file)
                    reason = _first_line(error)
                else:
                    noise.keep = not damaged  # after a damaged one, what was held back is its tracebacks
                    break
                warnings.append(f"warning: checkpoint {step} in {str(self.directory)!r} cannot be restored "
                                f"({reason}); trying the one before")
                damaged.append(path)
        for line in warnings:
            print(line, file=sys.stderr, flush=True)
        if mismatch is not None:
            raise mismatch
        if restored is None:
            raise CheckpointError(f"--resume: no checkpoint in {str(self.directory)!r} can be restored "
                                  "(see the warnings above); start afresh in another train.out_dir")
        if damaged:
            _set_aside(damaged, set_aside)
            self.manager.reload()
        return restored

    @staticmethod
    def _saved_shapes(path: pathlib.Path) -> dict:
        try:
            tree = ocp.StandardCheckpointHandler().metadata(epath.Path(path / "default"))
        except Exception as error:  # noqa: BLE001 (any failure to read it is damage)
            raise _Damaged(f"reading it failed: {_first_line(error)}") from None
        if tree is None:
            raise _Damaged("no metadata")
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        return {_path_name(keys): tuple(getattr(leaf, "shape", ())) for keys, leaf in leaves}

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


class _quiet_stderr:
    """Holds back what is written to file descriptor 2 meanwhile (orbax and tensorstore print a
    traceback per array of a damaged checkpoint, from their own threads) and shows it afterwards
    only if `keep` was set."""

    def __enter__(self):
        self.keep = False
        sys.stderr.flush()
        self.saved, self.buffer = os.dup(2), tempfile.TemporaryFile()
        os.dup2(self.buffer.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        if not self.keep:  # after a failed read tensorstore's threads report for a moment longer
            time.sleep(0.5)
        gc.collect()  # failed futures report when they are collected: while stderr is still held
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        if self.keep:
            self.buffer.seek(0)
            sys.stderr.write(self.buffer.read().decode(errors="replace"))
        self.buffer.close()


def _step_directories(directory: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """(step, directory) of every save under `directory`, finished or not, oldest first."""
    found = []
    for path in directory.iterdir() if directory.is_dir() else ():
        name = path.name.split(TEMPORARY)[0] if TEMPORARY in path.name else path.name
        if name.isdigit() and path.is_dir():
            found.append((int(name), path))
    return sorted(found)


def _check_complete(path: pathlib.Path) -> None:
    """_Damaged unless orbax finished the save at `path` and its tree metadata is valid JSON."""
    if TEMPORARY in path.name:
        raise _Damaged(f"an unfinished save: orbax never renamed its temporary directory {path.name}")
    if not (path / COMMIT_MARKER).is_file():
        raise _Damaged(f"no commit marker {COMMIT_MARKER}: the save did not finish")
    metadata = path / "default" / "_METADATA"
    try:
        json.loads(metadata.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise _Damaged(f"its metadata {metadata.relative_to(path)} is unreadable: {_first_line(error)}") from None


def _check_fits(saved: dict, like) -> None:
    """CheckpointError naming the first array whose saved and expected shapes differ."""
    expected = {_path_name(keys): tuple(leaf.shape)
                for keys, leaf in jax.tree_util.tree_flatten_with_path(_unwrap_keys(like))[0]}
    for name, shape in expected.items():
        if name not in saved or saved[name] != shape:
            found = f"saved shape {saved[name]}" if name in saved else "not in the checkpoint"
            raise CheckpointError(f"--resume: the checkpoint was written by another model config: {name}: "
                                  f"{found}, this config expects {shape}")
    extra = [name for name in saved if name not in expected]
    if extra:
        raise CheckpointError(f"--resume: the checkpoint was written by another model config: it holds "
                              f"{extra[0]}, which this config does not have")


def _path_name(keys) -> str:
    """'params/backbone/blocks/0/...' for a pytree key path (dict keys, indices, attributes alike)."""
    parts = (getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))) for key in keys)
    return "/".join(str(part) for part in parts)


def _first_line(error: Exception) -> str:
    """A one-line reason: the exception's type and the first line of its message, without
    tensorstore's spec dump and, where tensorstore names the file it could not read, only that."""
    text = (str(error).strip().splitlines() or [""])[0].split(" [tensorstore_spec")[0]
    unreadable = re.match(r'([A-Z_]+): .*(Error reading .* of local file "[^"]*")', text)
    if unreadable:
        text = f"{unreadable[1]}: {unreadable[2]}"
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _set_aside(paths: list[pathlib.Path], destination: pathlib.Path) -> None:
    """Moves damaged checkpoints out of the checkpoint directory (process 0; every process waits)."""
    if jax.process_index() == 0:
        destination.mkdir(parents=True, exist_ok=True)
        for path in paths:
            target = destination / path.name
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(path), str(target))
        print(f"moved the damaged checkpoint(s) {', '.join(p.name for p in paths)} to {str(destination)!r}",
              file=sys.stderr, flush=True)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("lrnn: damaged checkpoints set aside")


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _rewrap_keys(tree, like):
    return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref)) if _is_key(ref) else x,
                        tree, like)

"""Data one already has, as numpy arrays on disk: task "arrays".

    path/inputs.npy    (N, T) integer token ids ≥ 0, or (N, T) / (N, T, F) floats (features)
    path/targets.npy   (N,) integer classes (kind "classify"), or (N, T) per position ("tag", "lm")
    path/mask.npy      optional (N, T) bool: the real positions ("classify": padding only at the
                       end), resp. the positions whose target counts; all True when absent

or one `.npz` file with those keys (`numpy.savez(path, inputs=..., targets=..., mask=...)`;
`save_arrays` writes the directory form). The only length is T.

Splits: with `test_path` (the same layout) "train" is all of `path` and "test" all of
`test_path`; without it, one fixed split of `path`'s rows (`split_seed`, `test_fraction`),
as for the digits. A batch draws its rows uniformly with replacement from the split. The
vocabulary (integer inputs) and the number of classes are one more than the largest id over
both splits, unless given (`vocabulary`, `classes`). Files are read memory-mapped, once per
path and modification time (the newest of the directory's and its files').
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

import numpy as np

from experiments.tasks.base import KINDS, Batch, Task, check_choice, check_int, check_real, split_rows

NAMES = ("inputs", "targets", "mask")


def save_arrays(directory, inputs, targets, mask=None) -> pathlib.Path:
    """Write `inputs`, `targets` (and `mask`) as the .npy files of an "arrays" task's `path`."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in zip(NAMES, (inputs, targets, mask)):
        if array is not None:
            np.save(directory / f"{name}.npy", np.asarray(array))
    return directory


@dataclasses.dataclass(frozen=True)
class ArrayData(Task):
    path: str | None = None
    kind: str = "classify"
    test_path: str | None = None
    split: str = "train"
    split_seed: int = 0
    test_fraction: float = 0.2
    vocabulary: int | None = None
    classes: int | None = None

    name = "arrays"

    def _check_options(self):
        if not isinstance(self.path, str) or not self.path:
            raise self.option_error("path", "a directory of inputs.npy / targets.npy [/ mask.npy] or an .npz file",
                                    self.path)
        check_choice(self, "kind", KINDS)
        check_choice(self, "split", ("train", "test"))
        check_int(self, "split_seed", minimum=0)
        check_real(self, "test_fraction", low=0.0, high=0.99, open_low=True)
        for option in ("vocabulary", "classes"):
            if getattr(self, option) is not None:
                check_int(self, option, minimum=1)
        for path in (self.path, self.test_path):
            if path is not None:
                self._check_arrays(path, _load(*_key(self, path)))
        if self.vocab_size is not None and self._largest("inputs") >= self.vocab_size:
            raise self.option_error("vocabulary", f"> the largest input id {self._largest('inputs')}",
                                    self.vocab_size)
        if self._largest("targets") >= self.n_classes:
            raise self.option_error("classes", f"> the largest target {self._largest('targets')}", self.n_classes)

    def _check_arrays(self, path: str, arrays: dict) -> None:
        inputs, targets, mask = (arrays[name] for name in NAMES)
        where = f"task 'arrays' ({path})"
        if inputs.ndim not in (2, 3) or inputs.shape[0] == 0 or inputs.shape[1] == 0:
            raise ValueError(f"{where}: inputs must be (N, T) token ids or (N, T[, F]) floats with N, T ≥ 1, "
                             f"got shape {inputs.shape}")
        if np.issubdtype(inputs.dtype, np.integer):
            if inputs.ndim != 2:
                raise ValueError(f"{where}: integer inputs are token ids of shape (N, T), got shape {inputs.shape}")
            if inputs.min() < 0:
                raise ValueError(f"{where}: token ids must be ≥ 0, got {inputs.min()}")
        elif not np.issubdtype(inputs.dtype, np.floating):
            raise ValueError(f"{where}: inputs must be integers (token ids) or floats (features), got {inputs.dtype}")
        per_position = self.kind != "classify"
        expected = inputs.shape[:2] if per_position else inputs.shape[:1]
        if targets.shape != expected or not np.issubdtype(targets.dtype, np.integer):
            layout = "(N, T) per position" if per_position else "(N,) one class per sequence"
            raise ValueError(f"{where}: kind {self.kind!r} takes integer targets {layout} = {expected}, got "
                             f"{targets.dtype} {targets.shape}" + ("" if per_position or targets.ndim != 2 else
                                                                   "; per-position targets need kind=\"tag\" or \"lm\""))
        if targets.min() < 0:
            raise ValueError(f"{where}: targets must be ≥ 0, got {targets.min()}")
        if mask is not None and (mask.shape != inputs.shape[:2] or mask.dtype != np.bool_):
            raise ValueError(f"{where}: mask must be bool of shape {inputs.shape[:2]}, got {mask.dtype} {mask.shape}")
        first = self._arrays(self.path)["inputs"]
        if (inputs.shape[1:], np.issubdtype(inputs.dtype, np.integer)) != (
                first.shape[1:], np.issubdtype(first.dtype, np.integer)):
            raise ValueError(f"{where}: inputs {inputs.dtype} {inputs.shape} do not match path's {first.dtype} "
                             f"{first.shape} beyond N")

    def _arrays(self, path: str) -> dict:
        return _load(*_key(self, path))

    def _largest(self, name: str) -> int:
        return max(_largest_id(*_key(self, path), name) for path in (self.path, self.test_path) if path is not None)

    def _tokens(self) -> bool:
        return np.issubdtype(self._arrays(self.path)["inputs"].dtype, np.integer)

    @property
    def vocab_size(self) -> int | None:
        if not self._tokens():
            return None
        return self.vocabulary if self.vocabulary is not None else self._largest("inputs") + 1

    @property
    def n_features(self) -> int | None:
        inputs = self._arrays(self.path)["inputs"]
        return None if self._tokens() else (inputs.shape[2] if inputs.ndim == 3 else 1)

    @property
    def n_classes(self) -> int:
        return self.classes if self.classes is not None else self._largest("targets") + 1

    @property
    def fixed_length(self) -> int:
        return self._arrays(self.path)["inputs"].shape[1]

    def rows(self) -> tuple[dict, np.ndarray]:
        """(the arrays this split draws from, the rows of them that are its own)."""
        if self.test_path is not None:
            arrays = self._arrays(self.test_path if self.split == "test" else self.path)
            return arrays, np.arange(len(arrays["inputs"]))
        arrays = self._arrays(self.path)
        return arrays, split_rows(len(arrays["inputs"]), self.split, self.split_seed, float(self.test_fraction))

    def _sample(self, rng, batch_size, length):
        arrays, rows = self.rows()
        chosen = rows[rng.integers(0, len(rows), size=batch_size)]
        inputs = np.asarray(arrays["inputs"][chosen])
        if self._tokens():
            inputs = inputs.astype(np.int32)
        else:
            inputs = inputs.reshape(batch_size, length, -1).astype(np.float32)
        mask = arrays["mask"]
        mask = np.ones((batch_size, length), bool) if mask is None else np.asarray(mask[chosen])
        return Batch(inputs=inputs, targets=np.asarray(arrays["targets"][chosen]).astype(np.int32), mask=mask)


def _key(task: ArrayData, path: str) -> tuple[str, float]:
    resolved = pathlib.Path(path).resolve()
    if not resolved.exists():
        option = "path" if path == task.path else "test_path"
        raise task.option_error(option, "an existing directory of .npy files or an .npz file", path)
    files = [resolved / f"{name}.npy" for name in NAMES] if resolved.is_dir() else []
    return str(resolved), max(os.stat(f).st_mtime_ns for f in [resolved, *files] if f.exists())


@functools.lru_cache(maxsize=16)
def _largest_id(path: str, modified: float, name: str) -> int:
    """The largest entry of one of `path`'s arrays, read once per path and modification time."""
    return int(_load(path, modified)[name].max())


@functools.lru_cache(maxsize=8)
def _load(path: str, modified: float) -> dict:
    """{inputs, targets, mask or None} from a directory of .npy files or an .npz file."""
    del modified  # part of the cache key only
    location = pathlib.Path(path)
    if location.is_dir():
        files = {name: location / f"{name}.npy" for name in NAMES}
        missing = [str(files[name]) for name in NAMES[:2] if not files[name].is_file()]
        if missing:
            raise ValueError(f"task 'arrays': {path} has no {', '.join(missing)} (expected inputs.npy, targets.npy "
                             "and optionally mask.npy)")
        return {name: np.load(file, mmap_mode="r") if file.is_file() else None for name, file in files.items()}
    with np.load(location) as archive:
        missing = [name for name in NAMES[:2] if name not in archive.files]
        if missing:
            raise ValueError(f"task 'arrays': {path} has no array {', '.join(map(repr, missing))} "
                             f"(it holds {', '.join(archive.files) or 'none'})")
        return {name: archive[name] if name in archive.files else None for name in NAMES}

"""Character LM: windows of the file's bytes, targets shifted by one."""

import numpy as np
import pytest

from experiments.tasks import make_task
from tests.experiments.tasks.contract import check_batch


def test_windows_come_from_the_file_and_predict_the_next_byte(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, size=300, dtype=np.uint8).tobytes()
    path = tmp_path / "text.bin"
    path.write_bytes(data)
    task = make_task("char_lm", path=str(path))
    batch = task.batch(np.random.default_rng(1), 8, 16)
    check_batch(task, batch, 8, 16)
    assert batch.mask.all()
    for inputs, targets in zip(batch.inputs.tolist(), batch.targets.tolist()):
        start = data.find(bytes(inputs))
        assert start >= 0 and bytes(targets) == data[start + 1:start + 17]
    # the longest window uses the whole file
    whole = task.batch(np.random.default_rng(2), 2, 299)
    assert bytes(whole.inputs[0].tolist()) == data[:-1]
    assert bytes(whole.targets[1].tolist()) == data[1:]


def test_missing_and_short_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="'path' must name an existing file.*nothing.txt"):
        make_task("char_lm", path=str(tmp_path / "nothing.txt"))
    with pytest.raises(ValueError, match="option 'path' must be the path of a local text file"):
        make_task("char_lm", path=3)
    short = tmp_path / "short.txt"
    short.write_bytes(b"hello")
    task = make_task("char_lm", path=str(short))
    with pytest.raises(ValueError, match=r"length must be from 1 to 4 .*has 5 bytes.*got 5"):
        task.batch(np.random.default_rng(0), 1, 5)
    (tmp_path / "one.txt").write_bytes(b"x")
    with pytest.raises(ValueError, match="has 1 bytes; it needs at least 2"):
        make_task("char_lm", path=str(tmp_path / "one.txt"))

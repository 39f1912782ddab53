"""Where a run's numbers go: one JSON object per line in `metrics.jsonl` and TensorBoard event
files under `tensorboard/` (tensorboardX, no TensorFlow needed).

Each record is {"step", "split", **scalars}. On resume, records past the restored step are
dropped (the file is rewritten atomically) so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import os
import pathlib

from tensorboardX import SummaryWriter


class MetricsLog:
    def __init__(self, out_dir: pathlib.Path, *, resume_step: int | None = None):
        self.path = out_dir / "metrics.jsonl"
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        else:
            keep = [line for line in read(self.path) if line["step"] <= resume_step]
            scratch = self.path.with_suffix(".jsonl.tmp")
            scratch.write_text("".join(json.dumps(record) + "\n" for record in keep))
            os.replace(scratch, self.path)
        self.file = self.path.open("a")
        self.tensorboard = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resume_step)

    def write(self, step: int, split: str, scalars: dict) -> None:
        record = {"step": step, "split": split, **{k: float(v) for k, v in scalars.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for name, value in scalars.items():
            self.tensorboard.add_scalar(f"{split}/{name}", float(value), step)

    def close(self) -> None:
        self.file.close()
        self.tensorboard.close()


def read(path: pathlib.Path) -> list[dict]:
    """The records of a metrics.jsonl (an empty list if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

"""The training loop: build, (resume,) train, checkpoint, log, evaluate across lengths.

The model is a Flax NNX module, split once into its graph and two pure-dict pytrees, the
parameters (`nnx.Param`) and everything else (dropout RNG streams). The jitted step merges them
back, so the trained state is a plain pytree that optax updates, orbax saves and `jax.sharding`
places on the ("data", "seq") mesh of `train.mesh` (see parallel.py): parameters and optimizer
state FSDP-sharded over "data", batches split over "data" and, along time, "seq".

Everything a run produces goes to `train.out_dir` (with several processes, which share it, each
writes its shards of the checkpoints and process 0 alone the other files):

    config.json            the resolved configuration
    checkpoints/<step>/    orbax checkpoints (atomic)
    metrics.jsonl          train and eval records
    tensorboard/           event files
    results.json           the accuracy-vs-length rows and the summary
    accuracy_vs_length.png
    damaged_checkpoints/   checkpoints --resume could not restore, moved aside

Preemption: on SIGTERM or SIGINT (single process) the loop finishes the current step, saves a
checkpoint at it, flushes the metrics and raises `Preempted`; a second signal acts at once, as
does one during start-up or the final evaluation. With
several processes the stop step comes from JAX's preemption sync point
(`multihost_utils.reached_preemption_sync_point`, fed by the JAX distributed service's own SIGTERM
handler), so every host stops and saves at the same step.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import signal
import threading
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils

from experiments.training import checkpoint, data, evaluate, objective, parallel
from experiments.training.config import ConfigError, RunConfig, as_dict, make_configured_task
from experiments.training.metrics import MetricsLog
from experiments.training.optimizer import make_optimizer, param_labels
from lrnn.models import build_model


class TrainState(NamedTuple):
    params: Any
    rest: Any
    opt_state: Any


@dataclasses.dataclass
class RunResult:
    config: RunConfig
    rows: list[dict]               # per eval length, see evaluate.length_rows
    mean_scaled_accuracy: float    # over the eval lengths beyond the training length
    final_train: dict              # the last logged training metrics
    seconds: float
    out_dir: pathlib.Path


class Preempted(Exception):
    """The run stopped on a signal after saving a checkpoint at `step`."""

    def __init__(self, step: int, signal_name: str, checkpoint_dir: pathlib.Path):
        super().__init__(f"stopped by {signal_name} after step {step}; checkpoint saved in {str(checkpoint_dir)!r}")
        self.step, self.signal_name, self.checkpoint_dir = step, signal_name, checkpoint_dir


class StopSignal:
    """Notes SIGTERM/SIGINT while training and says after which step to stop.

    Single process: a Python handler records the first signal (and puts the previous handler
    back, so a second signal acts at once). Several processes: the handlers are left alone (JAX's
    distributed service owns SIGTERM) and the stop step is JAX's preemption sync point, the same
    on every host."""

    def __init__(self):
        self.multihost = jax.process_count() > 1
        self.received: str | None = None
        self._previous: dict = {}

    def __enter__(self):
        if not self.multihost and threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                self._previous[number] = signal.signal(number, self._note)
        return self

    def __exit__(self, *exc_info):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _note(self, number, frame):
        self.received = signal.Signals(number).name
        signal.signal(number, self._previous[number])

    def should_stop(self, step: int) -> bool:
        """Whether to stop after `step` (call it at every step, on every host)."""
        if self.multihost:
            try:
                if multihost_utils.reached_preemption_sync_point(step):
                    self.received = "a preemption notice"
            except RuntimeError:  # the preemption service is disabled: only a local signal counts
                pass
        return self.received is not None


class Trainer:
    """The jitted pieces of one run: a model's graph, its optimizer and the device mesh."""

    def __init__(self, config: RunConfig, *, devices=None):
        self.config = config
        self.task = make_configured_task(config.task)
        self.evaluation_task = self.task.evaluation_task()
        try:
            self.mesh = parallel.make_mesh(config.train.mesh, devices)
            parallel.check_batch_shape(config.train.batch_size, config.task.train_length, config.task.eval_lengths,
                                       self.mesh)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        # with time split over "seq", every mixer scans its shard of time inside shard_map
        self.model_config = config.model
        if self.mesh.shape[parallel.SEQ] > 1:
            self.model_config = dataclasses.replace(config.model, sequence_axis=parallel.SEQ)
        model = build_model(self.task.kind, self.model_config, vocab_size=self.task.vocab_size,
                            n_features=self.task.n_features, n_classes=self.task.n_classes,
                            rngs=nnx.Rngs(config.train.seed))
        self.graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        self.optimizer = make_optimizer(config.optim, config.train.steps, param_labels(params))
        params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
        state = TrainState(params, rest, self.optimizer.init(params))
        self.initial_state = parallel.place_state(state, self.mesh)
        shardings, replicated = parallel.state_shardings(state, self.mesh), parallel.replicated(self.mesh)
        # The state and the batches arrive placed (initial_state, a restore, `batch`): jit takes
        # their shardings. jax_debug_nans re-runs a failing step op by op, which needs its
        # inputs: no donation then.
        step = jax.jit(self._train_step, out_shardings=(shardings, replicated),
                       donate_argnums=() if config.train.check_finite else 0)
        step = _under_mesh(step, self.mesh)
        self.train_step = _with_debug_nans(step) if config.train.check_finite else step
        self.eval_step = _under_mesh(jax.jit(self._eval_step, out_shardings=replicated), self.mesh)

    @property
    def n_params(self) -> int:
        return sum(x.size for x in jax.tree.leaves(self.initial_state.params))

    def _logits(self, params, rest, batch, *, train: bool):
        model = nnx.merge(self.graphdef, params, rest)
        if not train:
            model.eval()
        if self.task.kind == "classify":
            logits = model(batch["inputs"], mask=batch["mask"])
        else:
            logits = model(batch["inputs"])
        return logits, nnx.to_pure_dict(nnx.split(model, nnx.Param, ...)[2])

    def _loss(self, params, rest, batch):
        logits, rest = self._logits(params, rest, batch, train=True)
        loss, sums = objective.loss_and_metrics(self.task.kind, logits, batch["targets"], batch["mask"])
        return loss, (sums, rest)

    def _train_step(self, state: TrainState, batch):
        grads, (sums, rest) = jax.grad(self._loss, has_aux=True)(state.params, state.rest, batch)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, rest, opt_state), {**sums, "grad_norm": optax.tree.norm(grads)}

    def _eval_step(self, state: TrainState, batch):
        logits, _ = self._logits(state.params, state.rest, batch, train=False)
        return objective.loss_and_metrics(self.task.kind, logits, batch["targets"], batch["mask"])[1]

    def batch(self, host_batch) -> dict:
        arrays = {"inputs": host_batch.inputs, "targets": host_batch.targets, "mask": host_batch.mask}
        return parallel.shard_batch(arrays, self.mesh)

    def evaluate(self, state: TrainState, length: int) -> dict:
        task_config, size = self.config.task, self.config.train.batch_size
        totals = None
        for index in range(task_config.eval_batches):
            host = data.evaluation_batch(self.evaluation_task, task_config.eval_seed, length, index, size)
            sums = jax.device_get(self.eval_step(state, self.batch(host)))
            totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
        return objective.summarise(totals)


def train(config: RunConfig, *, resume: bool = False, devices=None) -> RunResult:
    """Trains `config` (continuing its latest checkpoint if `resume`) and evaluates across lengths."""
    started = time.perf_counter()
    out_dir = pathlib.Path(config.train.out_dir)
    checkpoint_dir = out_dir / "checkpoints"
    if resume:
        checkpoint.require_checkpoint(checkpoint_dir)
        check_same_run(out_dir, config)
    else:
        checkpoint.refuse_to_overwrite(checkpoint_dir)
    trainer = Trainer(config, devices=devices)
    out_dir.mkdir(parents=True, exist_ok=True)
    writes_files = jax.process_index() == 0  # one writer of the files the processes would share
    if writes_files:
        (out_dir / "config.json").write_text(json.dumps(as_dict(config), indent=2) + "\n")

    train_config = config.train
    checkpoints = checkpoint.Checkpoints(checkpoint_dir, every=train_config.checkpoint_every,
                                         keep=train_config.keep_checkpoints, steps=train_config.steps)
    state, start = trainer.initial_state, 0
    if resume:
        state, start = checkpoints.restore_latest(state, set_aside=out_dir / "damaged_checkpoints")
    log = MetricsLog(out_dir, resume_step=start if resume else None) if writes_files else _NoLog()
    with StopSignal() as stop:
        state, final_train, stopped_at = _run_steps(trainer, state, start, checkpoints, log, stop)
    checkpoints.close()
    if stopped_at is not None:
        log.close()
        raise Preempted(stopped_at, stop.received, checkpoint_dir)

    results = {length: trainer.evaluate(state, length) for length in config.task.eval_lengths}
    rows = evaluate.length_rows(results, trainer.task.n_classes)
    for row in rows:
        log.write(train_config.steps, f"eval_L{row['length']}", {k: v for k, v in row.items() if k != "length"})
    log.close()
    result = RunResult(config, rows, evaluate.mean_scaled(rows, beyond=config.task.train_length), final_train,
                       time.perf_counter() - started, out_dir)
    if writes_files:
        write_results(result, trainer)
    return result


class _NoLog:
    """MetricsLog on processes other than 0, which leave metrics.jsonl and tensorboard/ to it."""

    def write(self, step: int, split: str, scalars: dict) -> None:
        pass

    def close(self) -> None:
        pass


def _run_steps(trainer: Trainer, state: TrainState, start: int, checkpoints, log: MetricsLog, stop: StopSignal):
    """Steps start+1 … train.steps; returns the final state, the last logged training metrics and
    the step it stopped after on a signal (None when it ran to the end)."""
    from tqdm.auto import tqdm

    config = trainer.config
    steps, every = config.train.steps, config.train.log_every
    tokens_per_step = config.train.batch_size * config.task.train_length
    bar = tqdm(total=steps, initial=start, disable=not config.train.progress, dynamic_ncols=True, mininterval=1.0,
               desc=f"{config.model.cell} on {config.task.name}")
    window, in_window, window_start, summary = None, 0, time.perf_counter(), {}
    for step in range(start + 1, steps + 1):
        host = data.training_batch(trainer.task, config.train.seed, step, config.train.batch_size,
                                   config.task.train_length, config.task.min_train_length)
        state, sums = trainer.train_step(state, trainer.batch(host))
        window = sums if window is None else jax.tree.map(jnp.add, window, sums)
        in_window += 1
        stopping = stop.should_stop(step)
        if step % every == 0 or step == steps or stopping:
            window = jax.device_get(window)
            elapsed = time.perf_counter() - window_start
            summary = objective.summarise(window)
            summary["grad_norm"] = float(window["grad_norm"]) / in_window
            summary["tokens_per_second"] = tokens_per_step * in_window / elapsed
            _check_finite(summary, step, first=step - in_window + 1)
            log.write(step, "train", summary)
            bar.set_postfix(loss=f"{summary['loss']:.4f}", acc=f"{summary['accuracy']:.3f}",
                            tok_s=f"{summary['tokens_per_second']:.0f}")
            window, in_window, window_start = None, 0, time.perf_counter()
        checkpoints.save(step, state, force=stopping)
        bar.update(1)
        if stopping:
            bar.close()
            return state, summary, step
    bar.close()
    return state, summary, None


def _check_finite(summary: dict, step: int, *, first: int | None = None) -> None:
    """FloatingPointError naming the step (or the logged window of steps) whose loss is not finite."""
    if not np.isfinite(summary["loss"]):
        where = f"at step {step}" if first in (None, step) else f"in steps {first}-{step}"
        raise FloatingPointError(
            f"the training loss became {summary['loss']} {where}; rerun with train.check_finite=true "
            "(lrnn.debug_nans) to find the first op/time step, or lower optim.learning_rate")


def _under_mesh(function, mesh):
    """`function` called with `mesh` as the current mesh (`jax.set_mesh`), which the model's
    sequence-parallel mixers read and under which its Auto axes are GSPMD's to place."""
    def on_mesh(*args):
        with jax.set_mesh(mesh):
            return function(*args)
    return on_mesh


def _with_debug_nans(step):
    """`step` under jax_debug_nans: a NaN raises FloatingPointError naming the op that made it."""
    def checked(*args):
        with jax.debug_nans(True):
            return step(*args)
    return checked


def check_same_run(out_dir: pathlib.Path, config: RunConfig) -> None:
    """On --resume the run's config must match the saved one (train.steps may grow, and
    train.mesh may change: the checkpoint restores onto any mesh)."""
    saved_path = out_dir / "config.json"
    if not saved_path.exists():
        return
    saved, current = json.loads(saved_path.read_text()), json.loads(json.dumps(as_dict(config)))
    defaults = json.loads(json.dumps(as_dict(RunConfig())))  # a key newer than the saved run: its default
    differ = [f"{section}.{key}" for section in current for key in current[section]
              if key not in ("steps", "progress", "check_finite", "cpu_threads", "mesh")
              and saved.get(section, {}).get(key, defaults[section][key]) != current[section][key]]
    if differ:
        raise ConfigError(f"--resume: the config differs from the saved run in {', '.join(differ)} "
                          f"(saved in {saved_path})")


def write_results(result: RunResult, trainer: Trainer) -> None:
    config = result.config
    name = f"{config.model.cell} {dict(config.model.cell_options) or ''}".strip()
    payload = {"model": name, "task": config.task.name, "n_params": trainer.n_params,
               "rows": result.rows, "mean_scaled_accuracy_beyond_training": result.mean_scaled_accuracy,
               "final_train": result.final_train, "seconds": result.seconds, "devices": trainer.mesh.devices.size,
               "mesh": dict(trainer.mesh.shape)}
    (result.out_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    evaluate.plot({name: result.rows}, result.out_dir / "accuracy_vs_length.png",
                  train_length=config.task.train_length, title=f"{config.task.name}",
                  chance=1 / trainer.task.n_classes)

"""Multi-host training on one machine: two JAX processes of 4 forced CPU devices each, joined by
`jax.distributed` (gloo CPU collectives, a coordinator on a free localhost port) into one
8-device mesh, run the CLI (`experiments/train.py --distributed`) for 3 steps and train as one
process on 8 forced devices and as one device do: the same losses and metrics at every step and
evaluation length, and the same final parameters and optimizer state (read back from each run's
orbax checkpoint), within float32 rounding.

Two meshes over the 8 devices (process 0 owns devices 0-3, process 1 devices 4-7):
(data=2, seq=4) puts "data" across the processes, so each process feeds half the rows of every
batch and holds half of each FSDP-sharded parameter, time being split over its own 4 devices;
(data=1, seq=8) puts time across them, so each feeds the first or last half of the time steps
and the sequence-parallel scan passes its carries from one process to the other.

JAX reads only the coordinator's address from the environment; the process count and id come
from a cluster manager (Slurm, Open MPI, Kubernetes, Cloud TPU). LAUNCH stands in for one: it
fixes those arguments of the `jax.distributed.initialize()` the CLI calls under --distributed,
runs experiments/train.py as __main__, and reports what the process held (its process index and
devices, the block of every batch array it fed to `make_array_from_process_local_data`, the part
of each training-state array on its devices).

The six processes (two runs of two, two references) run at once, compiling with XLA's
optimisations off as the test suite does; every run compiles so, so they still compare like for
like. A failing process, or the time running out, kills the rest and fails with all their output.
"""

import json
import socket
import subprocess
import sys
import textwrap
import time

import jaxlib
import numpy as np
import pytest

from experiments.training.metrics import read
from tests.experiments.training_helpers import ROOT, environment, train_command, write_tiny

TIMEOUT = 180  # seconds for all the runs together (about 30 on 2 idle cores); a hang fails with every output
STEPS = 3
TRAIN_LENGTH, EVAL_LENGTHS = 16, (16, 32)
# d_model 32: the 32 × 32 projections reach parallel.MIN_SHARDED_SIZE, so FSDP shards them
OVERRIDES = (f"train.steps={STEPS}", "model.d_model=32", f"task.train_length={TRAIN_LENGTH}",
             f"task.eval_lengths={list(EVAL_LENGTHS)}")
MULTIHOST_MESHES = {"data2_seq4": {"data": 2, "seq": 4}, "data1_seq8": {"data": 1, "seq": 8}}
TOLERANCE = 1e-5  # float32: the meshes sum in different orders

LAUNCH = textwrap.dedent('''
    """python launch.py COORDINATOR PROCESS_ID REPORT_JSON experiments/train.py ARGS...: the CLI
    as process PROCESS_ID of 2, then a report of what this process held."""
    import functools, json, os, runpy, sys
    import jax
    import numpy as np
    from experiments.training import parallel

    coordinator, process_id, report_path, script = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    jax.distributed.initialize = functools.partial(
        jax.distributed.initialize, coordinator_address=coordinator, num_processes=2, process_id=process_id,
        cluster_detection_method="deactivate", initialization_timeout=60)

    fed = set()
    make_array = jax.make_array_from_process_local_data
    def feeding(sharding, local_data, global_shape=None, *args, **kwargs):
        fed.add((tuple(np.shape(local_data)), tuple(global_shape)))
        return make_array(sharding, local_data, global_shape, *args, **kwargs)
    jax.make_array_from_process_local_data = feeding

    state = []
    place_state = parallel.place_state
    def placing(tree, mesh):
        placed = place_state(tree, mesh)
        for leaf in jax.tree.leaves(placed):
            block = parallel.process_block(leaf.sharding, leaf.shape)
            state.append([leaf.size, int(np.prod([part.stop - part.start for part in block]))])
        return placed
    parallel.place_state = placing

    sys.argv = sys.argv[4:]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        with open(report_path, "w") as file:
            json.dump({"exit": done.code, "process_index": jax.process_index(), "process_count": jax.process_count(),
                       "local_devices": jax.local_device_count(), "devices": jax.device_count(),
                       "fed": sorted(fed), "state": state}, file)
        if done.code:  # at once: JAX's shutdown at exit would wait for the other process
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise
''')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def quick_environment(devices: int) -> dict:
    """`environment(devices)` compiling as the test suite does (tests/conftest.py): XLA's
    optimisation passes cost far more than running these tiny programs. Every run here compiles
    so, the multi-host runs and the references alike."""
    env = environment(devices)
    env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"
    if jaxlib.__version__.startswith("0.10."):  # an unknown XLA flag aborts; measured on jaxlib 0.10 only
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_cpu_use_fusion_emitters=false"]))
    return env


def multihost_environment(port: int) -> dict:
    env = quick_environment(devices=4)
    for name in list(env):  # no real cluster manager's variables: the launcher says who is who
        if name.startswith(("SLURM_", "OMPI_", "PMI_", "PMIX_", "TPU_")):
            del env[name]
    env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
    env["JAX_COORDINATOR_BIND_ADDRESS"] = f"127.0.0.1:{port}"
    return env


class Processes:
    """Subprocesses run together, their output in files; `wait_all` fails with every process's
    output as soon as one fails or the time is up, and leaving the block kills what still runs."""

    def __init__(self, directory):
        self.directory, self.running = directory, {}

    def __enter__(self):
        return self

    def start(self, name: str, command: list[str], env: dict) -> None:
        with open(self.directory / f"{name}.log", "w") as log:
            self.running[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def output(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def outputs(self) -> str:
        return "\n".join(f"===== {name} (exit {process.poll()}) =====\n{self.output(name)[-4000:]}"
                         for name, process in self.running.items())

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(process.poll() is None for process in self.running.values()):
            failed = [name for name, process in self.running.items() if process.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                self.kill()
                reason = f"{', '.join(failed)} failed" if failed else f"not done in {timeout} s"
                pytest.fail(f"{reason}; killed the rest\n{self.outputs()}")
            time.sleep(0.05)
        failed = [name for name, process in self.running.items() if process.returncode != 0]
        assert not failed, f"{', '.join(failed)} failed\n{self.outputs()}"

    def kill(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
        for process in self.running.values():
            process.wait()

    def __exit__(self, *exc_info):
        self.kill()


def records(out_dir) -> dict:
    """{(step, split): the record's numbers but the throughput} from a run's metrics.jsonl, which
    holds each (step, split) once (process 0 alone writes it)."""
    table = {}
    for record in read(out_dir / "metrics.jsonl"):
        key = (record["step"], record["split"])
        assert key not in table, (out_dir, key, "twice")
        table[key] = {name: value for name, value in record.items()
                      if name not in ("step", "split", "tokens_per_second")}
    return table


def saved_state(out_dir) -> dict:
    """{leaf path: numpy array} of the final checkpoint (parameters, optimizer state, RNG keys)."""
    import jax
    import orbax.checkpoint as ocp
    from etils import epath

    path = epath.Path(out_dir / "checkpoints" / str(STEPS) / "default")
    tree = ocp.PyTreeCheckpointHandler().metadata(path)
    tree = getattr(tree, "tree", tree)
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    with ocp.PyTreeCheckpointer() as checkpointer:
        restored = checkpointer.restore(path, restore_args=restore_args)
    leaves = jax.tree_util.tree_flatten_with_path(restored)[0]
    return {jax.tree_util.keystr(keys): np.asarray(leaf) for keys, leaf in leaves}


def assert_same_training(got_dir, expected_dir, what: str) -> None:
    """The same metrics at every (step, split) and the same final state, within TOLERANCE
    (relative to the largest entry of each array)."""
    got, expected = records(got_dir), records(expected_dir)
    assert sorted(got) == sorted(expected), (what, sorted(got), sorted(expected))
    for key, reference in expected.items():
        assert got[key].keys() == reference.keys(), (what, key)
        for name in reference:
            np.testing.assert_allclose(got[key][name], reference[name], rtol=TOLERANCE, atol=0,
                                       err_msg=f"{what}: {key} {name}")
    got_state, expected_state = saved_state(got_dir), saved_state(expected_dir)
    assert got_state.keys() == expected_state.keys(), what
    assert any(name.startswith("['params']") for name in expected_state), sorted(expected_state)
    for name, reference in expected_state.items():
        assert got_state[name].shape == reference.shape and got_state[name].dtype == reference.dtype, (what, name)
        scale = float(np.max(np.abs(reference))) if reference.size else 0.0
        difference = float(np.max(np.abs(got_state[name].astype(np.float64) - reference))) if reference.size else 0.0
        assert difference <= TOLERANCE * scale, (what, name, difference, scale)


def test_two_processes_train_as_one_process_on_eight_devices_and_as_one_device(tmp_path):
    config = str(write_tiny(tmp_path))
    launch = tmp_path / "launch.py"
    launch.write_text(LAUNCH)
    # the references: one process on 8 forced devices as (data=2, seq=4), and on one device
    single = {"eight_devices": (8, {"data": 2, "seq": 4}), "one_device": (1, {"data": 1, "seq": 1})}
    with Processes(tmp_path) as processes:
        for name, mesh in MULTIHOST_MESHES.items():
            port = free_port()
            for process_id in (0, 1):
                processes.start(f"{name}_process{process_id}", [
                    sys.executable, str(launch), f"127.0.0.1:{port}", str(process_id),
                    str(tmp_path / f"{name}_process{process_id}.json"), str(ROOT / "experiments" / "train.py"),
                    "--distributed", "--config", config, *OVERRIDES, f"train.out_dir={tmp_path / name}",
                    f"train.mesh={{data={mesh['data']}, seq={mesh['seq']}}}"], multihost_environment(port))
        for name, (devices, mesh) in single.items():
            processes.start(name, train_command("--config", config, *OVERRIDES, f"train.out_dir={tmp_path / name}",
                                                f"train.mesh={{data={mesh['data']}, seq={mesh['seq']}}}"),
                            quick_environment(devices))
        processes.wait_all(TIMEOUT)
        outputs = {name: processes.output(name) for name in processes.running}

    for name, mesh in MULTIHOST_MESHES.items():
        reports = [json.loads((tmp_path / f"{name}_process{i}.json").read_text()) for i in (0, 1)]
        for process_id, report in enumerate(reports):
            where = f"{name} process {process_id}: {report}"
            assert report["exit"] == 0, where
            assert (report["process_index"], report["process_count"]) == (process_id, 2), where
            assert (report["local_devices"], report["devices"]) == (4, 8), where
            # every batch array (inputs, targets, mask; train and eval lengths), fed in halves: the
            # rows where "data" spans the processes, the time steps where "seq" does
            shapes = {tuple(globally) for _, globally in report["fed"]}
            assert {shape[1] for shape in shapes} == {TRAIN_LENGTH, *EVAL_LENGTHS}, where
            split = 0 if mesh["data"] == 2 else 1  # the axis that spans the processes
            for locally, globally in report["fed"]:
                assert locally == [size // 2 if axis == split else size for axis, size in enumerate(globally)], where
            # FSDP over "data": with data = 2 this process holds half of the big arrays, all of the rest
            held = [part / size for size, part in report["state"]]
            assert set(held) == ({0.5, 1.0} if mesh["data"] == 2 else {1.0}), where
        # only process 0 prints the accuracy table
        tables = ["final accuracy by length" in outputs[f"{name}_process{i}"] for i in (0, 1)]
        assert tables == [True, False], name
        results = json.loads((tmp_path / name / "results.json").read_text())
        assert (results["devices"], results["mesh"]) == (8, mesh), results
        # both processes wrote their shards of the checkpoint, process 0 alone the event file
        saved = tmp_path / name / "checkpoints" / str(STEPS) / "default"
        assert {path.name for path in saved.glob("ocdbt.process_*")} == {"ocdbt.process_0", "ocdbt.process_1"}, name
        assert len(list((tmp_path / name / "tensorboard").iterdir())) == 1, name
    for name, (devices, mesh) in single.items():
        results = json.loads((tmp_path / name / "results.json").read_text())
        assert (results["devices"], results["mesh"]) == (devices, mesh), results

    for name in MULTIHOST_MESHES:
        assert_same_training(tmp_path / name, tmp_path / "eight_devices", f"two processes {name} vs one process (2, 4)")
        assert_same_training(tmp_path / name, tmp_path / "one_device", f"two processes {name} vs one device")

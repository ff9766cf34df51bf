"""The Ray backend against a real local cluster (a head and a worker node on 127.0.0.1), with a
worker process killed in the middle of a run (issue 10)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import QUICK
from rnnbench.training.runner import run
from rnnbench.store import ResultStore
from rnnbench.sweeps.plan import plan_sweep
from rnnbench.sweeps.spec import load

pytestmark = pytest.mark.slow

LONG_ENOUGH = {**QUICK, "trainer.max_steps": "400", "trainer.val_every_steps": "50",
               "trainer.early_stopping": "false"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def cluster():
    pytest.importorskip("ray")
    ray_command = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    subprocess.run([ray_command, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                   check=True, capture_output=True, env=environment)
    try:
        subprocess.run([ray_command, "start", f"--address=127.0.0.1:{port}", *common], check=True,
                       capture_output=True, env=environment)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_command, "stop", "--force"], capture_output=True)


def test_a_sweep_on_a_local_cluster_retries_a_killed_run_and_records_each_run_once(cluster, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "ray", "architectures": ["rnn", "gru"], "tasks": ["adding"],
                                    "seeds": 2, "set": LONG_ENOUGH}))
    store_path = tmp_path / "r.sqlite"
    ResultStore(store_path)
    sweep = subprocess.Popen([sys.executable, "-m", "rnnbench.cli", "sweep", str(path), "--backend", "ray",
                              "--address", cluster, "--store", str(store_path), "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.5)
        for row in ResultStore(store_path).runs_frame().itertuples():
            if row.status == "running" and (tmp_path / "checkpoints" / row.run_id / "last.ckpt").exists():
                os.kill(row.pid, signal.SIGKILL)   # the Ray worker process training it
                killed = row
                break
    output = sweep.communicate(timeout=600)[0]
    assert killed is not None, "no run was caught in the middle of training:\n" + output
    assert sweep.returncode == 0, output
    runs = ResultStore(store_path).runs_frame()
    assert len(runs) == 4 and set(runs.status) == {"completed"}, output
    retried = runs.set_index("run_id").loc[killed.run_id]
    assert retried.pid != killed.pid                        # trained to the end by another process
    assert retried.environment["resumed"] is True           # from the killed attempt's checkpoint
    store = ResultStore(store_path)
    rounds = [(epoch, step) for epoch, step, name, _ in store.history(killed.run_id) if name == "val/loss"]
    assert [step for _, step in rounds] == list(range(50, 401, 50))   # each round once
    assert [epoch for epoch, _ in rounds] == list(range(len(rounds)))
    # and it ends exactly as a run never killed does
    job = next(item for item in plan_sweep(load(path)).runs if item.run_id == killed.run_id)
    reference = run(job.architecture, job.task, job.overrides, seed=job.seed, store=tmp_path / "reference.sqlite",
                    progress=False)
    assert retried.metrics == reference.metrics

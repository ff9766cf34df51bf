"""Sweeps beyond one machine: `rnnbench sweep FILE --backend ray [--address ADDR]`, with the
optional extra `pip install 'rnnbench[ray]'` on every node.

- Each run is a Ray task asking for its resources (`--threads` CPUs each, or one GPU where the
  cluster has GPUs), retried by Ray if its worker process or node dies (`RETRIES`).
- Only the driver writes the results store (SQLite does not belong on a network file system): a
  run records through a `RemoteRecorder`, whose every record (start, evaluation rounds, outcome,
  conformance verdicts) is a message on a Ray queue that the driver drains into the store.
- Checkpoints go to a storage path every node can reach (`--storage`, default: the store's
  folder, right for a cluster on one machine), so a retried run resumes from its `last.ckpt` and
  ends as an uninterrupted one would; its rounds replace the ones it repeats (numbered by step), so
  a run is recorded once however often it was retried.
- Runs are claimed in the store by the driver, so two sweeps on one store still train each run once.
"""

from __future__ import annotations

import os
import queue as queue_module
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnbench.core.errors import BenchmarkError
from rnnbench.store import ResultStore
from rnnbench.sweeps.plan import PlannedRun, SweepOutcomes
from rnnbench.sweeps.workers import POLL_S, RunSource, Scheduler, plugin_modules, prepare_process, run_job

RETRIES = 3   # Ray retries a run this many times if its worker process or node dies
FORWARDED_ENVIRONMENT = ("RNNBENCH_DATA", "WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY")


class RemoteRecorder:
    """A `rnnbench.training.recorder.Recorder` inside a Ray task: every record is a message to the driver."""

    def __init__(self, messages: Any, store_path: str, checkpoint_root: str, status: str | None) -> None:
        self.messages, self.path, self.checkpoint_root = messages, Path(store_path), Path(checkpoint_root)
        self._status = status          # the run's status in the store when the driver handed it out
        self._recorded: str | None = None

    def _send(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.messages.put((method, args, kwargs))

    def mark_stale_runs(self) -> int:
        return 0   # the driver does it for its store

    def status_of(self, run_id: str) -> str | None:
        """What this task recorded last; before that, 'interrupted' if an earlier attempt left a
        resume point in the shared storage (a retry resumes from it), else the driver's status."""
        if self._recorded is not None:
            return self._recorded
        if (self.checkpoint_root / run_id / "last.ckpt").is_file():
            return "interrupted"
        return self._status

    def start_run(self, **fields: Any) -> None:
        self._recorded = "running"
        self._send("start_run", **fields, hostname=socket.gethostname(), pid=os.getpid())

    def add_round(self, run_id: str, step: int, values: dict[str, float]) -> None:
        self._send("add_round", run_id, step, values)

    def set_curve(self, run_id: str, name: str, points: list[tuple[float, float]]) -> None:
        self._send("set_curve", run_id, name, points)

    def finish_run(self, run_id: str, status: str, **fields: Any) -> None:
        self._recorded = status
        self._send("finish_run", run_id, status, **fields)

    def conformance_verdict(self, *key: Any) -> None:
        return None   # computed here (under a second); the driver keeps it in its store

    def record_conformance(self, *key: Any, **fields: Any) -> None:
        self._send("record_conformance", *key, **fields)


def _run_remote(job: PlannedRun, modules: list[str], options: dict[str, Any], messages: Any,
                store_path: str, checkpoint_root: str, status: str | None) -> dict[str, Any]:
    """The Ray task: one run, recorded through messages."""
    prepare_process(options["threads"])
    recorder = RemoteRecorder(messages, store_path, checkpoint_root, status)
    reply = run_job(recorder, job, modules, options)
    reply.pop("stopped", None)
    return reply


@dataclass
class RayDriver(Scheduler):
    """Submits a sweep's runs as Ray tasks and writes what they report into the store."""

    address: str | None = None
    storage: Path | None = None
    threads: int = 1

    def execute(self, source: RunSource, planned: int) -> SweepOutcomes:
        try:
            import ray
            from ray.util.queue import Queue
        except ImportError:
            raise BenchmarkError("--backend ray needs Ray: pip install 'rnnbench[ray]'") from None
        checkpoint_root = Path(self.storage).expanduser() / "checkpoints" if self.storage else self.store.checkpoint_root
        self._connect(ray)
        self.store.mark_stale_runs()
        messages = Queue(actor_options={"num_cpus": 0})
        resources = ray.cluster_resources()
        gpus = 1 if resources.get("GPU", 0) >= 1 else 0
        capacity = max(1, int(resources.get("GPU", 0)) if gpus else int(resources.get("CPU", 1) // self.threads))
        task = ray.remote(_run_remote).options(num_cpus=0 if gpus else self.threads, num_gpus=gpus,
                                               max_retries=RETRIES, retry_exceptions=False)
        options = {**self.run_options(), "threads": self.threads}
        bar = self._progress_bar(planned)
        in_flight: dict[Any, PlannedRun] = {}
        held: list[PlannedRun] = []
        try:
            while True:
                while len(in_flight) < capacity:
                    job = self._next(source, held, bar, os.getpid())
                    if job is None:
                        break
                    reference = task.remote(job, plugin_modules(job), options, messages, str(self.store.path),
                                            str(checkpoint_root), self.store.status_of(job.run_id))
                    in_flight[reference] = job
                if not in_flight and not held:
                    break
                bar.set_postfix_str(", ".join(f"{j.architecture}/{j.task}/{j.seed}" for j in in_flight.values()),
                                    refresh=False)
                if in_flight:
                    ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                else:   # only runs held by another sweep: wait for them
                    ready = []
                    time.sleep(POLL_S)
                self._drain(messages)
                for reference in ready:
                    job = in_flight.pop(reference)
                    try:
                        reply = ray.get(reference)
                    except ray.exceptions.RayError as error:   # its retries are spent
                        reply = {"status": "failed", "error": f"{type(error).__name__}: "
                                                              f"{' '.join(str(error).split())[:300]}"}
                    self._drain(messages)
                    self._settle(job, reply["status"], reply.get("error"), reply.get("metrics") or {},
                                 source, bar, os.getpid())
        except KeyboardInterrupt:
            self._stop(ray, in_flight, messages, source, bar)
            raise
        finally:
            bar.close()
            ray.shutdown()
        return self.outcomes

    def _connect(self, ray: Any) -> None:
        """Join the cluster at `address` (or start a local one), forwarding the data, W&B and thread
        settings to every task."""
        environment = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if os.environ.get(name)}
        environment["OMP_NUM_THREADS"] = str(self.threads)
        try:
            ray.init(address=self.address, runtime_env={"env_vars": environment}, include_dashboard=False,
                     log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise BenchmarkError(f"cannot reach the Ray cluster at {self.address or '(a new local one)'}: "
                                 f"{' '.join(str(error).split())[:200]}; start one with `ray start --head` "
                                 f"and pass --address HOST:PORT") from None

    def _stop(self, ray: Any, in_flight: dict[Any, PlannedRun], messages: Any, source: RunSource,
              bar: Any) -> None:
        """Ctrl-C: cancel the runs in flight and record them as interrupted (they resume)."""
        for reference in in_flight:
            ray.cancel(reference)
        self._drain(messages)
        for job in in_flight.values():
            self._settle(job, "interrupted", "the sweep was stopped; the run resumes from its "
                                             "checkpoint when the sweep is started again",
                         {}, source, bar, os.getpid())

    def _drain(self, messages: Any) -> None:
        """Write what the runs reported, in the order they reported it."""
        while True:
            try:
                method, args, kwargs = messages.get_nowait()
            except queue_module.Empty:
                return
            records = {"start_run": self.store.start_run, "add_round": self.store.add_round,
                       "set_curve": self.store.set_curve, "finish_run": self.store.finish_run,
                       "record_conformance": self.store.record_conformance}
            if method in records:
                records[method](*args, **kwargs)


def execute_on_ray(store: ResultStore, source: RunSource, planned: int, **options: Any) -> SweepOutcomes:
    """Run a sweep's runs on a Ray cluster (options: address, storage, threads and the
    `Scheduler`'s)."""
    return RayDriver(store, **options).execute(source, planned)

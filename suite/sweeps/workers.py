"""Workers that start once: N long-lived processes, each importing torch and Lightning once and
then training many runs in turn (`rnnbench.training.runner.run`), fed by one driver (`execute`).

- Claims: before a run is handed to a worker, the driver claims it in the store for that worker's
  process (`ResultStore.claim`, atomic): a run held by a live process is never started twice, even
  by two sweeps on one store. A run held elsewhere waits until its holder lets go, and is then
  skipped if it completed.
- Crashes: a worker that dies (a segmentation fault, the out-of-memory killer) has its run recorded
  as failed, with the cause, and is replaced; nothing else is lost.
- Ctrl-C / SIGTERM: the workers stop their runs at the end of the current batch, each writing its
  checkpoint and its status (interrupted: the next sweep resumes it), then the driver exits 130.
- A killed driver (SIGKILL): each worker notices its parent is gone within a second and stops the
  same way, so a sweep started again resumes every interrupted run from its checkpoint.
- Threads: a worker uses `threads_per_worker` (the cores shared out, or $OMP_NUM_THREADS), and
  counts as a training process while it trains a run (`rnnbench.training.cpu_share`); on GPUs, one run per
  GPU.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from rnnbench.training import cpu_share
from rnnbench.store import ResultStore
from rnnbench.sweeps.plan import PlannedRun, SweepOutcomes

STOP_GRACE_S = 30.0     # how long a stopping worker may take to record its run
POLL_S = 0.5            # how often the driver looks at held runs and dead workers


class RunSource(Protocol):
    """Where the driver takes its runs from: a fixed plan, or a tuning study that plans as
    results come in (`rnnbench.sweeps.tuning.TuningSource`).

    failures: lines naming what the source could not do (a tuned pair none of whose trials
    completed), printed at the end of the sweep, which then exits non-zero."""

    failures: list[str]

    def next_run(self) -> PlannedRun | None:
        """The next run to start, or None when none can start until a running one finishes (with
        nothing running, None means the source is done)."""

    def finished(self, run: PlannedRun, status: str, metrics: dict[str, float]) -> None:
        """A run of this source ended (or was found completed)."""


class PlanSource:
    """A fixed list of runs."""

    def __init__(self, runs: list[PlannedRun]) -> None:
        self.pending = deque(runs)
        self.failures: list[str] = []

    def next_run(self) -> PlannedRun | None:
        return self.pending.popleft() if self.pending else None

    def finished(self, run: PlannedRun, status: str, metrics: dict[str, float]) -> None:
        pass


def threads_per_worker(workers: int) -> int:
    """$OMP_NUM_THREADS if set, else the usable CPUs shared out between the workers (at least one)."""
    configured = cpu_share.configured_threads()
    if configured is not None:
        return configured
    return max(1, cpu_share.usable_cpus() // max(workers, 1))


# --------------------------------------------------------------------------- the worker process


def worker_main(connection: Any, store_path: str, threads: int, options: dict[str, Any]) -> None:
    """A worker's life: import once, then run each job the driver sends until it sends None, the
    driver goes away or a signal stops it."""
    os.environ["OMP_NUM_THREADS"] = str(threads)   # the driver's share for each worker, for every run
    signal.signal(signal.SIGTERM, _raise_interrupt)
    parent = os.getppid()
    threading.Thread(target=_stop_when_orphaned, args=(parent,), daemon=True).start()
    try:
        prepare_process(threads)
        store = ResultStore(store_path)
        while True:
            message = connection.recv()
            if message is None:
                return
            job, modules = message
            try:
                reply = run_job(store, job, modules, options)
            finally:
                store.release(job.run_id, os.getpid())
            connection.send(reply)
            if reply["status"] == "interrupted" and reply.get("stopped"):
                return
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_when_orphaned(parent: int) -> None:
    """Stop this worker (as SIGTERM would) once its driver has died."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def prepare_process(threads: int) -> None:
    """Set up a process that will run runs: its threads, and the runner imported once."""
    import torch

    torch.set_num_threads(threads)
    from rnnbench.training import runner  # noqa: F401
    from rnnbench.training.quiet import quiet_library_chatter

    quiet_library_chatter()


def run_job(recorder: Any, job: PlannedRun, modules: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """Run one job, recording through `recorder` (`rnnbench.training.recorder.Recorder`); return a reply:
    status, metrics, error (one line), timings, seconds, and `stopped` if a signal stopped it."""
    from rnnbench.training import runner
    from rnnbench.core.errors import BenchmarkError

    for module in modules:   # plugins registered in the driver's process, not by entry point
        importlib.import_module(module)
    started = time.perf_counter()
    reply: dict[str, Any] = {"run_id": job.run_id, "metrics": {}, "error": None, "timings": {}}
    try:
        result = runner.run(job.architecture, job.task, job.overrides, preset=job.preset, seed=job.seed,
                            store=recorder, progress=False, check=options["check"],
                            keep_last=options["keep_last"], wandb=options["wandb"],
                            tensorboard=options["tensorboard"],
                            group=options.get("group"))
        reply.update(status="completed", metrics=result.metrics, timings=result.timings)
    except KeyboardInterrupt:
        reply.update(status="interrupted", error="stopped by a signal; its checkpoint is kept",
                     stopped=True)
    except BenchmarkError as error:
        reply.update(status=recorder.status_of(job.run_id) or "failed", error=" ".join(str(error).split()))
    except Exception as error:   # recorded by the runner as failed; the worker goes on
        reply.update(status=recorder.status_of(job.run_id) or "failed",
                     error=f"{type(error).__name__}: {' '.join(str(error).split())}")
    reply["seconds"] = time.perf_counter() - started
    return reply


# --------------------------------------------------------------------------- the driver


@dataclass
class _Worker:
    process: Any
    connection: Any
    job: PlannedRun | None = None


@dataclass
class Scheduler:
    """What every sweep backend does around its runs: take the next run that is neither completed
    nor held by another process, claim it, and settle its outcome (recorded, released, counted,
    reported). The backends: `Driver` (local workers) and `rnnbench.sweeps.ray_driver.RayDriver`."""

    store: ResultStore
    check: bool = True
    keep_last: bool = False
    wandb: bool = False
    tensorboard: bool = False
    group: str | None = None
    progress: bool = True
    outcomes: SweepOutcomes = field(default_factory=SweepOutcomes)

    def run_options(self) -> dict[str, Any]:
        """What each run is given besides its job (see `run_job`)."""
        return {"check": self.check, "keep_last": self.keep_last, "wandb": self.wandb,
                "tensorboard": self.tensorboard, "group": self.group}

    def _progress_bar(self, planned: int) -> tqdm:
        return tqdm(total=planned, desc="sweep", unit="run", disable=not self.progress, dynamic_ncols=True)

    def _next(self, source: RunSource, held: list[PlannedRun], bar: tqdm, pid: int) -> PlannedRun | None:
        """The next run that is neither completed nor held elsewhere, claimed for process `pid`."""
        while True:
            job = self._take_released(held) or source.next_run()
            if job is None:
                return None
            record = self.store.get(job.run_id)
            if record is not None and record.status == "completed":
                self.outcomes["skipped"] += 1
                bar.update(1)
                source.finished(job, "completed", record.metrics)
                continue
            if self.store.claim(job.run_id, pid) is not None:
                held.append(job)
                continue
            return job

    def _take_released(self, held: list[PlannedRun]) -> PlannedRun | None:
        for job in list(held):
            if self.store.claim_holder(job.run_id) is None:
                held.remove(job)
                return job
        return None

    def _settle(self, job: PlannedRun, status: str, error: str | None, metrics: dict[str, float],
                source: RunSource, bar: tqdm, pid: int | None) -> None:
        """A run ended: record it if it could not (it failed before it recorded itself, e.g. its
        dataset went missing, or its process died), release its claim, count and report it."""
        if status != "completed" and self.store.status_of(job.run_id) in (None, "running"):
            self._record(job, status if status == "interrupted" else "failed",
                         error or "the run ended without recording a result")
        self.store.release(job.run_id, pid)
        record = self.store.get(job.run_id) if status != "completed" else None
        self._count(job, status, (record.error if record else None) or error, metrics, bar)
        source.finished(job, status, metrics)

    def _record(self, job: PlannedRun, status: str, error: str) -> None:
        self.store.record_failure(run_id=job.run_id, config_id=job.config_id, architecture=job.architecture,
                                  task=job.task, architecture_version=job.architecture_version,
                                  task_version=job.task_version, seed=job.seed, preset=job.preset,
                                  config=job.config, error=error, status=status)

    def _count(self, job: PlannedRun, status: str, error: str | None, metrics: dict[str, float],
               bar: tqdm) -> None:
        self.outcomes[status] += 1
        bar.update(1)
        if status == "completed":
            primary = _primary(job.task, metrics)
            tqdm.write(f"{job.label}: completed" + (f", {primary}" if primary else ""))
        else:
            line = f"{job.label}: {status}: {error or '(no message)'}"
            self.outcomes.errors.append(line)
            tqdm.write(line)


@dataclass
class Driver(Scheduler):
    """Starts and feeds the local workers; see the module docstring."""

    workers: int = 1

    def __post_init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []
        self._gpus = _gpu_count()
        if self._gpus:
            self.workers = min(self.workers, self._gpus)   # one run per GPU

    # ---- workers

    def _start_worker(self, slot: int) -> _Worker:
        ours, theirs = self._context.Pipe()
        options = self.run_options()
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if self._gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
        try:
            process = self._context.Process(target=worker_main, name=f"rnnbench-worker-{slot}",
                                            args=(theirs, str(self.store.path),
                                                  threads_per_worker(self.workers), options))
            process.start()
        finally:
            if self._gpus:
                if saved is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = saved
        theirs.close()
        return _Worker(process, ours)

    # ---- the loop

    def execute(self, source: RunSource, planned: int) -> SweepOutcomes:
        """Run what `source` gives until it is exhausted; return the outcomes."""
        self.store.mark_stale_runs()
        bar = self._progress_bar(planned)
        held: list[PlannedRun] = []           # claimed by another process: retried later
        try:
            self._pool = [self._start_worker(slot) for slot in range(self.workers)]
            while True:
                for worker in self._idle():
                    if not worker.process.is_alive():   # died while idle: replaced, nothing lost
                        worker = self._replace(worker)
                    job = self._next(source, held, bar, worker.process.pid)
                    if job is None:
                        break
                    worker.job = job
                    worker.connection.send((job, plugin_modules(job)))
                busy = [worker for worker in self._pool if worker.job is not None]
                if not busy and not held:   # nothing running, nothing to wait for, nothing to start
                    break
                self._show(bar)
                self._collect(busy, source, bar)
        except KeyboardInterrupt:
            self._stop_all(source, bar)
            raise
        finally:
            self._shut_down()
            bar.close()
        return self.outcomes

    def _idle(self) -> list[_Worker]:
        return [worker for worker in self._pool if worker.job is None]

    def _collect(self, busy: list[_Worker], source: RunSource, bar: tqdm) -> None:
        waitables = [worker.connection for worker in busy] + [worker.process.sentinel for worker in busy]
        ready = multiprocessing.connection.wait(waitables, timeout=POLL_S) if waitables else time.sleep(POLL_S)
        for worker in busy:
            if worker.connection in (ready or []) or worker.connection.poll():
                try:
                    reply = worker.connection.recv()
                except (EOFError, OSError):
                    reply = None
                if reply is not None:
                    self._finish(worker, reply, source, bar)
                    continue
            if not worker.process.is_alive():
                self._crashed(worker, source, bar)

    def _finish(self, worker: _Worker, reply: dict[str, Any], source: RunSource, bar: tqdm) -> None:
        job = worker.job
        worker.job = None
        self._settle(job, reply["status"], reply.get("error"), reply.get("metrics") or {}, source, bar,
                     worker.process.pid)
        if reply.get("stopped"):   # a signal stopped this worker alone: it has exited
            self._replace(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        slot = self._pool.index(worker)
        worker.process.join(timeout=STOP_GRACE_S)
        worker.connection.close()
        self._pool[slot] = self._start_worker(slot)
        return self._pool[slot]

    def _crashed(self, worker: _Worker, source: RunSource, bar: tqdm) -> None:
        """Record the run of a worker that died, as failed with the cause, and replace it."""
        job = worker.job
        code = worker.process.exitcode
        cause = (f"its worker process was killed by signal {-code} ({_signal_name(-code)})"
                 if code is not None and code < 0 else f"its worker process exited with code {code}")
        recorded = self.store.status_of(job.run_id)
        status = recorded if recorded not in (None, "running") else "failed"
        self._settle(job, status, cause, {}, source, bar, worker.process.pid)
        worker.job = None
        self._replace(worker)

    def _show(self, bar: tqdm) -> None:
        running = [f"{w.job.architecture}/{w.job.task}/{w.job.seed}" for w in self._pool if w.job]
        bar.set_postfix_str(", ".join(running), refresh=False)

    # ---- stopping

    def _stop_all(self, source: RunSource, bar: tqdm) -> None:
        """Ctrl-C: every busy worker stops its run at a clean point and records it."""
        busy = [worker for worker in self._pool if worker.job is not None]
        for worker in busy:
            if worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while busy and time.monotonic() < deadline:
            for worker in list(busy):
                try:
                    if worker.connection.poll(0.1):
                        reply = worker.connection.recv()
                        reply.pop("stopped", None)   # no replacement: the sweep is stopping
                        self._finish(worker, reply, source, bar)
                        busy.remove(worker)
                    elif not worker.process.is_alive():
                        busy.remove(worker)
                        self._record_interrupted(worker)
                except (EOFError, OSError, KeyboardInterrupt):
                    continue
        for worker in busy:
            worker.process.kill()
            self._record_interrupted(worker)

    def _record_interrupted(self, worker: _Worker) -> None:
        job = worker.job
        worker.job = None
        if self.store.status_of(job.run_id) in (None, "running"):
            self._record(job, "interrupted", "the sweep was stopped before the run could record itself")
        self.store.release(job.run_id)
        self.outcomes["interrupted"] += 1

    def _shut_down(self) -> None:
        for worker in self._pool:
            try:
                worker.connection.send(None)
            except (OSError, ValueError):
                pass
        for worker in self._pool:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._pool = []


def execute(runs: list[PlannedRun], store: ResultStore, **options: Any) -> SweepOutcomes:
    """Run a fixed list of runs with a `Driver` (options: workers, check, keep_last, wandb,
    tensorboard, group, progress); completed runs are skipped."""
    return Driver(store, **options).execute(PlanSource(runs), len(runs))


def plugin_modules(job: PlannedRun) -> list[str]:
    """The modules that registered the job's architecture and task, for a worker to import: a
    plugin registered by the user's own code (not through an entry point) is found there too."""
    from rnnbench.core import registry

    modules = [registry.get_architecture(job.architecture).__module__, registry.get_task(job.task).__module__]
    return [module for module in dict.fromkeys(modules) if module not in ("__main__", "__mp_main__")]


def _primary(task_name: str, metrics: dict[str, float]) -> str:
    from rnnbench.core import registry

    name = registry.get_task(task_name).primary_metric
    value = metrics.get(f"test/{name}")
    return f"test {name} {value:.4g}" if value is not None else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


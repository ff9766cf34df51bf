import multiprocessing
import subprocess
import sys

from rnnbench.store import ResultStore


def _start(store, run_id, seed=0):
    store.start_run(run_id=run_id, config_id="c", architecture="lstm", task="copy",
                    architecture_version=1, task_version=1, seed=seed, preset=None,
                    config={"arch.hidden_size": 8}, task_info={"primary_metric": "accuracy",
                                                               "direction": "max"})


def test_a_run_round_trips(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    _start(store, "abc")
    assert store.status_of("abc") == "running"
    store.add_round("abc", 10, {"val/accuracy": 0.5})
    store.finish_run("abc", "completed", metrics={"test/accuracy": 0.75}, parameters=10,
                     items_per_second=1.0, environment={"torch": "x"})
    record = store.get("abc")
    assert record.status == "completed" and record.metrics == {"test/accuracy": 0.75}
    assert store.history("abc") == [(0, 10, "val/accuracy", 0.5)]
    frame = store.runs_frame()
    assert frame.loc[0, "environment"] == {"torch": "x"} and frame.loc[0, "parameters"] == 10


def test_runs_left_running_by_a_dead_process_are_marked_interrupted(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    _start(store, "dead")
    _start(store, "alive")
    import sqlite3
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET pid = ? WHERE run_id = 'dead'", (child.pid,))
    assert store.mark_stale_runs() == 1
    assert store.status_of("dead") == "interrupted"
    assert store.status_of("alive") == "running"   # this very process


def _write_many(path, worker):
    store = ResultStore(path)
    for index in range(40):
        _start(store, f"{worker}-{index}", seed=index)
        store.add_round(f"{worker}-{index}", 0, {"loss": float(index)})


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(path, name)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(ResultStore(path).runs_frame()) == 80

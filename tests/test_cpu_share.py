"""Runs on one machine share its cores (`rnnbench.training.cpu_share`): a run alone takes every usable CPU,
runs started beside each other split them, $OMP_NUM_THREADS decides when set, and every run
records the thread count it trained with and why."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from helpers import QUICK
from rnnbench.training import cpu_share
from rnnbench.training.runner import run
from rnnbench.store import ResultStore


@pytest.fixture
def registry_folder(tmp_path, monkeypatch):
    folder = tmp_path / "training"
    monkeypatch.setattr(cpu_share, "_folder", lambda: folder)
    monkeypatch.setattr(cpu_share, "usable_cpus", lambda: 4)
    monkeypatch.delenv(cpu_share.THREADS_ENV, raising=False)
    return folder


@pytest.fixture
def other_training_process(registry_folder):
    """A live process registered as training (as a second `rnnbench run` would be)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    registry_folder.mkdir(parents=True, exist_ok=True)
    (registry_folder / str(process.pid)).touch()
    yield process
    process.kill()
    process.wait()


def test_a_run_alone_takes_every_usable_cpu(registry_folder):
    cpu_share.register()
    assert cpu_share.threads_for_run() == (4, "4 CPUs shared by 1 training process(es)")


def test_runs_beside_each_other_share_the_cpus(other_training_process):
    cpu_share.register()
    assert cpu_share.training_processes() == 2
    assert cpu_share.threads_for_run()[0] == 2


def test_a_process_that_died_without_unregistering_is_not_counted(registry_folder):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    registry_folder.mkdir(parents=True)
    (registry_folder / str(dead.pid)).touch()
    cpu_share.register()
    assert cpu_share.training_processes() == 1
    assert not (registry_folder / str(dead.pid)).exists()


def test_the_thread_variable_decides_when_set(other_training_process, monkeypatch):
    monkeypatch.setenv(cpu_share.THREADS_ENV, "3")
    assert cpu_share.threads_for_run() == (3, "OMP_NUM_THREADS=3")


def test_a_run_trains_with_its_share_and_records_it(other_training_process, tmp_path):
    before = torch.get_num_threads()
    try:
        result = run("rnn", "copy", QUICK, store=tmp_path / "r.sqlite", progress=False, check=False)
        trained_with = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert trained_with == 2
    environment = ResultStore(tmp_path / "r.sqlite").runs_frame().set_index("run_id").environment[result.run_id]
    assert environment["threads"] == 2
    assert environment["thread_policy"] == "4 CPUs shared by 2 training process(es)"
    assert not (tmp_path / "training" / str(os.getpid())).exists()   # counted only while it trained


def test_a_process_counts_only_while_it_trains(registry_folder):
    mark = registry_folder / str(os.getpid())
    with cpu_share.training():
        assert mark.exists() and cpu_share.training_processes() == 1
    assert not mark.exists()


def test_a_temp_folder_that_cannot_be_written_does_not_stop_a_run(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(cpu_share, "_folder", lambda: blocked / "training")
    monkeypatch.setattr(cpu_share, "usable_cpus", lambda: 4)
    monkeypatch.delenv(cpu_share.THREADS_ENV, raising=False)
    cpu_share.register()
    with cpu_share.training():
        assert cpu_share.threads_for_run() == (4, "4 CPUs shared by 1 training process(es)")

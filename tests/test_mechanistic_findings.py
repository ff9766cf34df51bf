"""Published findings of the mechanistic track, reproduced by training (slow: `nox -s slow`).

Each test states the paper's claim, trains through the suite's own runner at a budget this CPU
affords, and asserts the measured margin. A finding that does not reproduce at this budget is a
strict expected failure whose reason says what was measured: it starts failing loudly the day it
does reproduce.
"""

from __future__ import annotations

import pytest

from rnnbench.training import runner

pytestmark = pytest.mark.slow

CHOMSKY = {"arch.hidden_size": "64", "trainer.max_steps": "2000", "task.test_length_step": "50",
           "task.eval_per_length": "16"}


def _test_metric(architecture: str, task: str, settings: dict, seed: int, tmp_path, metric: str = "test/accuracy") -> float:
    result = runner.run(architecture, task, settings, seed=seed, store=tmp_path / "findings.sqlite", progress=False)
    return result.metrics[metric]


def test_the_lstm_solves_parity_check_at_unseen_lengths(tmp_path):
    """Deletang et al. 2023 (table 2, figure 3): the LSTM solves the regular tasks and generalises
    to lengths it never saw. Trained on n = 1-40 for 2,000 steps, scored on n = 41-491 (every
    50th length). Measured: 1.0 on each of 3 seeds, about 14 s a run."""
    scores = [_test_metric("lstm", "parity_check", CHOMSKY, seed, tmp_path) for seed in range(3)]
    assert min(scores) >= 0.9, scores


@pytest.mark.xfail(strict=True, reason=(
    "does not reproduce at this budget: the Elman RNN (tanh, 64 units, 2,000 steps, Adam 1e-3) "
    "scored 1.0 on parity_check at n = 41-491 on each of 3 seeds, as reliably as the LSTM; Deletang "
    "et al.'s spread comes from many more seeds and hyper-parameters than a CPU runs"))
def test_the_elman_rnn_does_not_reliably_solve_parity_check(tmp_path):
    """Deletang et al. 2023: the Elman RNN generalises on the regular tasks less reliably than the
    LSTM. Claimed here as: at least one of 3 seeds stays below 0.9 at unseen lengths."""
    scores = [_test_metric("rnn", "parity_check", CHOMSKY, seed, tmp_path) for seed in range(3)]
    assert min(scores) < 0.9, scores


def test_negative_eigenvalues_let_mamba_track_parity(tmp_path):
    """Grazzi et al. 2025 (section 4, table 2): a diagonal linear recurrence whose transitions lie
    in (0, 1), Mamba as published, cannot count modulo 2 and stays near chance on parity at
    lengths beyond training; with transitions in (-1, 1) it learns parity. Running parity, trained
    on n = 1-40 for 2,000 steps at 64 units, tested on n = 41-491. Measured on seeds 0 and 1:
    positive 0.549 and 0.548 at test (0.86 at validation), negative 0.858 and 0.976 at test (1.0
    at validation); about 75 s a run."""
    settings = {**CHOMSKY, "arch.hidden_size": "64"}
    for seed in range(2):
        positive = runner.run("mamba", "parity", {**settings, "arch.negative_eigenvalues": "false"}, seed=seed,
                              store=tmp_path / "findings.sqlite", progress=False).metrics
        negative = runner.run("mamba", "parity", {**settings, "arch.negative_eigenvalues": "true"}, seed=seed,
                              store=tmp_path / "findings.sqlite", progress=False).metrics
        assert abs(positive["test/accuracy"] - 0.5) < 0.15, positive      # chance beyond training
        assert negative["val/accuracy"] >= 0.95, negative                  # learned where trained
        assert negative["test/accuracy"] >= positive["test/accuracy"] + 0.2, (positive, negative)


def test_mqar_accuracy_grows_with_the_recurrent_state(tmp_path):
    """Arora et al. 2023 (Zoology, section 4, figure 2): a gated recurrence solves multi-query
    associative recall only with enough state for the key-value pairs, so its accuracy grows with
    its state size. Mamba at width 32 with N = 1, 4 and 16 states per channel (the run records its
    state, `model/state_floats`: 256, 448 and 1,216 floats), 4 pairs, 64 tokens, sequences of 32,
    2,000 steps. Measured (seed 0): 0.461, 0.915 and 0.974; 27-58 s a run."""
    settings = {"arch.hidden_size": "32", "task.vocab_size": "64", "task.num_pairs": "4", "task.seq_len": "32",
                "trainer.max_steps": "2000", "optim.lr": "3e-3"}
    curve = []
    for state_size in (1, 4, 16):
        metrics = runner.run("mamba", "mqar", {**settings, "arch.state_size": str(state_size)},
                             store=tmp_path / "findings.sqlite", progress=False).metrics
        curve.append((metrics["model/state_floats"], metrics["test/accuracy"]))
    states, accuracies = zip(*curve)
    assert list(states) == sorted(states), curve
    assert accuracies[0] <= 0.6 and accuracies[-1] >= 0.9, curve
    assert accuracies[-1] > accuracies[1] > accuracies[0], curve

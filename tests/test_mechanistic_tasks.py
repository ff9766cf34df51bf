"""The mechanistic track's generators: sizes, the same data from the same seed, training and test
lengths that do not overlap, and answers that a brute-force solver, written here independently
of the task's own code, derives from the input alone."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from rnnbench import IGNORE_INDEX
from rnnbench.core import registry
from rnnbench.core.errors import BenchmarkError
from rnnbench.tasks import chomsky, recall, state_tracking
from rnnbench.toolkit.length_generalisation import LengthGeneralisationTask
from rnnbench.toolkit.metrics import AccuracyByLength

LENGTH_TASKS = sorted(name for name, cls in registry.tasks().items() if issubclass(cls, LengthGeneralisationTask))
ANSWER_TASKS = ["mqar", "in_context_recall", "noisy_recall", "fuzzy_recall", "selective_copy", "compression",
                "memorization"]


def _task(name: str, **options):
    cls = registry.tasks()[name]
    return cls(cls.Options(**options))


def test_the_track_is_registered():
    assert set(LENGTH_TASKS) == {"even_pairs", "parity_check", "cycle_navigation", "modular_arithmetic",
                                 "reverse_string", "stack_manipulation", "modular_arithmetic_brackets",
                                 "solve_equation", "parity", "modular_counting", "permutations_a5",
                                 "permutations_s5"}
    assert set(ANSWER_TASKS) <= set(registry.tasks())


@pytest.mark.parametrize("name", LENGTH_TASKS)
def test_length_task_sizes_and_vocabulary(name):
    task = _task(name)
    for n in (1, 2, 7, 30):
        data = task.generate(5, n, torch.Generator().manual_seed(n))
        assert data.inputs.shape == data.targets.shape == data.answer.shape
        assert data.inputs.shape[0] == 5 and data.inputs.shape[1] >= n
        assert 0 <= int(data.inputs.min()) and int(data.inputs.max()) < task.vocab_size
        answers = data.targets[data.answer]
        assert len(answers) and 0 <= int(answers.min()) and int(answers.max()) < task.num_classes
        assert bool((data.targets[~data.answer] == IGNORE_INDEX).all())


@pytest.mark.parametrize("name", LENGTH_TASKS)
def test_the_same_seed_gives_the_same_data_and_lengths_do_not_overlap(name):
    task = _task(name, max_length=6, test_min_length=7, test_max_length=12, train_size=64, eval_per_length=3)
    first, again, other = (task.splits(16, seed) for seed in (3, 3, 4))
    for split in ("train", "val", "test"):
        a, b = next(iter(getattr(first, split))), next(iter(getattr(again, split)))
        assert torch.equal(a.inputs.values, b.inputs.values) and torch.equal(a.targets, b.targets)
    assert not torch.equal(next(iter(first.test)).inputs.values, next(iter(other.test)).inputs.values)
    trained = set(torch.cat([batch.instance_length for batch in first.train]).tolist())
    tested = torch.cat([batch.instance_length for batch in first.test])
    assert trained == set(range(1, 7)) and set(tested.tolist()) == set(range(7, 13))
    assert len(tested) == 6 * 3


def test_test_lengths_within_the_training_lengths_are_refused():
    with pytest.raises(BenchmarkError, match="task.test_min_length=41"):
        _task("parity_check", test_min_length=30)


# --------------------------------------------------------------------------- brute-force solvers

SYMBOLS = {chomsky.DIGIT + d: str(d) for d in range(5)} | {
    chomsky.PLUS: "+", chomsky.MINUS: "-", chomsky.TIMES: "*", chomsky.OPEN: "(", chomsky.CLOSE: ")"}


def _string(row, answer_row):
    """The string part of one generated example (the steps before its first answer)."""
    first = int(torch.nonzero(answer_row)[0])
    return row[:first].tolist()


def _python(tokens, x=None) -> int:
    text = "".join(str(x) if t == chomsky.UNKNOWN else SYMBOLS[t] for t in tokens)
    return eval(text) % 5     # the test's own solver: Python's arithmetic on the generated text


def _solve(name: str, s: list[int]) -> list[int]:
    bits = [t - 1 for t in s]
    if name == "even_pairs":
        return [int(sum(a != b for a, b in zip(bits, bits[1:])) % 2 == 0)]
    if name == "parity_check":
        return [sum(bits) % 2]
    if name == "cycle_navigation":
        return [sum({0: 0, 1: 1, 2: -1}[b] for b in bits) % 5]
    if name in ("modular_arithmetic", "modular_arithmetic_brackets"):
        return [_python(s)]
    if name == "reverse_string":
        return bits[::-1]
    if name == "stack_manipulation":
        stack: list[int] = []
        for t in s:
            if t in (1, 2):
                stack.append(t - 1)
            elif t == chomsky.POP:
                stack = stack[:-1]
            else:
                stack.append(t - chomsky.PUSH_A)
        return stack[::-1] + [chomsky.EMPTY] * (len(s) - len(stack))
    if name == "solve_equation":
        expression, result = s[:-2], s[-1] - chomsky.DIGIT
        solutions = [x for x in range(5) if _python(expression, x) == result]
        assert len(solutions) == 1, "the equation must have exactly one solution"
        return solutions
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["even_pairs", "parity_check", "cycle_navigation", "modular_arithmetic",
                                  "reverse_string", "stack_manipulation", "modular_arithmetic_brackets",
                                  "solve_equation"])
def test_chomsky_answers_follow_from_the_input(name):
    task = _task(name)
    generator = torch.Generator().manual_seed(0)
    for n in range(1, 25):
        data = task.generate(6, n, generator)
        for row in range(6):
            expected = _solve(name, _string(data.inputs[row], data.answer[row]))
            assert data.targets[row][data.answer[row]].tolist() == expected, (name, n, row)


@pytest.mark.parametrize("name, even_only", [("permutations_a5", True), ("permutations_s5", False)])
def test_permutation_word_problems_compose_permutations(name, even_only):
    elements, _ = state_tracking.permutation_group(even_only)
    assert len(elements) == (60 if even_only else 120)
    data = _task(name).generate(4, 9, torch.Generator().manual_seed(1))
    for row in range(4):
        state = tuple(range(5))
        for letter, answer in zip(data.inputs[row].tolist(), data.targets[row].tolist()):
            g = elements[letter - 1]
            state = tuple(g[state[i]] for i in range(5))      # apply the prefix, then g
            assert elements[answer] == state


def test_counting_word_problems_are_running_sums():
    for name, modulus in (("parity", 2), ("modular_counting", 5)):
        data = _task(name).generate(3, 11, torch.Generator().manual_seed(2))
        expected = torch.cumsum(data.inputs - 1, dim=1) % modulus
        assert torch.equal(data.targets, expected)


def _recall_answers_from_context(inputs: list[int], asked: list[bool]) -> list[int]:
    """For single-token keys: each asked position's value is the token that followed the key's
    previous occurrence."""
    answers = []
    for position in [p for p, a in enumerate(asked) if a]:
        key = inputs[position - 1]
        earlier = [p for p in range(position - 1) if inputs[p] == key and p + 1 < position - 1]
        answers.append(inputs[earlier[-1] + 1])
    return answers


@pytest.mark.parametrize("name", ["in_context_recall", "noisy_recall"])
def test_recall_answers_follow_from_the_context(name):
    task = _task(name, seq_len=64)
    inputs, targets, answer = task.make(20, torch.Generator().manual_seed(3))
    assert inputs.shape == (20, 64) and bool(answer.any(1).all())
    for row in range(20):
        asked = answer[row].tolist()
        assert _recall_answers_from_context(inputs[row].tolist(), asked) == targets[row][answer[row]].tolist()


def test_mqar_answers_are_the_values_of_the_queried_keys():
    task = _task("mqar", vocab_size=64, seq_len=32, num_pairs=4)
    inputs, targets, answer = task.make(50, torch.Generator().manual_seed(4))
    assert bool((answer.sum(1) == 4).all())
    for row in range(50):
        context = dict(zip(inputs[row, 0:8:2].tolist(), inputs[row, 1:8:2].tolist()))
        assert len(context) == 4, "keys are distinct"
        for step in torch.nonzero(answer[row]).squeeze(1).tolist():
            assert step >= 8 and targets[row, step] == context[int(inputs[row, step])]


def test_selective_copy_answers_are_the_scattered_tokens_in_order():
    task = _task("selective_copy", seq_len=40, tokens_to_copy=5)
    inputs, targets, answer = task.make(30, torch.Generator().manual_seed(5))
    blank, copy = task.options.vocab_size - 2, task.options.vocab_size - 1
    for row in range(30):
        before = inputs[row, :int(torch.nonzero(inputs[row] == copy)[0])]
        assert targets[row][answer[row]].tolist() == before[before != blank].tolist()


def test_memorization_keeps_one_fact_per_key_across_examples_and_seeds():
    task = _task("memorization")
    facts: dict[int, int] = {}
    for seed in (6, 7):
        inputs, targets, answer = task.make(40, torch.Generator().manual_seed(seed))
        for key, value in zip(inputs[:, 0::2].flatten().tolist(), targets[:, 1::2].flatten().tolist()):
            assert facts.setdefault(key, value) == value


def test_compression_asks_for_every_token_but_the_compression_token():
    task = _task("compression", seq_len=12)
    inputs, targets, answer = task.make(8, torch.Generator().manual_seed(8))
    assert torch.equal(targets[:, :-1], inputs[:, :-1]) and not bool(answer[:, -1].any())


def _key_runs(row: list[int], keys: int) -> set[int]:
    """Lengths of the maximal runs of key tokens (ids below `keys`) in one sequence: a key motif
    is followed by value tokens, so each run is one key."""
    runs, length = set(), 0
    for token in [*row, keys]:
        if token < keys:
            length += 1
        elif length:
            runs.add(length)
            length = 0
    return runs


def test_fuzzy_recall_evaluates_on_the_longest_keys():
    task = _task("fuzzy_recall", seq_len=64)
    keys = (task.options.vocab_size - 1) // 2
    train = task.make(30, torch.Generator().manual_seed(9))
    test = task.make_evaluation(30, torch.Generator().manual_seed(9))
    assert train[0].shape == test[0].shape == (30, 64) and bool(test[2].any(1).all())
    assert set().union(*(_key_runs(row, keys) for row in test[0].tolist())) == {3}
    assert set().union(*(_key_runs(row, keys) for row in train[0].tolist())) == {1, 2, 3}


# --------------------------------------------------------------------------- scoring by length


def test_accuracy_by_length_weighs_every_length_the_same():
    metric = AccuracyByLength(max_length=10)
    logits = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.0]]])   # predicts 1, 0, 0, 0
    targets = torch.tensor([[1], [1], [1], [0]])
    lengths = torch.tensor([3, 3, 3, 7])        # length 3: 1 of 3 right; length 7: 1 of 1
    metric.update(logits, targets, torch.ones(4, 1, dtype=torch.bool), lengths)
    assert metric.compute().item() == pytest.approx((1 / 3 + 1) / 2)
    assert metric.curve() == [(3.0, pytest.approx(1 / 3)), (7.0, 1.0)]


def test_a_run_records_its_accuracy_against_length(tmp_path):
    from rnnbench.store import ResultStore
    from rnnbench.training import runner

    result = runner.run("lstm", "parity_check", {"trainer.max_steps": "2"}, preset="quick",
                        store=tmp_path / "r.sqlite", progress=False)
    curve = ResultStore(tmp_path / "r.sqlite").curve(result.run_id, "test/accuracy")
    assert [n for n, _ in curve] == list(range(9, 17))
    assert sum(accuracy for _, accuracy in curve) / len(curve) == pytest.approx(result.metrics["test/accuracy"])


def test_generated_permutation_tables_are_groups():
    for even_only in (True, False):
        elements, table = state_tracking.permutation_group(even_only)
        assert elements[0] == tuple(range(5))                      # the identity first
        assert torch.equal(table[0], torch.arange(len(elements)))
        for a, b, c in itertools.islice(itertools.product(range(len(elements)), repeat=3), 0, 2000, 7):
            assert table[table[a, b], c] == table[a, table[b, c]]     # associative


def test_recall_sequences_have_their_length():
    rng = random.Random(0)
    for _ in range(200):
        tokens, asked = recall.recall_sequence(rng, 32, range(7), range(7, 15), pad=15, key_motifs=3,
                                               value_motifs=3)
        assert len(tokens) == len(asked) == 32 and asked[-1]

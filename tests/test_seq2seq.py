"""Encoder-decoder tasks: SCAN and reversal, their metrics, decoding and training options."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from helpers import matrix_columns, matrix_rows
from rnnbench.core import registry
from rnnbench.cli import main
from rnnbench.core.contracts import (DECODER, IGNORE_INDEX, Batch, Capabilities, DecoderParts,
                                Requirements, SequenceBatch, compatibility)
from rnnbench.toolkit.decoding import beam_search, greedy_decode, length_normalised, mask_after_end
from rnnbench.toolkit.metrics import ExactMatch, SequenceTokenAccuracy
from rnnbench.toolkit.seq2seq_head import Seq2SeqHead, inverse_sigmoid
from rnnbench.tasks.seq2seq import (BOS, EOS, Pairs, Scan, ScanOptions,
                                    hold_out, make_reversal, read_scan)


def _scan(**options) -> Scan:
    return Scan(ScanOptions(**options))


# --------------------------------------------------------------------------- data


@pytest.mark.data("scan")
def test_scan_files_parse_into_commands_and_actions():
    from rnnbench.toolkit.datasets import require

    pairs = read_scan(require("scan") / "tasks_train_simple.txt")
    assert len(pairs) == 16_728
    command, actions = pairs[1]
    assert command == "run opposite left after walk right".split()
    assert actions == "I_TURN_RIGHT I_WALK I_TURN_LEFT I_TURN_LEFT I_RUN".split()
    assert len(read_scan(require("scan") / "tasks_test_length.txt")) == 3_920


def test_hold_out_is_seeded_disjoint_and_ten_percent():
    train, val = hold_out(1000, 0.1)
    assert len(val) == 100 and len(train) == 900
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))
    assert torch.equal(hold_out(1000, 0.1)[1], val)


@pytest.mark.data("scan")
def test_scan_validation_is_held_out_of_train_and_test_is_the_test_file():
    task = _scan(split="length")
    examples = task.examples()
    commands = {split: {" ".join(c) for c, _ in pairs} for split, pairs in examples.items()}
    assert len(examples["val"]) == round(16_990 * 0.1) and len(examples["train"]) == 16_990 - 1699
    assert commands["train"].isdisjoint(commands["val"])
    assert len(examples["test"]) == 3_920
    # the length split: test outputs are longer than every training output
    assert max(len(a) for _, a in examples["train"]) < min(len(a) for _, a in examples["test"])


@pytest.mark.data("scan")
def test_scan_batches_shift_targets_for_the_decoder():
    task = _scan(train_examples=50, eval_examples=20)
    batch = next(iter(task.splits(8, seed=0).val))
    targets, inputs = batch.targets, batch.decoder_inputs.values
    assert (inputs[:, 0] == BOS).all()
    lengths = (targets != IGNORE_INDEX).sum(dim=1)
    assert torch.equal(batch.decoder_inputs.lengths, lengths)
    assert (targets[torch.arange(len(lengths)), lengths - 1] == EOS).all()
    real = inputs[:, 1:] != 0
    assert torch.equal(inputs[:, 1:][real], targets[:, :-1][real])
    assert task.input_spec().target_vocab_size == 3 + 6          # reserved + the six actions


def test_reversal_targets_are_the_reversed_sources():
    pairs = make_reversal(50, 6, torch.Generator().manual_seed(0))
    for i in range(50):
        n = int(pairs.source_lengths[i])
        source = pairs.sources[i, :n] - 1
        assert torch.equal(pairs.targets[i, :n] - 3, source.flip(0))
        assert (pairs.sources[i, n:] == 0).all()


# --------------------------------------------------------------------------- metrics


def test_exact_match_and_token_accuracy_by_hand():
    I = IGNORE_INDEX
    targets = torch.tensor([[5, 6, EOS], [5, EOS, I], [7, 7, EOS]])
    predicted = torch.tensor([[5, 6, EOS, I],      # right
                              [5, 6, EOS, I],      # too long: exact wrong, token 1/2
                              [7, EOS, I, I]])     # stops early: token 1/3
    exact, tokens = ExactMatch(), SequenceTokenAccuracy()
    exact.update(predicted, targets)
    tokens.update(predicted, targets)
    assert float(exact.compute()) == pytest.approx(1 / 3)
    assert float(tokens.compute()) == pytest.approx((3 + 1 + 1) / 8)
    packed = torch.stack([predicted, torch.cat([targets, torch.full((3, 1), I)], 1)], dim=1)
    forced = ExactMatch(row=1)
    forced.update(packed, targets)
    assert float(forced.compute()) == 1.0


def test_mask_after_end():
    tokens = torch.tensor([[3, EOS, 4, EOS], [3, 3, 3, 3]])
    assert mask_after_end(tokens, EOS).tolist() == [[3, EOS, IGNORE_INDEX, IGNORE_INDEX], [3, 3, 3, 3]]


# --------------------------------------------------------------------------- decoding


VOCAB = 4   # tiny: ids 0..3, EOS = 2


class ToyDecoder(nn.Module):
    """A seeded LSTM cell over tokens: log p(y_t | y_<t) from a real carried state (h, c),
    whose batch dimension is 0."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed, self.cell, self.out = nn.Embedding(VOCAB, 5), nn.LSTMCell(5, 7), nn.Linear(7, VOCAB)
        with torch.no_grad():
            self.out.weight.mul_(4)
            self.embed.weight.mul_(4)
            self.out.bias[EOS] -= 3.0      # long outputs win: later steps, and their states, count

    def __call__(self, tokens, state):
        h, c = self.cell(self.embed(tokens), state)
        return torch.log_softmax(self.out(h), dim=-1), (h, c)


def _sequence_score(step, sequence: list[int], bos: int) -> float:
    tokens, state, total = torch.tensor([bos]), None, 0.0
    for token in sequence:
        log_probs, state = step(tokens, state)
        total += float(log_probs[0, token])
        tokens = torch.tensor([token])
    return total


def _hypotheses(length: int) -> list[list[int]]:
    """Every output of at most `length` tokens: ended by EOS, or cut at `length`."""
    found = []
    for n in range(1, length + 1):
        for body in itertools.product([t for t in range(VOCAB) if t != EOS], repeat=n - 1):
            found.append([*body, EOS])
        if n == length:
            found += [list(body) for body in itertools.product([t for t in range(VOCAB) if t != EOS], repeat=n)]
    return found


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_as_wide_as_the_hypotheses_finds_the_exhaustive_best(alpha, seed):
    step, bos, length = ToyDecoder(seed), 1, 4
    with torch.no_grad():
        scored = [(length_normalised(torch.tensor(_sequence_score(step, h, bos)),
                                     torch.tensor(len(h)), alpha).item(), h) for h in _hypotheses(length)]
        best_score, best = max(scored)
        found = beam_search(lambda copies: step, 2, VOCAB ** length, bos, EOS, length, alpha)
    for row in range(2):
        tokens = [t for t in found.tokens[row].tolist() if t != IGNORE_INDEX]
        assert tokens == best, (tokens, best, best_score)


def test_beam_width_one_is_greedy_and_greedy_is_argmax_step_by_step():
    step = ToyDecoder(3)
    with torch.no_grad():
        greedy = greedy_decode(step, 5, 1, EOS, 6)
        beam = beam_search(lambda copies: step, 5, 1, 1, EOS, 6)
        assert torch.equal(greedy.tokens, beam.tokens)
        # by hand, one item at a time
        for item in range(5):
            tokens, state, expected = torch.tensor([1]), None, []
            for _ in range(6):
                log_probs, state = step(tokens, state)
                tokens = log_probs.argmax(dim=-1)
                expected.append(int(tokens))
                if expected[-1] == EOS:
                    break
            got = [t for t in greedy.tokens[item].tolist() if t != IGNORE_INDEX]
            assert got == expected


class Table:
    """Log-probabilities from a table by step: state counts the steps (batch dim 0)."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = torch.log(torch.tensor(rows))

    def __call__(self, tokens, state):
        t = torch.zeros(tokens.shape[0], dtype=torch.long) if state is None else state
        return self.rows[t.clamp(max=len(self.rows) - 1)], t + 1


def test_length_normalisation_prefers_the_longer_output_where_it_should():
    # ids: 0 'a', 1 <s>, 2 </s>, 3 'b'. Ending at once: log 0.55 = -0.60 in all and per token.
    # 'a a </s>': log 0.45 + log 0.9 = -0.90 in all, but -0.30 per token: alpha = 1 prefers it.
    table = Table([[0.45, 1e-6, 0.55 - 2e-6, 1e-6], [0.9, 1e-6, 0.1 - 2e-6, 1e-6],
                   [1e-6, 1e-6, 1 - 3e-6, 1e-6]])
    summed = beam_search(lambda copies: table, 1, 8, 1, EOS, 4, alpha=0.0).tokens[0].tolist()
    per_token = beam_search(lambda copies: table, 1, 8, 1, EOS, 4, alpha=1.0).tokens[0].tolist()
    assert summed[0] == EOS
    assert per_token[:3] == [0, 0, EOS]


def test_the_state_is_reordered_along_its_batch_dimension_whatever_it_is():
    from rnnbench.toolkit.decoding import batch_dimensions, select_state

    small = (torch.zeros(2, 3, 5), {"c": torch.zeros(3, 5), "step": torch.zeros(())})
    large = (torch.arange(2 * 6 * 5.).view(2, 6, 5), {"c": torch.arange(6 * 5.).view(6, 5),
                                                      "step": torch.zeros(())})
    dims = batch_dimensions(small, large)
    assert dims == [1, 0, None]
    rows = torch.tensor([5, 0, 0, 2, 1, 3])
    h, extra = select_state(large, dims, rows)
    assert torch.equal(h, large[0][:, rows]) and torch.equal(extra["c"], large[1]["c"][rows])


# --------------------------------------------------------------------------- the head


def _head(architecture: str = "lstm", attention: str = "general", **options) -> tuple[Seq2SeqHead, nn.Module]:
    torch.manual_seed(0)
    arch = registry.get_architecture(architecture)()
    encoder = arch.build(6, 8, arch.Options())
    decoder = registry.get_architecture("lstm")()
    parts = DecoderParts(nn.Embedding(VOCAB + 2, 6), decoder.build(6 + encoder.output_size, 8,
                                                                   decoder.Options()), encoder.output_size)
    head = Seq2SeqHead(parts, VOCAB + 2, bos=1, eos=EOS, max_length=5, attention=attention, **options)
    return head, encoder


def _batch() -> tuple[Batch, SequenceBatch]:
    pairs = make_reversal(6, 4, torch.Generator().manual_seed(1))
    pairs = Pairs(pairs.sources % 6, pairs.source_lengths, pairs.targets % (VOCAB + 2),
                  pairs.target_lengths)
    batch = pairs.batch(torch.arange(6))
    embedded = SequenceBatch(torch.randn(*batch.inputs.values.shape, 6), batch.inputs.lengths)
    return batch, embedded


def test_teacher_forcing_one_is_one_parallel_pass_and_zero_feeds_the_model_its_own_tokens():
    head, encoder = _head()
    batch, source = _batch()
    encoded = encoder(source)
    parallel = head.teacher_forced(encoded, batch.inputs, batch.decoder_inputs)
    stepped = head.mixed(encoded, batch.inputs, batch.decoder_inputs, ratio=1.0)
    real = batch.targets != IGNORE_INDEX        # padding steps differ (packed) and do not count
    torch.testing.assert_close(stepped[real], parallel[real], atol=1e-5, rtol=1e-4)
    free = head.mixed(encoded, batch.inputs, batch.decoder_inputs, ratio=0.0)
    greedy = greedy_decode(head.make_step(encoded, batch.inputs)(1), 6, 1, EOS, free.shape[1])
    fed = free.argmax(dim=-1)
    raw = torch.where(greedy.tokens == IGNORE_INDEX, fed, greedy.tokens)   # after an end: anything
    assert torch.equal(fed[:, :raw.shape[1]], raw)
    assert not torch.allclose(free, parallel)


def test_scheduled_sampling_decays_the_ratio_by_inverse_sigmoid():
    head, _ = _head(teacher_forcing=0.8, sampling_decay=10.0)
    assert head.teacher_forcing_ratio() == pytest.approx(0.8 * 10 / 11)
    head.steps_trained.fill_(100)
    assert head.teacher_forcing_ratio() == pytest.approx(0.8 * 10 / (10 + math.exp(10)))
    assert inverse_sigmoid(0, 5.0) > inverse_sigmoid(50, 5.0) > inverse_sigmoid(100, 5.0)
    head, encoder = _head(teacher_forcing=1.0)
    batch, source = _batch()
    head.train()
    head(encoder(source), batch)
    assert int(head.steps_trained) == 1


@pytest.mark.parametrize("encoder_name", ["lstm", "bilstm", "gru"])
def test_head_beam_search_over_the_lstm_state_matches_greedy_at_width_one(encoder_name):
    head, encoder = _head(encoder_name)
    batch, source = _batch()
    head.eval()
    with torch.no_grad():
        encoded = encoder(source)
        greedy = head.decode(encoded, batch.inputs)
        head.beam_width = 1
        make = head.make_step(encoded, batch.inputs)
        beam1 = beam_search(make, 6, 1, 1, EOS, 5)
        head.beam_width = 3
        beam3 = head.decode(encoded, batch.inputs)
        output = head(encoded, batch)
    assert torch.equal(greedy.tokens, beam1.tokens)
    assert beam3.tokens.shape[0] == 6
    assert output.predictions.shape[:2] == (6, 2)


def test_exhaustive_beam_with_a_real_decoder_state():
    """nn.LSTM's state puts the batch on dimension 1: beam search must find and reorder it."""
    head, encoder = _head("lstm", attention="none")
    batch, source = _batch()
    head.eval()
    with torch.no_grad():
        head.embedding.weight.mul_(6)     # let the previous tokens, hence the state, matter
        head.output.weight.mul_(6)
        encoded = encoder(source)
        make = head.make_step(encoded, batch.inputs)
        width = (VOCAB + 2) ** 4
        found = beam_search(make, 6, width, 1, EOS, 4, alpha=0.5)
        every = [list(h) for n in range(1, 5) for h in itertools.product(range(VOCAB + 2), repeat=n)
                 if (EOS not in h[:-1]) and (h[-1] == EOS or n == 4)]
        for item in range(6):
            single = head.make_step(encoded._replace(outputs=encoded.outputs[item:item + 1],
                                                     final=encoded.final[item:item + 1]),
                                    SequenceBatch(batch.inputs.values[item:item + 1],
                                                  batch.inputs.lengths[item:item + 1]))(1)
            scores = [length_normalised(torch.tensor(_sequence_score(single, h, 1)),
                                        torch.tensor(len(h)), 0.5).item() for h in every]
            best = every[max(range(len(every)), key=scores.__getitem__)]
            assert [t for t in found.tokens[item].tolist() if t != IGNORE_INDEX] == best


# --------------------------------------------------------------------------- the contract


def test_any_sequence_encoder_may_encode_but_only_a_causal_stateful_one_decode():
    requirements = Requirements(structure="sequence", decoder=DECODER)
    bidirectional = Capabilities(causal=False, structures=("sequence",), state_layout="bidirectional")
    causal = Capabilities(causal=True, structures=("sequence",))
    stateless = Capabilities(causal=True, structures=("sequence",), carries_state=False)
    grid = Capabilities(causal=True, structures=("grid",))
    assert compatibility(causal, requirements).ok
    verdict = compatibility(bidirectional, requirements)
    assert not verdict.ok and "task.decoder" in verdict.reason
    assert compatibility(bidirectional, requirements, decoder=causal).ok
    assert not compatibility(causal, requirements, decoder=bidirectional).ok
    assert "carry state" in compatibility(causal, requirements, decoder=stateless).reason
    assert not compatibility(grid, requirements, decoder=causal).ok


def test_the_matrix_lists_the_seq2seq_tasks(capsys):
    assert main(["list", "--matrix"]) == 0
    matrix = capsys.readouterr().out
    lines = matrix.splitlines()
    rows = matrix_rows(matrix)
    columns = matrix_columns(matrix)
    scan, reverse = columns["scan"], columns["reverse"]
    assert rows["lstm"][scan] == "ok" and rows["gru"][reverse] == "ok"
    letter = rows["bilstm"][scan]
    assert any(line.startswith(f"{letter:>3}  it can encode but not decode") for line in lines)


# --------------------------------------------------------------------------- end to end


def _run(argv: list[str], tmp_path, capsys) -> tuple[int, str, str]:
    code = main(["run", *argv, "--store", str(tmp_path / "r.sqlite"), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    (["bilstm", "scan"], "choose a decoder with task.decoder=NAME"),
    (["lstm", "scan", "--set", "task.decoder=bilstm"], "the decoder is not causal"),
    (["lstm", "scan", "--set", "task.decoder=lstn"], "Did you mean 'lstm'"),
    (["lstm", "scan", "--set", "task.decoder=recursive"], "set task.decoder to a causal"),
    (["lstm", "scan", "--set", "task.split=jump"], "task.split must be one of"),
    (["lstm", "scan", "--set", "task.beam_width=0"], "task.beam_width"),
    (["lstm", "scan", "--set", "task.teacher_forcing=1.5"], "probability"),
    (["bilstm", "scan", "--set", "task.decoder=lstm", "--set", "task.attention=dot"],
     "use task.attention=general"),
])
def test_bad_settings_are_one_line_errors_naming_the_fix(argv, message, tmp_path, capsys):
    code, _, err = _run(argv, tmp_path, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def _metrics(out: str) -> dict[str, float]:
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and "/" in parts[0]:
            found[parts[0]] = float(parts[1])
    return found


@pytest.mark.data("scan")
def test_scan_quick_run_end_to_end(tmp_path, capsys):
    code, out, err = _run(["lstm", "scan", "--preset", "quick", "--set", "trainer.max_steps=60",
                           "--set", "trainer.val_every_steps=30"], tmp_path, capsys)
    assert code == 0, err
    metrics = _metrics(out)
    for name in ("test/exact_match", "test/token_accuracy", "test/teacher_forced_exact_match",
                 "test/teacher_forced_token_accuracy", "val/exact_match", "test/loss"):
        assert name in metrics
    assert metrics["test/token_accuracy"] > 0.2      # well above chance after 60 steps


@pytest.mark.data("scan")
@pytest.mark.parametrize("argv", [
    ["bilstm", "scan", "--set", "task.decoder=lstm"],
    ["lstm", "scan", "--set", "task.decoder=gru", "--set", "task.teacher_forcing=0.5",
     "--set", "task.sampling_decay=20", "--set", "task.beam_width=3"],
])
def test_scan_with_another_decoder_and_a_bidirectional_encoder(argv, tmp_path, capsys):
    code, out, err = _run([*argv, "--preset", "quick", "--set", "trainer.max_steps=20",
                           "--set", "trainer.val_every_steps=20", "--set", "task.eval_examples=40"],
                          tmp_path, capsys)
    assert code == 0, err
    assert "test/exact_match" in _metrics(out)


def test_reversal_is_learnt_to_high_accuracy_in_a_few_hundred_steps(tmp_path, capsys):
    code, out, err = _run(["lstm", "reverse", "--preset", "quick", "--set", "trainer.max_steps=300",
                           "--set", "trainer.val_every_steps=150"], tmp_path, capsys)
    assert code == 0, err
    metrics = _metrics(out)
    assert metrics["test/exact_match"] > 0.9
    assert metrics["test/exact_match"] <= metrics["test/teacher_forced_exact_match"] + 1e-9

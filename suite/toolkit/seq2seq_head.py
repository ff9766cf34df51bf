"""The encoder-decoder head: it runs a task's decoder (`DecoderParts`) on the encoded source.

Conditioning (Cho et al. 2014, eq. 3-4): the context c is the encoder's final state of every
direction, concatenated (`rnnbench.toolkit.pooling`, "last"), and every decoder step reads
x_t = [e(y_{t-1}); c], the embedded previous target token beside c. The decoder starts from no
state: nothing passes through the architectures' opaque carried states, so any sequence
architecture encodes and any causal, state-carrying one decodes. Optionally its outputs attend
over the encoder's (`rnnbench.toolkit.attention`, Luong et al. 2015); p(y_t | y_<t, x) = softmax(W h_t).

Training feeds the true previous token with probability `teacher_forcing` (1: always, one parallel
pass over the target), else the model's own most likely token (then step by step). Scheduled
sampling (Bengio et al. 2015, sec. 2.4) lowers that probability with the training step i by
inverse-sigmoid decay, eps_i = k / (k + exp(i / k)), times `teacher_forcing`.

Evaluation reports both ways of reading the same model: decoded from its own predictions (greedy,
or beam search with `beam_width` > 1: `rnnbench.toolkit.decoding`) and teacher-forced. Its predictions
are (B, 2, L) token ids, row 0 decoded and row 1 the teacher-forced argmax, IGNORE_INDEX as
padding; the metrics (`rnnbench.toolkit.metrics.ExactMatch`, `SequenceTokenAccuracy`) pick a row.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench.toolkit.attention import LuongAttention
from rnnbench.core.contracts import IGNORE_INDEX, Batch, DecoderParts, EncoderOutput, SequenceBatch
from rnnbench.toolkit.decoding import Decoded, MakeStep, Step, beam_search, greedy_decode
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.heads import Head, HeadOutput
from rnnbench.toolkit.pooling import pool

Attention = Literal["none", "dot", "general"]
DECODED, TEACHER_FORCED = 0, 1   # the rows of the head's predictions


def inverse_sigmoid(step: int, k: float) -> float:
    """eps_i = k / (k + exp(i / k)) (Bengio et al. 2015, sec. 2.4): near 1 early, then to 0."""
    return k / (k + math.exp(min(step / k, 700.0)))


def pad_to(tokens: Tensor, length: int) -> Tensor:
    """(B, L) ids padded on the right with IGNORE_INDEX to (B, length)."""
    return F.pad(tokens, (0, length - tokens.shape[1]), value=IGNORE_INDEX)


class Seq2SeqHead(Head):
    """Decoder, optional attention and output layer of an encoder-decoder task (module docstring).

    vocab_size: the target vocabulary; bos / eos: its begin- and end-of-sequence ids;
    max_length: the most tokens decoding produces (the end-of-sequence included).
    """

    def __init__(self, parts: DecoderParts, vocab_size: int, *, bos: int, eos: int, max_length: int,
                 attention: Attention = "none", teacher_forcing: float = 1.0,
                 sampling_decay: float | None = None, beam_width: int = 1,
                 length_alpha: float = 0.0) -> None:
        super().__init__()
        self.embedding, self.decoder = parts.embedding, parts.encoder
        self.bos, self.eos, self.max_length = bos, eos, max_length
        self.teacher_forcing, self.sampling_decay = teacher_forcing, sampling_decay
        self.beam_width, self.length_alpha = beam_width, length_alpha
        size = self.decoder.output_size
        self.attention = (LuongAttention(size, parts.context_size, attention)
                          if attention != "none" else None)
        self.output = nn.Linear(size, vocab_size)
        self.register_buffer("steps_trained", torch.zeros((), dtype=torch.long))

    @property
    def readout(self) -> nn.Linear:
        return self.output

    def teacher_forcing_ratio(self) -> float:
        """The probability of feeding the true previous token at this training step."""
        if self.sampling_decay is None:
            return self.teacher_forcing
        return self.teacher_forcing * inverse_sigmoid(int(self.steps_trained), self.sampling_decay)

    # ---- pieces

    def _memory(self, encoded: EncoderOutput, source: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        """(context (B, C), memory (B, S, C), mask (B, S)) of the encoded source."""
        context = pool(encoded, source, "last")
        if self.attention is not None and encoded.outputs.dim() != 3:
            raise BenchmarkError(f"attention needs per-step encoder outputs (B, S, O), got shape "
                                 f"{tuple(encoded.outputs.shape)}: use task.attention=none")
        return context, encoded.outputs, source.mask()

    def _logits(self, outputs: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        if self.attention is not None:
            outputs = self.attention(outputs, memory, mask)
        return self.output(outputs)

    def _run(self, tokens: Tensor, context: Tensor, lengths: Tensor, state=None):
        """The decoder over (B, T) input tokens, each step reading [e(y); c]."""
        embedded = self.embedding(tokens)
        steps = context.unsqueeze(1).expand(-1, tokens.shape[1], -1)
        return self.decoder(SequenceBatch(torch.cat([embedded, steps], dim=-1), lengths), state)

    def teacher_forced(self, encoded: EncoderOutput, source: SequenceBatch,
                       decoder_inputs: SequenceBatch) -> Tensor:
        """(B, T, V) logits with the true previous tokens as inputs: one parallel pass."""
        context, memory, mask = self._memory(encoded, source)
        outputs = self._run(decoder_inputs.values, context, decoder_inputs.lengths).outputs
        return self._logits(outputs, memory, mask)

    def mixed(self, encoded: EncoderOutput, source: SequenceBatch, decoder_inputs: SequenceBatch,
              ratio: float) -> Tensor:
        """(B, T, V) logits, step by step: each input is the true previous token with probability
        `ratio`, else the model's most likely one (the first is always begin-of-sequence)."""
        step = self.make_step(encoded, source)(1)
        truth = decoder_inputs.values
        keep = torch.rand(truth.shape, device=truth.device) < ratio
        keep[:, 0] = True
        tokens, state, logits = truth[:, 0], None, []
        for t in range(truth.shape[1]):
            if t:
                tokens = torch.where(keep[:, t], truth[:, t], logits[-1].argmax(dim=-1))
            log_probs, state = step(tokens, state, logits=True)
            logits.append(log_probs)
        return torch.stack(logits, dim=1)

    def make_step(self, encoded: EncoderOutput, source: SequenceBatch) -> MakeStep:
        """copies -> the one-token `Step` of the decoder over B x copies items (`rnnbench.toolkit.decoding`)."""
        context, memory, mask = self._memory(encoded, source)

        def make(copies: int) -> Step:
            ctx, mem, msk = (t.repeat_interleave(copies, dim=0) for t in (context, memory, mask))
            ones = torch.ones(ctx.shape[0], dtype=torch.long, device=ctx.device)

            def step(tokens: Tensor, state, logits: bool = False):
                decoded = self._run(tokens.unsqueeze(1), ctx, ones, state)
                scores = self._logits(decoded.outputs, mem, msk)[:, 0]
                return (scores if logits else torch.log_softmax(scores.float(), dim=-1)), decoded.state
            return step
        return make

    def decode(self, encoded: EncoderOutput, source: SequenceBatch) -> Decoded:
        """The model's own output for each source: greedy, or beam search when beam_width > 1."""
        make = self.make_step(encoded, source)
        device = source.values.device
        if self.beam_width == 1:
            return greedy_decode(make(1), source.batch_size, self.bos, self.eos, self.max_length, device)
        return beam_search(make, source.batch_size, self.beam_width, self.bos, self.eos,
                           self.max_length, self.length_alpha, device)

    # ---- the head

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        source, decoder_inputs = batch.inputs, batch.decoder_inputs
        if not isinstance(source, SequenceBatch) or decoder_inputs is None:
            raise BenchmarkError("Seq2SeqHead needs sequence inputs and batch.decoder_inputs: build "
                                 "the task's batches with both")
        ratio = self.teacher_forcing_ratio() if self.training else 1.0
        if ratio >= 1.0:
            logits = self.teacher_forced(encoded, source, decoder_inputs)
        else:
            logits = self.mixed(encoded, source, decoder_inputs, ratio)
        if self.training:
            self.steps_trained += 1
        targets = batch.targets
        loss_sum = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
        count = (targets != IGNORE_INDEX).sum()
        forced = logits.argmax(dim=-1).masked_fill(targets == IGNORE_INDEX, IGNORE_INDEX)
        if self.training:
            return HeadOutput(loss_sum, count, forced)
        decoded = self.decode(encoded, source).tokens
        length = max(decoded.shape[1], forced.shape[1])
        return HeadOutput(loss_sum, count, torch.stack([pad_to(decoded, length), pad_to(forced, length)], dim=1))

"""Decoding a causal, state-carrying decoder one token at a time: greedy search and beam search.

Both drive a `Step`: `step(tokens (N,), state) -> (log_probs (N, V), state)`, the decoder run for
one step with its carried state (None at the start). The state is the decoder architecture's own
and opaque: beam search only reorders it along its batch dimension, which it finds by comparing
the shapes of the states of two batch sizes (`batch_dimensions`). Every search is batched across
the items and the beams; the only Python loop is over output steps.

Outputs are (B, L) token ids that end with the end-of-sequence id (or stop at `max_length`);
positions after it hold `IGNORE_INDEX`, as a target's padding does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from rnnbench.core.contracts import IGNORE_INDEX
from rnnbench.core.errors import BenchmarkError
from rnnbench.core.state import rebuild_state, state_tensors

Step = Callable[[Tensor, Any], tuple[Tensor, Any]]
MakeStep = Callable[[int], Step]
"""copies -> the step over B * copies items, item b's copies at rows b * copies .. + copies - 1."""


class Decoded(NamedTuple):
    """tokens: (B, L) ids, IGNORE_INDEX after the end-of-sequence; scores: (B,) the summed
    log-probability of each sequence (for beam search, before length normalisation)."""

    tokens: Tensor
    scores: Tensor


def mask_after_end(tokens: Tensor, eos: int) -> Tensor:
    """(B, L) ids with every position after the first `eos` set to IGNORE_INDEX."""
    ended = (tokens == eos).long().cumsum(dim=1)
    after = (ended - (tokens == eos).long()) > 0
    return tokens.masked_fill(after, IGNORE_INDEX)


def greedy_decode(step: Step, batch_size: int, bos: int, eos: int, max_length: int,
                  device: torch.device | str = "cpu") -> Decoded:
    """y_t = argmax_y log p(y | y_<t, x), fed back as the next input, until every item has
    produced `eos` or `max_length` tokens."""
    tokens = torch.full((batch_size,), bos, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    scores = torch.zeros(batch_size, device=device)
    state: Any = None
    out = []
    for _ in range(max_length):
        log_probs, state = step(tokens, state)
        best, tokens = log_probs.max(dim=-1)
        scores = scores + torch.where(finished, 0.0, best.float())
        out.append(tokens)
        finished = finished | (tokens == eos)
        if bool(finished.all()):
            break
    return Decoded(mask_after_end(torch.stack(out, dim=1), eos), scores)


# --------------------------------------------------------------------------- carried state


def batch_dimensions(small: Any, large: Any) -> list[int | None]:
    """For each tensor of a carried state: the dimension that holds the batch, the one whose size
    differs between the states of two batch sizes (None: the tensor has no batch dimension)."""
    dims: list[int | None] = []
    for a, b in zip(state_tensors(small), state_tensors(large), strict=True):
        differ = [d for d, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]
        if len(differ) > 1 or a.dim() != b.dim():
            raise BenchmarkError(f"beam search cannot find the batch dimension of a decoder state "
                                 f"tensor (shapes {tuple(a.shape)} and {tuple(b.shape)}): use "
                                 f"task.beam_width=1 (greedy) with this decoder")
        dims.append(differ[0] if differ else None)
    return dims


def select_state(state: Any, dims: list[int | None], rows: Tensor) -> Any:
    """The carried state of the batch rows `rows` (an index along each tensor's batch dim)."""
    leaves = [leaf if dim is None else leaf.index_select(dim, rows.to(leaf.device))
              for leaf, dim in zip(state_tensors(state), dims)]
    return rebuild_state(state, leaves)


# --------------------------------------------------------------------------- beam search


def length_normalised(scores: Tensor, lengths: Tensor, alpha: float) -> Tensor:
    """score / |Y|^alpha (Wu et al. 2016, sec. 7, in the simple form): alpha = 0 ranks by the
    summed log-probability, which favours short outputs; alpha = 1 by the mean per token."""
    return scores / lengths.clamp(min=1).to(scores.dtype) ** alpha


def beam_search(make_step: MakeStep, batch_size: int, beam_width: int, bos: int, eos: int,
                max_length: int, alpha: float = 0.0, device: torch.device | str = "cpu") -> Decoded:
    """Beam search (e.g. Sutskever et al. 2014; Wu et al. 2016) over B items x K beams at once.

    Every step extends each live beam by every token, keeps the K best of the K x V candidates
    of each item by summed log-probability, and carries the decoder state of the beam each one
    came from. A beam that produced `eos` is finished: it stays, extended only by a free `eos`
    (its score and length fixed). At the end, the beam with the best length-normalised score
    (`length_normalised`) wins. With K at least the number of hypotheses nothing is pruned, so the
    search is exact; with K = 1 it is greedy search."""
    if beam_width < 1:
        raise BenchmarkError(f"beam width must be at least 1, got {beam_width}: e.g. task.beam_width=4")
    step = make_step(beam_width)
    if beam_width > 1:   # one step on one copy per item finds the state's batch dimensions
        _, probe = make_step(1)(torch.full((batch_size,), bos, dtype=torch.long, device=device), None)
    items, width = batch_size, beam_width
    rows = items * width
    tokens = torch.full((rows,), bos, dtype=torch.long, device=device)
    scores = torch.full((items, width), -math.inf, device=device)
    scores[:, 0] = 0.0                      # the beams start identical: keep one
    finished = torch.zeros(items, width, dtype=torch.bool, device=device)
    lengths = torch.zeros(items, width, dtype=torch.long, device=device)
    history = torch.zeros(items, width, 0, dtype=torch.long, device=device)
    offsets = (torch.arange(items, device=device) * width).unsqueeze(1)
    state: Any = None
    dims: list[int | None] | None = None
    for _ in range(max_length):
        log_probs, state = step(tokens, state)
        if dims is None and beam_width > 1:
            dims = batch_dimensions(probe, state)
        vocab = log_probs.shape[-1]
        log_probs = log_probs.float().view(items, width, vocab)
        only_end = torch.full((vocab,), -math.inf, device=log_probs.device)
        only_end[eos] = 0.0
        log_probs = torch.where(finished.unsqueeze(-1), only_end, log_probs)
        candidates = (scores.unsqueeze(-1) + log_probs).view(items, width * vocab)
        scores, chosen = candidates.topk(width, dim=1)
        beam, token = chosen // vocab, chosen % vocab
        history = torch.cat([history.gather(1, beam.unsqueeze(-1).expand(-1, -1, history.shape[-1])),
                             token.unsqueeze(-1)], dim=-1)
        was_finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~was_finished).long()
        finished = was_finished | (token == eos)
        tokens = token.reshape(rows)
        if beam_width > 1:
            state = select_state(state, dims, (offsets + beam).reshape(rows))
        if bool(finished.all()):
            break
    best = length_normalised(scores, lengths, alpha).argmax(dim=1)
    picked = history[torch.arange(items, device=device), best]
    return Decoded(mask_after_end(picked, eos), scores[torch.arange(items, device=device), best])

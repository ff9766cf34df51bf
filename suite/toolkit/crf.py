"""A linear-chain conditional random field output layer for tagging, with Viterbi decoding.

For emissions P (T x C, from the encoder), transitions A (C x C, A[i, j] scores tag i followed by j)
and start / end scores s, e, a tag sequence y has the score (Lafferty, McCallum & Pereira 2001;
as the output layer of a BiLSTM, Lample et al. 2016, eqs. 1-2; Huang, Xu & Yu 2015)

    score(y) = s[y_1] + sum_t P[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + e[y_T]
    log p(y | x) = score(y) - log sum_y' exp score(y').

The normaliser comes from the forward algorithm, alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + A[i, j])
+ P[t, j]; decoding takes max instead of logsumexp and follows the back-pointers (Viterbi). Both
are vectorised over the batch and the tags; the loop runs over time steps only. Padding steps
leave alpha unchanged, so every sequence ends at its own length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnbench.core.contracts import IGNORE_INDEX, Batch, EncoderOutput, SequenceBatch
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.heads import Head, HeadOutput


class ConditionalRandomField(nn.Module):
    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """(B,) log p(tags | x) for (B, T, C) emissions, (B, T) tags and a (B, T) bool mask of the
        real steps (a prefix of each row, at least one step)."""
        return self._gold_score(emissions, tags, mask) - self._log_partition(emissions, mask)

    def _gold_score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        tags = tags.masked_fill(~mask, 0)
        weights = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)
        transitions = self.transitions[tags[:, :-1], tags[:, 1:]]
        last = tags.gather(1, (mask.sum(dim=1) - 1).unsqueeze(1)).squeeze(1)
        return (self.start[tags[:, 0]] + (emitted * weights).sum(dim=1)
                + (transitions * weights[:, 1:]).sum(dim=1) + self.end[last])

    def _log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        alpha = self.start + emissions[:, 0]
        for step in range(1, emissions.shape[1]):
            candidate = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, step]
            alpha = torch.where(mask[:, step].unsqueeze(1), candidate, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """(B, T) the highest-scoring tag sequences (Viterbi); padding steps hold IGNORE_INDEX."""
        batch, steps, tags = emissions.shape
        score = self.start + emissions[:, 0]
        identity = torch.arange(tags, device=emissions.device).expand(batch, tags)
        back_pointers = []
        for step in range(1, steps):
            best, previous = (score.unsqueeze(2) + self.transitions).max(dim=1)
            real = mask[:, step].unsqueeze(1)
            score = torch.where(real, best + emissions[:, step], score)
            back_pointers.append(torch.where(real, previous, identity))
        current = (score + self.end).argmax(dim=1)
        path = [current]
        for pointers in reversed(back_pointers):
            current = pointers.gather(1, current.unsqueeze(1)).squeeze(1)
            path.append(current)
        decoded = torch.stack(path[::-1], dim=1)
        return decoded.masked_fill(~mask, IGNORE_INDEX)


class CRFTagger(Head):
    """Per-step emissions W h_t + b scored by a linear-chain CRF.

    loss_sum is the negative log-likelihood summed over the batch's sentences and count is their
    number of tokens. predictions: the Viterbi tags (B, T) in evaluation; in training, where no
    metric reads them, the emissions (B, T, C) so no decoding is spent. Metrics get predictions
    and targets per sentence, unflattened, with IGNORE_INDEX at padding.
    """

    def __init__(self, output_size: int, num_tags: int) -> None:
        super().__init__()
        self.linear = nn.Linear(output_size, num_tags)
        self.crf = ConditionalRandomField(num_tags)

    def forward(self, encoded: EncoderOutput, batch: Batch) -> HeadOutput:
        if not isinstance(batch.inputs, SequenceBatch):
            raise BenchmarkError("the CRF output layer needs sequence inputs")
        emissions = self.linear(encoded.outputs)
        mask = batch.inputs.mask() & (batch.targets != IGNORE_INDEX)
        loss_sum = -self.crf.log_likelihood(emissions, batch.targets, mask).sum()
        predictions = emissions if self.training else self.crf.decode(emissions, mask)
        return HeadOutput(loss_sum, mask.sum(), predictions)

    def update_metrics(self, metrics, predictions: Tensor, batch: Batch) -> None:
        metrics.update(predictions, batch.targets)

"""Global attention over the encoder's outputs, on the decoder's outputs (Luong, Pham & Manning
2015, sec. 3.1), without input feeding, so teacher-forced training stays one parallel pass.

    score(h_t, h_s) = h_t . h_s          (dot)
                    = h_t . W_a h_s      (general)
    a_t = softmax_s score(h_t, h_s)      (over the source's real steps only)
    c_t = sum_s a_t(s) h_s
    h~_t = tanh(W_c [c_t; h_t])          (eq. 5), which the output layer reads.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from rnnbench.core.errors import BenchmarkError

Score = Literal["dot", "general"]


class LuongAttention(nn.Module):
    """h~ = tanh(W_c [c; h]) for decoder outputs h (B, T, D) over memory (B, S, M) with mask (B, S)."""

    def __init__(self, decoder_size: int, memory_size: int, score: Score = "general") -> None:
        super().__init__()
        if score == "dot" and decoder_size != memory_size:
            raise BenchmarkError(f"dot attention needs equal decoder and encoder output sizes, got "
                                 f"{decoder_size} and {memory_size} (a bidirectional encoder doubles "
                                 f"its size): use task.attention=general")
        self.score = score
        self.project = nn.Linear(memory_size, decoder_size, bias=False) if score == "general" else None
        self.combine = nn.Linear(memory_size + decoder_size, decoder_size)

    def forward(self, outputs: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        keys = self.project(memory) if self.project is not None else memory
        scores = torch.bmm(outputs, keys.transpose(1, 2))                    # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=-1), memory)           # (B, T, M)
        return torch.tanh(self.combine(torch.cat([context, outputs], dim=-1)))

"""In-memory batching for tasks whose examples fit in tensors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from rnnbench.contracts import Batch


class IndexBatches:
    """Yield `make_batch(indices)` over `size` examples, reshuffled every pass when `shuffle`.

    The order of pass k depends only on (seed, k), so runs are reproducible; a final partial
    batch is kept.
    """

    def __init__(self, size: int, batch_size: int, make_batch: Callable[[Tensor], Batch],
                 shuffle: bool = False, seed: int = 0) -> None:
        self.size, self.batch_size, self.make_batch = size, batch_size, make_batch
        self.shuffle, self.seed, self.passes = shuffle, seed, 0

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.passes)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        self.passes += 1
        for start in range(0, self.size, self.batch_size):
            yield self.make_batch(order[start:start + self.batch_size])

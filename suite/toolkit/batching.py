"""In-memory batching for tasks whose examples fit in tensors: the one helper every task uses.

`IndexBatches` yields `make_batch(indices)` over `size` examples, one pass per iteration. Pass k
depends only on (seed, k): its generator is `torch.Generator().manual_seed(seed * stride + k)`.
It covers the three ways the tasks batch:

- plain: indices in order, or (`shuffle`) a fresh permutation every pass;
- bucketed (`lengths`): examples sorted by length (ties broken at random per pass when shuffling)
  and cut into batches whose order is shuffled every pass, so little of a batch is padding;
- drawn (`draw`): every pass draws its own examples (fresh probe sequences, dynamically binarized
  images): `draw(generator)` returns that pass's `make_batch`; the same generator then shuffles.

The two strides are history, kept so that every seed gives the batches it gave before (published
numbers stay valid): `ORDER_SEED_STRIDE` for passes that only order the examples,
`DRAW_SEED_STRIDE` for passes that draw them.

`passes` counts the passes started and may be set: `rnnbench.training.resume.ResumableBatches` sets it to
replay an interrupted pass. These iterables are not DataLoaders, so under DDP Lightning inserts no
sampler: when `torch.distributed` is initialised, each rank yields its share of every pass, the
batches `rank, rank + world_size, ...`, the list padded by repeating its first batches so that all
ranks take the same number of steps (as `DistributedSampler` pads). A final partial batch is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from rnnbench.core.contracts import Batch

ORDER_SEED_STRIDE = 100_003
DRAW_SEED_STRIDE = 1_000_003


def distributed_shard() -> tuple[int, int]:
    """(rank, world_size) of this process: from torch.distributed when initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class IndexBatches:
    """Batches over `size` examples; see the module docstring.

    make_batch: indices (a 1-D long tensor) -> Batch; omitted when `draw` is given.
    shuffle: a new order every pass (else in order, or by length when bucketed).
    lengths: (size,) lengths to bucket by.
    draw: generator -> make_batch, called once per pass to draw that pass's examples.
    """

    def __init__(self, size: int, batch_size: int, make_batch: Callable[[Tensor], Batch] | None = None,
                 shuffle: bool = False, seed: int = 0, *, lengths: Tensor | None = None,
                 draw: Callable[[torch.Generator], Callable[[Tensor], Batch]] | None = None) -> None:
        if (make_batch is None) == (draw is None):
            raise TypeError("IndexBatches needs exactly one of make_batch and draw")
        if lengths is not None and len(lengths) != size:
            raise ValueError(f"IndexBatches: {len(lengths)} lengths for {size} examples")
        self.size, self.batch_size, self.make_batch = size, batch_size, make_batch
        self.shuffle, self.seed, self.lengths, self.draw = shuffle, seed, lengths, draw
        self.passes = 0

    def __len__(self) -> int:
        _, world_size = distributed_shard()
        return -(-self._batches_per_pass() // world_size)

    def _batches_per_pass(self) -> int:
        return -(-self.size // self.batch_size)

    def pass_generator(self, pass_index: int) -> torch.Generator:
        stride = ORDER_SEED_STRIDE if self.draw is None else DRAW_SEED_STRIDE
        return torch.Generator().manual_seed(self.seed * stride + pass_index)

    def _order(self, generator: torch.Generator | None) -> list[Tensor]:
        """This pass's batches of indices, all ranks together."""
        if self.lengths is None:
            order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
            return list(torch.split(order, self.batch_size))
        if not self.shuffle:
            return list(torch.split(torch.argsort(self.lengths, stable=True), self.batch_size))
        jitter = torch.randperm(self.size, generator=generator)
        batches = list(torch.split(jitter[torch.argsort(self.lengths[jitter], stable=True)], self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self) -> Iterator[Batch]:
        generator = self.pass_generator(self.passes) if self.shuffle or self.draw is not None else None
        self.passes += 1
        make_batch = self.draw(generator) if self.draw is not None else self.make_batch
        batches = self._order(generator)
        rank, world_size = distributed_shard()
        if world_size > 1:
            share = -(-len(batches) // world_size)
            batches = [batches[i % len(batches)] for i in range(share * world_size)][rank::world_size]
        for indices in batches:
            yield make_batch(indices)

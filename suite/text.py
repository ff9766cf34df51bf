"""Token sequences for the text tasks: a vocabulary built from the training split only, and batches
of padded sequences bucketed by length."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor

from suite.contracts import Batch
from suite.errors import BenchmarkError


class Vocabulary:
    """Token <-> id. Reserved tokens come first, then the rest by decreasing frequency (ties
    alphabetical), so a vocabulary is reproducible from its corpus.

    unknown: the token that stands for every word outside the vocabulary (None: such a word is an
    error, as for label sets). lowercase: tokens are lowercased before counting and lookup.
    """

    def __init__(self, tokens: Sequence[str], unknown: str | None = None, lowercase: bool = False) -> None:
        self.tokens = list(tokens)
        self.unknown, self.lowercase = unknown, lowercase
        self.index = {token: position for position, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        if unknown is not None and unknown not in self.index:
            raise ValueError(f"the unknown token {unknown!r} must be in the vocabulary")

    @classmethod
    def from_corpus(cls, sequences: Iterable[Sequence[str]], *, min_frequency: int = 1,
                    lowercase: bool = False, unknown: str | None = "<unk>",
                    reserved: Sequence[str] = ()) -> "Vocabulary":
        """Count the training sequences; keep tokens seen at least `min_frequency` times."""
        if min_frequency < 1:
            raise BenchmarkError(f"min_frequency must be at least 1, got {min_frequency}")
        counts: Counter[str] = Counter()
        for sequence in sequences:
            counts.update(token.lower() for token in sequence) if lowercase else counts.update(sequence)
        first = [token for token in ([unknown] if unknown is not None else []) + list(reserved)]
        first = list(dict.fromkeys(first))
        kept = sorted((token for token, count in counts.items()
                       if count >= min_frequency and token not in first),
                      key=lambda token: (-counts[token], token))
        return cls(first + kept, unknown=unknown, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return (token.lower() if self.lowercase else token) in self.index

    def id(self, token: str) -> int:
        key = token.lower() if self.lowercase else token
        if key in self.index:
            return self.index[key]
        if self.unknown is None:
            raise BenchmarkError(f"'{token}' is not one of the {len(self)} known labels "
                                 f"({', '.join(self.tokens[:20])}); check the data file")
        return self.index[self.unknown]

    def encode(self, tokens: Sequence[str]) -> Tensor:
        return torch.tensor([self.id(token) for token in tokens], dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]


def pad(sequences: Sequence[Tensor], value: int) -> tuple[Tensor, Tensor]:
    """(B, T_max) padded ids and (B,) lengths."""
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=value)
    return padded, lengths


class BucketBatches:
    """Batches of examples of similar length, so little of each batch is padding.

    Examples are sorted by length (ties broken at random per pass when shuffling) and cut into
    batches; the batches' order is shuffled every pass. Pass k depends only on (seed, k).
    """

    def __init__(self, lengths: Tensor, batch_size: int, make_batch: Callable[[Tensor], Batch],
                 shuffle: bool = False, seed: int = 0) -> None:
        self.lengths, self.batch_size, self.make_batch = lengths, batch_size, make_batch
        self.shuffle, self.seed, self.passes = shuffle, seed, 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        size = len(self.lengths)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.passes)
            jitter = torch.randperm(size, generator=generator)
            order = jitter[torch.argsort(self.lengths[jitter], stable=True)]
        else:
            order = torch.argsort(self.lengths, stable=True)
        self.passes += 1
        batches = list(torch.split(order, self.batch_size))
        if self.shuffle:
            batch_order = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in batch_order]
        for indices in batches:
            yield self.make_batch(indices)

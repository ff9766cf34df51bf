"""Token sequences for the text tasks: a vocabulary built from the training split only, batches of
padded sequences bucketed by length, slices of a split, and parsing each data file once."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import torch
from torch import Tensor

from rnnbench.toolkit.batching import IndexBatches
from rnnbench.core.contracts import AtLeast, Batch
from rnnbench.core.errors import BenchmarkError


Batching = Literal["bucketed", "random"]
"""`task.batching` of every task of variable-length sequences (or trees): `bucketed` (default)
sorts the examples by length and cuts batches of similar lengths, whose order is shuffled every
pass, so little of a batch is padding; `random` draws each training batch from a fresh random
permutation (evaluation batches in split order). The run records what it cost or saved:
`train/padding_share` (padded positions over all positions of the training batches) and its
throughput (`items_per_second`). Bucketing trades some randomness of the batches for speed
(Khomenko et al. 2016; Sutskever et al. 2014 batch sentences of similar length)."""


@dataclass
class TextOptions:
    """Options every text task shares.

    lowercase / min_frequency: the word vocabulary, built from the training split only; rarer
        words read as <unk>, which thereby gets trained.
    train_sentences / eval_sentences: only N sentences, evenly spaced, of the training / each
        evaluation split (None: all), for quick runs and tests.
    batching: bucketed (default) or random batches (`Batching`).
    """

    lowercase: bool = False
    min_frequency: Annotated[int, AtLeast(1)] = 2
    train_sentences: Annotated[int, AtLeast(1)] | None = None
    eval_sentences: Annotated[int, AtLeast(1)] | None = None
    batching: Batching = "bucketed"

T = TypeVar("T")
R = TypeVar("R")


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


def read_once(read: Callable[[Path], R]) -> Callable[[Path], R]:
    """Decorate a file reader so that each file is parsed once per process (per path, size and
    modification time); callers must not modify what it returns."""
    @functools.lru_cache(maxsize=16)
    def cached(path: str, size: int, modified: int) -> R:
        return read(Path(path))

    @functools.wraps(read)
    def reader(path: Path) -> R:
        stat = Path(path).stat()
        return cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    return reader


def spread(items: Sequence[T], count: int | None) -> list[T]:
    """`count` items evenly spaced across `items`, in order (all of them for None).

    A quick run's slice of a split: taken across the whole file rather than from its start, since
    some files are ordered (SST's sentences come grouped by sentiment)."""
    if count is None or count >= len(items):
        return list(items)
    if count < 1:
        raise BenchmarkError(f"a slice needs at least one example, got {count}")
    return [items[(position * len(items)) // count] for position in range(count)]


def pad(sequences: Sequence[Tensor], value: int) -> tuple[Tensor, Tensor]:
    """(B, T_max) padded ids and (B,) lengths."""
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=value)
    return padded, lengths


class BucketBatches(IndexBatches):
    """Batches of examples of similar length, so little of each batch is padding: the batching
    helper bucketed by `lengths` (see `rnnbench.toolkit.batching`); with `batching="random"` (a task's
    `task.batching`, `Batching`), the same examples batched without regard to their lengths.
    Pass k depends only on (seed, k)."""

    def __init__(self, lengths: Tensor, batch_size: int, make_batch: Callable[[Tensor], Batch],
                 shuffle: bool = False, seed: int = 0, batching: Batching = "bucketed") -> None:
        if batching not in ("bucketed", "random"):
            raise BenchmarkError(f"task.batching must be bucketed or random, got '{batching}'")
        super().__init__(len(lengths), batch_size, make_batch, shuffle=shuffle, seed=seed,
                         lengths=lengths if batching == "bucketed" else None)

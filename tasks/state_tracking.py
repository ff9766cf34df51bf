"""State tracking as word problems (Merrill, Petty & Sabharwal 2024, "The illusion of state in
state-space models"; Grazzi et al. 2025): read a word g_1 ... g_n of group elements and write,
after every letter, the running product g_1 g_2 ... g_t.

- `parity`: the group Z_2 (the running parity of a bit string);
- `modular_counting`: Z_5 (cycle navigation: the running sum modulo 5);
- `permutations_a5`, `permutations_s5`: the alternating and symmetric groups on 5 points, 60 and
  120 permutations. S5's and A5's word problems are NC^1-complete: a diagonal linear recurrence
  with positive transitions (S4, Mamba as published) cannot track them at every length, a
  nonlinear RNN can with one layer (Merrill et al., section 4).

Scored by `accuracy` (per step, averaged per length and then over lengths, its curve against n),
`answer_accuracy` (every step) and `final_accuracy` (the state after the whole word), on lengths
longer than those trained on (`rnnbench.toolkit.length_generalisation`). Causal: the answer at t
may not see letters after t.
"""

from __future__ import annotations

import functools
import itertools

import torch

from rnnbench import Generated, Requirements, register_task
from rnnbench.toolkit.length_generalisation import LengthGeneralisationTask


@functools.cache
def permutation_group(even_only: bool) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """The permutations of 0-4 (only the even ones for A5) in lexicographic order, and their
    product table: table[a, b] is the index of "a, then b" (apply a first)."""
    elements = [p for p in itertools.permutations(range(5))
                if not even_only or _inversions(p) % 2 == 0]
    index = {p: i for i, p in enumerate(elements)}
    table = torch.tensor([[index[tuple(b[a[i]] for i in range(5))] for b in elements] for a in elements])
    return elements, table


def _inversions(p: tuple[int, ...]) -> int:
    return sum(p[i] > p[j] for i in range(len(p)) for j in range(i + 1, len(p)))


@functools.cache
def cyclic_group(order: int) -> torch.Tensor:
    """Z_order's product (addition) table."""
    elements = torch.arange(order)
    return (elements.unsqueeze(1) + elements.unsqueeze(0)) % order


def running_products(table: torch.Tensor, letters: torch.Tensor) -> torch.Tensor:
    """(size, n) element indices -> (size, n): the product of each prefix, by the table."""
    states = torch.empty_like(letters)
    state = letters[:, 0]
    states[:, 0] = state
    for t in range(1, letters.shape[1]):
        state = table[state, letters[:, t]]
        states[:, t] = state
    return states


class WordProblem(LengthGeneralisationTask):
    """The word problem of the group whose product table `table()` gives (element 0 the
    identity): letters are tokens 1..|G|, the answer at every step the running product."""

    requirements = Requirements(structure="sequence", causal=True)

    def table(self) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        table = self.table()
        letters = torch.randint(0, len(table), (size, n), generator=generator)
        return Generated(letters + 1, running_products(table, letters), torch.ones(size, n, dtype=torch.bool))


@register_task("parity")
class Parity(WordProblem):
    """Parity (state tracking, Z_2): the running parity of a bit string, at every step."""

    vocab_size, num_classes = 3, 2

    def table(self) -> torch.Tensor:
        return cyclic_group(2)


@register_task("modular_counting")
class ModularCounting(WordProblem):
    """Modular counting (state tracking, Z_5): the running sum mod 5 of digits 0-4, at every step."""

    vocab_size, num_classes = 6, 5

    def table(self) -> torch.Tensor:
        return cyclic_group(5)


@register_task("permutations_a5")
class PermutationsA5(WordProblem):
    """A5 word problem (state tracking): the running product of even permutations of 5 points."""

    vocab_size, num_classes = 61, 60

    def table(self) -> torch.Tensor:
        return permutation_group(even_only=True)[1]


@register_task("permutations_s5")
class PermutationsS5(WordProblem):
    """S5 word problem (state tracking): the running product of permutations of 5 points."""

    vocab_size, num_classes = 121, 120

    def table(self) -> torch.Tensor:
        return permutation_group(even_only=False)[1]

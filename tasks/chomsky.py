"""The Chomsky hierarchy's regular and deterministic context-free tasks (Deletang et al. 2023,
"Neural networks and the Chomsky hierarchy", table 1), generated from the seed.

Every example is a string of length n (token ids >= 1) followed by its answer steps, blank
steps (id 0) at which the model writes the answer: one step for a classification task, n steps
for a string-valued one. Trained on n in 1-40 and scored, as in the paper, by the accuracy on
each unseen length 41-500, averaged over lengths (`rnnbench.toolkit.length_generalisation`).
The paper calls a task solved at an accuracy of at least 90%.

Regular: even_pairs, parity_check, cycle_navigation, modular_arithmetic.
Deterministic context-free: reverse_string, stack_manipulation, modular_arithmetic_brackets,
solve_equation.

Where n means something other than the string's length, the task says so: modular_arithmetic's n
is its number of operands (2n - 1 tokens), solve_equation's n the length of its expression (the
string adds "= r").
"""

from __future__ import annotations

import random

import torch
from torch import Tensor

from rnnbench import IGNORE_INDEX, Generated, register_task
from rnnbench.toolkit.generated import python_rng
from rnnbench.toolkit.length_generalisation import LengthGeneralisationTask

MODULUS = 5                       # the paper's modular tasks work modulo 5
QUERY = 0                         # the blank step an answer is written at


def _with_answers(strings: Tensor, answers: Tensor) -> Generated:
    """Strings (size, n) followed by one blank step per answer column (size, k)."""
    size, n = strings.shape
    k = answers.shape[1]
    inputs = torch.cat([strings, torch.full((size, k), QUERY, dtype=torch.long)], dim=1)
    targets = torch.cat([torch.full((size, n), IGNORE_INDEX, dtype=torch.long), answers], dim=1)
    answer = torch.zeros(size, n + k, dtype=torch.bool)
    answer[:, n:] = True
    return Generated(inputs, targets, answer)


# --------------------------------------------------------------------------- regular


@register_task("even_pairs")
class EvenPairs(LengthGeneralisationTask):
    """Even pairs (Chomsky, regular): are the `ab` and `ba` pairs of an a/b string even in number?

    (They are exactly when the first and last letters agree.) Two answers."""

    vocab_size, num_classes = 3, 2

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        letters = torch.randint(0, 2, (size, n), generator=generator)
        changes = (letters[:, 1:] != letters[:, :-1]).sum(1)
        return _with_answers(letters + 1, (changes % 2 == 0).long().unsqueeze(1))


@register_task("parity_check")
class ParityCheck(LengthGeneralisationTask):
    """Parity check (Chomsky, regular): is the number of `b`s in an a/b string even? Two answers."""

    vocab_size, num_classes = 3, 2

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        letters = torch.randint(0, 2, (size, n), generator=generator)
        return _with_answers(letters + 1, (letters.sum(1) % 2).unsqueeze(1))


@register_task("cycle_navigation")
class CycleNavigation(LengthGeneralisationTask):
    """Cycle navigation (Chomsky, regular): where a walk of stay/+1/-1 moves on a 5-cycle ends.

    The walk starts at position 0. Five answers."""

    vocab_size, num_classes = 4, MODULUS

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        moves = torch.randint(0, 3, (size, n), generator=generator)          # stay, +1, -1
        steps = torch.tensor([0, 1, -1])[moves]
        return _with_answers(moves + 1, (steps.sum(1) % MODULUS).unsqueeze(1))


DIGIT, PLUS, MINUS, TIMES, OPEN, CLOSE, EQUALS, UNKNOWN = 1, 6, 7, 8, 9, 10, 11, 12   # digit d is DIGIT + d


def evaluate_flat(operands: Tensor, operators: Tensor) -> Tensor:
    """a_0 o_1 a_1 ... o_{n-1} a_{n-1} modulo 5 with the usual precedence (times first), for
    (size, n) operands and (size, n - 1) operators (0 plus, 1 minus, 2 times)."""
    total = torch.zeros(len(operands), dtype=torch.long)
    term = operands[:, 0].clone()
    for i in range(operators.shape[1]):
        op, value = operators[:, i], operands[:, i + 1]
        times = op == 2
        total = torch.where(times, total, (total + term) % MODULUS)
        term = torch.where(times, term * value, torch.where(op == 1, -value, value)) % MODULUS
    return (total + term) % MODULUS


@register_task("modular_arithmetic")
class ModularArithmetic(LengthGeneralisationTask):
    """Modular arithmetic (Chomsky, regular): the value mod 5 of n operands joined by +, -, *.

    Operands are 0-4; times binds before plus and minus. Five answers; n counts operands."""

    vocab_size, num_classes = 9, MODULUS

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        operands = torch.randint(0, MODULUS, (size, n), generator=generator)
        operators = torch.randint(0, 3, (size, n - 1), generator=generator)
        tokens = torch.empty(size, 2 * n - 1, dtype=torch.long)
        tokens[:, 0::2] = operands + DIGIT
        tokens[:, 1::2] = operators + PLUS
        return _with_answers(tokens, evaluate_flat(operands, operators).unsqueeze(1))


# --------------------------------------------------------------------------- deterministic context-free


@register_task("reverse_string")
class ReverseString(LengthGeneralisationTask):
    """Reverse string (Chomsky, context-free): write an a/b string backwards, a letter per step."""

    vocab_size, num_classes = 3, 2

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        letters = torch.randint(0, 2, (size, n), generator=generator)
        return _with_answers(letters + 1, letters.flip(1))


POP, PUSH_A, PUSH_B = 3, 4, 5          # the stack's letters are tokens 1 and 2
EMPTY = 2                              # the answer past the bottom of the stack


def run_stack(stack: list[int], actions: list[int]) -> list[int]:
    """The stack (letters 0/1, bottom first) after the actions; a pop of an empty stack does
    nothing."""
    stack = list(stack)
    for action in actions:
        if action == POP:
            if stack:
                stack.pop()
        else:
            stack.append(action - PUSH_A)
    return stack


@register_task("stack_manipulation")
class StackManipulation(LengthGeneralisationTask):
    """Stack manipulation (Chomsky, context-free): a stack and pop/push actions; the final stack.

    The stack over {a, b} is written bottom first, then the actions (pop, push a, push b); the
    answer is the final stack top first, then `empty` at the answer steps left (n of them: the
    stack cannot outgrow the string). Three answers."""

    vocab_size, num_classes = 6, 3

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        depth = torch.randint(1, n + 1, (size,), generator=generator)     # letters before the actions
        letters = torch.randint(0, 2, (size, n), generator=generator)
        actions = torch.randint(POP, PUSH_B + 1, (size, n), generator=generator)
        strings = torch.where(torch.arange(n) < depth.unsqueeze(1), letters + 1, actions)
        answers = torch.full((size, n), EMPTY, dtype=torch.long)
        for row in range(size):
            d = int(depth[row])
            final = run_stack(letters[row, :d].tolist(), actions[row, d:].tolist())
            if final:
                answers[row, :len(final)] = torch.tensor(final[::-1])
        return _with_answers(strings, answers)


class Expression:
    """A random bracketed expression over 0-4 with +, -, * and unary minus, of exact token length
    n: E -> d | -E | (E o E). `tokens` are its token ids; `values[x]` is its value modulo 5
    when its unknown (if any) is x, else for every x the same."""

    def __init__(self, n: int, rng: random.Random, unknown: bool = False) -> None:
        self.tokens: list[int] = []
        self._leaves: list[int] = []          # positions of the digits
        values = self._build(n, rng)
        if unknown:
            pick = rng.choice(self._leaves)
            self.tokens[pick] = UNKNOWN
            values = self._evaluate(0)[1]
        self.values = values

    def _build(self, n: int, rng: random.Random) -> list[int]:
        if n == 1:
            digit = rng.randrange(MODULUS)
            self._leaves.append(len(self.tokens))
            self.tokens.append(DIGIT + digit)
            return [digit] * MODULUS
        if n < 5 or rng.random() < 0.2:              # a binary expression needs 5 tokens
            self.tokens.append(MINUS)
            return [-v % MODULUS for v in self._build(n - 1, rng)]
        left = rng.randint(1, n - 4)                 # left + right = n - 3
        op = rng.randrange(3)
        self.tokens.append(OPEN)
        a = self._build(left, rng)
        self.tokens.append(PLUS + op)
        b = self._build(n - 3 - left, rng)
        self.tokens.append(CLOSE)
        return [_apply(op, x, y) for x, y in zip(a, b)]

    def _evaluate(self, at: int) -> tuple[int, list[int]]:
        """Parse the tokens from position `at` (the grammar above) and return (end, values for
        x = 0..4): the brute-force solver that checks the answers."""
        token = self.tokens[at]
        if token == UNKNOWN:
            return at + 1, list(range(MODULUS))
        if DIGIT <= token < DIGIT + MODULUS:
            return at + 1, [token - DIGIT] * MODULUS
        if token == MINUS:
            end, values = self._evaluate(at + 1)
            return end, [-v % MODULUS for v in values]
        end, a = self._evaluate(at + 1)                   # token is OPEN
        op = self.tokens[end] - PLUS
        end, b = self._evaluate(end + 1)
        return end + 1, [_apply(op, x, y) for x, y in zip(a, b)]


def _apply(op: int, x: int, y: int) -> int:
    return (x + y if op == 0 else x - y if op == 1 else x * y) % MODULUS


@register_task("modular_arithmetic_brackets")
class ModularArithmeticBrackets(LengthGeneralisationTask):
    """Modular arithmetic with brackets (Chomsky, context-free): an expression's value mod 5.

    The expression has n tokens over 0-4 with +, -, *, unary minus and brackets. Five answers."""

    vocab_size, num_classes = 11, MODULUS

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        rng = python_rng(generator)
        expressions = [Expression(n, rng) for _ in range(size)]
        strings = torch.tensor([e.tokens for e in expressions], dtype=torch.long)
        return _with_answers(strings, torch.tensor([[e.values[0]] for e in expressions]))


@register_task("solve_equation")
class SolveEquation(LengthGeneralisationTask):
    """Solve equation (Chomsky, context-free): the x in 0-4 that makes `expression = r` true mod 5.

    The bracketed expression has n tokens, one digit of which is the unknown x. Only equations
    with exactly one solution are drawn (checked by trying all five). Five answers."""

    vocab_size, num_classes = 13, MODULUS

    def generate(self, size: int, n: int, generator: torch.Generator) -> Generated:
        rng, rows, answers = python_rng(generator), [], []
        while len(rows) < size:
            expression = Expression(n, rng, unknown=True)
            x = rng.randrange(MODULUS)
            result = expression.values[x]
            if expression.values.count(result) == 1:
                rows.append([*expression.tokens, EQUALS, DIGIT + result])
                answers.append([x])
        return _with_answers(torch.tensor(rows, dtype=torch.long), torch.tensor(answers))

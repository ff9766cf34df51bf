"""The conformance checks of tree encoders (see `rnnbench.conformance.kit`), and the forests they
feed (also used by tests and benchmarks)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnbench.conformance.common import (FEATURES, HIDDEN, Check, build_encoder, close, expect_output_size,
                                         expect_shape, gradient_draws, seeded_generator, unpack)
from rnnbench.core.contracts import Architecture, Encoder, EncoderOutput, TreeBatch

def balanced_trees(leaf_counts: list[int], seed: int = 1) -> TreeBatch:
    """A forest of balanced binary trees over random leaf features, in the TreeBatch order."""
    values, left, right, height, roots, tree_index = [], [], [], [], [], []
    generator = seeded_generator(seed)
    for tree, count in enumerate(leaf_counts):
        level = []
        for _ in range(count):
            level.append(len(left))
            values.append(torch.randn(FEATURES, generator=generator))
            left.append(-1), right.append(-1), height.append(0), tree_index.append(tree)
        while len(level) > 1:
            merged = []
            for index in range(0, len(level) - 1, 2):
                a, b = level[index], level[index + 1]
                merged.append(len(left))
                values.append(torch.zeros(FEATURES))
                left.append(a), right.append(b), height.append(1 + max(height[a], height[b]))
                tree_index.append(tree)
            if len(level) % 2:
                merged.append(level[-1])
            level = merged
        roots.append(level[0])
    order = sorted(range(len(left)), key=lambda node: height[node])
    position = {node: rank for rank, node in enumerate(order)}

    def remap(index: int) -> int:
        return -1 if index < 0 else position[index]

    return TreeBatch(values=torch.stack([values[n] for n in order]),
                     left=torch.tensor([remap(left[n]) for n in order]),
                     right=torch.tensor([remap(right[n]) for n in order]),
                     height=torch.tensor([height[n] for n in order]),
                     roots=torch.tensor([position[r] for r in roots]),
                     tree_index=torch.tensor([tree_index[n] for n in order]))


def random_trees(leaf_counts: list[int], seed: int = 1, features: int = FEATURES) -> TreeBatch:
    """A forest of random binary trees (every span split at a uniformly drawn point, so shapes
    range from balanced to chains, like parse trees) over random leaf features, in TreeBatch order."""
    generator = seeded_generator(seed)
    left: list[int] = []
    right: list[int] = []
    height: list[int] = []
    tree_index: list[int] = []

    def build(leaves: int, tree: int) -> int:
        if leaves == 1:
            children = (-1, -1)
        else:
            split = int(torch.randint(1, leaves, (1,), generator=generator))
            children = (build(split, tree), build(leaves - split, tree))
        left.append(children[0]), right.append(children[1]), tree_index.append(tree)
        height.append(0 if leaves == 1 else 1 + max(height[children[0]], height[children[1]]))
        return len(left) - 1

    roots = [build(count, tree) for tree, count in enumerate(leaf_counts)]
    order = sorted(range(len(left)), key=lambda node: height[node])
    position = {node: rank for rank, node in enumerate(order)}
    values = torch.randn(len(left), features, generator=generator)
    values[torch.tensor([height[node] > 0 for node in order])] = 0.0
    return TreeBatch(values=values,
                     left=torch.tensor([position[left[n]] if left[n] >= 0 else -1 for n in order]),
                     right=torch.tensor([position[right[n]] if right[n] >= 0 else -1 for n in order]),
                     height=torch.tensor([height[n] for n in order]),
                     roots=torch.tensor([position[r] for r in roots]),
                     tree_index=torch.tensor([tree_index[n] for n in order]))


@dataclass(frozen=True)
class TreeSubject:
    """The architecture under test, with what its checks build, feed and compare."""

    architecture: Architecture
    options: Any
    seed: int

    @property
    def declared(self) -> int:
        return self.architecture.output_size(HIDDEN)

    def build(self, offset: int = 0) -> Encoder:
        return build_encoder(self.architecture, self.options, self.seed + offset)

    def run(self, encoder: Encoder, batch: TreeBatch) -> EncoderOutput:
        out = unpack(encoder(batch))
        expect_shape(out.outputs, (batch.values.shape[0], self.declared), "outputs",
                     f" (nodes, output_size {self.declared} as the architecture declares), one row per node")
        expect_shape(out.final, (batch.batch_size, 1, self.declared), "final", " (trees, 1, output_size)")
        return out


def shapes(subject: TreeSubject) -> None:
    encoder = subject.build()
    expect_output_size(encoder, subject.declared)
    with torch.no_grad():
        subject.run(encoder, balanced_trees([5, 3, 1], seed=subject.seed + 1))


def batching_invariance(subject: TreeSubject) -> None:
    encoder = subject.build()
    with torch.no_grad():
        together = subject.run(encoder, balanced_trees([5, 3], seed=subject.seed + 2)).final
        alone = subject.run(encoder, balanced_trees([5], seed=subject.seed + 2)).final
    close(together[0], alone[0], "a tree's root state depends on the other trees of its batch")


def final_is_root(subject: TreeSubject) -> None:
    batch = random_trees([6, 3, 1, 4], seed=subject.seed + 3)
    with torch.no_grad():
        out = subject.run(subject.build(), batch)
    close(out.final[:, 0], out.outputs[batch.roots], "final is not the output at each tree's root")


def gradient_reaches_leaves(subject: TreeSubject) -> None:
    def measure(draw: int) -> tuple[Tensor, Tensor]:
        encoder = subject.build(1000 + draw).train()
        batch = balanced_trees([6], seed=subject.seed + 2000 + draw)
        batch.values.requires_grad_(True)
        subject.run(encoder, batch).final.sum().backward()
        grad = batch.values.grad if batch.values.grad is not None else torch.zeros_like(batch.values)
        leaves = batch.left < 0
        # the leaf the gradient reaches least: every leaf must be reached
        weakest = grad[leaves].abs().sum(dim=1).min()
        return weakest, grad[batch.roots]
    gradient_draws(measure, "the root", "every leaf", "the root's own input", "one tree of 6 leaves")


def determinism(subject: TreeSubject) -> None:
    with torch.no_grad():
        close(subject.run(subject.build(7), balanced_trees([4], seed=subject.seed + 1)).final,
              subject.run(subject.build(7), balanced_trees([4], seed=subject.seed + 1)).final,
              "two encoders built under the same seed give different outputs")


def tree_checks(architecture: Architecture, options: Any = None, seed: int = 0) -> list[Check]:
    """The checks of a tree encoder, in the order the kit runs them."""
    subject = TreeSubject(architecture, options, seed)
    chosen = [shapes, batching_invariance, final_is_root, gradient_reaches_leaves, determinism]
    return [Check(check.__name__, functools.partial(check, subject)) for check in chosen]

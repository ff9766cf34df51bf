"""Recursive network over binary trees: tanh composition or binary Tree-LSTM, level-batched.

Composition bottom-up over a binary tree (Socher, Lin, Ng & Manning 2011, "Parsing Natural Scenes
and Natural Language with Recursive Neural Networks", eq. 1), for a parent p of children c1, c2:

    p = tanh(W [c1; c2] + b)

and, with `cell=treelstm`, the binary (N-ary, N = 2) Tree-LSTM of Tai, Socher & Manning 2015
("Improved Semantic Representations From Tree-Structured LSTM Networks", eqs. 9-14), for node j
with input x_j and children l = 1, 2:

    i_j  = sigmoid(W_i x_j + sum_l U_il h_jl + b_i)
    f_jk = sigmoid(W_f x_j + sum_l U_fkl h_jl + b_f)        (one forget gate per child k)
    o_j  = sigmoid(W_o x_j + sum_l U_ol h_jl + b_o)
    u_j  = tanh(W_u x_j + sum_l U_ul h_jl + b_u)
    c_j  = i_j * u_j + sum_l f_jl * c_jl,   h_j = o_j * tanh(c_j)

Leaves have no children (their sums are zero), so a tanh leaf is tanh(W_x x + b). Internal nodes
have no input (x_j = 0, as Tai et al. 2015): whatever filler a TreeBatch holds there (id 0 of a
token task is `<unk>`: masked out here, so its embedding gets no gradient from them), the input
term of an internal node is the bias only, on trees as on sequences.

Batching: the input projection of every node and gate is one matmul; then all nodes of one height
across the whole batch are composed in one matmul, in increasing height, never node by node.

Inputs: a `TreeBatch` (outputs: one row per node; final: the roots, (B, 1, O)), or a plain
`SequenceBatch`, over whose real tokens it builds a balanced binary tree (adjacent pairs, an odd
last node carried up a level, as `rnnbench.conformance.kit.balanced_trees`). For sequences, outputs[t] is
the state of the largest subtree whose span ends at token t: the leaf itself, or the root for an
item's last real token (so the last output equals `final`, as for a recurrent encoder). The tree
shape depends on the length, so the encoder is not causal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench import (Architecture, BenchmarkError, Capabilities, Encoder, EncoderOutput,
                      SequenceBatch, TreeBatch, register_architecture)

Cell = Literal["tanh", "treelstm"]


@dataclass
class RecursiveOptions:
    """cell: tanh (Socher et al. 2011) or treelstm (binary Tree-LSTM, Tai et al. 2015)."""

    cell: Cell = "tanh"


class RecursiveEncoder(Encoder):
    """Node states are (M, H) for tanh and (M, 2H) = [h; c] for the Tree-LSTM."""

    def __init__(self, input_size: int, hidden_size: int, cell: Cell) -> None:
        super().__init__()
        self.cell, self.hidden_size, self.output_size = cell, hidden_size, hidden_size
        input_gates, child_gates = (1, 1) if cell == "tanh" else (4, 5)  # [i f o u], [i f_l f_r o u]
        self.input_projection = nn.Linear(input_size, input_gates * hidden_size)
        self.child_projection = nn.Linear(2 * hidden_size, child_gates * hidden_size, bias=False)

    # ---- the composition, on any number of nodes at once

    def compose(self, projected: Tensor, left: Tensor | None = None, right: Tensor | None = None) -> Tensor:
        """New node states from the projected inputs (M, G*H) and the children's states (M, S),
        or no children for leaves."""
        size = self.hidden_size
        if self.cell == "tanh":
            if left is None:
                return torch.tanh(projected)
            return torch.tanh(projected + self.child_projection(torch.cat([left, right], dim=-1)))
        x_input, x_forget, x_output, x_update = projected.split(size, dim=-1)
        if left is None:
            memory = torch.sigmoid(x_input) * torch.tanh(x_update)
            return torch.cat([torch.sigmoid(x_output) * torch.tanh(memory), memory], dim=-1)
        left_hidden, left_memory = left.split(size, dim=-1)
        right_hidden, right_memory = right.split(size, dim=-1)
        c_input, c_forget_left, c_forget_right, c_output, c_update = self.child_projection(
            torch.cat([left_hidden, right_hidden], dim=-1)).split(size, dim=-1)
        memory = (torch.sigmoid(x_input + c_input) * torch.tanh(x_update + c_update)
                  + torch.sigmoid(x_forget + c_forget_left) * left_memory
                  + torch.sigmoid(x_forget + c_forget_right) * right_memory)
        return torch.cat([torch.sigmoid(x_output + c_output) * torch.tanh(memory), memory], dim=-1)

    # ---- trees

    def forward(self, inputs: TreeBatch | SequenceBatch, state: None = None) -> EncoderOutput:
        if isinstance(inputs, TreeBatch):
            return self._forward_tree(inputs)
        if isinstance(inputs, SequenceBatch):
            return self._forward_sequence(inputs)
        raise BenchmarkError(f"the recursive encoder reads trees or sequences, got "
                             f"{type(inputs).__name__}: use it on a tree or sequence task")

    def _forward_tree(self, batch: TreeBatch) -> EncoderOutput:
        _check_tree(batch)
        height = batch.height.to(batch.values.device)
        order = torch.argsort(height, stable=True)                    # nodes, lowest level first
        sizes = torch.bincount(height).tolist()
        # the (narrow) node features sorted once, projected once and split by level: each level's
        # projected inputs are then a view, whose gradients are concatenated once in the backward
        # pass, where gathering them level by level filled a zero buffer of every node's gates per level
        level_inputs = self.input_projection(_node_features(batch)[order]).split(sizes)
        states: Tensor | None = None
        for level, (nodes, projected) in enumerate(zip(order.split(sizes), level_inputs)):
            if level == 0:
                new = self.compose(projected)
                states = new.new_zeros(len(order), new.shape[1])
            else:
                children = states[torch.cat([batch.left[nodes], batch.right[nodes]])]  # one gather
                new = self.compose(projected, *children.chunk(2))
            states.index_copy_(0, nodes, new)
        outputs = states[:, :self.hidden_size]
        return EncoderOutput(outputs, outputs[batch.roots].unsqueeze(1), None)

    def forward_node_by_node(self, batch: TreeBatch) -> Tensor:
        """Reference: the same network by plain recursion, one node at a time; (N, H) outputs."""
        features = _node_features(batch)
        left, right = batch.left.tolist(), batch.right.tolist()
        states: dict[int, Tensor] = {}

        def visit(node: int) -> Tensor:
            if node not in states:
                projected = self.input_projection(features[node:node + 1])
                if left[node] < 0:
                    states[node] = self.compose(projected)
                else:
                    states[node] = self.compose(projected, visit(left[node]), visit(right[node]))
            return states[node]

        for root in batch.roots.tolist():
            visit(root)
        return torch.cat([states[node] for node in range(len(left))])[:, :self.hidden_size]

    # ---- sequences, as balanced trees over the real tokens

    def _forward_sequence(self, batch: SequenceBatch) -> EncoderOutput:
        values, lengths = batch.values, batch.lengths.to(batch.values.device)
        if bool((lengths < 1).any()):
            raise BenchmarkError("the recursive encoder got an empty sequence: every item needs at "
                                 "least one token (filter empty items in the task)")
        items, steps = values.shape[:2]
        states = self.compose(self.input_projection(values))          # leaves, (B, T, S)
        outputs = states[..., :self.hidden_size]
        internal_input = self.input_projection.bias                    # internal nodes: x = 0
        counts = lengths.clone()                                       # real nodes per item
        ends = torch.arange(steps, device=values.device).expand(items, steps)  # span end per node
        while states.shape[1] > 1:
            width = states.shape[1]
            pairs, kept = width // 2, (width + 1) // 2
            parents = self.compose(internal_input.expand(items, pairs, -1),
                                   states[:, 0:2 * pairs:2], states[:, 1:2 * pairs:2])
            parents = F.pad(parents, (0, 0, 0, kept - pairs))
            composed = (torch.arange(kept, device=values.device) < (counts // 2).unsqueeze(1))
            states = torch.where(composed.unsqueeze(-1), parents, states[:, 0::2])
            right_ends = F.pad(ends[:, 1::2], (0, kept - pairs))
            ends = torch.where(composed, right_ends, ends[:, 0::2])
            index = ends.unsqueeze(-1).expand(-1, -1, self.hidden_size)
            written = torch.where(composed.unsqueeze(-1), states[..., :self.hidden_size],
                                  outputs.gather(1, index))
            outputs = outputs.scatter(1, index, written)
            counts = (counts + 1) // 2
        final = states[:, 0, :self.hidden_size].unsqueeze(1)
        return EncoderOutput(outputs, final, None)


def _node_features(batch: TreeBatch) -> Tensor:
    """(N, F) node inputs: the leaves' values, zero at internal nodes (x = 0: no input, so no
    gradient reaches what the task put there, e.g. the `<unk>` embedding)."""
    values = batch.values
    if values.dim() != 2:
        raise BenchmarkError(f"tree node values must be (N, F) features after embedding, got shape "
                             f"{tuple(values.shape)}: give token trees an input vocabulary")
    internal = (batch.left >= 0).to(values.device).unsqueeze(-1)
    return values.masked_fill(internal, 0.0)


def _check_tree(batch: TreeBatch) -> None:
    leaf = batch.left < 0
    if bool((leaf != (batch.right < 0)).any()):
        raise BenchmarkError("a tree node has exactly one child: the recursive encoder needs full "
                             "binary trees (give every internal node two children)")
    internal = ~leaf
    parent_height = batch.height[internal]
    if bool((batch.height[leaf] != 0).any()) or bool(
            (batch.height[batch.left[internal]] >= parent_height).any()
            | (batch.height[batch.right[internal]] >= parent_height).any()):
        raise BenchmarkError("TreeBatch heights are inconsistent: leaves need height 0 and every "
                             "child a smaller height than its parent (build it as "
                             "rnnbench.conformance.kit.balanced_trees does)")


@register_architecture("recursive")
class Recursive(Architecture):
    """Recursive network (tanh or Tree-LSTM), level-batched over binary trees."""

    capabilities = Capabilities(causal=False, structures=("tree", "sequence"), carries_state=False)
    Options = RecursiveOptions

    def build(self, input_size: int, hidden_size: int, options: RecursiveOptions) -> Encoder:
        return RecursiveEncoder(input_size, hidden_size, options.cell)

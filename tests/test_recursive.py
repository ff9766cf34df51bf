"""Recursive network: level-batched composition equals per-node recursion; the balanced tree it
builds over sequences; structure checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rnnbench.plugins.recursive import Recursive, RecursiveOptions
from rnnbench.conformance.kit import balanced_trees, random_trees
from rnnbench.core.contracts import SequenceBatch
from rnnbench.core.errors import BenchmarkError

FEATURES, HIDDEN = 5, 8
CELLS = ["tanh", "treelstm"]


def _encoder(cell: str, seed: int = 0):
    torch.manual_seed(seed)
    return Recursive().build(FEATURES, HIDDEN, RecursiveOptions(cell=cell))


@pytest.mark.parametrize("cell", CELLS)
def test_level_batched_equals_per_node_recursion(cell: str) -> None:
    encoder = _encoder(cell)
    trees = random_trees([1, 2, 9, 23, 40], seed=4)
    assert trees.height.max() > 6  # deep, unbalanced shapes, not only balanced ones
    batched = encoder(trees)
    reference = encoder.forward_node_by_node(trees)
    torch.testing.assert_close(batched.outputs, reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(batched.final[:, 0], reference[trees.roots], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_level_batched_gradients_equal_per_node_gradients(cell: str) -> None:
    encoder = _encoder(cell)
    trees = random_trees([7, 12], seed=5)
    gradients = []
    for forward in (lambda: encoder(trees).final.sum(), lambda: encoder.forward_node_by_node(trees)[trees.roots].sum()):
        encoder.zero_grad()
        forward().backward()
        gradients.append([parameter.grad.clone() for parameter in encoder.parameters()])
    for batched, reference in zip(*gradients):
        torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-4)


def test_tanh_composition_is_socher_et_al() -> None:
    encoder = _encoder("tanh")
    trees = balanced_trees([2])  # two leaves, one parent
    weight, bias = encoder.input_projection.weight, encoder.input_projection.bias
    with torch.no_grad():
        leaves = torch.tanh(trees.values[:2] @ weight.t() + bias)
        parent = torch.tanh(encoder.child_projection(torch.cat([leaves[0], leaves[1]])) + bias)
        torch.testing.assert_close(encoder(trees).final[0, 0], parent)


def test_tree_lstm_leaf_and_parent_follow_tai_et_al() -> None:
    encoder = _encoder("treelstm")
    trees = balanced_trees([2])
    size = HIDDEN
    with torch.no_grad():
        x_i, x_f, x_o, x_u = encoder.input_projection(trees.values).split(size, dim=-1)
        leaf_memory = torch.sigmoid(x_i[:2]) * torch.tanh(x_u[:2])
        leaf_hidden = torch.sigmoid(x_o[:2]) * torch.tanh(leaf_memory)
        u_i, u_fl, u_fr, u_o, u_u = encoder.child_projection(
            torch.cat([leaf_hidden[0], leaf_hidden[1]])).split(size)
        memory = (torch.sigmoid(x_i[2] + u_i) * torch.tanh(x_u[2] + u_u)
                  + torch.sigmoid(x_f[2] + u_fl) * leaf_memory[0]
                  + torch.sigmoid(x_f[2] + u_fr) * leaf_memory[1])
        parent = torch.sigmoid(x_o[2] + u_o) * torch.tanh(memory)
        torch.testing.assert_close(encoder(trees).final[0, 0], parent)


@pytest.mark.parametrize("cell", CELLS)
def test_a_sequence_is_read_as_a_balanced_tree_over_its_real_tokens(cell: str) -> None:
    encoder = _encoder(cell)
    lengths = [7, 4, 1, 8, 5]
    values = torch.randn(len(lengths), 8, FEATURES, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = encoder(SequenceBatch(values, torch.tensor(lengths)))
        for item, length in enumerate(lengths):
            tree = balanced_trees([length])
            leaves = tree.values.clone()
            leaves[tree.left < 0] = values[item, :length]
            root = encoder(dataclasses.replace(tree, values=leaves)).final[0]
            torch.testing.assert_close(out.final[item], root)
            torch.testing.assert_close(out.outputs[item, length - 1], root[0])


def test_sequence_outputs_are_the_largest_subtree_ending_at_each_token() -> None:
    encoder = _encoder("tanh")
    values = torch.randn(1, 6, FEATURES, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = encoder(SequenceBatch(values, torch.tensor([6]))).outputs[0]
        leaves = encoder.compose(encoder.input_projection(values[0]))
        bias = encoder.input_projection.bias

        def parent(left, right):
            return encoder.compose(bias, left, right)

        pair01, pair23, pair45 = parent(leaves[0], leaves[1]), parent(leaves[2], leaves[3]), parent(leaves[4], leaves[5])
        quad = parent(pair01, pair23)
        root = parent(quad, pair45)
    # spans: (0), (0-1), (2), (0-3), (4), (0-5)
    for position, expected in enumerate([leaves[0], pair01, leaves[2], quad, leaves[4], root]):
        torch.testing.assert_close(out[position], expected)


@pytest.mark.parametrize("cell", CELLS)
def test_internal_nodes_have_no_input_whatever_their_values(cell: str) -> None:
    """Tai et al. 2015: an internal node's input is x = 0, as on the sequence path. Token trees put
    a filler id (0, `<unk>`) there: neither the outputs nor its gradient may depend on it."""
    encoder = _encoder(cell)
    trees = random_trees([3, 6], seed=2)
    internal = trees.left >= 0
    filled = dataclasses.replace(trees, values=torch.where(internal.unsqueeze(-1), 5.0, trees.values)
                                 .requires_grad_())
    outputs = encoder(filled).outputs
    torch.testing.assert_close(outputs, encoder(trees).outputs)
    torch.testing.assert_close(encoder.forward_node_by_node(filled), encoder(trees).outputs,
                               atol=1e-6, rtol=1e-5)
    outputs.sum().backward()
    assert torch.count_nonzero(filled.values.grad[internal]) == 0
    assert filled.values.grad[~internal].abs().sum() > 0


def test_bad_trees_and_empty_sequences_raise() -> None:
    encoder = _encoder("tanh")
    trees = balanced_trees([3])
    one_child = dataclasses.replace(trees, right=torch.where(trees.right == trees.right.max(), -1, trees.right))
    with pytest.raises(BenchmarkError, match="exactly one child"):
        encoder(one_child)
    with pytest.raises(BenchmarkError, match="heights"):
        encoder(dataclasses.replace(trees, height=torch.zeros_like(trees.height)))
    with pytest.raises(BenchmarkError, match="empty sequence"):
        encoder(SequenceBatch(torch.zeros(2, 3, FEATURES), torch.tensor([3, 0])))

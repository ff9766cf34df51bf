"""Training throughput of each custom recurrence beside its closest fused PyTorch module, and the
recursive network's level-batched composition beside per-node recursion.

Throughput: items (sequences, trees or images) per second of full training steps (forward, a
squared-error loss on a linear readout of the final state, backward, Adam step), best of a few
timed rounds so that other load on the machine counts as little as possible. Both sides of a row
use the same hidden size, batch and inputs. Everything runs on one CPU thread: on a shared machine
several OpenMP threads mostly measure the scheduler, not the recurrences.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnbench.plugins.deep_rnn import DeepResidualRNN, DeepRNNOptions
from rnnbench.plugins.echo_state import EchoState, EchoStateOptions
from rnnbench.plugins.fused_rnn import FusedEncoder
from rnnbench.plugins.pixel_rnn import PixelRNN, PixelRNNOptions
from rnnbench.plugins.recursive import Recursive, RecursiveOptions
from rnnbench.conformance import random_trees
from rnnbench.contracts import GridBatch, SequenceBatch, TreeBatch

BATCH, STEPS, FEATURES, HIDDEN = 32, 50, 8, 64
IMAGE, IMAGE_BATCH, IMAGE_HIDDEN = 16, 16, 32
TREES, TREE_FEATURES = 64, 32
ROUNDS, STEPS_PER_ROUND = 3, 3


@dataclass
class Row:
    name: str
    custom: float
    fused_name: str
    fused: float


class FusedSequence(nn.Module):
    """The suite's wrapper of a fused nn.RNN / nn.LSTM (packed only when lengths differ),
    returning the last layer's state after each item's last real step."""

    def __init__(self, module: nn.RNNBase) -> None:
        super().__init__()
        self.encoder = FusedEncoder(module)

    def forward(self, batch: SequenceBatch) -> Tensor:
        return self.encoder(batch).final[:, 0]


def training_throughput(model: nn.Module, forward: Callable[[], Tensor], items: int,
                        targets: Tensor) -> float:
    """Items/s of training steps on a linear readout of `forward()`'s (B, H) summary."""
    readout = nn.LazyLinear(1)
    forward_summary = lambda: readout(forward()).squeeze(-1)  # noqa: E731
    forward_summary()  # materialise the lazy readout
    parameters = [p for p in (*model.parameters(), *readout.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step() -> None:
        loss = ((forward_summary() - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(STEPS_PER_ROUND):
            step()
        best = min(best, (time.perf_counter() - started) / STEPS_PER_ROUND)
    return items / best


def _sequences() -> SequenceBatch:
    generator = torch.Generator().manual_seed(0)
    return SequenceBatch(torch.randn(BATCH, STEPS, FEATURES, generator=generator),
                         torch.full((BATCH,), STEPS))


def _sentences(trees: TreeBatch) -> SequenceBatch:
    """The leaves of each tree as a padded sequence (the same tokens a chain RNN would read)."""
    leaves = trees.left < 0
    counts = torch.bincount(trees.tree_index[leaves], minlength=trees.batch_size)
    values = torch.zeros(trees.batch_size, int(counts.max()), trees.values.shape[1])
    order = torch.argsort(trees.tree_index[leaves], stable=True)
    rows = trees.tree_index[leaves][order]
    columns = torch.arange(len(order)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    values[rows, columns] = trees.values[leaves][order]
    return SequenceBatch(values, counts)


def sentence_trees(seed: int = 0) -> TreeBatch:
    """64 random binary trees over 10-40 leaves (sentence-sized, like parse trees)."""
    lengths = torch.randint(10, 41, (TREES,), generator=torch.Generator().manual_seed(seed)).tolist()
    return random_trees(lengths, seed=seed, features=TREE_FEATURES)


def throughput_rows() -> list[Row]:
    rows = []
    sequences = _sequences()
    targets = torch.zeros(BATCH)

    def sequence_row(name: str, encoder: nn.Module, fused_name: str, fused: nn.RNNBase) -> Row:
        custom = training_throughput(encoder, lambda: encoder(sequences).final[:, 0], BATCH, targets)
        baseline = FusedSequence(fused)
        return Row(name, custom, fused_name, training_throughput(baseline, lambda: baseline(sequences),
                                                                 BATCH, targets))

    torch.manual_seed(0)
    rows.append(sequence_row("esn (gradient readout)", EchoState().build(FEATURES, HIDDEN, EchoStateOptions()),
                             "nn.RNN tanh", nn.RNN(FEATURES, HIDDEN, batch_first=True)))
    rows.append(sequence_row("deep_rnn lstm x4, residual",
                             DeepResidualRNN().build(FEATURES, HIDDEN, DeepRNNOptions(cell="lstm", num_layers=4)),
                             "nn.LSTM 4 layers", nn.LSTM(FEATURES, HIDDEN, num_layers=4, batch_first=True)))
    rows.append(sequence_row("deep_rnn rnn x8, residual",
                             DeepResidualRNN().build(FEATURES, HIDDEN, DeepRNNOptions(cell="rnn", num_layers=8)),
                             "nn.RNN 8 layers", nn.RNN(FEATURES, HIDDEN, num_layers=8, batch_first=True)))

    trees = sentence_trees()
    sentences = _sentences(trees)
    tree_targets = torch.zeros(TREES)
    for cell, fused_name, fused in (("tanh", "nn.RNN tanh", nn.RNN), ("treelstm", "nn.LSTM", nn.LSTM)):
        encoder = Recursive().build(TREE_FEATURES, HIDDEN, RecursiveOptions(cell=cell))
        baseline = FusedSequence(fused(TREE_FEATURES, HIDDEN, batch_first=True))
        rows.append(Row(f"recursive {cell} (64 trees)",
                        training_throughput(encoder, lambda: encoder(trees).final[:, 0], TREES, tree_targets),
                        f"{fused_name} on the leaves",
                        training_throughput(baseline, lambda: baseline(sentences), TREES, tree_targets)))

    images = GridBatch(torch.rand(IMAGE_BATCH, 1, IMAGE, IMAGE, generator=torch.Generator().manual_seed(0)))
    raster = SequenceBatch(images.values.flatten(2).transpose(1, 2).contiguous(),
                           torch.full((IMAGE_BATCH,), IMAGE * IMAGE))
    image_targets = torch.zeros(IMAGE_BATCH)
    baseline = FusedSequence(nn.LSTM(1, IMAGE_HIDDEN, batch_first=True))
    fused_images = training_throughput(baseline, lambda: baseline(raster), IMAGE_BATCH, image_targets)
    for variant in ("row_lstm", "diagonal_bilstm"):
        encoder = PixelRNN().build(1, IMAGE_HIDDEN, PixelRNNOptions(variant=variant, num_layers=1, first_kernel=3))
        rows.append(Row(f"pixelrnn {variant} ({IMAGE}x{IMAGE})",
                        training_throughput(encoder, lambda: encoder(images).outputs.mean(dim=(2, 3)),
                                            IMAGE_BATCH, image_targets),
                        f"nn.LSTM over {IMAGE * IMAGE} pixels", fused_images))
    return rows


def _best_time(function: Callable[[], object], rounds: int = 3) -> float:
    function()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def recursive_speedup() -> list[tuple[str, float, float]]:
    """(cell, level-batched seconds, per-node seconds) for forward + backward on 64 trees."""
    trees = sentence_trees()
    results = []
    for cell in ("tanh", "treelstm"):
        torch.manual_seed(0)
        encoder = Recursive().build(TREE_FEATURES, HIDDEN, RecursiveOptions(cell=cell))
        batched = _best_time(lambda: encoder(trees).final.sum().backward())
        per_node = _best_time(lambda: encoder.forward_node_by_node(trees)[trees.roots].sum().backward(), rounds=2)
        results.append((cell, batched, per_node))
    return results


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report()
    finally:
        torch.set_num_threads(threads)


def report() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; sequences {BATCH} x {STEPS} "
          f"steps, hidden {HIDDEN}; images {IMAGE_BATCH} x {IMAGE}x{IMAGE}, hidden {IMAGE_HIDDEN}")
    print(f"\n{'custom recurrence':<36}{'items/s':>10}   {'closest fused module':<28}{'items/s':>10}{'ratio':>8}")
    for row in throughput_rows():
        print(f"{row.name:<36}{row.custom:>10,.0f}   {row.fused_name:<28}{row.fused:>10,.0f}"
              f"{row.custom / row.fused:>8.2f}", flush=True)
    trees = sentence_trees()
    print(f"\nrecursive, {trees.batch_size} trees ({int((trees.left < 0).sum())} leaves, "
          f"{trees.values.shape[0]} nodes, height up to {int(trees.height.max())}), forward + backward:")
    for cell, batched, per_node in recursive_speedup():
        print(f"  {cell:<10} level-batched {batched * 1e3:8.1f} ms   per-node {per_node * 1e3:8.1f} ms   "
              f"speed-up {per_node / batched:6.1f}x", flush=True)


if __name__ == "__main__":
    main()

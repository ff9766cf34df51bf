"""Training throughput of every registered architecture on one shared workload, of each custom
recurrence beside its closest fused PyTorch module, and of the recursive network's level-batched
composition beside per-node recursion.

Throughput: items (sequences, trees or images) per second of full training steps (forward, a
squared-error loss on a linear readout of the final state, backward, Adam step), timed by
`benchmarks.timing.time_steps` (warm-up, then the median of windows). Both sides of a row use the
same hidden size, batch and inputs. The shared workload: a batch of 32 random sequences of 50
steps and 8 features, hidden size 64, each architecture with its default options (pixelrnn, which
reads images, on its own: 16 images of 16x16, hidden 32, beside nn.LSTM over the same pixels in
raster order). Everything runs on one CPU thread: on a shared machine several OpenMP threads mostly
measure the scheduler, not the recurrences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.timing import Table, Windows, ratio, size, time_steps, torch_threads
from rnnbench.core import registry
from rnnbench.plugins.deep_rnn import DeepResidualRNN, DeepRNNOptions
from rnnbench.plugins.echo_state import EchoState, EchoStateOptions
from rnnbench.plugins.fused_rnn import FusedEncoder
from rnnbench.plugins.pixel_rnn import PixelRNN, PixelRNNOptions
from rnnbench.plugins.recursive import Recursive, RecursiveOptions
from rnnbench.conformance.kit import random_trees
from rnnbench.core.contracts import GridBatch, SequenceBatch, TreeBatch

BATCH, STEPS, FEATURES, HIDDEN = 32, 50, 8, 64
IMAGE, IMAGE_BATCH, IMAGE_HIDDEN = 16, 16, 32
TREES, TREE_FEATURES = 64, 32
WINDOWS = size(Windows(1, 3, 3), Windows(1, 1, 1))
REFERENCE = "lstm"   # the shared workload's ratios are to the fused LSTM


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


def training_step(model: nn.Module, forward: Callable[[], Tensor], targets: Tensor) -> Callable[[], None]:
    """One training step (forward, squared error on a linear readout of `forward()`'s (B, H)
    summary, backward, Adam step) as a function, the readout materialised."""
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

    return step


def training_throughput(model: nn.Module, forward: Callable[[], Tensor], items: int,
                        targets: Tensor, windows: Windows = WINDOWS) -> float:
    """Items/s of training steps on a linear readout of `forward()`'s (B, H) summary."""
    return items / time_steps(training_step(model, forward, targets), windows)


def build_encoder(name: str, input_size: int, hidden: int, **options: Any) -> nn.Module:
    """The registered architecture `name`'s encoder with its default options (or `options`)."""
    cls = registry.get_architecture(name)
    return cls().build(input_size, hidden, cls.Options(**options))


def sequence_architectures() -> list[str]:
    """Every registered architecture that reads plain sequences."""
    return [name for name, cls in registry.architectures().items() if "sequence" in cls.capabilities.structures]


def grid_architectures() -> list[str]:
    return [name for name, cls in registry.architectures().items()
            if "grid" in cls.capabilities.structures and "sequence" not in cls.capabilities.structures]


def summary(encoder: nn.Module, inputs: Any) -> Callable[[], Tensor]:
    """The (B, H) summary an encoder's step is trained on: its final state, all directions."""
    if isinstance(inputs, GridBatch):
        return lambda: encoder(inputs).outputs.mean(dim=(2, 3))
    return lambda: encoder(inputs).final.flatten(1)


def shared_workload() -> list[tuple[str, float]]:
    """(architecture, items/s) of every registered architecture on the shared workload."""
    sequences, targets = _sequences(), torch.zeros(BATCH)
    rows = []
    for name in sequence_architectures():
        torch.manual_seed(0)
        encoder = build_encoder(name, FEATURES, HIDDEN)
        rows.append((name, training_throughput(encoder, summary(encoder, sequences), BATCH, targets)))
    images = _images()
    for name in grid_architectures():
        torch.manual_seed(0)
        encoder = build_encoder(name, 1, IMAGE_HIDDEN)
        rows.append((f"{name} (images)", training_throughput(encoder, summary(encoder, images), IMAGE_BATCH,
                                                             torch.zeros(IMAGE_BATCH))))
    return rows


def _images() -> GridBatch:
    return GridBatch(torch.rand(IMAGE_BATCH, 1, IMAGE, IMAGE, generator=torch.Generator().manual_seed(0)))


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
    # the custom tanh recurrences, each beside the fused Elman RNN it generalises
    for name, label in (("jordan", "jordan (output recurrence)"), ("leaky_rnn", "leaky_rnn (learned leaks)"),
                        ("skip_rnn", "skip_rnn (delays 1+4)")):
        if name in registry.architectures():
            rows.append(sequence_row(label, build_encoder(name, FEATURES, HIDDEN), "nn.RNN tanh",
                                     nn.RNN(FEATURES, HIDDEN, batch_first=True)))

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

    images = _images()
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




def recursive_speedup() -> list[tuple[str, float, float]]:
    """(cell, level-batched seconds, per-node seconds) for forward + backward on 64 trees."""
    trees = sentence_trees()
    results = []
    for cell in ("tanh", "treelstm"):
        torch.manual_seed(0)
        encoder = Recursive().build(TREE_FEATURES, HIDDEN, RecursiveOptions(cell=cell))
        batched = time_steps(lambda: encoder(trees).final.sum().backward(), size(Windows(1, 3, 1), Windows(0, 1, 1)))
        per_node = time_steps(lambda: encoder.forward_node_by_node(trees)[trees.roots].sum().backward(),
                              size(Windows(0, 3, 1), Windows(0, 1, 1)))
        results.append((cell, batched, per_node))
    return results


def main() -> dict[str, Any]:
    with torch_threads(1):
        return report()


def report() -> dict[str, Any]:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; sequences {BATCH} x {STEPS} "
          f"steps x {FEATURES} features, hidden {HIDDEN}; images {IMAGE_BATCH} x {IMAGE}x{IMAGE}, hidden "
          f"{IMAGE_HIDDEN}; each figure: {WINDOWS.describe()}")
    figures: dict[str, Any] = {"threads": torch.get_num_threads(), "windows": WINDOWS.as_dict(),
                               "workload": {"batch": BATCH, "steps": STEPS, "features": FEATURES,
                                            "hidden": HIDDEN, "image": IMAGE, "image_batch": IMAGE_BATCH,
                                            "image_hidden": IMAGE_HIDDEN}}
    shared = shared_workload()
    reference = dict(shared).get(REFERENCE)
    table = Table(f"\nevery architecture, default options, one shared workload (ratio: to {REFERENCE})",
                  [("architecture", ""), ("items/s", ",.0f"), (f"/ {REFERENCE}", ".2f")])
    for name, throughput in shared:
        table.add(name, throughput, ratio(throughput, reference) if reference and "images" not in name else None)
    table.print()
    figures["shared_workload"] = {name: throughput for name, throughput in shared}

    table = Table("\neach custom recurrence beside its closest fused module (ratio: custom / fused)",
                  [("custom recurrence", ""), ("items/s", ",.0f"), ("closest fused module", ""),
                   ("items/s", ",.0f"), ("ratio", ".2f")])
    rows = throughput_rows()
    for row in rows:
        table.add(row.name, row.custom, row.fused_name, row.fused, ratio(row.custom, row.fused))
    table.print()
    figures["custom_vs_fused"] = [{"custom": row.name, "custom_items_per_s": row.custom, "fused": row.fused_name,
                                   "fused_items_per_s": row.fused, "ratio": ratio(row.custom, row.fused)}
                                  for row in rows]

    trees = sentence_trees()
    print(f"\nrecursive, {trees.batch_size} trees ({int((trees.left < 0).sum())} leaves, "
          f"{trees.values.shape[0]} nodes, height up to {int(trees.height.max())}), forward + backward:")
    figures["recursive_speedup"] = {}
    for cell, batched, per_node in recursive_speedup():
        print(f"  {cell:<10} level-batched {batched * 1e3:8.1f} ms   per-node {per_node * 1e3:8.1f} ms   "
              f"speed-up {per_node / batched:6.1f}x", flush=True)
        figures["recursive_speedup"][cell] = {"level_batched_s": batched, "per_node_s": per_node}
    return figures


if __name__ == "__main__":
    main()

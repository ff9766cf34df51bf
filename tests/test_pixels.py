import gzip
import struct

import pytest
import torch

from rnnbench.core import registry
from rnnbench.core.errors import BenchmarkError
from rnnbench.training.runner import run
from rnnbench.tasks.pixels import fixed_permutation, hold_out, load_fashion_mnist, read_idx

TINY_FASHION = {"task.train_size": "48", "task.val_size": "16", "task.test_size": "16",
                "trainer.batch_size": "16", "trainer.max_steps": "2", "trainer.val_every_steps": "2",
                "arch.hidden_size": "4"}


def _task(name: str, **settings):
    cls = registry.get_task(name)
    options = cls.Options(**settings)
    return cls(options)


@pytest.mark.data("fashion_mnist")
def test_fashion_mnist_is_read_whole_and_balanced():
    images, labels = load_fashion_mnist("train")
    assert images.shape == (60_000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [6_000] * 10
    test_images, test_labels = load_fashion_mnist("t10k")
    assert test_images.shape == (10_000, 28, 28) and torch.bincount(test_labels).tolist() == [1_000] * 10
    assert int(images.max()) == 255 and int(images.min()) == 0


def test_a_truncated_idx_file_is_refused(tmp_path):
    path = tmp_path / "bad-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(bytes([0, 0, 0x08, 3]) + struct.pack(">iii", 5, 28, 28) + bytes(100))
    with pytest.raises(BenchmarkError, match="truncated"):
        read_idx(path)
    with gzip.open(path, "wb") as stream:
        stream.write(b"not an idx file")
    with pytest.raises(BenchmarkError, match="IDX"):
        read_idx(path)


def test_validation_is_held_out_of_training_the_same_way_every_time():
    kept, held = hold_out(100, 10)
    assert len(held) == 10 and len(kept) == 90
    assert not set(kept.tolist()) & set(held.tolist())
    again_kept, again_held = hold_out(100, 10)
    assert torch.equal(held, again_held) and torch.equal(kept, again_kept)
    with pytest.raises(BenchmarkError, match="val_size"):
        hold_out(100, 100)


@pytest.mark.data("fashion_mnist")
def test_sequential_fashion_reads_one_pixel_per_step_in_raster_order():
    task = _task("sequential_fmnist", train_size=8, val_size=4, test_size=4)
    pixels, labels = task.sequences("test")
    images, test_labels = load_fashion_mnist("t10k")
    assert pixels.shape == (4, 784, 1)
    assert torch.allclose(pixels[1, :, 0], images[1].flatten().float() / 255)
    assert torch.equal(labels, test_labels[:4])
    train, _ = task.sequences("train")
    val, _ = task.sequences("val")
    assert train.shape[0] == 8 and val.shape[0] == 4


@pytest.mark.data("fashion_mnist")
def test_permuted_fashion_reads_the_same_pixels_in_one_fixed_scrambled_order():
    sequential, _ = _task("sequential_fmnist", train_size=8, val_size=4, test_size=4).sequences("test")
    permuted, _ = _task("permuted_fmnist", train_size=8, val_size=4, test_size=4).sequences("test")
    order = fixed_permutation(784)
    assert torch.equal(permuted, sequential[:, order])
    assert not torch.equal(permuted, sequential)
    assert torch.equal(order, fixed_permutation(784))


def test_digits_splits_are_disjoint_and_cover_the_set():
    task = _task("sequential_digits")
    sizes = {split: task.sequences(split)[0].shape for split in ("train", "val", "test")}
    assert sizes["test"] == (360, 64, 1) and sizes["val"] == (180, 64, 1)
    assert sizes["train"][0] == 1_797 - 360 - 180
    rows = {split: {tuple(row.flatten().tolist()) for row in task.sequences(split)[0]}
            for split in ("train", "test")}
    # a handful of digit images are exact duplicates of one another; nearly none may cross over
    assert len(rows["train"] & rows["test"]) <= 3
    with pytest.raises(BenchmarkError, match="test_size"):
        _task("sequential_digits", test_size=1_700).sequences("test")


def test_a_tiny_lstm_learns_sequential_digits_well_above_chance(tmp_path):
    settings = {"arch.hidden_size": "24", "trainer.max_steps": "150", "trainer.val_every_steps": "150",
                "optim.lr": "0.01", "task.train_size": "600"}
    result = run("lstm", "sequential_digits", settings, store=tmp_path / "r.sqlite", progress=False)
    assert result.metrics["test/accuracy"] > 0.3   # chance is 0.1


@pytest.mark.data("fashion_mnist")
@pytest.mark.parametrize("task", ["sequential_fmnist", "permuted_fmnist"])
def test_a_tiny_model_runs_on_the_fashion_pixel_tasks(tmp_path, task):
    result = run("gru", task, TINY_FASHION, store=tmp_path / "r.sqlite", progress=False)
    assert 0.0 <= result.metrics["test/accuracy"] <= 1.0
    assert torch.isfinite(torch.tensor(result.metrics["test/loss"]))


@pytest.mark.slow
def test_the_lstm_beats_the_rnn_on_sequential_digits_at_the_default_budget(tmp_path):
    accuracy = {name: run(name, "sequential_digits", store=tmp_path / "r.sqlite", progress=False)
                .metrics["test/accuracy"] for name in ("lstm", "rnn")}
    assert accuracy["lstm"] > 0.93
    assert accuracy["lstm"] > accuracy["rnn"]

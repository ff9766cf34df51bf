"""The one batching helper (`rnnbench.toolkit.batching.IndexBatches`): pass k depends only on (seed, k),
`passes` is settable (resume replays a pass), DDP ranks each get their share, and every task's
batches are the ones it drew before the helper was unified (the PINNED values were computed with
the code before the change, so published numbers stay valid)."""

import pytest
import torch

from rnnbench.toolkit import batching
from rnnbench.toolkit.batching import IndexBatches
from rnnbench.toolkit.text import BucketBatches

LENGTHS = torch.tensor([5, 3, 9, 3, 7, 1, 4, 4, 8, 2, 6, 5, 3, 9, 1, 2, 7, 7, 4, 6, 2, 8, 3, 5, 5])

# computed with the per-class iterables (IndexBatches, BucketBatches, FreshBatches, DrawnBatches)
# before they became one helper; a change here changes published results
PINNED = {
    "index": [[[3, 5, 32, 18, 24, 20, 30, 40], [11, 0, 29, 17, 1, 46, 16, 10]],
              [[13, 6, 47, 43, 36, 23, 38, 44], [33, 27, 39, 41, 14, 2, 24, 32]]],
    "bucket": [[[12, 7, 6, 18], [0, 11, 24, 23]], [[19, 10, 4, 16], [2]]],
    "bucket_eval": [[5, 14, 9, 15], [20, 1, 3, 12], [22, 6, 7, 18], [0, 11, 23, 24], [10, 19, 4, 16],
                    [17, 8, 21, 2], [13]],
    "copy": [[139.737581, 153.444658], [166.457783, 176.543336]],
    "copy_val": 290.781578,
    "adding": [[6.486112, 1.577308], [0.753296, -5.180206]],
    "images_threshold": [[7.246593, -10.210585], [-0.052174, 0.731759]],
    "images_dynamic": [[-21.362903, -14.353832], [20.636367, 25.326931]],
    "digits": [[11.401361, 4.536376], [5.633742, 1.765339]],
    "pos": [[-1162.866491, -739.019725], [-522.913829, 908.6446]],
    "sst-fine": [[2016.134907, 1719.797556], [1133.812645, -827.097752]],
}


def _fingerprint(tensor: torch.Tensor) -> float:
    values = tensor.double().flatten()
    return round(float((values * torch.arange(1, values.numel() + 1, dtype=torch.float64).sin()).sum()), 6)


def _first_batches(batches, count: int = 2) -> list[list]:
    """The first `count` batches of pass 0 and of pass 1."""
    passes = []
    for _ in range(2):
        iterator = iter(batches)
        passes.append([next(iterator) for _ in range(count)])
    return passes


def _approx(values):
    return [pytest.approx(row, abs=1e-4) for row in values]


# --------------------------------------------------------------------------- pinned orders


def test_index_and_bucket_orders_are_the_published_ones():
    shuffled = IndexBatches(50, 8, lambda indices: indices, shuffle=True, seed=3)
    assert [[b.tolist() for b in p] for p in _first_batches(shuffled)] == PINNED["index"]
    bucketed = BucketBatches(LENGTHS, 4, lambda indices: indices, shuffle=True, seed=3)
    assert [[b.tolist() for b in p] for p in _first_batches(bucketed)] == PINNED["bucket"]
    assert [b.tolist() for b in BucketBatches(LENGTHS, 4, lambda indices: indices)] == PINNED["bucket_eval"]


def test_probe_batches_are_the_published_ones():
    from rnnbench.tasks.probes import Adding, Copy
    copy = Copy(Copy.Options(length=5, train_size=100, eval_size=20)).splits(16, 3)
    drawn = [[_fingerprint(b.inputs.values) + _fingerprint(b.targets) for b in p] for p in _first_batches(copy.train)]
    assert drawn == _approx(PINNED["copy"])
    assert _fingerprint(next(iter(copy.val)).inputs.values) == pytest.approx(PINNED["copy_val"], abs=1e-4)
    adding = Adding(Adding.Options(length=5, train_size=100, eval_size=20)).splits(16, 3)
    drawn = [[_fingerprint(b.inputs.values) + _fingerprint(b.targets) for b in p] for p in _first_batches(adding.train)]
    assert drawn == _approx(PINNED["adding"])


def test_pixel_batches_are_the_published_ones():
    pytest.importorskip("sklearn")
    from rnnbench.tasks.pixels import SequentialDigits
    digits = SequentialDigits(SequentialDigits.Options()).splits(16, 3)
    drawn = [[_fingerprint(b.targets) + _fingerprint(b.inputs.values) for b in p] for p in _first_batches(digits.train)]
    assert drawn == _approx(PINNED["digits"])


@pytest.mark.data("fashion_mnist")
@pytest.mark.parametrize("binarization", ["threshold", "dynamic"])
def test_image_batches_are_the_published_ones(binarization):
    from rnnbench.tasks.images import ImageDensity
    options = ImageDensity.Options(binarization=binarization, train_size=100, val_size=50, test_size=50)
    splits = ImageDensity(options).splits(16, 3)
    drawn = [[_fingerprint(b.targets) for b in p] for p in _first_batches(splits.train)]
    assert drawn == _approx(PINNED[f"images_{binarization}"])


@pytest.mark.parametrize("name, dataset", [("pos", "ud_english_ewt"), ("sst-fine", "sst")])
def test_text_batches_are_the_published_ones(name, dataset):
    from conftest import require_datasets
    from rnnbench.core import registry
    require_datasets((dataset,))
    cls = registry.get_task(name)
    splits = cls(cls.Options(train_sentences=300, eval_sentences=50)).splits(16, 3)
    drawn = [[_fingerprint(b.inputs.values) + _fingerprint(b.targets) for b in p] for p in _first_batches(splits.train)]
    assert drawn == _approx(PINNED[name])


# --------------------------------------------------------------------------- the helper


def test_a_pass_depends_only_on_the_seed_and_its_index_and_passes_is_settable():
    batches = IndexBatches(30, 7, lambda indices: indices, shuffle=True, seed=5)
    first, second = ([b.tolist() for b in batches] for _ in range(2))
    assert first != second and batches.passes == 2
    assert sorted(sum(first, [])) == list(range(30)) and len(first) == len(batches) == 5
    batches.passes = 1                           # what ResumableBatches does to replay pass 1
    assert [b.tolist() for b in batches] == second
    other = IndexBatches(30, 7, lambda indices: indices, shuffle=True, seed=5)
    other.passes = 1
    assert [b.tolist() for b in other] == second
    assert [b.tolist() for b in IndexBatches(30, 7, lambda i: i, shuffle=True, seed=6)] != first


def test_drawn_passes_draw_new_examples_from_the_seed_and_pass():
    def draw(generator):
        values = torch.rand(10, generator=generator)
        return lambda indices: values[indices]

    batches = IndexBatches(10, 4, draw=draw, seed=2)
    first, second = (torch.cat(list(batches)) for _ in range(2))
    assert not torch.equal(first, second)
    replay = IndexBatches(10, 4, draw=draw, seed=2)
    replay.passes = 1
    assert torch.equal(torch.cat(list(replay)), second)


@pytest.mark.parametrize("world_size", [2, 3])
def test_each_rank_yields_its_share_and_all_ranks_take_the_same_number_of_steps(monkeypatch, world_size):
    whole = [b.tolist() for b in IndexBatches(50, 8, lambda i: i, shuffle=True, seed=3)]   # 7 batches
    shares = []
    for rank in range(world_size):
        monkeypatch.setattr(batching, "distributed_shard", lambda rank=rank: (rank, world_size))
        batches = IndexBatches(50, 8, lambda i: i, shuffle=True, seed=3)
        shares.append([b.tolist() for b in batches])
        assert len(shares[-1]) == len(batches) == -(-len(whole) // world_size)
    padded = whole + whole[:len(shares[0]) * world_size - len(whole)]   # repeats the first batches
    assert shares == [padded[rank::world_size] for rank in range(world_size)]


def test_outside_ddp_the_whole_pass_is_yielded():
    assert batching.distributed_shard() == (0, 1)


def _share_of_rank(rank: int, world_size: int, store_file: str, out_folder: str) -> None:
    import json
    torch.distributed.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank,
                                         world_size=world_size)
    try:
        batches = IndexBatches(50, 8, lambda indices: indices, shuffle=True, seed=3)
        share = {"len": len(batches), "pass0": [b.tolist() for b in batches], "pass1": [b.tolist() for b in batches]}
        with open(f"{out_folder}/{rank}.json", "w") as stream:
            json.dump(share, stream)
    finally:
        torch.distributed.destroy_process_group()


def test_under_a_real_process_group_the_ranks_split_every_pass(tmp_path):
    import json
    torch.multiprocessing.spawn(_share_of_rank, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    shares = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2)]
    whole = IndexBatches(50, 8, lambda indices: indices, shuffle=True, seed=3)
    for pass_index in range(2):
        batches = [b.tolist() for b in whole]                                  # 7 batches: rank 1 repeats the first
        padded = batches + batches[:1]
        assert [share[f"pass{pass_index}"] for share in shares] == [padded[0::2], padded[1::2]]
    assert [share["len"] for share in shares] == [4, 4]

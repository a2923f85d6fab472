"""Offline preparation of tfds's own `fashion_mnist` from local copies of the official files.

After `prepare_fashion_mnist()`, `tfds.load("fashion_mnist")` reads the prepared dataset exactly as
after an online preparation: tfds's own builder, its own checksums, its own dataset files.

The four official files (`train-images-idx3-ubyte.gz`, ...) come from the Debian package
`dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`), a folder named by the environment
variable `KERAS_ATTN_FASHION_MNIST`, or Keras's download cache (`~/.keras/datasets/fashion-mnist`).
Debian normalises their gzip header (dh_strip_nondeterminism drops the stored file name and
replaces the time stamp) but keeps the compressed stream, so their sha256 differ from the ones tfds
registered. Preparation therefore

1. checks the sha256 of every file's DECOMPRESSED IDX data against `IDX_SHA256`, the values of the
   official Zalando release recorded here;
2. puts the official gzip header back (the file name and the original time stamp, `GZIP_MTIME`),
   which gives the official `.gz` byte for byte;
3. hands these files to tfds's `fashion_mnist` builder as manually downloaded files
   (`DownloadConfig(manual_dir=...)`), which checks them against tfds's own registered checksums
   and prepares the dataset as it would after a download.

Everything temporary lives outside `data_dir`, and tfds writes the dataset atomically, so a failed
preparation leaves nothing half-prepared behind.

The package also carries `TEST_SAMPLE_FILE`: the first `TEST_SAMPLE_SIZE` images and labels of the
official test file (Fashion-MNIST is MIT-licensed, (c) 2017 Zalando SE), so that the demo and the
check of the shipped `classifier_fashion` card run on real Fashion-MNIST items on any machine,
offline; `load_test_sample()` reads it and `write_test_sample()` made it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from keras_attn._io import atomic_path

NAME = "fashion_mnist"
# The label names of the official release, in label order (tfds's ClassLabel names are the same).
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
TEST_SAMPLE_SIZE = 256
TEST_SAMPLE_FILE = Path(__file__).with_name("fashion_mnist_test_sample.npz")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
ENV_VAR = "KERAS_ATTN_FASHION_MNIST"
DEFAULT_SOURCE_DIRS: tuple[str, ...] = (
    "/usr/share/datasets/fashion-mnist",  # apt-get install dataset-fashion-mnist
    "~/.keras/datasets/fashion-mnist",  # keras.datasets.fashion_mnist.load_data()
)
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# sha256 of the decompressed IDX files of the official Zalando release.
IDX_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
# MTIME field of the official .gz headers (2017-08-31 10:50:06 and 10:50:27 UTC).
GZIP_MTIME = {
    "train-images-idx3-ubyte.gz": 1504176606,
    "train-labels-idx1-ubyte.gz": 1504176606,
    "t10k-images-idx3-ubyte.gz": 1504176627,
    "t10k-labels-idx1-ubyte.gz": 1504176627,
}
_GZIP_MAGIC = b"\x1f\x8b\x08"  # ID1, ID2, CM = deflate
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10
_UNIX = 3  # OS field of the official headers (XFL is 0)
_INSTALL_HINT = (
    f"install the Debian package {DEBIAN_PACKAGE} (`apt-get install {DEBIAN_PACKAGE}`), or "
    f"without root run `apt-get download {DEBIAN_PACKAGE} && dpkg-deb -x "
    f"{DEBIAN_PACKAGE}_*.deb DIR` and set {ENV_VAR}=DIR/usr/share/datasets/fashion-mnist"
)


def source_dirs(source_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for the four files, in order: `source_dir` alone when given, else
    `$KERAS_ATTN_FASHION_MNIST` (when set) and `DEFAULT_SOURCE_DIRS`."""
    if source_dir is not None:
        return [Path(source_dir).expanduser()]
    candidates = [os.environ[ENV_VAR]] if os.environ.get(ENV_VAR) else []
    return [Path(path).expanduser() for path in [*candidates, *DEFAULT_SOURCE_DIRS]]


def find_source_dir(source_dir: str | os.PathLike | None = None) -> Path | None:
    """The first folder of `source_dirs(source_dir)` that holds all four files, or `None`."""
    for directory in source_dirs(source_dir):
        if all((directory / name).is_file() for name in FILES):
            return directory
    return None


def download_reachable(timeout: float = 5.0) -> bool:
    """Whether the server tfds's `fashion_mnist` builder downloads from answers (one HEAD
    request), so that tfds's own download would work."""
    urls = {info.filename: url for url, info in _tfds_url_infos().items()}
    if not urls:
        return False
    url = urls.get("t10k-labels-idx1-ubyte.gz", next(iter(urls.values())))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except (OSError, ValueError, http.client.HTTPException):  # URLError, HTTPError, timeouts
        return False


def official_gzip(path: Path, expected_sha256: Mapping[str, str] | None = None) -> bytes:
    """The official `.gz` file that `path` (any gzip copy of one of `FILES`) was made from: its
    decompressed data is checked against `expected_sha256` (default `IDX_SHA256`), then the
    official gzip header (file name, time stamp `GZIP_MTIME`) is put back on its compressed
    stream. Raises a one-line `ValueError` naming `path` when it is no valid gzip file or its data
    is not the expected one."""
    path = Path(path)
    name = path.name
    expected = IDX_SHA256 if expected_sha256 is None else expected_sha256
    if name not in expected or name not in GZIP_MTIME:
        raise ValueError(f"Not a Fashion-MNIST file name: {str(path)!r}. Expected one of {FILES}.")
    raw = path.read_bytes()
    try:
        data = gzip.decompress(raw)
        stream = _compressed_stream(raw)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise ValueError(
            f"{str(path)!r} is no valid gzip file ({error}); reinstall {DEBIAN_PACKAGE} or "
            f"replace the file."
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected[name]:
        raise ValueError(
            f"{str(path)!r} is not the official Fashion-MNIST {name}: the sha256 of its "
            f"decompressed data is {digest}, expected {expected[name]}; the file is corrupt or "
            f"another data set (reinstall {DEBIAN_PACKAGE} or replace the file)."
        )
    header = _GZIP_MAGIC + struct.pack("<BIBB", _FNAME, GZIP_MTIME[name], 0, _UNIX)
    return header + name.removesuffix(".gz").encode("latin-1") + b"\0" + stream


def prepare_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
    expected_sha256: Mapping[str, str] | None = None,
) -> tfds.core.DatasetBuilder:
    """Prepares tfds's own `fashion_mnist` in `data_dir` (default: tfds's) from local copies of
    the official files and returns its builder; afterwards `tfds.load("fashion_mnist")` works
    without network.

    Args:
        data_dir: tfds data directory (default: tfds's own, `~/tensorflow_datasets`).
        source_dir: folder with the four `.gz` files. Default: the first of
            `$KERAS_ATTN_FASHION_MNIST`, `/usr/share/datasets/fashion-mnist` (Debian package
            `dataset-fashion-mnist`) and `~/.keras/datasets/fashion-mnist` that holds them all.
        expected_sha256: sha256 of every file's decompressed data, by file name (default:
            `IDX_SHA256`, the official release).

    Returns:
        The prepared `fashion_mnist` builder (unchanged when it was prepared already; downloaded
        by tfds itself when no files are found but its server answers).

    Raises:
        ValueError: one line, naming the Debian package, when neither the files nor the network
            are there; naming the file when one fails its checksum.
    """
    builder = tfds.builder(NAME, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    source = find_source_dir(source_dir)
    if source is None:
        if source_dir is None and download_reachable():
            builder.download_and_prepare()
            return builder
        searched = [str(directory) for directory in source_dirs(source_dir)]
        offline = "" if source_dir is not None else "its download server is unreachable and "
        raise ValueError(
            f"Fashion-MNIST is not prepared in {str(builder.data_dir_root)!r}, {offline}no folder "
            f"holds all of {', '.join(FILES)} (searched {searched}): {_INSTALL_HINT}."
        )
    files = {name: official_gzip(source / name, expected_sha256) for name in FILES}
    registered = {info.filename: info for info in _tfds_url_infos().values()}
    for name, content in files.items():
        info = registered.get(name)
        if info is None:
            raise ValueError(
                f"tfds's {NAME} builder registers no checksum for {name!r} (it registers "
                f"{sorted(registered)}); this tfds version downloads other files."
            )
        if hashlib.sha256(content).hexdigest() != info.checksum or len(content) != info.size:
            raise ValueError(
                f"{str(source / name)!r} holds the official Fashion-MNIST data but was "
                f"recompressed, and tfds's {NAME} builder accepts only the official .gz files: "
                f"use the files of the Debian package {DEBIAN_PACKAGE} or the official ones."
            )
    with tempfile.TemporaryDirectory(prefix="keras_attn_fashion_mnist_") as scratch:
        manual_dir = Path(scratch) / "manual"
        manual_dir.mkdir()
        for name, content in files.items():
            (manual_dir / name).write_bytes(content)
        builder.download_and_prepare(
            download_dir=Path(scratch) / "downloads",
            download_config=tfds.download.DownloadConfig(
                manual_dir=manual_dir, try_download_gcs=False
            ),
        )
    return builder


def _tfds_url_infos() -> dict[str, tfds.download.checksums.UrlInfo]:
    """tfds's registered `{url: UrlInfo(size, checksum, filename)}` of its `fashion_mnist`."""
    return dict(tfds.builder_cls(NAME).url_infos or {})


def _compressed_stream(raw: bytes) -> bytes:
    """The bytes of a gzip file after its header: the deflate stream and its CRC/size trailer."""
    if raw[:3] != _GZIP_MAGIC or len(raw) < 18:
        raise ValueError("no gzip header")
    flags, position = raw[3], 10
    if flags & _FEXTRA:
        position += 2 + int.from_bytes(raw[position : position + 2], "little")
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            position = raw.index(b"\0", position) + 1
    if flags & _FHCRC:
        position += 2
    return raw[position:]


def read_idx(path: str | os.PathLike, expected_sha256: Mapping[str, str] | None = None):
    """The array of an IDX file (`.gz` or not) of the official release, checked against
    `expected_sha256` (default `IDX_SHA256`) by its `.gz` name: uint8 `(N, 28, 28)` images or
    `(N,)` labels."""
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(_GZIP_MAGIC[:2]):
        raw = gzip.decompress(raw)
    name = path.name if path.name.endswith(".gz") else path.name + ".gz"
    expected = (expected_sha256 or IDX_SHA256).get(name)
    if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
        raise ValueError(f"{str(path)!r} is not the official {name} (sha256 differs)")
    magic, count = struct.unpack(">II", raw[:8])
    dims = magic & 0xFF
    shape = (count, *struct.unpack(f">{dims - 1}I", raw[8 : 4 * (dims + 1)]))
    return np.frombuffer(raw, np.uint8, offset=4 * (dims + 1)).reshape(shape)


def write_test_sample(
    source_dir: str | os.PathLike | None = None,
    path: str | os.PathLike = TEST_SAMPLE_FILE,
    count: int = TEST_SAMPLE_SIZE,
    expected_sha256: Mapping[str, str] | None = None,
) -> Path:
    """Writes the first `count` images (`(N, 28, 28, 1)` uint8) and labels of the official test
    files found as `prepare_fashion_mnist` finds them into the `.npz` file `path`, atomically
    (`expected_sha256`: as there)."""
    source = find_source_dir(source_dir)
    if source is None:
        raise ValueError(f"No folder holds the Fashion-MNIST files: {_INSTALL_HINT}.")
    images = read_idx(source / "t10k-images-idx3-ubyte.gz", expected_sha256)[:count, :, :, None]
    labels = read_idx(source / "t10k-labels-idx1-ubyte.gz", expected_sha256)[:count]
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez_compressed(file, images=images, labels=labels)
    return Path(path)


def load_test_sample() -> tuple[np.ndarray, np.ndarray]:
    """The bundled sample of the official test split: uint8 images `(256, 28, 28, 1)` (white
    garment on black, as in the dataset) and int64 labels `(256,)`, indices into `CLASS_NAMES`."""
    with np.load(TEST_SAMPLE_FILE) as sample:
        return sample["images"], sample["labels"].astype("int64")

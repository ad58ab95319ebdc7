"""Fashion-MNIST loading, splitting, batching and augmentation for both frameworks."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dsl.dataset import CLASS_NAMES  # noqa: F401  -- re-exported: the data set's facts live in dsl/dataset.py

BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
OFFICIAL_REPO = "https://github.com/zalandoresearch/fashion-mnist"
ENV_VAR = "FMNIST_DATA_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_RETRIES = 3
_RETRY_DELAY_S = 2.0  # multiplied by the attempt number; tests set it to 0

# name -> (MD5 of the official .gz, SHA-256 of the decompressed IDX bytes, their size).
# Either match is accepted: Debian recompressed the .gz files but kept the IDX bytes.
CHECKSUMS: dict[str, tuple[str, str, int]] = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        47040016,
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        60008,
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        7840016,
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        10008,
    ),
}

Urlopen = Callable[..., Any]


class DataError(Exception):
    """The Fashion-MNIST files are missing, corrupted or unreadable."""


@dataclass(frozen=True)
class FashionMNIST:
    """Official splits: images float32 (N, 28, 28, 1) in [0, 1], labels int64."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@dataclass(frozen=True)
class Splits:
    """Train/validation/test arrays for one run; validation may be empty."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def cache_dir() -> Path:
    """The per-user download folder, honouring XDG_CACHE_HOME."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "fmnist-dsl" / "fashion-mnist"


def _how_to() -> str:
    """The one explanation of every way to provide the data, on one line as every error is."""
    return (
        f"provide the four Fashion-MNIST files ({', '.join(CHECKSUMS)}):"
        f" pass --data-dir DIR or set {ENV_VAR}=DIR, DIR holding them;"
        f" or apt-get install dataset-fashion-mnist (installs them into {DEBIAN_DIR});"
        f" or download them from {OFFICIAL_REPO} (folder data/fashion) into {cache_dir()}"
    )


def _read_raw(path: Path, name: str, verify: bool = True) -> bytes:
    """Decompress one .gz file, checked against CHECKSUMS[name] when verify is set."""
    fix = f"delete {path} and fetch it again (re-download, or apt-get install --reinstall dataset-fashion-mnist)"
    try:
        packed = path.read_bytes()
        raw = gzip.decompress(packed)
    except (OSError, EOFError, zlib.error) as exc:  # truncated gzip raises EOFError
        raise DataError(f"{path}: unreadable or truncated gzip ({exc}); {fix}") from exc
    if not verify:
        return raw
    if name not in CHECKSUMS:
        raise DataError(f"{path}: {name!r} is not a Fashion-MNIST file name")
    md5, sha256, size = CHECKSUMS[name]
    if hashlib.md5(packed, usedforsecurity=False).hexdigest() != md5 and (
        len(raw) != size or hashlib.sha256(raw).hexdigest() != sha256
    ):
        raise DataError(f"{path}: checksum mismatch, the file is corrupted or incomplete; {fix}")
    return raw


def parse_idx(raw: bytes, ndim: int, source: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes: an unsigned-byte array of ndim dimensions."""
    header = 4 + 4 * ndim
    magic = bytes((0, 0, 0x08, ndim))  # 0x08 = unsigned byte, then the number of dims
    if len(raw) < header or raw[:4] != magic:
        raise DataError(f"{source}: bad IDX magic {raw[:4].hex()}, expected {magic.hex()}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{source}: images are {dims[1]}x{dims[2]}, expected 28x28")
    if len(raw) - header != math.prod(dims):
        raise DataError(f"{source}: {len(raw) - header} data bytes, dims {dims} need {math.prod(dims)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str | Path, ndim: int, *, verify: bool = True) -> np.ndarray:
    """Read one IDX .gz file as a read-only uint8 array, checksum verified first."""
    path = Path(path)
    return parse_idx(_read_raw(path, path.name, verify), ndim, str(path))


def _missing(folder: Path) -> list[str]:
    """The official file names absent from folder."""
    return [name for name in CHECKSUMS if not (folder / name).is_file()]


def _copy_with_progress(resp: Any, out: BinaryIO, name: str) -> None:
    """Stream resp into out in 1 MiB chunks, with a tqdm bar when tqdm is installed."""
    try:
        from tqdm import tqdm  # lazy: only downloads need it
    except ImportError:
        tqdm = None
    headers = getattr(resp, "headers", None)
    total = int(headers.get("Content-Length") or 0) if headers is not None else 0
    bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=name) if tqdm else None
    try:
        while chunk := resp.read(1 << 20):
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()


def download_file(
    name: str,
    dest_dir: Path,
    *,
    urlopen: Urlopen | None = None,
    base_url: str = BASE_URL,
) -> Path:
    """Download one official file into dest_dir, named so only once verified."""
    opener = urlopen or urllib.request.urlopen
    url = base_url + name
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {dest_dir}: {exc}") from exc
    last: Exception | None = None
    for attempt in range(1, DOWNLOAD_RETRIES + 1):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, opener(url, timeout=60) as resp:
                _copy_with_progress(resp, out, name)
            _read_raw(tmp, name)
            # Atomic rename: a half-written file never carries the real name.
            os.replace(tmp, dest_dir / name)
            return dest_dir / name
        except (OSError, DataError, http.client.HTTPException) as exc:
            last = exc
            if attempt < DOWNLOAD_RETRIES:
                time.sleep(_RETRY_DELAY_S * attempt)
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"downloading {url} failed after {DOWNLOAD_RETRIES} attempts: {last}")


def find_data_dir(
    data_dir: str | Path | None = None,
    download: bool = True,
    *,
    urlopen: Urlopen | None = None,
) -> Path:
    """Folder with the four files: data_dir/env, Debian's, the cache, a download."""
    origin, explicit = ("data_dir", data_dir) if data_dir is not None else (ENV_VAR, os.environ.get(ENV_VAR))
    if explicit:  # an explicit choice never falls back silently to another source
        folder = Path(explicit).expanduser()
        if missing := _missing(folder):
            raise DataError(f"{origin}={folder} lacks {', '.join(missing)}; {_how_to()}")
        return folder
    cache = cache_dir()
    for folder in (DEBIAN_DIR, cache):
        if not _missing(folder):
            return folder
    if not download:
        raise DataError(f"Fashion-MNIST not found and download is disabled; {_how_to()}")
    try:
        for name in _missing(cache):
            download_file(name, cache, urlopen=urlopen)
    except DataError as exc:
        raise DataError(f"Fashion-MNIST not found and {exc}; {_how_to()}") from exc
    return cache


def local_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The folder find_data_dir would use without downloading (data_dir or the environment's, Debian's, the cache),
    or None when none of them holds the four files: whether the real data set is on this machine."""
    try:
        return find_data_dir(data_dir, download=False)
    except DataError:
        return None


def _load_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to float32 NHWC [0, 1] and int64 labels of one official split."""
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 3)
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 1)
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{folder}: {prefix} label {labels.max()} out of range")
    # float32 division like ToTensor(); x * (1/255) is one ulp off for ~half the values.
    x = (images.astype(np.float32) / np.float32(255.0))[..., None]
    return x, labels.astype(np.int64)


def load_split_arrays(
    data_dir: str | Path | None = None,
    download: bool = True,
    *,
    urlopen: Urlopen | None = None,
) -> FashionMNIST:
    """Load and verify the official 60,000 train / 10,000 test images."""
    folder = find_data_dir(data_dir, download, urlopen=urlopen)
    return FashionMNIST(*_load_pair(folder, "train"), *_load_pair(folder, "t10k"))


def make_splits(
    data: FashionMNIST,
    *,
    validation_fraction: float = 0.0,
    counts: tuple[int, int, int] | None = None,
    seed: int = 0,
    train_limit: int | None = None,
) -> Splits:
    """Carve train/val (and, with counts, test) from the training images, seeded."""
    n = len(data.train_labels)
    perm = np.random.default_rng(seed).permutation(n)
    if counts is not None:
        if validation_fraction:
            raise ValueError("give counts or validation_fraction, not both")
        if len(counts) != 3 or min(counts) < 0 or sum(counts) > n:
            raise ValueError(f"counts {counts} must be 3 non-negative ints summing to <= {n}")
        train, val, test = np.split(perm[: sum(counts)], [counts[0], counts[0] + counts[1]])
        x_test, y_test = data.train_images[test], data.train_labels[test]
    else:
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction {validation_fraction} not in [0, 1)")
        n_train = n - round(n * validation_fraction)
        train, val = perm[:n_train], perm[n_train:]
        x_test, y_test = data.test_images, data.test_labels
    if train_limit is not None:
        if train_limit < 1:
            raise ValueError(f"train_limit {train_limit} must be >= 1")
        train = train[:train_limit]
    return Splits(
        data.train_images[train],
        data.train_labels[train],
        data.train_images[val],
        data.train_labels[val],
        x_test,
        y_test,
    )


def batch_order(num_samples: int, batch_size: int, epoch: int, seed: int) -> list[np.ndarray]:
    """Shuffled index batches of one epoch, the same in both frameworks."""
    if batch_size < 1 or num_samples < 0:
        raise ValueError(f"bad num_samples={num_samples} or batch_size={batch_size}")
    perm = np.random.default_rng([seed, epoch]).permutation(num_samples)
    return [perm[i : i + batch_size] for i in range(0, num_samples, batch_size)]


def random_flip_horizontal(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each (N, H, W[, C]) image left-right with probability 1/2."""
    flip = rng.random(len(batch)) < 0.5
    out = batch.copy()
    out[flip] = batch[flip, :, ::-1]
    return out


def random_translate(batch: np.ndarray, rng: np.random.Generator, max_pixels: int) -> np.ndarray:
    """Shift each (N, H, W[, C]) image by dx, dy in [-max, max] pixels, zero fill."""
    if max_pixels < 0:
        raise ValueError(f"max_pixels {max_pixels} must be >= 0")
    n, h, w = batch.shape[:3]
    m = max_pixels
    # Drawn even when m == 0, so the rng stream does not depend on max_pixels.
    dx, dy = rng.integers(-m, m + 1, size=(2, n))
    padded = np.pad(batch, [(0, 0), (m, m), (m, m)] + [(0, 0)] * (batch.ndim - 3))
    # out[y, x] = in[y - dy, x - dx]: positive dx moves right, positive dy moves down.
    rows = np.arange(h)[None, :] + m - dy[:, None]
    cols = np.arange(w)[None, :] + m - dx[:, None]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


# torchvision's RandomErasing: a rectangle that does not fit is drawn again, up to this many times in all.
ERASING_ATTEMPTS = 10


def random_erase(
    batch: np.ndarray,
    rng: np.random.Generator,
    probability: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    value: float,
) -> np.ndarray:
    """Random erasing, torchvision's RandomErasing per image of an (N, H, W[, C]) batch; docs/semantics.md.

    With `probability`, one rectangle of each image is set to `value` in every channel: of area A = H * W * s and
    height / width r, s uniform in `scale`, log r uniform in log `ratio`, height round(sqrt(A * r)) and width
    round(sqrt(A / r)) (half to even); the first of ERASING_ATTEMPTS draws that is smaller than the image in both
    sides, its top-left corner uniform over the places where it lies wholly inside (no clipping at the borders).
    An image none of whose draws fits is left whole.
    """
    n, h, w = batch.shape[:3]
    # Every image draws all its numbers, erased or not, so that the stream does not depend on the outcomes.
    erase = rng.random(n) < probability
    area = h * w * rng.uniform(scale[0], scale[1], size=(n, ERASING_ATTEMPTS))
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=(n, ERASING_ATTEMPTS)))
    heights, widths = np.rint(np.sqrt(area * aspect)), np.rint(np.sqrt(area / aspect))
    fits = (heights < h) & (widths < w)
    # The first attempt that fits; argmax gives 0 when none does, and then nothing is erased.
    first = np.argmax(fits, axis=1)
    erase &= fits.any(axis=1)
    height = np.where(erase, heights[np.arange(n), first], 0).astype(np.int64)
    width = np.where(erase, widths[np.arange(n), first], 0).astype(np.int64)
    top = rng.integers(0, h - height + 1)
    left = rng.integers(0, w - width + 1)
    rows = np.arange(h)[None, :] - top[:, None]
    cols = np.arange(w)[None, :] - left[:, None]
    in_rows = (rows >= 0) & (rows < height[:, None])
    in_cols = (cols >= 0) & (cols < width[:, None])
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    inside = inside.reshape(inside.shape + (1,) * (batch.ndim - 3))
    return np.where(inside, np.asarray(value, dtype=batch.dtype), batch)

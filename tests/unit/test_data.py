"""Tests for runtime.common.data on tiny synthetic IDX files (and the real ones if present)."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
from pathlib import Path

import numpy as np
import pytest

from runtime.common import data
from runtime.common.data import DataError, FashionMNIST
from runtime.common.layouts import to_channels_first

NAMES = tuple(data.CHECKSUMS)
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = NAMES


def idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    """Uncompressed IDX bytes of a uint8 array (optionally with a forged magic)."""
    header = magic if magic is not None else bytes((0, 0, 8, array.ndim))
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(np.uint8).tobytes()


def synthetic_arrays() -> dict[str, np.ndarray]:
    """Tiny stand-ins: 20 train and 10 test images with labels 0..9."""
    rng = np.random.default_rng(0)
    return {
        TRAIN_IMAGES: rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: (np.arange(20) % 10).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        TEST_LABELS: np.arange(10, dtype=np.uint8),
    }


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every source at empty temp folders: no test sees real data or network."""
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "_RETRY_DELAY_S", 0.0)


@pytest.fixture
def gz_files(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The synthetic .gz contents, with their checksums replacing the real ones."""
    files, table = {}, {}
    for name, array in synthetic_arrays().items():
        raw = idx_bytes(array)
        files[name] = gzip.compress(raw, mtime=0)
        table[name] = ("0" * 32, hashlib.sha256(raw).hexdigest(), len(raw))
    monkeypatch.setattr(data, "CHECKSUMS", table)
    return files


def write_dir(folder: Path, files: dict[str, bytes]) -> Path:
    """Write the given .gz files into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def fake_dir(tmp_path: Path, gz_files: dict[str, bytes]) -> Path:
    """A folder holding four valid synthetic files."""
    return write_dir(tmp_path / "fake", gz_files)


class FakeOpener:
    """urlopen stand-in serving bytes per file name, optionally failing first calls."""

    def __init__(self, files: dict[str, bytes], failures: int = 0, corrupt: bool = False):
        self.files, self.failures, self.corrupt, self.urls = (
            files,
            failures,
            corrupt,
            [],
        )

    def __call__(self, url: str, timeout: float = 0) -> io.BytesIO:
        self.urls.append(url)
        if self.failures > 0:
            self.failures -= 1
            raise OSError("connection reset")
        content = self.files[url.rsplit("/", 1)[1]]
        return io.BytesIO(content[: len(content) // 2] if self.corrupt else content)


# --- parsing and verification -------------------------------------------------


def test_read_idx_parses_images_and_labels(fake_dir: Path) -> None:
    arrays = synthetic_arrays()
    images = data.read_idx(fake_dir / TRAIN_IMAGES, 3)
    labels = data.read_idx(fake_dir / TRAIN_LABELS, 1)
    assert images.dtype == np.uint8 and images.shape == (20, 28, 28)
    np.testing.assert_array_equal(images, arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(labels, arrays[TRAIN_LABELS])


@pytest.mark.parametrize(
    ("raw", "ndim", "match"),
    [
        (idx_bytes(np.zeros((2, 28, 28)), magic=b"\x00\x00\x09\x03"), 3, "magic"),
        (idx_bytes(np.zeros((2, 28, 28))), 1, "magic"),
        (idx_bytes(np.zeros((2, 27, 28))), 3, "28x28"),
        (idx_bytes(np.zeros((2, 28, 28)))[:-1], 3, "data bytes"),
        (b"\x00\x00", 1, "magic"),
    ],
)
def test_bad_idx_raises_naming_file(tmp_path: Path, raw: bytes, ndim: int, match: str) -> None:
    path = tmp_path / "bad-idx.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=match) as info:
        data.read_idx(path, ndim, verify=False)
    assert "bad-idx.gz" in str(info.value)


def test_checksum_mismatch_names_file_and_fix(fake_dir: Path) -> None:
    (fake_dir / TEST_LABELS).write_bytes(gzip.compress(idx_bytes(np.ones(10))))
    with pytest.raises(DataError, match="checksum") as info:
        data.load_split_arrays(fake_dir)
    assert TEST_LABELS in str(info.value) and "delete" in str(info.value)


def test_official_gzip_md5_is_accepted(fake_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packed = (fake_dir / TRAIN_LABELS).read_bytes()
    md5 = hashlib.md5(packed).hexdigest()
    table = dict(data.CHECKSUMS, **{TRAIN_LABELS: (md5, "f" * 64, 0)})  # SHA-256 deliberately wrong
    monkeypatch.setattr(data, "CHECKSUMS", table)
    assert data.read_idx(fake_dir / TRAIN_LABELS, 1).shape == (20,)


@pytest.mark.parametrize("verify", [True, False])
def test_truncated_gzip_raises_naming_file(fake_dir: Path, verify: bool) -> None:
    path = fake_dir / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="truncated") as info:
        data.read_idx(path, 3, verify=verify)
    assert TRAIN_IMAGES in str(info.value) and "delete" in str(info.value)


def test_load_split_arrays_scales_like_to_tensor(fake_dir: Path) -> None:
    arrays = synthetic_arrays()
    ds = data.load_split_arrays(fake_dir, download=False)
    assert ds.train_images.shape == (20, 28, 28, 1) and ds.test_images.shape == (
        10,
        28,
        28,
        1,
    )
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int64
    expected = arrays[TRAIN_IMAGES].astype(np.float32)[..., None] / np.float32(255)
    np.testing.assert_array_equal(ds.train_images, expected)  # bit-exact, not approx
    np.testing.assert_array_equal(ds.test_labels, np.arange(10))


# --- where the files come from ---------------------------------------------------


def test_explicit_dir_wins_over_env_and_debian(
    tmp_path: Path, fake_dir: Path, gz_files: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dir(tmp_path / "debian", gz_files)
    monkeypatch.setenv(data.ENV_VAR, str(write_dir(tmp_path / "env", gz_files)))
    assert data.find_data_dir(fake_dir) == fake_dir
    assert data.find_data_dir() == tmp_path / "env"


def test_missing_explicit_dir_errors_without_fallback(
    tmp_path: Path, gz_files: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dir(tmp_path / "debian", gz_files)
    with pytest.raises(DataError, match=r"data_dir=.*lacks"):
        data.find_data_dir(tmp_path / "nowhere")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=rf"{data.ENV_VAR}=.*lacks"):
        data.find_data_dir()


def test_debian_dir_before_cache(tmp_path: Path, gz_files: dict) -> None:
    write_dir(data.cache_dir(), gz_files)
    assert data.find_data_dir() == data.cache_dir()
    write_dir(tmp_path / "debian", gz_files)
    assert data.find_data_dir() == tmp_path / "debian"


def test_local_data_dir_knows_every_place_and_downloads_nothing(
    tmp_path: Path, gz_files: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the tests' needs_data marker asks: the download cache counts, a folder missing files does not."""
    assert data.local_data_dir() is None
    write_dir(data.cache_dir(), gz_files)
    assert data.local_data_dir() == data.cache_dir()
    write_dir(tmp_path / "debian", gz_files)
    assert data.local_data_dir() == tmp_path / "debian"
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))  # an explicit choice never falls back
    assert data.local_data_dir() is None
    assert data.local_data_dir(tmp_path / "debian") == tmp_path / "debian"


def test_cache_dir_honours_xdg(tmp_path: Path) -> None:
    assert data.cache_dir() == tmp_path / "xdg" / "fmnist-dsl" / "fashion-mnist"


@pytest.mark.parametrize("download", [False, True])
def test_nothing_works_gives_one_clear_message(gz_files: dict, download: bool) -> None:
    opener = FakeOpener(gz_files, failures=99)
    with pytest.raises(DataError) as info:
        data.load_split_arrays(download=download, urlopen=opener)
    message = str(info.value)
    for hint in (
        "--data-dir",
        data.ENV_VAR,
        "apt-get install dataset-fashion-mnist",
        "github.com/zalandoresearch/fashion-mnist",
        str(data.cache_dir()),
    ):
        assert hint in message
    assert len(opener.urls) == (data.DOWNLOAD_RETRIES if download else 0)


# --- downloading ---------------------------------------------------------------


def test_download_fills_cache_with_verified_files(gz_files: dict) -> None:
    opener = FakeOpener(gz_files, failures=1)  # the first attempt fails and is retried
    ds = data.load_split_arrays(urlopen=opener)
    cache = data.cache_dir()
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES)  # no .part left over
    assert opener.urls[0] == data.BASE_URL + NAMES[0] and len(opener.urls) == 5
    assert ds.train_images.shape == (20, 28, 28, 1)


def test_corrupt_download_never_gets_final_name(gz_files: dict) -> None:
    opener = FakeOpener(gz_files, corrupt=True)
    with pytest.raises(DataError, match="failed after 3 attempts"):
        data.download_file(TRAIN_IMAGES, data.cache_dir(), urlopen=opener)
    assert list(data.cache_dir().iterdir()) == []
    assert len(opener.urls) == data.DOWNLOAD_RETRIES


# --- splits, batches, augmentation ---------------------------------------------------


def indexed_dataset(n_train: int = 60000, n_test: int = 10) -> FashionMNIST:
    """A dataset whose 1x1 'image' is its own index, so splits can be traced back."""
    images = np.arange(n_train, dtype=np.float32).reshape(-1, 1, 1, 1)
    test = np.full((n_test, 1, 1, 1), -1.0, dtype=np.float32)
    return FashionMNIST(images, np.arange(n_train) % 10, test, np.zeros(n_test, dtype=np.int64))


def test_splits_by_fraction_use_official_test() -> None:
    ds = indexed_dataset(1000)
    s = data.make_splits(ds, validation_fraction=0.1, seed=3)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (900, 100, 10)
    assert np.all(s.x_test == -1)
    both = np.concatenate([s.x_train.ravel(), s.x_val.ravel()])
    assert sorted(both) == list(range(1000))
    np.testing.assert_array_equal(s.y_train, s.x_train.ravel().astype(np.int64) % 10)
    empty = data.make_splits(ds)
    assert empty.x_val.shape == (0, 1, 1, 1) and empty.y_val.shape == (0,)


def test_splits_by_counts_are_disjoint_and_seeded() -> None:
    ds = indexed_dataset()
    s = data.make_splits(ds, counts=(58200, 900, 900), seed=1)
    parts = [set(x.ravel().tolist()) for x in (s.x_train, s.x_val, s.x_test)]
    assert [len(p) for p in parts] == [58200, 900, 900]
    assert len(parts[0] | parts[1] | parts[2]) == 60000
    again = data.make_splits(ds, counts=(58200, 900, 900), seed=1)
    other = data.make_splits(ds, counts=(58200, 900, 900), seed=2)
    np.testing.assert_array_equal(s.x_val, again.x_val)
    assert not np.array_equal(s.x_val, other.x_val)
    with pytest.raises(ValueError):
        data.make_splits(ds, counts=(58200, 900, 901))
    with pytest.raises(ValueError):
        data.make_splits(ds, counts=(100, 10, 10), validation_fraction=0.1)


def test_train_limit_keeps_first_n() -> None:
    ds = indexed_dataset(1000)
    full = data.make_splits(ds, validation_fraction=0.2, seed=0)
    small = data.make_splits(ds, validation_fraction=0.2, seed=0, train_limit=50)
    np.testing.assert_array_equal(small.x_train, full.x_train[:50])
    np.testing.assert_array_equal(small.x_val, full.x_val)


def test_batch_order() -> None:
    batches = data.batch_order(103, 10, epoch=0, seed=7)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    same = data.batch_order(103, 10, epoch=0, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(batches, same, strict=True))
    next_epoch = np.concatenate(data.batch_order(103, 10, epoch=1, seed=7))
    assert not np.array_equal(np.concatenate(batches), next_epoch)


def test_random_flip_horizontal() -> None:
    batch = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    out = data.random_flip_horizontal(batch, np.random.default_rng(5))
    flip = np.random.default_rng(5).random(64) < 0.5
    assert out.shape == batch.shape and out.dtype == batch.dtype and 0 < flip.sum() < 64
    np.testing.assert_array_equal(out[flip], batch[flip][:, :, ::-1, :])
    np.testing.assert_array_equal(out[~flip], batch[~flip])


def test_random_translate_shifts_with_zero_fill() -> None:
    batch = np.random.default_rng(0).random((32, 28, 28, 1), dtype=np.float32) + 1.0  # no zeros
    out = data.random_translate(batch, np.random.default_rng(9), max_pixels=3)
    dx, dy = np.random.default_rng(9).integers(-3, 4, size=(2, 32))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    for i in range(32):  # reference: naive per-image shift
        expected = np.zeros_like(batch[i])
        src = batch[i][max(-dy[i], 0) : 28 - max(dy[i], 0), max(-dx[i], 0) : 28 - max(dx[i], 0)]
        expected[max(dy[i], 0) : 28 + min(dy[i], 0), max(dx[i], 0) : 28 + min(dx[i], 0)] = src
        np.testing.assert_array_equal(out[i], expected)
        assert (out[i] == 0).sum() == 28 * 28 - (28 - abs(dx[i])) * (28 - abs(dy[i]))
    single = np.zeros((1, 28, 28, 1), dtype=np.float32)
    single[0, 10, 10, 0] = 1.0
    moved = data.random_translate(single, np.random.default_rng(1), max_pixels=2)
    sx, sy = np.random.default_rng(1).integers(-2, 3, size=(2, 1))
    assert moved[0, 10 + sy[0], 10 + sx[0], 0] == 1.0 and moved.sum() == 1.0
    np.testing.assert_array_equal(data.random_translate(batch, np.random.default_rng(0), 0), batch)


def test_to_channels_first() -> None:
    for dtype in (np.float32, np.float64):  # the layout helper keeps the dtype; the loops cast where they feed
        x = np.arange(2 * 3 * 4 * 5, dtype=dtype).reshape(2, 3, 4, 5)
        y = to_channels_first(x)
        assert y.shape == (2, 5, 3, 4) and y.dtype == dtype and y.flags.c_contiguous
        assert y[1, 4, 2, 3] == x[1, 2, 3, 4]


# --- the real files ----------------------------------------------------------------


@pytest.mark.needs_data
def test_real_fashion_mnist(fashion_mnist_dir: Path) -> None:
    ds = data.load_split_arrays(fashion_mnist_dir, download=False)
    assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (
        10000,
        28,
        28,
        1,
    )
    assert ds.train_images.min() == 0.0 and ds.train_images.max() == 1.0
    assert np.all(np.bincount(ds.train_labels, minlength=10) == 6000)
    assert np.all(np.bincount(ds.test_labels, minlength=10) == 1000)
    assert len(data.CLASS_NAMES) == 10

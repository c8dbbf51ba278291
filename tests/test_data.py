import gzip
import hashlib
import io

import numpy as np
import pytest
import torch

from conftest import TINY_DATASET, idx_bytes, write_idx
from ganscope import data
from ganscope.errors import GanscopeError


def test_parse_idx_roundtrip():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parsed = data.parse_idx(idx_bytes(array), source="x", expected_ndim=3)
    assert parsed.shape == (2, 3, 4)
    assert np.array_equal(parsed, array)


def test_read_idx_gz_and_raw_agree(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    gz = write_idx(tmp_path / "a.gz", array)
    raw = write_idx(tmp_path / "b", array, compress=False)
    assert np.array_equal(data.read_idx(gz, expected_ndim=3), data.read_idx(raw, expected_ndim=3))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:-7], "truncated"),
        (lambda b: b + b"\x00\x01", "unexpected bytes"),
        (lambda b: b"\x08\x03" + b[2:], "wrong magic"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "data type 0x0d"),
        (lambda b: b[:3] + b"\x02" + b[4:], "2 dimensions, expected 3"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b[:2], "not an IDX file"),
    ],
)
def test_bad_idx_is_one_clear_error(tmp_path, mutate, message):
    good = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    path = write_idx(tmp_path / "bad.gz", mutate(good))
    with pytest.raises(GanscopeError, match=message) as info:
        data.read_idx(path, expected_ndim=3)
    assert str(path) in str(info.value)


def test_cut_gzip_stream_is_reported(tmp_path):
    path = tmp_path / "cut.gz"
    noise = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    path.write_bytes(gzip.compress(idx_bytes(noise))[:2000])
    with pytest.raises(GanscopeError, match="truncated"):
        data.read_idx(path, expected_ndim=3)


def test_not_gzip_is_reported(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(GanscopeError, match="cannot read it as gzip"):
        data.read_idx(path, expected_ndim=3)


def test_checksum_mismatch(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(GanscopeError, match="published checksum"):
        spec = data.get_dataset("fashion-mnist")
        data.verify_dataset_file(spec, "t10k-images-idx3-ubyte.gz", path, "0" * 64)


def test_images_and_labels_count_must_agree(tiny_dataset_dir):
    write_idx(tiny_dataset_dir / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(GanscopeError, match="12 images but .* 11 labels"):
        data.load_split(TINY_DATASET, "train", tiny_dataset_dir, download=False)


def test_label_out_of_range(tiny_dataset_dir):
    write_idx(tiny_dataset_dir / "train-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(GanscopeError, match="label 10 is out of range"):
        data.load_split(TINY_DATASET, "train", tiny_dataset_dir, download=False)


def test_load_split_synthetic(tiny_dataset_dir):
    split = data.load_split(TINY_DATASET, "test", tiny_dataset_dir, download=False)
    assert split.images.dtype == torch.uint8 and split.images.shape == (4, 28, 28)
    assert split.labels.tolist() == [0, 1, 2, 3]


def test_location_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    assert data.resolve_data_dir("mnist") == tmp_path / "cache" / "ganscope" / "mnist"
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path / "env"))
    assert data.resolve_data_dir("mnist") == tmp_path / "env"
    assert data.resolve_data_dir("mnist", tmp_path / "flag") == tmp_path / "flag"


def test_missing_without_download_says_how_to_fix(tmp_path):
    with pytest.raises(GanscopeError, match="--data-dir"):
        data.load_split("mnist", "train", tmp_path, download=False)


def test_unknown_dataset_and_split():
    with pytest.raises(GanscopeError, match="unknown dataset"):
        data.get_dataset("cifar")
    with pytest.raises(GanscopeError, match="no split"):
        data.locate_files("mnist", "valid", "/nonexistent", download=False)


class FakeResponse(io.BytesIO):
    headers = {"Content-Length": None}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_spec(payloads):
    names = list(payloads)
    return data.DatasetSpec(
        name="fake",
        classes=tuple("0123456789"),
        mirrors=("http://bad/", "http://good/"),
        files={"train": (names[0], names[1])},
        gz_md5={name: hashlib.md5(blob).hexdigest() for name, blob in payloads.items()},
        raw_sha256={},
    )


def test_download_tries_mirrors_and_checks_md5(tmp_path):
    images = gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    spec = _fake_spec({"img.gz": images, "lab.gz": b""})
    calls = []

    def opener(url, timeout):
        calls.append(url)
        if url.startswith("http://bad/"):
            return FakeResponse(b"garbage that fails the md5")
        return FakeResponse(images)

    path = data.download_file(spec, "img.gz", tmp_path, opener=opener, progress=False)
    assert path.read_bytes() == images
    assert calls == ["http://bad/img.gz", "http://good/img.gz"]
    assert not list(tmp_path.glob("*.part"))


def test_offline_download_fails_with_hint(tmp_path):
    import urllib.error

    spec = _fake_spec({"img.gz": b"x", "lab.gz": b"y"})

    def opener(url, timeout):
        raise urllib.error.URLError("no network")

    with pytest.raises(GanscopeError, match="GANSCOPE_DATA_DIR") as info:
        data.download_file(spec, "img.gz", tmp_path, opener=opener, progress=False)
    assert "no network" in str(info.value)
    assert not (tmp_path / "img.gz").exists()


def test_real_fashion_mnist_is_valid(fashion_dir):
    split = data.load_split("fashion-mnist", "test", fashion_dir, download=False, progress=False)
    assert split.images.shape == (10000, 28, 28)
    assert torch.bincount(split.labels).tolist() == [1000] * 10
    # The published test-set pixel mean on [0, 1] (shared/data README).
    assert split.images.float().div(255).mean().item() == pytest.approx(0.2868, abs=5e-4)


def test_model_range_roundtrip():
    images = torch.arange(256, dtype=torch.uint8).repeat(4).view(1, 32, 32)
    scaled = data.to_model_range(images)
    assert scaled.shape == (1, 1, 32, 32)
    assert scaled.min() == -1 and scaled.max() == 1
    assert torch.equal(data.to_uint8(scaled), images)


def test_files_of_another_dataset_are_named(fashion_dir):
    with pytest.raises(GanscopeError, match="is fashion-mnist's file, not mnist's"):
        data.load_split("mnist", "test", fashion_dir, download=False)


def test_a_file_without_a_published_checksum_of_its_own_is_refused(tmp_path):
    # MNIST publishes only the md5 of its .gz files: a decompressed copy cannot be checked,
    # and a .gz that is not the official one fails its md5.
    rng = np.random.default_rng(1)
    for folder, compress in (("raw", False), ("gz", True)):
        (tmp_path / folder).mkdir()
        images = rng.integers(0, 256, (4, 28, 28), np.uint8)
        write_idx(tmp_path / folder / "t10k-images-idx3-ubyte", images, compress=compress)
        labels = np.arange(4, dtype=np.uint8)
        write_idx(tmp_path / folder / "t10k-labels-idx1-ubyte", labels, compress=compress)
    with pytest.raises(GanscopeError, match="cannot be checked"):
        data.load_split("mnist", "test", tmp_path / "raw", download=False)
    with pytest.raises(GanscopeError, match="published md5"):
        data.load_split("mnist", "test", tmp_path / "gz", download=False)


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GanscopeError, match="is a file, not a folder"):
        data.load_split("fashion-mnist", "test", tmp_path / "file", download=False)

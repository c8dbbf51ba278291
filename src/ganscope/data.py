"""Fashion-MNIST-style data: a validating IDX reader, a dataset registry, and where files live.

Files are looked for in ``--data-dir``, then ``$GANSCOPE_DATA_DIR``, then a per-user cache
folder; missing files are downloaded from the dataset's official mirrors and checked against
the published checksums. Training keeps a whole split as one uint8 tensor ``(N, 28, 28)`` and
normalises each batch to [-1, 1] on the fly (:func:`to_model_range`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import GanscopeError, lookup
from .progress import bar as progress_bar

ENV_DATA_DIR = "GANSCOPE_DATA_DIR"

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); ganscope's data
# sets are all unsigned bytes, so that is the only one accepted.
_IDX_UBYTE = 0x08


@dataclass(frozen=True)
class DatasetSpec:
    """One registered data set: where to download it and how to check it."""

    name: str
    classes: tuple[str, ...]
    #: Base URLs tried in order; each file is ``mirror + filename``.
    mirrors: tuple[str, ...]
    #: split -> (images file, labels file), as the mirrors name them (gzip-compressed).
    files: dict[str, tuple[str, str]]
    #: md5 of each official ``.gz`` file, checked after a download.
    gz_md5: dict[str, str]
    #: sha256 of each file's decompressed bytes, where published; checked on every load.
    raw_sha256: dict[str, str]
    image_size: int = 28
    #: The class names in other languages than English (``{"zh": (...)}``), same order.
    translated_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def class_names(self, lang: str = "en") -> tuple[str, ...]:
        """The class names in ``lang`` (English where there is no translation)."""
        return self.translated_classes.get(lang, self.classes)


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a data set to the registry, after checking that its description is complete."""
    if not spec.name or spec.name in DATASETS:
        raise ValueError(f"dataset name {spec.name!r} is empty or already registered")
    for split, pair in spec.files.items():
        if len(pair) != 2 or not all(name.endswith(".gz") for name in pair):
            raise ValueError(f"{spec.name}: split {split!r} needs (images.gz, labels.gz)")
        missing = [name for name in pair if name not in spec.gz_md5]
        if missing:
            raise ValueError(f"{spec.name}: no md5 for {missing}")
    if not spec.mirrors:
        raise ValueError(f"{spec.name}: at least one mirror is needed")
    for lang, names in spec.translated_classes.items():
        if len(names) != len(spec.classes):
            raise ValueError(f"{spec.name}: {lang} class names do not match the classes")
    DATASETS[spec.name] = spec
    return spec


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

register_dataset(
    DatasetSpec(
        name="fashion-mnist",
        classes=(
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
        ),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        files=_MNIST_FILES,
        gz_md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # sha256 of the decompressed files, from the copy in shared/data/fashion-mnist (its
        # README gives their provenance; the authors publish only the md5s above). That an
        # official download decompresses to the same bytes is that README's statement: no
        # test here can download one to check it.
        raw_sha256={
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # noqa: E501
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # noqa: E501
        },
        translated_classes={
            "zh": (
                "T恤/上衣",
                "裤子",
                "套头衫",
                "连衣裙",
                "外套",
                "凉鞋",
                "衬衫",
                "运动鞋",
                "包",
                "短靴",
            )
        },
    )
)

register_dataset(
    DatasetSpec(
        name="mnist",
        classes=tuple(str(digit) for digit in range(10)),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=_MNIST_FILES,
        gz_md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        raw_sha256={},
    )
)


def get_dataset(name: str) -> DatasetSpec:
    return lookup(DATASETS, name, "dataset")


# --------------------------------------------------------------------------------------------
# IDX parsing
# --------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The file's (decompressed) bytes; gzip damage becomes a GanscopeError naming the file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        # gzip.BadGzipFile is an OSError; a cut-off .gz raises EOFError.
        reason = "it is truncated" if isinstance(error, EOFError) else str(error)
        raise GanscopeError(
            f"{path}: cannot read it as {'gzip' if path.suffix == '.gz' else 'a file'} ({reason})"
        ) from None


def parse_idx(payload: bytes, *, source: str, expected_ndim: int) -> np.ndarray:
    """Decode IDX bytes into a uint8 array, validating the header and the payload size.

    ``source`` names the file in error messages. Raises GanscopeError for a wrong magic
    number, an unexpected number of dimensions, or a payload that is truncated or too long.
    """
    if len(payload) < 4:
        raise GanscopeError(f"{source}: not an IDX file (only {len(payload)} bytes)")
    zero0, zero1, type_code, ndim = payload[0], payload[1], payload[2], payload[3]
    if zero0 != 0 or zero1 != 0:
        raise GanscopeError(
            f"{source}: wrong magic number 0x{payload[:4].hex()} (not an IDX file; "
            "is it still compressed or a different format?)"
        )
    if type_code != _IDX_UBYTE:
        raise GanscopeError(
            f"{source}: IDX data type 0x{type_code:02x} is not supported "
            "(expected unsigned bytes, 0x08)"
        )
    if ndim != expected_ndim:
        raise GanscopeError(
            f"{source}: has {ndim} dimensions, expected {expected_ndim} "
            f"({'images' if expected_ndim == 3 else 'labels'} file swapped?)"
        )
    header_size = 4 + 4 * ndim
    if len(payload) < header_size:
        raise GanscopeError(f"{source}: truncated inside the IDX header")
    dims = struct.unpack(f">{ndim}I", payload[4:header_size])
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(payload) - header_size
    if actual < expected:
        raise GanscopeError(
            f"{source}: truncated: header promises {'x'.join(map(str, dims))} = {expected} bytes "
            f"of data, file holds {actual}"
        )
    if actual > expected:
        raise GanscopeError(
            f"{source}: {actual - expected} unexpected bytes after the "
            f"{'x'.join(map(str, dims))} data (oversized or concatenated file)"
        )
    return np.frombuffer(payload, dtype=np.uint8, offset=header_size).reshape(dims)


def read_idx(path: str | Path, *, expected_ndim: int) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw), validating its header and size."""
    return read_checked(Path(path), expected_ndim)[0]


def read_checked(path: Path, expected_ndim: int) -> tuple[np.ndarray, str]:
    """An IDX file's array and the sha256 of its decompressed bytes."""
    payload = _read_bytes(path)
    array = parse_idx(payload, source=str(path), expected_ndim=expected_ndim)
    return array, hashlib.sha256(payload).hexdigest()


def verify_dataset_file(spec: DatasetSpec, name: str, path: Path, actual: str) -> None:
    """Check that ``path`` (content sha256 ``actual``) is ``spec``'s file ``name``: the sha256
    of its content where the dataset publishes one, else the md5 of the official ``.gz``. A
    file of another registered dataset is named as such."""
    expected = spec.raw_sha256.get(name)
    if expected == actual:
        return
    for other in DATASETS.values():
        if other.name != spec.name and actual in other.raw_sha256.values():
            raise GanscopeError(
                f"{path} is {other.name}'s file, not {spec.name}'s: point --data-dir at a "
                f"{spec.name} folder, or pass --dataset {other.name}"
            )
    if expected is not None:
        raise GanscopeError(
            f"{path}: content does not match the published checksum (sha256 {actual[:12]}..., "
            f"expected {expected[:12]}...); the file is corrupted or not the official one: "
            "delete it to download it again, or point --data-dir at a good copy"
        )
    if path.suffix != ".gz":
        raise GanscopeError(
            f"{path} cannot be checked: {spec.name} publishes checksums of its .gz files only; "
            f"use the official {name}"
        )
    if _md5(path) != spec.gz_md5[name]:
        raise GanscopeError(
            f"{path} does not match the published md5 of {spec.name}'s {name}: it is "
            "corrupted or not the official file; delete it to download it again"
        )


# --------------------------------------------------------------------------------------------
# Locating and downloading
# --------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ganscope"


def resolve_data_dir(dataset: str, data_dir: str | Path | None = None) -> Path:
    """Where ``dataset``'s files are: ``data_dir``, else $GANSCOPE_DATA_DIR, else the cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(ENV_DATA_DIR)
    if from_env:
        return Path(from_env).expanduser()
    return default_cache_dir() / dataset


def _find_file(root: Path, gz_name: str) -> Path | None:
    """The file as the mirrors name it, or its decompressed twin (``name`` without ``.gz``)."""
    for candidate in (root / gz_name, root / gz_name[: -len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


Opener = Callable[..., object]


def download_file(
    spec: DatasetSpec,
    gz_name: str,
    root: Path,
    *,
    opener: Opener | None = None,
    progress: bool = True,
) -> Path:
    """Fetch one file from the first mirror that answers; checked by md5, written atomically."""

    opener = opener or urllib.request.urlopen
    root.mkdir(parents=True, exist_ok=True)
    target = root / gz_name
    failures = []
    for mirror in spec.mirrors:
        url = mirror + gz_name
        handle, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{gz_name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(handle, "wb") as out, opener(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with progress_bar(
                    total=total, unit="B", unit_scale=True, desc=gz_name, enabled=progress
                ) as bar:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
            actual = _md5(tmp)
            if actual != spec.gz_md5[gz_name]:
                failures.append(f"{url}: md5 {actual} != published {spec.gz_md5[gz_name]}")
                continue
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
        finally:
            tmp.unlink(missing_ok=True)
    raise GanscopeError(
        f"could not download {spec.name} file {gz_name} into {root} ({'; '.join(failures)}). "
        f"If you have a local copy, pass --data-dir DIR or set {ENV_DATA_DIR}=DIR"
    )


def locate_files(
    dataset: str,
    split: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    opener: Opener | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Paths of a split's (images, labels) files, downloading missing ones if allowed."""
    spec = get_dataset(dataset)
    if split not in spec.files:
        raise GanscopeError(f"{dataset} has no split {split!r}; choose {sorted(spec.files)}")
    root = resolve_data_dir(dataset, data_dir)
    if root.exists() and not root.is_dir():
        raise GanscopeError(f"--data-dir {root} is a file, not a folder")
    paths = []
    for gz_name in spec.files[split]:
        found = _find_file(root, gz_name)
        if found is None:
            if not download:
                raise GanscopeError(
                    f"{dataset} file {gz_name} is not in {root}; pass --data-dir DIR or set "
                    f"{ENV_DATA_DIR}=DIR to a folder that holds it"
                )
            found = download_file(spec, gz_name, root, opener=opener, progress=progress)
        paths.append(found)
    return paths[0], paths[1]


@dataclass(frozen=True)
class Split:
    """A whole split in memory: uint8 images ``(N, 28, 28)`` and int64 labels ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    dataset: str
    split: str

    def __len__(self) -> int:
        return self.images.shape[0]


def load_split(
    dataset: str = "fashion-mnist",
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    limit: int | None = None,
    download: bool = True,
    opener: Opener | None = None,
    progress: bool = True,
) -> Split:
    """Load, validate and checksum one split; ``limit`` keeps its first N items."""
    spec = get_dataset(dataset)
    images_path, labels_path = locate_files(
        dataset, split, data_dir, download=download, opener=opener, progress=progress
    )
    images_name, labels_name = spec.files[split]
    images, images_sha256 = read_checked(images_path, expected_ndim=3)
    labels, labels_sha256 = read_checked(labels_path, expected_ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise GanscopeError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; the two files do not belong together"
        )
    if images.shape[1:] != (spec.image_size, spec.image_size):
        raise GanscopeError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
            f"{dataset} needs {spec.image_size}x{spec.image_size}"
        )
    if labels.size and int(labels.max()) >= len(spec.classes):
        raise GanscopeError(
            f"{labels_path}: label {int(labels.max())} is out of range for "
            f"{len(spec.classes)} classes"
        )
    # After the structural checks, which name the problem more precisely.
    verify_dataset_file(spec, images_name, images_path, images_sha256)
    verify_dataset_file(spec, labels_name, labels_path, labels_sha256)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(
        images=torch.from_numpy(images.copy()),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=spec.classes,
        dataset=dataset,
        split=split,
    )


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 28, 28)`` -> float ``(B, 1, 28, 28)`` in [-1, 1], the range of G's tanh."""
    return images_uint8.unsqueeze(1).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Model-range images ``(B, 1, H, W)`` in [-1, 1] -> uint8 ``(B, H, W)`` for saving."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).squeeze(1)

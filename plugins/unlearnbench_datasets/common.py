"""Helpers shared by the dataset plugins: roots, error messages, safe pickles, image decoding.

Image folders and Tiny-ImageNet are decoded with ``torchvision.io.decode_image`` (Pillow for the
formats it cannot read) in a thread pool, straight into one preallocated uint8 tensor per split.
The decoded splits may be cached in ``<root>/.unlearnbench-cache/decoded-<key>.pt`` (written
atomically; the key covers every file's path, size, mtime and label), so a changed file is never
served from the cache. The cache directory may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import pickle
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unlearnbench.api import DatasetNotFoundError, ImageSplit
from unlearnbench.data.fingerprint import cached_fingerprint, content_sha256, file_stat_key

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff"}
)
CACHE_DIR_NAME = ".unlearnbench-cache"
_CACHE_FORMAT = 1
_MAX_DECODE_THREADS = 16
_CHUNK = 512
_GREY_PIL_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

# Globals a CIFAR pickle may name: numpy array reconstruction and bytes encoding, nothing else.
_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


# --------------------------------------------------------------------------------------------
# Roots and messages
# --------------------------------------------------------------------------------------------
def default_root(name: str) -> Path:
    """``~/.cache/unlearnbench/data/<name>``: where a dataset lives when no root is given."""
    return Path.home() / ".cache" / "unlearnbench" / "data" / name


def resolve_root(root: Path | str | None, name: str) -> Path:
    """``root`` as an absolute path, or the default root of ``name`` when None."""
    return (Path(root).expanduser() if root is not None else default_root(name)).absolute()


def how_to_get(*, can_download: bool) -> str:
    """The sentence that tells a user how to obtain a missing copy."""
    if can_download:
        return (
            "Allow downloading (download=True; CLI --download) to fetch it (needs network access), "
            "or pass --data-root DIR pointing at an existing copy."
        )
    return "Pass --data-root DIR pointing at an existing copy."


def corrupt(path: Path | str, what: str, reason: str, fix: str = "") -> DatasetNotFoundError:
    """The error for a file that exists but cannot be read as ``what``; ``fix`` says how to repair."""
    fix = fix or "Replace the file or the copy"
    return DatasetNotFoundError(
        f"{path} is not a readable {what} ({reason}). {fix}, or pass --data-root DIR pointing at a good copy."
    )


def md5_file(path: Path) -> str:
    """The hex md5 of a file, read in 4 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Pickles
# --------------------------------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core."):
            modern = "numpy._core." + module.removeprefix("numpy.core.")
            try:
                return getattr(importlib.import_module(modern), name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


def load_pickle(data: bytes) -> Any:
    """Unpickle ``data`` (Python 2 strings read as latin-1) allowing numpy arrays only."""
    return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()


def as_text(value: object) -> str:
    """A pickled name as ``str`` (Python 2 pickles may hold ``bytes``)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def str_keys(obj: object) -> dict[str, Any]:
    """A pickled dict with ``bytes`` keys decoded to ``str``; TypeError when not a dict."""
    if not isinstance(obj, dict):
        raise TypeError(f"expected a dict, got {type(obj).__name__}")
    return {as_text(key): value for key, value in obj.items()}


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledFiles:
    """Image files of one split: ``names`` ('/'-separated, relative to ``base``) and labels."""

    base: Path
    names: tuple[str, ...]
    labels: tuple[int, ...]

    def paths(self) -> list[str]:
        base = str(self.base)
        return [os.path.join(base, name) for name in self.names]


def list_images(base: Path, folder: str) -> list[str]:
    """Image files under ``base/folder`` (recursively, hidden entries skipped) as names relative
    to ``base``, sorted folder by folder."""
    found: list[tuple[list[str], str]] = []
    start = os.path.join(str(base), folder)
    for dirpath, dirnames, filenames in os.walk(start, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, str(base)).replace(os.sep, "/")
        parts = rel.split("/")
        found.extend(
            (parts, f"{rel}/{f}")
            for f in filenames
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
        )
    found.sort(key=lambda item: (item[0], item[1]))
    return [name for _, name in found]


def class_folders(folder: Path) -> list[str]:
    """Names of the non-hidden sub-folders of ``folder``, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_image_folder(root: Path, train_dir: str = "train", test_dir: str = "test") -> bool:
    """Whether ``root`` holds ``<train_dir>/<class>/`` and ``<test_dir>/`` folders."""
    train, test = root / train_dir, root / test_dir
    return train.is_dir() and test.is_dir() and bool(class_folders(train))


def scan_image_folder(
    root: Path, train_dir: str = "train", test_dir: str = "test"
) -> tuple[tuple[str, ...], LabelledFiles, LabelledFiles]:
    """Classes (train class folders, sorted by name) and the labelled files of both splits.

    Every train class folder must hold an image; a test class folder must also exist in train.
    """
    train_root, test_root = root / train_dir, root / test_dir
    for folder in (train_root, test_root):
        if not folder.is_dir():
            raise DatasetNotFoundError(f"image folder {root}: {folder} is missing")
    classes = tuple(class_folders(train_root))
    if not classes:
        raise DatasetNotFoundError(f"image folder {root}: {train_root} has no class folders")
    index = {name: i for i, name in enumerate(classes)}
    stray = [name for name in class_folders(test_root) if name not in index]
    if stray:
        raise DatasetNotFoundError(
            f"image folder {root}: {test_root} has class folders missing from {train_root}: "
            + ", ".join(stray[:5])
        )
    splits = []
    for split_dir in (train_dir, test_dir):
        names: list[str] = []
        labels: list[int] = []
        for name in classes:
            if not (root / split_dir / name).is_dir():
                continue
            found = list_images(root, f"{split_dir}/{name}")
            if not found and split_dir == train_dir:
                raise DatasetNotFoundError(f"image folder {root}: {root / split_dir / name} holds no images")
            names.extend(found)
            labels.extend([index[name]] * len(found))
        if not names:
            raise DatasetNotFoundError(f"image folder {root}: {root / split_dir} holds no images")
        splits.append(LabelledFiles(root, tuple(names), tuple(labels)))
    return classes, splits[0], splits[1]


# --------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------
def _stat_split(split: LabelledFiles) -> list[tuple[int, int]]:
    """(size, mtime_ns) of every file of ``split``."""
    stats = []
    for path in split.paths():
        try:
            st = os.stat(path)
        except OSError as exc:
            raise DatasetNotFoundError(f"cannot read {path}: {exc}") from exc
        stats.append((st.st_size, st.st_mtime_ns))
    return stats


def _digest(
    splits: Mapping[str, LabelledFiles], stats: Mapping[str, list[tuple[int, int]]], *, mtimes: bool
) -> str:
    digest = hashlib.sha256()
    if mtimes:
        digest.update(f"decoded-cache-format-{_CACHE_FORMAT}\n".encode())
    for split in sorted(splits):
        digest.update(f"[{split}]\n".encode())
        lines = []
        for name, label, (size, mtime) in zip(
            splits[split].names, splits[split].labels, stats[split], strict=True
        ):
            lines.append(f"{name}\t{size}\t{label}\t{mtime}\n" if mtimes else f"{name}\t{size}\t{label}\n")
        digest.update("".join(lines).encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
def _decode_with_pil(raw: bytes) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:
        image.load()
        converted = image.convert("L" if image.mode in _GREY_PIL_MODES else "RGB")
    array = np.array(converted, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _decode_bytes(raw: bytes) -> torch.Tensor:
    try:
        from torchvision.io import ImageReadMode, decode_image
    except ImportError:  # a torchvision without image decoding: Pillow reads everything
        return _decode_with_pil(raw)
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    try:
        image = decode_image(data, mode=ImageReadMode.UNCHANGED)
    except RuntimeError:  # a format torchvision does not read (BMP, TIFF, PPM...) or a bad file
        return _decode_with_pil(raw)
    if image.dim() == 4:  # an animated image: keep its first frame
        image = image[0]
    if image.shape[0] == 2:  # grey + alpha
        image = image[:1]
    elif image.shape[0] == 4:  # RGBA or CMYK
        image = decode_image(data, mode=ImageReadMode.RGB)
    if image.dtype != torch.uint8:  # 16-bit PNG
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    return image


def decode_file(path: str) -> torch.Tensor:
    """One image as uint8 [C, H, W] with C = 1 (grey) or 3 (RGB); alpha is dropped."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        if not raw:
            raise ValueError("empty file")
        image = _decode_bytes(raw)
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"unexpected decoded shape {tuple(image.shape)}")
    except Exception as exc:
        raise corrupt(path, "image", f"{type(exc).__name__}: {exc}") from exc
    return image


def _decode_split(files: Sequence[str], threads: int) -> tuple[torch.Tensor, bool]:
    """All ``files`` as uint8 [N, 3, H, W] (grey replicated) and whether any image was RGB."""
    first = decode_file(files[0])
    height, width = int(first.shape[1]), int(first.shape[2])
    out = torch.empty((len(files), 3, height, width), dtype=torch.uint8)
    is_rgb = [False] * len(files)
    failed = threading.Event()

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            if failed.is_set():
                return
            try:
                image = first if i == 0 else decode_file(files[i])
                if image.shape[1] != height or image.shape[2] != width:
                    raise DatasetNotFoundError(
                        f"images differ in size: {files[i]} is {image.shape[2]}x{image.shape[1]} but "
                        f"{files[0]} is {width}x{height}; all images of a split must have one size "
                        "(resize the copy first)"
                    )
            except DatasetNotFoundError:
                failed.set()
                raise
            out[i].copy_(image)
            is_rgb[i] = image.shape[0] == 3

    bounds = [(s, min(s + _CHUNK, len(files))) for s in range(0, len(files), _CHUNK)]
    if threads <= 1 or len(bounds) == 1:
        for start, stop in bounds:
            work(start, stop)
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
            futures = [pool.submit(work, start, stop) for start, stop in bounds]
            for future in futures:
                future.result()
    return out, any(is_rgb)


def _decode_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(_MAX_DECODE_THREADS, cpus))


def _read_cache(
    path: Path, key: str, splits: Mapping[str, LabelledFiles]
) -> tuple[dict[str, ImageSplit], str] | None:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("key") != key:
            raise ValueError("key mismatch")
        result = {}
        for name, split in splits.items():
            loaded = ImageSplit(blob[f"{name}_images"], blob[f"{name}_labels"])
            if not torch.equal(loaded.labels, torch.tensor(split.labels, dtype=torch.int64)):
                raise ValueError(f"{name} labels differ")
            result[name] = loaded
        return result, str(blob.get("content", ""))
    except Exception as exc:
        logger.warning("ignoring unreadable decode cache %s (%s); decoding the images again", path, exc)
        return None


def _write_cache(path: Path, key: str, decoded: Mapping[str, ImageSplit], content: str) -> None:
    blob: dict[str, object] = {"key": key, "content": content}
    for name, split in decoded.items():
        blob[f"{name}_images"] = split.images
        blob[f"{name}_labels"] = split.labels
    tmp_name = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".decoded-", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            torch.save(blob, handle)
        os.replace(tmp_name, path)
        logger.info("cached the decoded images in %s", path)
    except OSError as exc:
        logger.warning("could not write the decode cache %s (%s); continuing without it", path, exc)
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)


@dataclass(frozen=True)
class DecodedImages:
    """Decoded splits plus ``fingerprint``: a hash of the relative paths, sizes and labels, and
    ``content``: the sha256 of the decoded train and test examples in storage order
    (:func:`unlearnbench.data.fingerprint.content_sha256`, kept in the decode cache)."""

    splits: dict[str, ImageSplit]
    fingerprint: str
    content: str = ""


def decode_splits(
    splits: Mapping[str, LabelledFiles], *, cache_dir: Path | None, classes: tuple[str, ...] = ()
) -> DecodedImages:
    """Decode every split of ``splits``; all images must share one size.

    Grey images are replicated to RGB when any image of any split is RGB; when all are grey the
    splits keep one channel. With ``cache_dir`` the result is read from / written to the cache.
    ``classes`` enter the content fingerprint (computed for ``train`` + ``test`` splits only).
    """
    stats = {name: _stat_split(split) for name, split in splits.items()}
    fingerprint = _digest(splits, stats, mtimes=False)
    key = _digest(splits, stats, mtimes=True)
    cache_file = cache_dir / f"decoded-{key[:24]}.pt" if cache_dir is not None else None
    if cache_file is not None and cache_file.is_file():
        cached = _read_cache(cache_file, key, splits)
        if cached is not None:
            logger.info("read the decoded images from the cache %s", cache_file)
            images, content = cached
            if not content:  # a cache written before content fingerprints: add it once
                content = _content(images, classes)
                _write_cache(cache_file, key, images, content)
            return DecodedImages(images, fingerprint, content)

    threads = _decode_threads()
    raw: dict[str, torch.Tensor] = {}
    any_rgb = False
    with warnings.catch_warnings():
        # torchvision >= 0.29 marks its image decoders deprecated (in favour of torchcodec).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
        for name, split in splits.items():
            logger.info("decoding %d images of %s with %d threads", len(split.names), name, threads)
            raw[name], rgb = _decode_split(split.paths(), threads)
            any_rgb = any_rgb or rgb
    sizes = {name: tuple(images.shape[2:]) for name, images in raw.items()}
    if len(set(sizes.values())) > 1:
        described = ", ".join(f"{name} {h}x{w}" for name, (h, w) in sizes.items())
        raise DatasetNotFoundError(
            f"the splits under {next(iter(splits.values())).base} differ in image size ({described}); "
            "all images must have one size"
        )
    decoded = {
        name: ImageSplit(
            images if any_rgb else images[:, :1].contiguous(),
            torch.tensor(splits[name].labels, dtype=torch.int64),
        )
        for name, images in raw.items()
    }
    content = _content(decoded, classes)
    if cache_file is not None:
        _write_cache(cache_file, key, decoded, content)
    return DecodedImages(decoded, fingerprint, content)


def _content(decoded: Mapping[str, ImageSplit], classes: tuple[str, ...]) -> str:
    return (
        content_sha256(decoded["train"], decoded["test"], classes)
        if set(decoded) == {"train", "test"}
        else ""
    )


def file_fingerprint(
    files: Sequence[Path],
    cache_dir: Path | None,
    train: ImageSplit,
    test: ImageSplit,
    classes: tuple[str, ...],
) -> str:
    """The content fingerprint of splits read from ``files``, cached in ``cache_dir`` keyed by the
    files' names, sizes and mtimes (:func:`unlearnbench.data.fingerprint.cached_fingerprint`)."""
    return cached_fingerprint(
        cache_dir, file_stat_key(list(files)), lambda: content_sha256(train, test, classes)
    )


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of uint8 [N, C, H, W] images on the [0, 1] scale.

    Computed exactly from each channel's histogram of the 256 pixel values.
    """
    count = images.shape[0] * images.shape[2] * images.shape[3]
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        histogram = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        mean = float((histogram * values).sum()) / count
        spread = float((histogram * (values - mean).square()).sum())
        means.append(mean / 255.0)
        stds.append(max((spread / max(count - 1, 1)) ** 0.5 / 255.0, 1e-6))
    return tuple(means), tuple(stds)

"""Dataset plugins on tiny copies written in each dataset's real on-disk format."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import unlearnbench_datasets
from PIL import Image
from unlearnbench_datasets import cifar, common
from unlearnbench_datasets.cifar import CIFAR10, CIFAR100
from unlearnbench_datasets.imagefolder import ImageFolder
from unlearnbench_datasets.svhn import SVHN
from unlearnbench_datasets.tinyimagenet import TinyImageNet

from unlearnbench.errors import DatasetNotFoundError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --------------------------------------------------------------------------------------------
# Writers of the real formats
# --------------------------------------------------------------------------------------------
def _dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=2)  # the release files are Python 2 (protocol 2) pickles


def _batch(rng: np.random.Generator, n: int, label_key: bytes, num_classes: int) -> dict[bytes, object]:
    return {
        b"batch_label": b"training batch",
        label_key: [int(v) for v in rng.integers(0, num_classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def write_cifar10(root: Path, *, folder: str = "cifar-10-batches-py") -> dict[str, dict[bytes, object]]:
    rng = np.random.default_rng(0)
    base = root / folder
    batches = {}
    for i, n in enumerate([2, 3, 1, 2, 2], start=1):
        batches[f"data_batch_{i}"] = _batch(rng, n, b"labels", 10)
    batches["test_batch"] = _batch(rng, 3, b"labels", 10)
    for name, batch in batches.items():
        _dump(base / name, batch)
    _dump(
        base / "batches.meta",
        {
            b"label_names": [n.encode() for n in CIFAR10_NAMES],
            b"num_cases_per_batch": 10000,
            b"num_vis": 3072,
        },
    )
    return batches


def write_cifar100(root: Path) -> dict[str, dict[bytes, object]]:
    rng = np.random.default_rng(1)
    base = root / "cifar-100-python"
    batches = {}
    for name, n in (("train", 4), ("test", 2)):
        batch = _batch(rng, n, b"fine_labels", 100)
        batch[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, n)]
        batches[name] = batch
        _dump(base / name, batch)
    _dump(
        base / "meta",
        {
            b"fine_label_names": [f"fine{i:03d}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    return batches


def write_svhn(root: Path, name: str, labels: list[int], seed: int = 0) -> np.ndarray:
    from scipy.io import savemat

    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / name, {"X": x, "y": np.array(labels, dtype=np.uint8).reshape(-1, 1)})
    return x


def write_image(path: Path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def rgb(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def write_folder(root: Path, classes: list[str], per_class: tuple[int, int] = (2, 1), size: int = 8) -> None:
    seed = 0
    for split, count in zip(("train", "test"), per_class, strict=True):
        for name in classes:
            for i in range(count):
                seed += 1
                write_image(root / split / name / f"{i:04d}.png", rgb(seed, size))


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------
def test_all_dataset_plugins_are_registered() -> None:
    names = {cls.name for cls in unlearnbench_datasets.unlearnbench_register_datasets()}
    assert {"cifar10", "cifar100", "svhn", "tinyimagenet", "imagefolder", "digits"} <= names


# --------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------
def test_cifar10_reads_the_python_pickles(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path)
    splits = CIFAR10().load(tmp_path, download=False)
    train_order = [f"data_batch_{i}" for i in range(1, 6)]
    data = np.concatenate([batches[b][b"data"] for b in train_order])
    labels = [label for b in train_order for label in batches[b][b"labels"]]
    assert splits.train.images.shape == (10, 3, 32, 32) and splits.train.images.dtype == torch.uint8
    assert splits.test.images.shape == (3, 3, 32, 32) and splits.test.labels.dtype == torch.int64
    # rows hold 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major
    assert splits.train.images[4, 1, 5, 7] == data[4, 1024 + 5 * 32 + 7]
    assert torch.equal(splits.train.images.reshape(10, -1), torch.from_numpy(data))
    assert splits.train.labels.tolist() == labels
    assert splits.test.labels.tolist() == batches["test_batch"][b"labels"]
    assert splits.classes == tuple(CIFAR10_NAMES)
    assert splits.mean == (0.4914, 0.4822, 0.4465) and splits.std == (0.2470, 0.2435, 0.2616)
    assert splits.copy.startswith("cifar10-pickle-") and len(splits.copy) == len("cifar10-pickle-") + 8
    assert splits.location == str(tmp_path / "cifar-10-batches-py")


def test_cifar10_official_checksums_give_the_torchvision_copy_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar10(tmp_path)
    base = tmp_path / "cifar-10-batches-py"
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in base.iterdir()}
    monkeypatch.setattr(cifar, "_official_md5", lambda spec: sums)
    assert CIFAR10().load(tmp_path, download=False).copy == "cifar10-torchvision"
    labelled = CIFAR10(CIFAR10.Params(copy_label="my-cifar")).load(tmp_path, download=False)
    assert labelled.copy == "my-cifar"


def test_torchvision_lists_the_official_checksums() -> None:
    assert set(cifar._official_md5(cifar._CIFAR10)) == {*cifar._CIFAR10.files}
    assert set(cifar._official_md5(cifar._CIFAR100)) == {*cifar._CIFAR100.files}


def test_cifar10_root_may_be_the_batches_folder(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    splits = CIFAR10().load(tmp_path / "cifar-10-batches-py", download=False)
    assert len(splits.train) == 10 and splits.location == str(tmp_path / "cifar-10-batches-py")


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    batches = write_cifar100(tmp_path)
    splits = CIFAR100().load(tmp_path, download=False)
    assert splits.num_classes == 100 and splits.classes[7] == "fine007"
    assert splits.train.images.shape == (4, 3, 32, 32)
    assert splits.train.labels.tolist() == batches["train"][b"fine_labels"]
    assert splits.test.labels.tolist() == batches["test"][b"fine_labels"]
    assert splits.copy.startswith("cifar100-pickle-")


@pytest.mark.parametrize(
    ("plugin", "folder"), [(CIFAR10, "cifar-10-batches-py"), (CIFAR100, "cifar-100-python")]
)
def test_cifar_missing_copy_names_the_paths(tmp_path: Path, plugin: type, folder: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        plugin().load(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / folder) in message and str(tmp_path / "nowhere" / "train") in message
    assert "download=True" in message and "--data-root" in message


def test_cifar_partial_copy_lists_the_missing_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_3"):
        CIFAR10().load(tmp_path, download=False)


def test_cifar_download_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    class Offline:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10().load(tmp_path, download=True)
    assert "network is unreachable" in str(info.value) and str(tmp_path) in str(info.value)
    assert "--data-root" in str(info.value)


def test_cifar_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    calls = []

    class FakeCIFAR100:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, download))
            write_cifar100(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", FakeCIFAR100)
    splits = CIFAR100().load(tmp_path / "c100", download=True)
    assert calls == [(str(tmp_path / "c100"), True)]
    assert len(splits.train) == 4


def _hostile(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    return pickle.dumps({b"data": Payload()}, protocol=2)


@pytest.mark.parametrize("damage", ["truncated", "wrong_shape", "bad_labels", "not_a_pickle", "hostile"])
def test_cifar_corrupt_batch_names_the_file(tmp_path: Path, damage: str) -> None:
    batches = write_cifar10(tmp_path)
    target = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    marker = tmp_path / "executed"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:200])
    elif damage == "wrong_shape":
        _dump(target, {**batches["data_batch_2"], b"data": np.zeros((3, 100), np.uint8)})
    elif damage == "bad_labels":
        _dump(target, {**batches["data_batch_2"], b"labels": [0, 1, 10]})
    elif damage == "not_a_pickle":
        target.write_bytes(b"this is not a pickle")
    else:
        target.write_bytes(_hostile(marker))
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10().load(tmp_path, download=False)
    assert str(target) in str(info.value)
    assert not marker.exists()


def test_cifar_corrupt_meta_names_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    _dump(meta, {b"label_names": [b"a", b"b"]})
    with pytest.raises(DatasetNotFoundError, match=r"batches\.meta"):
        CIFAR10().load(tmp_path, download=False)


def test_cifar10_reads_an_image_folder_copy(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_folder(tmp_path, CIFAR10_NAMES, size=32)
    write_image(tmp_path / "test" / "truck" / "extra.jpg", rgb(99, 32), "JPEG")
    caplog.set_level(logging.INFO, logger="unlearnbench_datasets")
    splits = CIFAR10().load(tmp_path, download=True)  # a local copy wins: nothing is downloaded
    assert splits.train.images.shape == (20, 3, 32, 32) and splits.test.images.shape == (11, 3, 32, 32)
    assert splits.train.labels.tolist() == [i // 2 for i in range(20)]
    assert splits.test.labels.tolist() == [*range(10), 9]
    assert splits.classes == tuple(CIFAR10_NAMES)
    first = np.array(Image.open(tmp_path / "train" / "airplane" / "0000.png"))
    assert torch.equal(splits.train.images[0], torch.from_numpy(first).permute(2, 0, 1))
    assert (
        splits.copy.startswith("cifar10-imagefolder-") and len(splits.copy) == len("cifar10-imagefolder-") + 8
    )
    assert splits.location == str(tmp_path)
    assert "image-folder layout" in caplog.text
    assert splits.mean == (0.4914, 0.4822, 0.4465)
    labelled = CIFAR10(CIFAR10.Params(copy_label="cifar10-jpeg75")).load(tmp_path, download=False)
    assert labelled.copy == "cifar10-jpeg75"


def test_known_image_folder_copies_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_folder(tmp_path, CIFAR10_NAMES, per_class=(1, 1))
    fingerprint = common.decode_splits(
        dict(zip(("train", "test"), common.scan_image_folder(tmp_path)[1:], strict=True)), cache_dir=None
    ).fingerprint
    monkeypatch.setitem(cifar._KNOWN_FOLDER_COPIES, fingerprint, "cifar10-tiny-test-copy")
    assert CIFAR10().load(tmp_path, download=False).copy == "cifar10-tiny-test-copy"


def test_cifar_image_folder_needs_the_dataset_class_count(tmp_path: Path) -> None:
    write_folder(tmp_path, ["a", "b", "c"])
    with pytest.raises(DatasetNotFoundError, match="3 class folders") as info:
        CIFAR10().load(tmp_path, download=False)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="CIFAR-100 has 100 classes"):
        CIFAR100().load(tmp_path, download=False)


def test_cifar_prefers_the_pickles_over_an_image_folder(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    write_folder(tmp_path, CIFAR10_NAMES)
    assert CIFAR10().load(tmp_path, download=False).copy.startswith("cifar10-pickle-")


# --------------------------------------------------------------------------------------------
# SVHN
# --------------------------------------------------------------------------------------------
def test_svhn_reads_the_mat_files(tmp_path: Path) -> None:
    x = write_svhn(tmp_path, "train_32x32.mat", [10, 1, 5, 10, 9])
    write_svhn(tmp_path, "test_32x32.mat", [3, 10], seed=1)
    splits = SVHN().load(tmp_path, download=False)
    assert splits.train.images.shape == (5, 3, 32, 32) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 1, 5, 0, 9] and splits.train.labels.dtype == torch.int64
    assert splits.test.labels.tolist() == [3, 0]
    assert splits.train.images[2, 1, 4, 6] == x[4, 6, 1, 2]  # X is [H, W, C, N]
    assert splits.classes == tuple(str(d) for d in range(10))
    assert splits.copy.startswith("svhn-mat-") and splits.location == str(tmp_path)
    assert splits.std == (0.1980, 0.2010, 0.1970)


def test_svhn_extra_joins_the_train_split(tmp_path: Path) -> None:
    write_svhn(tmp_path, "train_32x32.mat", [1, 2])
    write_svhn(tmp_path, "test_32x32.mat", [3])
    with pytest.raises(DatasetNotFoundError, match=r"extra_32x32\.mat"):
        SVHN(SVHN.Params(extra=True)).load(tmp_path, download=False)
    write_svhn(tmp_path, "extra_32x32.mat", [10, 4, 7])
    splits = SVHN(SVHN.Params(extra=True)).load(tmp_path, download=False)
    assert splits.train.labels.tolist() == [1, 2, 0, 4, 7]
    assert len(SVHN().load(tmp_path, download=False).train) == 2


def test_svhn_missing_copy_names_the_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        SVHN().load(tmp_path, download=False)
    assert str(tmp_path / "train_32x32.mat") in str(info.value) and "download=True" in str(info.value)


def test_svhn_download_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    class Offline:
        def __init__(self, root: str, split: str, download: bool) -> None:
            raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(torchvision.datasets, "SVHN", Offline)
    with pytest.raises(DatasetNotFoundError, match=r"downloading train_32x32\.mat with torchvision failed"):
        SVHN().load(tmp_path, download=True)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape", "bad_labels"])
def test_svhn_corrupt_mat_names_the_file(tmp_path: Path, damage: str) -> None:
    from scipy.io import savemat

    write_svhn(tmp_path, "train_32x32.mat", [1, 2, 3])
    write_svhn(tmp_path, "test_32x32.mat", [4])
    target = tmp_path / "train_32x32.mat"
    if damage == "garbage":
        target.write_bytes(b"\x00garbage" * 10)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:300])
    elif damage == "wrong_shape":
        savemat(target, {"X": np.zeros((32, 32, 3), np.uint8), "y": np.ones((1, 1), np.uint8)})
    else:
        savemat(target, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [11]], np.uint8)})
    with pytest.raises(DatasetNotFoundError) as info:
        SVHN().load(tmp_path, download=False)
    assert str(target) in str(info.value)


def test_svhn_reads_an_image_folder_copy(tmp_path: Path) -> None:
    write_folder(tmp_path, [str(d) for d in range(10)], per_class=(1, 1), size=32)
    splits = SVHN().load(tmp_path, download=False)
    assert splits.copy.startswith("svhn-imagefolder-") and splits.train.labels.tolist() == list(range(10))


# --------------------------------------------------------------------------------------------
# Tiny-ImageNet
# --------------------------------------------------------------------------------------------
WNIDS = ["n03000000", "n01000000", "n02000000"]  # wnids.txt is not sorted


def write_tiny(root: Path, size: int = 16) -> Path:
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in WNIDS))
    seed = 0
    for wnid in WNIDS:
        (base / "train" / wnid).mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t10\t10\n")
        for i in range(2):
            seed += 1
            write_image(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", rgb(seed, size), "JPEG")
    grey = np.full((size, size), 77, dtype=np.uint8)
    write_image(base / "train" / "n02000000" / "images" / "n02000000_1.JPEG", grey, "JPEG")
    annotations = [("val_0.JPEG", "n02000000"), ("val_1.JPEG", "n03000000"), ("val_2.JPEG", "n01000000")]
    for i, (name, _) in enumerate(annotations):
        write_image(base / "val" / "images" / name, rgb(100 + i, size), "JPEG")
    (base / "val" / "val_annotations.txt").write_text(
        "".join(f"{name}\t{wnid}\t0\t0\t{size - 1}\t{size - 1}\n" for name, wnid in annotations)
    )
    write_image(base / "test" / "images" / "test_0.JPEG", rgb(200, size), "JPEG")
    return base


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_tinyimagenet_reads_the_standard_layout_in_place(tmp_path: Path) -> None:
    base = write_tiny(tmp_path)
    before = _snapshot(base)
    splits = TinyImageNet().load(tmp_path, download=False)
    assert _snapshot(base) == before  # nothing moved, added or changed in the copy
    assert splits.classes == ("n01000000", "n02000000", "n03000000")  # sorted, ImageFolder order
    assert splits.train.images.shape == (6, 3, 16, 16) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert splits.test.labels.tolist() == [1, 2, 0]  # from val_annotations.txt, in its order
    grey = splits.train.images[3].int()  # n02000000_1.JPEG was written grey
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert abs(grey.float().mean().item() - 77) < 2
    assert splits.mean == (0.485, 0.456, 0.406)
    assert splits.copy.startswith("tinyimagenet-") and splits.location == str(base)
    again = TinyImageNet(TinyImageNet.Params(cache=False)).load(base, download=False)
    assert torch.equal(again.train.images, splits.train.images) and again.copy == splits.copy


def test_tinyimagenet_missing_copy_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        TinyImageNet().load(tmp_path, download=True)
    message = str(info.value)
    assert str(tmp_path / "tiny-imagenet-200" / "wnids.txt") in message
    assert "tiny-imagenet-200.zip" in message and "--data-root" in message


@pytest.mark.parametrize("damage", ["corrupt_jpeg", "missing_val_image", "unknown_wnid", "other_size"])
def test_tinyimagenet_bad_copy_names_the_file(tmp_path: Path, damage: str) -> None:
    base = write_tiny(tmp_path)
    target = base / "val" / "images" / "val_1.JPEG"
    if damage == "corrupt_jpeg":
        target.write_bytes(b"\xff\xd8\xff not really a jpeg")
    elif damage == "missing_val_image":
        target.unlink()
    elif damage == "unknown_wnid":
        target = base / "val" / "val_annotations.txt"
        target.write_text("val_0.JPEG\tn09999999\t0\t0\t1\t1\n")
    else:
        target = base / "train" / "n03000000" / "images" / "n03000000_1.JPEG"
        write_image(target, rgb(5, 24), "JPEG")
    with pytest.raises(DatasetNotFoundError) as info:
        TinyImageNet(TinyImageNet.Params(cache=False)).load(tmp_path, download=False)
    assert str(target) in str(info.value)


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------
def test_imagefolder_reads_mixed_formats(tmp_path: Path) -> None:
    write_folder(tmp_path, ["dog", "cat"])
    write_image(tmp_path / "train" / "cat" / "grey.png", np.full((8, 8), 200, np.uint8))
    rgba = np.dstack([rgb(50), np.full((8, 8), 128, np.uint8)])
    write_image(tmp_path / "train" / "dog" / "sub" / "alpha.png", rgba)
    write_image(tmp_path / "test" / "dog" / "photo.jpg", rgb(51), "JPEG")
    write_image(tmp_path / "test" / "dog" / "bitmap.bmp", rgb(52), "BMP")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    splits = ImageFolder().load(tmp_path, download=False)
    assert splits.classes == ("cat", "dog")
    assert splits.train.images.shape == (6, 3, 8, 8) and splits.test.images.shape == (4, 3, 8, 8)
    assert splits.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert splits.test.labels.tolist() == [0, 1, 1, 1]
    assert torch.all(splits.train.images[2] == 200)  # cat/grey.png, after cat/0000.png and 0001.png
    assert torch.equal(splits.train.images[5], torch.from_numpy(rgb(50)).permute(2, 0, 1))  # dog/sub/
    assert torch.equal(splits.test.images[2], torch.from_numpy(rgb(52)).permute(2, 0, 1))  # dog/bitmap.bmp
    mean, std = splits.mean, splits.std
    scaled = splits.train.images.double() / 255
    assert mean == pytest.approx(scaled.mean(dim=(0, 2, 3)).tolist())
    assert std == pytest.approx(scaled.std(dim=(0, 2, 3)).tolist())
    assert splits.copy.startswith("imagefolder-") and splits.location == str(tmp_path)


def test_imagefolder_all_grey_keeps_one_channel(tmp_path: Path) -> None:
    for split, name in (("train", "a"), ("train", "b"), ("test", "a")):
        write_image(tmp_path / split / name / "x.png", np.full((4, 4), 9, np.uint8))
    splits = ImageFolder().load(tmp_path, download=False)
    assert splits.train.images.shape == (2, 1, 4, 4) and splits.in_channels == 1


def test_imagefolder_copy_id_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_folder(tmp_path, ["a", "b"])
    first = ImageFolder().load(tmp_path, download=False)
    assert list((tmp_path / ".unlearnbench-cache").glob("decoded-*.pt"))

    def no_decoding(path: str) -> torch.Tensor:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(common, "decode_file", no_decoding)
    caplog.set_level(logging.INFO, logger="unlearnbench_datasets")
    second = ImageFolder().load(tmp_path, download=False)
    assert "from the cache" in caplog.text
    assert second.copy == first.copy and torch.equal(second.train.images, first.train.images)
    assert ImageFolder(ImageFolder.Params(copy_label="mine")).load(tmp_path, download=False).copy == "mine"
    monkeypatch.undo()
    flat = np.full((8, 8, 3), 40, np.uint8)
    write_image(tmp_path / "train" / "a" / "0000.png", flat)  # new pixels and a new file size
    changed = ImageFolder().load(tmp_path, download=False)
    assert changed.copy != first.copy
    assert torch.all(changed.train.images[0] == 40)


def test_imagefolder_unreadable_cache_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_folder(tmp_path, ["a", "b"])
    first = ImageFolder().load(tmp_path, download=False)
    (cache,) = (tmp_path / ".unlearnbench-cache").glob("decoded-*.pt")
    cache.write_bytes(b"broken")
    second = ImageFolder().load(tmp_path, download=False)
    assert torch.equal(second.train.images, first.train.images)
    assert "ignoring unreadable decode cache" in caplog.text


def test_imagefolder_custom_split_folders(tmp_path: Path) -> None:
    write_folder(tmp_path, ["a", "b"])
    (tmp_path / "train").rename(tmp_path / "training")
    (tmp_path / "test").rename(tmp_path / "val")
    with pytest.raises(DatasetNotFoundError):
        ImageFolder().load(tmp_path, download=False)
    params = ImageFolder.Params(train_dir="training", test_dir="val", cache=False)
    assert len(ImageFolder(params).load(tmp_path, download=False).train) == 4


def test_imagefolder_missing_copy_names_the_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        ImageFolder().load(tmp_path / "absent", download=True)
    assert str(tmp_path / "absent" / "train") in str(info.value) and "--data-root" in str(info.value)


@pytest.mark.parametrize("damage", ["corrupt", "empty_file", "other_size", "stray_test_class", "empty_class"])
def test_imagefolder_bad_copy_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    write_folder(tmp_path, ["a", "b"])
    target = tmp_path / "train" / "b" / "0001.png"
    if damage == "corrupt":
        target.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    elif damage == "empty_file":
        target.write_bytes(b"")
    elif damage == "other_size":
        write_image(target, rgb(3, 9))
    elif damage == "stray_test_class":
        target = tmp_path / "test" / "zebra"
        write_image(target / "x.png", rgb(4))
    else:
        target = tmp_path / "train" / "c"
        target.mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        ImageFolder(ImageFolder.Params(cache=False)).load(tmp_path, download=False)
    assert str(target) in str(info.value) or target.name in str(info.value)


def test_splits_of_different_sizes_are_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, ["a"], per_class=(1, 0))
    write_image(tmp_path / "test" / "a" / "big.png", rgb(1, 16))
    with pytest.raises(DatasetNotFoundError, match="differ in image size"):
        ImageFolder(ImageFolder.Params(cache=False)).load(tmp_path, download=False)


def test_channel_stats_match_torch() -> None:
    images = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    mean, std = common.channel_stats(images)
    scaled = images.double() / 255
    assert mean == pytest.approx(scaled.mean(dim=(0, 2, 3)).tolist())
    assert std == pytest.approx(scaled.std(dim=(0, 2, 3)).tolist())

"""The run's output folder, checked before any work: a directory we can write, with room."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from unlearnbench.errors import InvalidValueError

MIN_FREE_BYTES = 64 * 1024 * 1024
"""Below this much free space a run is refused (a model artifact of ResNet-18 is ~45 MB)."""


def check_output_dir(out: Path, what: str = "--out", *, min_free: int = MIN_FREE_BYTES) -> Path:
    """Create ``out`` if needed and prove it writable; one clear error (naming option ``what``)
    otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidValueError(
            f"{what} {out} is a file, not a directory; give a folder for the run's outputs"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InvalidValueError(f"{what} {out}: no space left on the device") from None
        raise InvalidValueError(f"{what} {out} is not writable: {exc.strerror}") from None
    free = shutil.disk_usage(out).free
    if free < min_free:
        raise InvalidValueError(
            f"{what} {out}: only {free // (1024 * 1024)} MiB free; a run needs at least "
            f"{min_free // (1024 * 1024)} MiB for its artifacts"
        )
    return out


def check_output_file(path: Path, what: str = "-o") -> Path:
    """``path`` when a file can be written there (its folder is created); one clear error if not."""
    path = Path(path)
    if path.is_dir():
        raise InvalidValueError(
            f"{what} {path} is a directory; give a file name such as {path / 'README.md'}"
        )
    check_output_dir(path.parent, f"{what} {path}: the folder", min_free=0)
    return path


def check_artifact_store(root: str, *, writes: bool = True) -> str:
    """Prove the artifact store ``root`` usable before any work: an fsspec URL whose protocol is
    known (and, when ``writes``, where a probe file can be written), or a writable folder."""
    if "://" in root and not root.startswith("file://"):
        protocol = root.split("://", 1)[0]
        try:
            import fsspec

            fs, path = fsspec.core.url_to_fs(root)
        except ImportError as exc:  # a known protocol whose package is missing
            raise InvalidValueError(f"--artifacts {root}: {exc}") from None
        except ValueError:
            from fsspec.registry import known_implementations

            raise InvalidValueError(
                f"--artifacts {root}: unknown fsspec protocol {protocol!r}; known: "
                f"{', '.join(sorted(known_implementations))}"
            ) from None
        if writes:
            probe = f"{path.rstrip('/')}/.write-probe-{os.getpid()}"
            try:
                fs.makedirs(path, exist_ok=True)
                fs.pipe_file(probe, b"x")
                fs.rm(probe)
            except Exception as exc:
                raise InvalidValueError(
                    f"--artifacts {root} is not writable: {type(exc).__name__}: {exc}"
                ) from None
        return root
    if writes:  # probe the folder, or the nearest folder above it that exists (creating nothing)
        folder = Path(root.removeprefix("file://"))
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        if not folder.is_dir():
            raise InvalidValueError(f"--artifacts {root}: {folder} is a file, not a directory")
        try:
            probe = folder / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as exc:
            where = "" if folder == Path(root.removeprefix("file://")) else f" ({folder} is not)"
            raise InvalidValueError(f"--artifacts {root} is not writable{where}: {exc.strerror}") from None
    return root

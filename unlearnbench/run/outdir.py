"""The run's output folder, checked before any work: a directory we can write, with room."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from unlearnbench.errors import InvalidValueError

MIN_FREE_BYTES = 64 * 1024 * 1024
"""Below this much free space a run is refused (a model artifact of ResNet-18 is ~45 MB)."""


def check_output_dir(out: Path) -> Path:
    """Create ``out`` if needed and prove it writable; one clear error otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidValueError(
            f"--out {out} is a file, not a directory; give a folder for the run's outputs"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InvalidValueError(f"--out {out}: no space left on the device") from None
        raise InvalidValueError(f"--out {out} is not writable: {exc.strerror}") from None
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise InvalidValueError(
            f"--out {out}: only {free // (1024 * 1024)} MiB free; a run needs at least "
            f"{MIN_FREE_BYTES // (1024 * 1024)} MiB for its artifacts"
        )
    return out

"""Names that become file names, and paths that must stay inside the folder they are written to."""

from __future__ import annotations

import os
import re
from pathlib import Path

from unlearnbench.errors import InvalidValueError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
"""A name that is safe as one path component: letters, digits, ``.``, ``_``, ``+``, ``-``."""


def safe_name(what: str, value: object) -> str:
    """``value`` when it can be one file-name component (no ``/``, no ``..``, no leading dot),
    else one clear error naming ``what``."""
    text = str(value)
    if not NAME_PATTERN.fullmatch(text) or ".." in text:
        raise InvalidValueError(
            f"{what} {text!r} cannot be a file name; use letters, digits, '.', '_', '+' and '-' "
            "(starting with a letter or digit, no '..', at most 128 characters)"
        )
    return text


def inside(root: Path | str, path: Path | str) -> Path:
    """``path`` (relative paths are taken under ``root``) when it stays inside ``root`` once
    ``..`` and symlinks are resolved; else one error naming both."""
    base = Path(os.path.realpath(root))
    full = Path(os.path.realpath(Path(root) / path))
    if full != base and base not in full.parents:
        raise InvalidValueError(f"refusing to write {path}: it is outside the folder {root}")
    return Path(root) / path


def readable_mode(path: Path | str, *, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would (0666/0777 less the umask):
    ``tempfile`` creates files 0600 and folders 0700."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if folder else 0o666) & ~mask)

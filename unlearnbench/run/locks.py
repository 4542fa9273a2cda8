"""One computation per node across processes: a lock per node in the artifact store.

A process that finds a node missing takes the node's lock, looks again (another process may have
stored it meanwhile) and computes it only when it is still missing; a second process waits for
the lock and then reuses the stored node.

- Local stores: ``ROOT/locks/<stage>-<key[:24]>.lock`` held with :mod:`filelock` (an OS lock:
  the kernel drops it when its holder dies, kill -9 included). The holder's pid, host and start
  time are in ``<stage>-<key[:24]>.owner`` while it holds the lock; finding that file on
  acquiring means its holder died holding it, which is logged as a broken stale lock.
- fsspec stores: ``ROOT/locks/<stage>-<key[:24]>.lock`` is a JSON file (``pid``, ``host``,
  ``token``, ``started``, ``heartbeat``) created exclusively; its holder rewrites ``heartbeat``
  every ``heartbeat_s``. A lock whose holder is a dead process on this host, or whose heartbeat
  is older than ``stale_s`` (a holder killed elsewhere), is broken (logged) and taken over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

log = logging.getLogger(__name__)

POLL_S = 0.5
"""How often a waiting process looks at the lock."""
HEARTBEAT_S = 10.0
STALE_S = 120.0
"""A remote lock whose heartbeat is older than this is taken to be left by a killed process."""


def _owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _describe(owner: dict[str, Any]) -> str:
    started = time.strftime("%H:%M:%S", time.localtime(float(owner.get("started", 0))))
    return f"pid {owner.get('pid')} on {owner.get('host')} since {started}"


@contextlib.contextmanager
def local_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the OS lock ``path`` (waiting as long as another process holds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    owner_file = path.with_suffix(".owner")
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("%s is being computed by %s; waiting for it", what, _read_owner(owner_file))
        lock.acquire()
    try:
        if owner_file.exists():
            log.warning("%s: broke the stale lock of %s (its holder died)", what, _read_owner(owner_file))
        owner_file.write_text(json.dumps(_owner()))
        yield
    finally:
        owner_file.unlink(missing_ok=True)
        lock.release()


def _read_owner(path: Path) -> str:
    try:
        return _describe(json.loads(path.read_text()))
    except (OSError, ValueError):
        return "another process"


class _Heartbeat(threading.Thread):
    """Rewrites the holder's lock file every ``interval`` seconds until stopped."""

    def __init__(self, fs: Any, path: str, record: dict[str, Any], interval: float) -> None:
        super().__init__(name="unlearnbench-lock-heartbeat", daemon=True)
        self.fs, self.path, self.record, self.interval = fs, path, record, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                current = json.loads(self.fs.cat_file(self.path))
                if current.get("token") != self.record["token"]:
                    log.warning("lock %s was taken over by %s", self.path, _describe(current))
                    return
                self.fs.pipe_file(self.path, json.dumps({**self.record, "heartbeat": time.time()}).encode())
            except (OSError, ValueError) as exc:
                log.warning("could not refresh the lock %s (%s)", self.path, exc)


def _stale(record: dict[str, Any], stale_s: float) -> str | None:
    """Why the lock ``record`` is stale (None when its holder may be alive)."""
    if record.get("host") == socket.gethostname() and not _alive(int(record.get("pid", -1))):
        return "its holder is no longer running"
    age = time.time() - float(record.get("heartbeat", 0))
    return f"no heartbeat for {age:.0f} s" if age > stale_s else None


def _create(fs: Any, path: str, blob: bytes) -> bool:
    """Create ``path`` holding ``blob`` unless it exists (exclusively where the store can)."""
    try:
        with fs.open(path, "xb") as handle:
            handle.write(blob)
        return True
    except FileExistsError:
        return False
    except (ValueError, NotImplementedError, TypeError):  # no exclusive create: write, then verify
        if fs.exists(path):
            return False
        fs.pipe_file(path, blob)
        time.sleep(POLL_S)
        return bool(fs.cat_file(path) == blob)


@contextlib.contextmanager
def remote_lock(
    fs: Any, path: str, what: str, *, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S
) -> Iterator[None]:
    """Hold the lock file ``path`` on fsspec filesystem ``fs``, breaking a stale one."""
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    record = {**_owner(), "token": uuid.uuid4().hex, "heartbeat": time.time()}
    logged = False
    while not _create(fs, path, json.dumps(record).encode()):
        record["heartbeat"] = time.time()
        try:
            current = json.loads(fs.cat_file(path))
        except FileNotFoundError:
            continue
        except (OSError, ValueError):  # half written, or not ours: judge it by its age
            try:
                current = {"heartbeat": fs.modified(path).timestamp()}
            except Exception:
                current = {"heartbeat": 0.0}
        why = _stale(current, stale_s)
        if why is not None:
            log.warning("%s: broke the stale lock of %s (%s)", what, _describe(current), why)
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(path)
            continue
        if not logged:
            log.info("%s is being computed by %s; waiting for it", what, _describe(current))
            logged = True
        time.sleep(POLL_S)
    beat = _Heartbeat(fs, path, record, heartbeat_s)
    beat.start()
    try:
        yield
    finally:
        beat.stopped.set()
        beat.join()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(fs.cat_file(path)).get("token") == record["token"]:
                fs.rm_file(path)

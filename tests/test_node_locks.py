"""One computation per node across processes: two real processes that need one node compute it
once (the second waits and reuses it), and a lock left by a killed process is broken."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from unlearnbench.run.artifacts import ArtifactStore, artifact_key

ROOT = Path(__file__).resolve().parents[1]
KEY = artifact_key("original", {"seed": 0, "test": "locks"})

# A process that obtains the node: "computing" it takes 1.5 s and appends a line to the log.
OBTAIN = """
import os, sys, time
from pathlib import Path
from unlearnbench.run.artifacts import ArtifactStore

store, log, key = ArtifactStore(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

def write(folder):
    with log.open("a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(1.5)
    (folder / "model.txt").write_text("weights")
    return {"runtime_s": 1.5}

artifact, reused = store.obtain("original", key, lambda: store.put("original", key, {}, write))
print("reused" if reused else "computed", artifact.meta["key"] == key, flush=True)
"""

# A process that takes the node's lock, says so and then hangs (until it is killed).
HOLD = """
import sys, time
from unlearnbench.run.artifacts import ArtifactStore

with ArtifactStore(sys.argv[1]).lock("original", sys.argv[2]):
    print("locked", flush=True)
    time.sleep(120)
"""


def stores(tmp_path: Path) -> list[str]:
    """A local folder, and the same kind of folder through fsspec (``local://``)."""
    return [str(tmp_path / "local"), f"local://{tmp_path / 'remote'}"]


@pytest.mark.parametrize("kind", [0, 1], ids=["local", "fsspec"])
def test_two_processes_compute_one_node_once(tmp_path: Path, kind: int) -> None:
    pytest.importorskip("fsspec")
    root, log = stores(tmp_path)[kind], tmp_path / "computed.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OBTAIN, root, str(log), KEY], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = sorted(p.communicate(timeout=120)[0].split()[0] for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert len(log.read_text().split()) == 1, "the node was computed more than once"
    assert outputs == ["computed", "reused"]
    assert ArtifactStore(root).get("original", KEY) is not None


def lock_is_free(store: ArtifactStore, within_s: float) -> bool:
    """Whether this process gets the node's lock within ``within_s`` seconds."""
    got = threading.Event()

    def take() -> None:
        with store.lock("original", KEY):
            got.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    if not got.wait(within_s):
        return False
    thread.join(within_s)  # released again
    return True


@pytest.mark.parametrize("kind", [0, 1], ids=["local", "fsspec"])
def test_a_lock_left_by_a_killed_process_is_broken_and_logged(
    tmp_path: Path, kind: int, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("fsspec")
    root = stores(tmp_path)[kind]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, root, KEY], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        store = ArtifactStore(root)
        assert not lock_is_free(store, 1.0), "the lock of a live holder was taken"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        with caplog.at_level(logging.WARNING, logger="unlearnbench.run.locks"):
            assert lock_is_free(store, 10.0)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert f"broke the stale lock of pid {holder.pid}" in caplog.text


def test_a_remote_lock_without_a_recent_heartbeat_is_broken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("fsspec")
    store = ArtifactStore(f"local://{tmp_path / 'remote'}")
    lock = tmp_path / "remote" / "locks" / f"original-{KEY[:24]}.lock"
    lock.parent.mkdir(parents=True)
    old = time.time() - 3600  # a holder on another machine that stopped an hour ago
    record = {"pid": 1, "host": "elsewhere", "token": "x", "started": old, "heartbeat": old}
    lock.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="unlearnbench.run.locks"):
        assert lock_is_free(store, 10.0)
    assert "broke the stale lock of pid 1 on elsewhere" in caplog.text
    assert not lock.exists()  # released on exit

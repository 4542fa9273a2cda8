"""The static leaderboard site: pages from published folders, every value escaped, and, in a real
headless Chromium (Debian's ``chromium``; skipped with a message where it is not installed), tables
that render, sort on a header click and filter on typing.

The browser is driven over the Chrome DevTools Protocol on ``--remote-debugging-pipe`` (file
descriptors 3 and 4, NUL-separated JSON), so no driver or websocket package is needed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from records import base_record

from unlearnbench.cli import cli
from unlearnbench.report import publish, site

EVIL = "<script>window.pwned=1</script>"
INFO = {
    "ua": {"label": "UA", "unit": "%", "gap": True},
    "ra": {"label": "RA", "unit": "%", "gap": True},
    "mask-iou": {"label": "Mask-IoU", "unit": "", "gap": False},
}
UA = {"original": 5.0, "retrain": 100.0, "ft": 40.0, "ga": 97.5, EVIL: 12.0, "l1-sparse": 88.0}


def record(unlearner: str, seed: int, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = base_record(
        unlearner,
        seed,
        sparsity_target=0.9,
        sparsity=0.9,
        metrics={"ua": UA[unlearner] + seed, "ra": 99.0 - seed, "mask-iou": 0.5 + seed / 10},
        metric_info=INFO,
        metric_names=list(INFO),
        device="cpu (x86_64, 1 threads)",
        schema_version=3,
        reference={"original": "original", "retrain": "retrain"}.get(unlearner),
        versions={"unlearnbench": "0.1.0"},
    )
    base.update(extra)
    base["row_id"] = json.dumps([unlearner, seed])
    return base


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site of one published board whose method names include a script tag."""
    root = tmp_path_factory.mktemp("site")
    board = root / "leaderboards" / "p-board"
    rows = [record(u, s) for u in UA for s in range(2)]
    rows.append({**record("ga", 2), "status": "failed", "error": f"RuntimeError: {EVIL}", "metrics": {}})
    publish.publish(board, rows, {})
    result = CliRunner().invoke(cli, ["site", str(root / "leaderboards"), "-o", str(root / "site")])
    assert result.exit_code == 0, result.output
    return root / "site"


def test_pages_escape_every_value_and_carry_provenance(built: Path) -> None:
    page = (built / "p-board" / site.INDEX).read_text()
    assert EVIL not in page and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the page's own script only
    for text in ("a" * 64, "sklearn-digits", "cpu (x86_64, 1 threads)", "c" * 40, "Claims check"):
        assert text in page
    assert '<img src="tradeoff.png"' in page and (built / "p-board" / "tradeoff.png").is_file()
    index = (built / site.INDEX).read_text()
    assert 'href="p-board/index.html"' in index
    bad = CliRunner().invoke(cli, ["site", str(built / "p-board"), "-o", str(built / "x")])
    assert bad.exit_code == 2 and "no published leaderboard" in bad.output


def test_publish_site_adds_a_page_and_keeps_the_others(built: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(record(u, 0, protocol="q")) + "\n" for u in ("original", "ft")))
    (built / "q-board").mkdir()
    (built / "q-board" / "gap.png").write_bytes(b"a plot the board no longer has")
    args = ["publish", str(results), "-o", str(tmp_path / "q-board"), "--site", str(built)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    index = (built / site.INDEX).read_text()
    assert 'href="p-board/index.html"' in index and 'href="q-board/index.html"' in index
    assert not (built / "q-board" / "gap.png").exists() and (built / "q-board" / "tradeoff.png").exists()


class Browser:
    """Headless Chromium over the DevTools protocol on a pipe: one page, commands and events."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser, self._in = os.pipe()
        self._out, from_browser = os.pipe()

        def fds() -> None:  # the browser reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        args = [binary, "--headless", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run"]
        args += ["--disable-dev-shm-usage", "--no-default-browser-check", f"--user-data-dir={profile}"]
        args += ["--no-sandbox"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [*args, "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._out, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: bool = False
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._in, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 15
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + 15
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read(deadline))
        self.events = [e for e in self.events if e.get("method") != event]

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the first element matching ``selector``."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            params = {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", params, session=True)

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        for char in text:
            self.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": char, "key": char}, session=True)
            self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": char}, session=True)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._in)
        os.close(self._out)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium; .ci/run does)")


COLUMN = """(name) => {{
  const table = document.querySelector("#t0");
  const col = [...table.tHead.rows[0].cells].findIndex(th => th.textContent === name);
  return [...table.tBodies[0].rows].filter(r => !r.hidden).map(r => r.cells[col].textContent);
}}"""


def test_the_site_renders_sorts_and_filters_in_headless_chromium(built: Path, tmp_path: Path) -> None:
    browser = Browser(chromium(), tmp_path / "profile")
    try:
        browser.open((built / site.INDEX).as_uri())
        boards = "[...document.querySelectorAll('#boards tbody tr')].map(r => r.cells[0].textContent)"
        assert "p-board" in browser.js(boards)
        browser.click('#boards tbody a[href="p-board/index.html"]')
        browser.wait_for("Page.loadEventFired")
        assert browser.js("location.pathname").endswith("/p-board/index.html")
        column = COLUMN.format()
        methods = browser.js(f"({column})('Method')")
        assert methods == [
            "original",
            "retrain",
            *sorted(set(UA) - {"original", "retrain"}),
        ]  # references first
        assert browser.js("window.pwned") is None  # the method name stayed text
        assert browser.js("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        ua = {m: f"{UA[m] + 0.5:.2f}" for m in UA}  # mean over seeds 0 and 1

        browser.click("#t0 thead th:nth-child(3) button")  # UA
        assert browser.js(f"({column})('Method')") == sorted(UA, key=UA.get)
        assert [v.split(" ")[0] for v in browser.js(f"({column})('UA')")] == sorted(ua.values(), key=float)
        browser.click("#t0 thead th:nth-child(3) button")
        assert browser.js(f"({column})('Method')") == sorted(UA, key=UA.get, reverse=True)
        browser.screenshot(tmp_path / "sorted.png")
        browser.click("#t0 thead th:nth-child(1) button")  # Method: text order
        assert browser.js(f"({column})('Method')") == sorted(UA)

        browser.type("input[data-table=t0]", "sparse")
        assert browser.js(f"({column})('Method')") == ["l1-sparse"]
        assert browser.js("document.querySelector('#t0-count').textContent") == "1 of 6 rows"
        browser.screenshot(tmp_path / "site.png")
        assert (tmp_path / "site.png").stat().st_size > 10_000
    finally:
        browser.close()

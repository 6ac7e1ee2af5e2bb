"""Issue #17: ``unetcli predict --gallery`` writes OUTPUT/index.html, checked in a real headless browser (Debian's
chromium, driven over the DevTools protocol on a pipe: no extra package): the page loads without console errors,
every thumbnail renders (naturalWidth > 0, and the screenshot shows the colour input beside the gray output),
failures are listed with their reason, odd file names link to the right files, paging reaches page 2; a rerun
skips what is done (the thumbnails are never inputs) and rewrites the page over every file."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from conftest import held_out_photos, run_cli
from unetcli.gallery import GALLERY_DIR

CHROMIUM = "/usr/bin/chromium"
#: File names that must survive HTML, JSON and URLs: space, #, ?, quotes, <, &, non-ASCII, a control character.
ODD_NAME = "odd #1? 'q' \"dq\" <b>&amp; é\x07.jpg"
BROKEN_NAME = "broken <i>&.jpg"


class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages
    separated by NUL bytes on file descriptors 3 and 4)."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        # a small Python trampoline puts the pipe ends on the descriptors chromium expects (3: commands in,
        # 4: replies out), then becomes chromium
        trampoline = (f"import os, sys; os.dup2({to_chrome_r}, 3); os.dup2({from_chrome_w}, 4); "
                      f"[os.close(fd) for fd in {{{to_chrome_r}, {from_chrome_w}}} - {{3, 4}}]; "
                      f"os.execv(sys.argv[1], sys.argv[1:])")
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", trampoline, *args],
                                     pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer, self._id, self.events = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=self.session)
        self.send("Emulation.setDeviceMetricsOverride", session=self.session, width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)

    def _message(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def page(self, method: str, **params) -> dict:
        return self.send(method, session=self.session, **params)

    def js(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """Load ``url`` and wait until every image of the page has finished loading (or failing)."""
        self.events.clear()
        self.page("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && Array.from(document.images)"
                      ".filter(i => i.getAttribute('src')).every(i => i.complete)")

    def wait_for(self, condition: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(condition):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {condition}")
            time.sleep(0.05)

    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and failed loads (CSP, missing files) since open()."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                found.append(json.dumps(p["exceptionDetails"])[:500])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                found.append(json.dumps(p.get("args"))[:500])
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                found.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return found

    def screenshot(self) -> Image.Image:
        data = self.page("Page.captureScreenshot", format="png")["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless chromium for the module. Without chromium the tests are skipped, except in CI (the CI
    environment variable set), where a missing browser is a failure: CI installs it (.ci/run)."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A predict run with --gallery over the held-out photos, a copy under an odd name and a broken file, written
    into the INPUT folder itself (-r --suffix _gray), so the page's folder holds inputs, outputs and thumbnails."""
    src = out = tmp_path_factory.mktemp("gallery") / "photos"
    src.mkdir()
    photos = held_out_photos()
    for p in photos:
        shutil.copy(p, src / p.name)
    shutil.copy(photos[0], src / ODD_NAME)
    (src / BROKEN_NAME).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    r = run_cli("predict", "-m", "simple-black", "-r", "--suffix", "_gray", "--gallery", "--workers", "0", src, out)
    assert r.returncode == 1, r.stderr  # the broken file
    assert f"done {len(photos) + 1}, skipped 0, failed 1" in r.stderr, r.stderr
    assert f"gallery: {out / 'index.html'}" in r.stderr
    return src, out, len(photos) + 2


def _data(page: Path) -> list[dict]:
    """The file list embedded in the page."""
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1))


def test_gallery_renders_in_a_real_browser(browser, batch):
    src, out, n = batch
    page = out / "index.html"
    assert not re.search(r"https?:|//[a-z]", page.read_text(encoding="utf-8"))  # nothing from the network
    browser.open(page.as_uri())
    assert browser.errors() == []
    assert browser.js("document.querySelectorAll('#grid .item').length") == n
    # every thumbnail shown has decoded pixels; the broken file has an input cell without a picture
    sizes = browser.js("Array.from(document.querySelectorAll('#grid img')).map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == 2 * (n - 1) and all(w > 0 and h > 0 for w, h in sizes), sizes
    assert sorted(os.listdir(out / GALLERY_DIR)) == sorted(set(os.listdir(out / GALLERY_DIR)))
    assert len(os.listdir(out / GALLERY_DIR)) == 2 * (n - 1)
    # failures are listed (escaped, not interpreted as HTML) with the reason predict gave
    failures = browser.js("document.getElementById('failures').innerText")
    assert BROKEN_NAME in failures and "corrupt" in failures, failures
    assert browser.js("document.querySelectorAll('#failures b, #failures i, #grid b').length") == 0
    # the odd name is shown as it is (the control character escaped) and its links reach its files
    text = browser.js("document.getElementById('grid').innerText")
    assert ODD_NAME.replace("\x07", "\\x07") in text
    links = browser.js("Array.from(document.querySelectorAll('#grid a, #failures a')).map(a => a.href)")
    targets = {Path(unquote(urlsplit(u).path, errors="surrogateescape")) for u in links}
    assert {t.name for t in targets} >= {ODD_NAME, ODD_NAME.replace(".jpg", "_gray.png"), BROKEN_NAME}
    assert all(t.is_file() for t in targets), [t for t in targets if not t.is_file()]
    # the screenshot shows pictures: the first row's input thumbnail is colourful, its output beside it gray
    shot = np.asarray(browser.screenshot(), dtype=np.float32)
    boxes = browser.js("Array.from(document.querySelectorAll('#grid .item:not(.failed) img')).slice(0, 2)"
                       ".map(i => { const r = i.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")
    (x0, y0, x1, y1), (u0, v0, u1, v1) = [[int(round(c)) for c in b] for b in boxes]
    assert y1 <= shot.shape[0], "the first thumbnails are not on screen"
    colour, gray = shot[y0 + 2:y1 - 2, x0 + 2:x1 - 2], shot[v0 + 2:v1 - 2, u0 + 2:u1 - 2]
    assert colour.std() > 20 and gray.std() > 20  # pictures, not blank boxes
    assert np.abs(colour - colour.mean(axis=2, keepdims=True)).mean() > 8  # the input photo has colour
    assert np.abs(gray - gray.mean(axis=2, keepdims=True)).mean() < 2  # simple-black's output is gray


def test_gallery_pages(browser, batch):
    src, out, n = batch
    uri = (out / "index.html").as_uri()
    names = [item["name"] for item in _data(out / "index.html")]
    browser.open(uri + "?per=2#page=2")
    assert browser.errors() == []
    assert browser.js("document.getElementById('where').textContent").startswith(f"page 2 of {(n + 1) // 2}")
    shown = browser.js("Array.from(document.querySelectorAll('#grid .name')).map(e => e.textContent)")
    assert len(shown) == 2 and all(name in s for name, s in zip(names[2:4], shown)), (shown, names)
    browser.js("document.getElementById('next').click()")
    browser.wait_for("document.getElementById('where').textContent.startsWith('page 3')")
    browser.js("document.getElementById('only-failed').click()")
    browser.wait_for("document.querySelectorAll('#grid .item').length === 1")
    assert BROKEN_NAME in browser.js("document.getElementById('grid').innerText")
    assert browser.errors() == []


def test_rerun_skips_and_rewrites_the_gallery_over_every_file(batch, tmp_path):
    """A rerun into the same OUTPUT, INPUT being OUTPUT (with --suffix) and -r: the hidden thumbnails are never
    inputs, done files are skipped, and the page covers the skipped files and the new one."""
    src, _, _ = batch
    work = tmp_path / "photos"
    shutil.copytree(src, work)  # the batch's first run (modification times kept: its outputs count as done)
    shutil.copy(held_out_photos()[1], work / "new photo.jpg")
    second = run_cli("predict", "-m", "simple-black", "-r", "--suffix", "_gray", "--gallery", "--workers", "0",
                     work, work)
    assert "done 1, skipped 5, failed 1" in second.stderr, second.stderr  # not a thumbnail among the inputs
    items = _data(work / "index.html")
    assert len(items) == 7
    assert sorted(i["status"] for i in items) == ["done"] + ["failed"] + ["skipped"] * 5
    assert all(i["in_thumb"] and i["out_thumb"] for i in items if i["status"] != "failed")
    assert len(os.listdir(work / GALLERY_DIR)) == 12


def test_gallery_write_failure_is_one_line_and_keeps_the_outputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / GALLERY_DIR).write_text("a file where the thumbnail folder goes")
    r = run_cli("predict", "-m", "simple-black", held_out_photos()[0], out, "--gallery", "--workers", "0")
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gallery" in errors[0] and "index.html" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert "done 1, skipped 0, failed 0" in r.stderr
    output = out / (held_out_photos()[0].stem + ".png")
    assert Image.open(output).size == Image.open(held_out_photos()[0]).size
    assert not (out / "index.html").exists()

"""``unetcli predict --gallery``: an HTML page to review a batch, every input beside its output.

The page, ``OUTPUT/index.html``, is one self-contained file: inline CSS and JavaScript, no network, the file list
embedded as JSON and shown a page at a time (100 photos per page; ``index.html?per=500`` changes that), so a batch
of thousands opens at once. Thumbnails (256-px JPEGs) live in ``OUTPUT/.unetcli-gallery/``, a hidden folder, so
no later run takes them as inputs; the page links to the full-size inputs and outputs by relative URLs. Failed
files are listed with their reason at the top of the page (also without JavaScript).

Built from the per-file results of :func:`unetcli.engine.predict.predict` (:class:`~unetcli.engine.predict.FileResult`),
so files skipped because their output exists are on the page too; the engine knows nothing of it.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from unetcli.errors import InputError
from unetcli.files import atomic_write, remove_stale_temporaries
from unetcli.imageio import printable
from unetcli.sheets import flatten, open_preview

if TYPE_CHECKING:  # the engine (and torch) is not needed to write a page
    from unetcli.engine.predict import FileResult

#: The hidden folder of OUTPUT that holds the thumbnails.
GALLERY_DIR = ".unetcli-gallery"
#: Longest side of a thumbnail in pixels.
THUMB_SIDE = 256
#: Photos per page unless the URL says otherwise (``index.html?per=N``).
PAGE_SIZE = 100


def url_for(path: str | os.PathLike, base: Path) -> str:
    """The relative URL of file ``path`` seen from a page in folder ``base``: ``/``-separated and percent-encoded
    (the bytes of the file-system name, so spaces, ``#``, ``?``, quotes, non-ASCII, control characters and
    undecodable bytes all round-trip)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    return quote(os.fsencode(rel.replace(os.sep, "/")), safe="/")


def thumb_name(path: str | os.PathLike, base: Path) -> str:
    """The thumbnail file name of ``path``: a hash of its path relative to the page's folder ``base`` (so any name
    maps to a plain one, and moving OUTPUT with its inputs keeps the thumbnails valid)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    return hashlib.sha256(os.fsencode(rel)).hexdigest()[:24] + ".jpg"


def make_thumbnail(source: str | os.PathLike, dest: Path) -> None:
    """Write a :data:`THUMB_SIDE`-px JPEG of image ``source`` to ``dest`` (atomically), unless ``dest`` is already
    at least as new as ``source``. Alpha is shown over a checkerboard.

    Raises:
        InputError: ``source`` cannot be read (why).
        OSError: ``dest`` cannot be written.
    """
    try:
        if dest.stat().st_mtime_ns >= os.stat(source).st_mtime_ns:
            return
    except OSError:
        pass
    im = flatten(open_preview(source, THUMB_SIDE))
    with atomic_write(dest) as tmp:
        im.save(tmp, format="JPEG", quality=85)


@dataclass
class _Entry:
    result: FileResult
    input_thumb: str | None = None
    output_thumb: str | None = None
    problems: list[str] = field(default_factory=list)


class Gallery:
    """Collects the results of a ``predict`` run, then writes the page and its thumbnails.

    Args:
        folder: where ``index.html`` goes (predict's OUTPUT folder).
        title: the page's heading (e.g. the model and the folders).
        page_name: the page's file name (``index.html``; shards write ``index-K-of-N.html``).

    Usage: pass :meth:`add` every :class:`FileResult` (the ``on_result`` callback), then call :meth:`write`.
    """

    def __init__(self, folder: Path, title: str, page_name: str = "index.html") -> None:
        self.folder, self.title, self.page_name = Path(folder), title, page_name
        self.results: dict[str, FileResult] = {}

    def add(self, result: FileResult) -> None:
        """Record one file's outcome (a later result for the same input replaces the earlier one)."""
        self.results[result.input] = result

    @property
    def page(self) -> Path:
        """The path of the page."""
        return self.folder / self.page_name

    def write(self, threads: int = 4) -> Path:
        """Make the missing or outdated thumbnails (``threads`` at a time), then write the page atomically.

        A file whose thumbnail cannot be made (unreadable input, an output deleted since) is shown without it,
        with the reason.

        Returns:
            The page's path.

        Raises:
            OSError: the thumbnail folder or the page cannot be written (the outputs are untouched; an existing
                page stays as it was).
        """
        thumbs = self.folder / GALLERY_DIR
        thumbs.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder=thumbs)
        entries = [_Entry(self.results[k]) for k in sorted(self.results)]
        jobs = []
        for e in entries:
            r = e.result
            if os.path.isfile(r.input):
                jobs.append((e, "input_thumb", r.input))
            if r.status != "failed" and os.path.isfile(r.output):  # a failed file's output is not ours to show
                jobs.append((e, "output_thumb", r.output))

        def run(job: tuple[_Entry, str, str]) -> None:
            e, attr, source = job
            dest = thumbs / thumb_name(source, self.folder)
            try:
                make_thumbnail(source, dest)
            except InputError as exc:
                if e.result.status != "failed":  # a failed file's reason is already on the page
                    e.problems.append(f"no preview of the {attr.split('_')[0]}: {exc}")
                return
            setattr(e, attr, url_for(dest, self.folder))

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for _ in pool.map(run, jobs):  # re-raises a thumbnail's OSError (full disk ...)
                pass
        with atomic_write(self.page) as tmp:
            tmp.write_text(render_page(self.title, entries, self.folder), encoding="utf-8")
        return self.page


def _json_for_script(value: object) -> str:
    """JSON that is safe inside ``<script>``: ASCII only, and ``<``, ``>``, ``&`` escaped so no file name can close
    the element or open a comment."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(title: str, entries: list[_Entry], folder: Path) -> str:
    """The HTML of the gallery page (see the module docstring)."""
    items = []
    for e in entries:
        r = e.result
        items.append({
            "name": printable(r.input), "out": printable(os.path.relpath(r.output, folder)),
            "in_url": url_for(r.input, folder), "out_url": url_for(r.output, folder),
            "in_thumb": e.input_thumb, "out_thumb": e.output_thumb, "status": r.status,
            "error": printable(r.error) if r.error else None,
            "notes": [printable(n) for n in r.notes if n != "output exists (use --overwrite)"] +
                     e.problems,
        })
    counts = {s: sum(i["status"] == s for i in items) for s in ("done", "skipped", "failed")}
    failures = "\n".join(
        f'<li><a href="{html.escape(i["in_url"])}">{html.escape(i["name"])}</a>: {html.escape(i["error"] or "")}</li>'
        for i in items if i["status"] == "failed")
    failed_section = (f'<section id="failures"><h2>{counts["failed"]} failed</h2><ul>\n{failures}\n</ul></section>'
                      if counts["failed"] else "")
    summary = f'{len(items)} files: {counts["done"]} done, {counts["skipped"]} skipped (already done), ' \
              f'{counts["failed"]} failed'
    return (_PAGE.replace("@TITLE@", html.escape(title)).replace("@SUMMARY@", html.escape(summary))
            .replace("@FAILURES@", failed_section).replace("@PAGE_SIZE@", str(PAGE_SIZE))
            .replace("@DATA@", _json_for_script(items)))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>@TITLE@</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; background: #fafafa; color: #222; }
h1 { font-size: 1.3em; margin: .8em 0 .2em; }
#failures { background: #fff0f0; border: 1px solid #e0b0b0; padding: .2em 1em; margin: .8em 0;
  max-height: 14em; overflow: auto; }
#failures h2 { font-size: 1.05em; color: #a00; margin: .4em 0; }
#failures li { word-break: break-all; }
nav { margin: .8em 0; display: flex; gap: .5em; align-items: center; flex-wrap: wrap; }
nav button { font: inherit; padding: .2em .8em; }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 12px; }
.item { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
.item.failed { border-color: #d88; background: #fff6f6; }
.pair { display: flex; gap: 6px; }
.pair a, .pair .none { flex: 1; display: flex; align-items: center; justify-content: center; min-height: 120px;
  background: #eee; border-radius: 4px; overflow: hidden; color: #777; text-decoration: none; text-align: center; }
.pair img { max-width: 100%; max-height: 256px; display: block; cursor: zoom-in; }
.name { margin-top: 6px; word-break: break-all; font-size: 13px; }
.status { font-size: 12px; padding: 0 .4em; border-radius: 3px; background: #e6f2e6; }
.failed .status { background: #f4d0d0; }
.note, .error { font-size: 12px; color: #666; word-break: break-word; }
.error { color: #a00; }
#view { position: fixed; inset: 0; background: rgba(0,0,0,.88); display: none; flex-direction: column; z-index: 9; }
#view.open { display: flex; }
#view .imgs { flex: 1; display: flex; gap: 8px; padding: 8px; min-height: 0; }
#view .imgs div { flex: 1; display: flex; align-items: center; justify-content: center; min-width: 0; }
#view img { max-width: 100%; max-height: 100%; object-fit: contain; }
#view p { color: #eee; margin: 6px 12px; word-break: break-all; }
#view a { color: #9cf; }
</style>
</head>
<body>
<h1>@TITLE@</h1>
<div id="summary">@SUMMARY@</div>
@FAILURES@
<nav><button id="prev" type="button">&larr; previous</button><span id="where"></span>
<button id="next" type="button">next &rarr;</button>
<label><input id="only-failed" type="checkbox"> failed only</label>
<span class="note">Click a picture for full size (arrow keys: next/previous photo, Esc: close).</span></nav>
<noscript><p>The pictures need JavaScript; the failures are listed above.</p></noscript>
<div id="grid"></div>
<nav><button id="prev2" type="button">&larr; previous</button>
<button id="next2" type="button">next &rarr;</button></nav>
<div id="view" role="dialog"><div class="imgs"><div><img id="view-in" alt="input"></div>
<div><img id="view-out" alt="output"></div></div><p id="view-caption"></p></div>
<script type="application/json" id="data">@DATA@</script>
<script>
"use strict";
(function () {
  const all = JSON.parse(document.getElementById("data").textContent);
  const params = new URLSearchParams(location.search);
  const per = Math.max(1, parseInt(params.get("per") || "@PAGE_SIZE@", 10) || @PAGE_SIZE@);
  const grid = document.getElementById("grid");
  const onlyFailed = document.getElementById("only-failed");
  let shown = all, page = 1, current = -1;

  function state() {
    const h = new URLSearchParams(location.hash.slice(1));
    onlyFailed.checked = h.get("show") === "failed";
    shown = onlyFailed.checked ? all.filter(i => i.status === "failed") : all;
    const pages = Math.max(1, Math.ceil(shown.length / per));
    page = Math.min(pages, Math.max(1, parseInt(h.get("page") || "1", 10) || 1));
    return pages;
  }
  function go(p, failedOnly) {
    const h = new URLSearchParams();
    h.set("page", String(p));
    if (failedOnly) h.set("show", "failed");
    location.hash = h.toString();
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function cell(thumb, full, what, index) {
    if (!thumb) return el("div", "none", "no " + what + " preview");
    const a = el("a");
    a.href = full;
    const img = el("img");
    img.alt = what;
    img.loading = "eager";
    img.decoding = "async";
    img.addEventListener("error", () => { a.replaceWith(el("div", "none", what + " thumbnail missing")); });
    img.src = thumb;
    a.appendChild(img);
    a.addEventListener("click", ev => { ev.preventDefault(); open(index); });
    return a;
  }
  function render() {
    const pages = state();
    document.getElementById("where").textContent =
      "page " + page + " of " + pages + " (" + shown.length + " files, " + per + " per page)";
    for (const id of ["prev", "prev2"]) document.getElementById(id).disabled = page <= 1;
    for (const id of ["next", "next2"]) document.getElementById(id).disabled = page >= pages;
    grid.textContent = "";
    const start = (page - 1) * per;
    shown.slice(start, start + per).forEach((item, k) => {
      const box = el("div", "item " + item.status);
      const pair = el("div", "pair");
      pair.appendChild(cell(item.in_thumb, item.in_url, "input", start + k));
      pair.appendChild(cell(item.status === "failed" ? null : item.out_thumb, item.out_url, "output", start + k));
      box.appendChild(pair);
      const name = el("div", "name");
      name.appendChild(el("span", "status", item.status));
      name.appendChild(document.createTextNode(" " + item.name + " \\u2192 " + item.out));
      box.appendChild(name);
      if (item.error) box.appendChild(el("div", "error", item.error));
      for (const n of item.notes) box.appendChild(el("div", "note", n));
      grid.appendChild(box);
    });
    window.scrollTo(0, 0);
  }
  function open(index) {
    current = index;
    const item = shown[index];
    const vin = document.getElementById("view-in"), vout = document.getElementById("view-out");
    vin.src = item.in_url;
    if (item.status === "failed") vout.removeAttribute("src"); else vout.src = item.out_url;
    const cap = document.getElementById("view-caption");
    cap.textContent = (index + 1) + " / " + shown.length + ": " + item.name + " \\u2192 " + item.out + "  ";
    for (const [label, url] of [["open input", item.in_url], ["open output", item.out_url]]) {
      const a = el("a", null, label);
      a.href = url;
      cap.appendChild(a);
      cap.appendChild(document.createTextNode(" "));
    }
    document.getElementById("view").classList.add("open");
  }
  function close() { document.getElementById("view").classList.remove("open"); current = -1; }
  document.getElementById("view").addEventListener("click", close);
  document.addEventListener("keydown", ev => {
    if (current < 0) return;
    if (ev.key === "Escape") close();
    else if (ev.key === "ArrowRight" && current + 1 < shown.length) open(current + 1);
    else if (ev.key === "ArrowLeft" && current > 0) open(current - 1);
  });
  for (const [id, step] of [["prev", -1], ["prev2", -1], ["next", 1], ["next2", 1]])
    document.getElementById(id).addEventListener("click", () => go(page + step, onlyFailed.checked));
  onlyFailed.addEventListener("change", () => go(1, onlyFailed.checked));
  window.addEventListener("hashchange", render);
  render();
})();
</script>
</body>
</html>
"""

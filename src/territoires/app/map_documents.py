"""Static maps served as documents: an iframe the page draws at once, not a component.

A Streamlit component's element is loaded lazily by the browser: on a page's first view its
frame is created only when the page's other lazily loaded elements (the sidebar's widgets,
the tables) are revealed with it, 0.4-1.1 s after the page's first elements; the map then
loads and draws after that (issue 13: the Fiche's map drawn 1.6× later than a bare page's
table). A static map (Fiche, Couverture: it returns nothing to the app) needs no
component: its document (``map_component.document``, the map frame's page holding the map)
is written once to ``static/maps/<sha256>.html``, which Streamlit serves at
``/app/static/maps/…``, and the page shows it in an ``<iframe>`` that Streamlit's Markdown
element (drawn with the page's first elements) creates at once. The iframe's HTML is made
here from the file's name (hexadecimal), a title escaped here and a height in pixels:
never from catalogue text. The map's own text is escaped in its document as in the frame.

A file's name is the hash of its content (two processes write the same bytes, atomic
rename). Each use sets its modification time, at most once per :data:`TOUCH_SECONDS`; the
folder is kept under :data:`MAX_BYTES` by removing the files unused the longest (never one
used in the last :data:`KEEP_SECONDS`: a page that has just named it is loading it), and a
process whose file was removed writes it again at its next use. ``territoires data build``
and ``setup --rebuild`` empty the folder with the layer files (:func:`prune`): the
documents name those files.

No streamlit import here (file I/O at the app's edge; the URL prefix is passed in).
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from territoires.app import assets

#: Folder of the documents under the static folder.
FOLDER = "maps"
#: The folder's bound (bytes): beyond it, the files unused the longest are removed.
MAX_BYTES = 256 * 1024 * 1024
#: A file used this recently is never removed (seconds).
KEEP_SECONDS = 3600
#: A file's modification time is set again at most this often (seconds).
TOUCH_SECONDS = 600
#: Writes between two checks of the folder's size.
CHECK_EVERY = 32

#: The document runs its scripts with an origin of its own (no ``allow-same-origin``): it
#: can neither read nor touch the page, and the browser draws it in another process, beside
#: the page's own work rather than between its tasks (same process, the Fiche's map was
#: drawn 7 % sooner but the page settled 25 % later: 2,298 and 2,961 ms against 2,478 and
#: 2,372, medians of 5, bench_browser.py --compare); its links open new tabs.
SANDBOX = "allow-scripts allow-popups allow-popups-to-escape-sandbox"

_NAME = re.compile(r"[0-9a-f]{64}\.html")
_writes = 0


@dataclass(frozen=True)
class MapDocument:
    """A map's document and the name of its file."""

    text: str
    name: str

    @classmethod
    def of(cls, text: str) -> MapDocument:
        """The document ``text``, named by its hash."""
        return cls(text, hashlib.sha256(text.encode("utf-8")).hexdigest() + ".html")

    @property
    def size(self) -> int:
        """Characters held (a cache's weight)."""
        return len(self.text)


def maps_dir(static: Path | None = None) -> Path:
    """``static/maps`` (see :func:`territoires.app.assets.static_dir`)."""
    return (static or assets.static_dir()) / FOLDER


def publish(doc: MapDocument, static: Path | None = None, base_path: str = "") -> str:
    """Make sure ``doc``'s file is served (written if absent, its time set if old) and
    return its URL. Raises ``OSError`` if the folder cannot be written."""
    global _writes
    folder = maps_dir(static)
    path = folder / doc.name
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        assets.write_once(folder, doc.name, doc.text)
        _writes += 1
        if _writes % CHECK_EVERY == 0:
            trim(static, MAX_BYTES, KEEP_SECONDS)
    else:
        if age > TOUCH_SECONDS:
            os.utime(path)
    return assets.served_url(f"{FOLDER}/{doc.name}", base_path)


#: Class of a map document's ``<iframe>`` (how tests and styles find it)
IFRAME_CLASS = "territoires-carte"


def iframe(url: str, title: str, height: int) -> str:
    """The ``<iframe>`` of a document's ``url`` (as :func:`publish` gives it), titled
    ``title`` (plain text, escaped), ``height`` pixels high."""
    if not _NAME.fullmatch(url.rsplit("/", 1)[-1]) or not url.startswith("/"):
        raise ValueError(f"adresse de carte inattendue : {url!r}")
    return (f'<iframe src="{html.escape(url)}" title="{html.escape(title)}" '
            f'class="{IFRAME_CLASS}" sandbox="{SANDBOX}" loading="eager" '
            f'style="width:100%;height:{int(height)}px;border:0;display:block"></iframe>')


def trim(static: Path | None = None, max_bytes: int = MAX_BYTES,
         keep_seconds: float = KEEP_SECONDS) -> int:
    """Remove the documents unused the longest until the folder holds at most
    ``max_bytes`` (none used in the last ``keep_seconds``); returns how many were
    removed. Files another process removes meanwhile are skipped."""
    files = []
    for path in maps_dir(static).glob("*.html"):
        try:
            info = path.stat()
        except OSError:
            continue
        files.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = 0
    now = time.time()
    for mtime, size, path in sorted(files):
        if total <= max_bytes or now - mtime < keep_seconds:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed += 1
    return removed


def prune(static: Path | None = None) -> int:
    """Remove every document (after a rebuild of the layers, with the layer files they
    name); returns how many were removed."""
    return assets.remove_matching(maps_dir(static), "*.html")

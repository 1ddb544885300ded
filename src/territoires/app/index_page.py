"""The app's HTML page as ``territoires serve`` serves it: French from the first byte, and
the server's address given to Streamlit's frontend so that a shared link waits for nothing.

Streamlit serves one ``index.html`` for every page's address. Two things in it cost our
users (issue 13):

- ``<html lang="en">``: the page language is English until a script of the app's first run
  sets it (``ui.LANG_SCRIPT``), so a screen reader that starts reading earlier reads French
  with English rules (RGAA 8.3).
- On any address but the root (``/carte``, ``/fiche?id=…``: every shared link), Streamlit's
  frontend does not know where its server is. It first asks ``/carte/_stcore/health`` and
  ``/carte/_stcore/host-config``, gets two 404s, waits 100 ms, then asks the root. The
  frontend reads the server's address from ``window.__streamlit.BACKEND_BASE_URL`` when a
  host page sets it: this page sets it, in a static script that runs before Streamlit's
  module, when the address in the browser is exactly the page's address on this server
  (behind a proxy that strips a prefix of the path, the addresses differ and Streamlit
  searches as before).

:func:`page_html` makes the page (a pure function of Streamlit's ``index.html``);
:class:`IndexPage` is the ASGI middleware that answers the pages' addresses with it;
``territoires serve`` puts it in front of Streamlit's server (``serve.front``). Streamlit has
no setting for either thing; under plain ``streamlit run`` it serves its own page and the
language is set by ``ui.LANG_SCRIPT``.

The page holds no catalogue text: the server's base path (a setting) and the page's path
(a file name of ``pages/``), as JSON with ``<``, ``>`` and ``&`` escaped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Starlette's ASGI types (Streamlit's server is Starlette's)
    from starlette.types import ASGIApp, Receive, Scope, Send

#: The language of the interface (RGAA 8.3).
LANG = "fr"

#: Runs before Streamlit's module (a classic inline script runs before a deferred module):
#: when the browser's path is the page's own path on this server, Streamlit's frontend is
#: told where the server is (the base path), instead of trying the page's path first.
#: ``window.__streamlit`` is read once, when Streamlit's module is evaluated.
BACKEND_SCRIPT = """(function () {
  var d = JSON.parse(document.getElementById("territoires-serveur").textContent);
  if (location.pathname.replace(/\\/+$/, "") === d.page.replace(/\\/+$/, "")) {
    window.__streamlit = Object.assign({}, window.__streamlit,
                                       {BACKEND_BASE_URL: location.origin + d.base + "/"});
  }
})();"""

_HTML_TAG = re.compile(r"<html(\s[^>]*)?>", re.IGNORECASE)
_LANG_ATTR = re.compile(r"\slang\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.IGNORECASE)
_HEAD_TAG = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)
_SCRIPT_TAG = re.compile(r"<script[\s>]", re.IGNORECASE)
_TITLE = re.compile(r"<title>.*?</title>", re.IGNORECASE | re.DOTALL)


def _json(value: object) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` as such."""
    return (json.dumps(value, ensure_ascii=True).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))


def base_path(setting: str | None) -> str:
    """The server's base path as a prefix of URL paths: ``""`` for the root, else
    ``"/territoires"`` (Streamlit's ``server.baseUrlPath`` setting, slashes trimmed)."""
    parts = [p for p in (setting or "").split("/") if p]
    return "".join(f"/{p}" for p in parts)


def page_paths(base: str, pages: Iterable[str]) -> list[str]:
    """The URL paths of the app's pages: the root (with and without its slash when there is
    a base path) and ``base/<page>`` for each page name."""
    paths = [base + "/"] + ([base] if base else [])
    return paths + [f"{base}/{page}" for page in pages if page]


def app_pages(app_dir: Path) -> list[str]:
    """The page names of the app: the file names of ``pages/*.py`` (a routed page's URL is
    its file's name, checked by ``tests/test_pages_shell.py``)."""
    return sorted(p.stem for p in (app_dir / "pages").glob("*.py"))


def page_html(index_html: str, base: str, page: str, title: str) -> str:
    """Streamlit's ``index.html`` for the page at URL path ``page``: ``lang`` set to
    :data:`LANG`, ``title`` as the title until the app sets the page's own, and
    :data:`BACKEND_SCRIPT` with its data before the page's first script."""
    def lang(m: re.Match[str]) -> str:
        attrs = _LANG_ATTR.sub("", m.group(1) or "")
        return f'<html lang="{LANG}"{attrs}>'

    html, found = _HTML_TAG.subn(lang, index_html, count=1)
    if not found:
        raise ValueError("index.html sans élément <html>")
    data = _json({"base": base, "page": page})
    inject = (f'<script type="application/json" id="territoires-serveur">{data}</script>'
              f"<script>{BACKEND_SCRIPT}</script>")
    head = _HEAD_TAG.search(html)
    if head is None:
        raise ValueError("index.html sans élément <head>")
    # before the page's first script (after its <meta charset>), else at the head's start
    script = _SCRIPT_TAG.search(html, head.end())
    at = script.start() if script is not None else head.end()
    html = html[:at] + inject + html[at:]
    escaped = (title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return _TITLE.sub(lambda _m: f"<title>{escaped}</title>", html, count=1)


class IndexPage:
    """ASGI middleware: a GET or HEAD of one of the pages' paths is answered with that
    page's HTML (``pages``: URL path -> HTML), with an ``ETag`` (a 304 when the browser
    has it) and ``Cache-Control: no-cache`` as Streamlit's own; everything else goes to
    ``app``."""

    def __init__(self, app: ASGIApp, pages: dict[str, str]) -> None:
        self.app = app
        self.pages: dict[str, tuple[bytes, bytes]] = {}
        for path, html in pages.items():
            body = html.encode("utf-8")
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self.pages[path] = (body, etag.encode("ascii"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a page's path, pass anything else on."""
        page = (self.pages.get(scope.get("path", ""))
                if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD")
                else None)
        if page is None:
            await self.app(scope, receive, send)
            return
        body, etag = page
        headers = dict(scope.get("headers") or [])
        fresh = etag in [t.strip() for t in headers.get(b"if-none-match", b"").split(b",")]
        status = 304 if fresh else 200
        out = [(b"cache-control", b"no-cache"), (b"etag", etag)]
        if not fresh:
            out += [(b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode("ascii"))]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body",
                    "body": body if status == 200 and scope["method"] == "GET" else b""})


def pages_html(index_html: str, base: str, pages: Iterable[str], title: str
               ) -> dict[str, str]:
    """URL path -> the page's HTML, for every path of :func:`page_paths`."""
    return {path: page_html(index_html, base, path, title)
            for path in page_paths(base, pages)}

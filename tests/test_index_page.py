"""The app's HTML page served by ``territoires serve``: French from the first byte, and the
server's address given to Streamlit's frontend (no 404 and 100 ms wait on a shared link)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from asgi_support import asgi_request
from territoires.app import index_page
from territoires.pipeline.layers import Layers

INDEX = """<!--
 licence
-->
<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <title>Streamlit</title>
    <script>
      window.prerenderReady = false
    </script>
    <script type="module" crossorigin src="./static/js/index.abc.js"></script>
  </head>
  <body><div id="root"></div></body>
</html>
"""


def _data(html: str) -> dict[str, str]:
    m = re.search(r'<script type="application/json" id="territoires-serveur">(.*?)</script>',
                  html)
    assert m is not None
    return json.loads(m.group(1))


def test_page_html_is_french_titled_and_says_where_the_server_is() -> None:
    html = index_page.page_html(INDEX, "/territoires", "/territoires/carte",
                                "Territoires — <alliances> & co")
    assert '<html lang="fr">' in html and 'lang="en"' not in html
    assert "<title>Territoires — &lt;alliances&gt; &amp; co</title>" in html
    assert _data(html) == {"base": "/territoires", "page": "/territoires/carte"}
    # after <meta charset>, before the page's first script and Streamlit's module
    data_at = html.index("territoires-serveur")
    assert html.index("<meta charset") < data_at < html.index("prerenderReady")
    assert html.index(index_page.BACKEND_SCRIPT) < html.index('type="module"')
    assert html.count("<script") == INDEX.count("<script") + 2


def test_page_html_keeps_other_attributes_and_escapes_its_data() -> None:
    html = index_page.page_html(INDEX.replace('<html lang="en">',
                                              "<html class='x' LANG=en dir=\"ltr\">"),
                                "", "/a</script><b>&", "T")
    assert "<html lang=\"fr\" class='x' dir=\"ltr\">" in html
    assert "</script><b>" not in html.split("territoires-serveur", 1)[1].split("</script>")[0]
    assert _data(html)["page"] == "/a</script><b>&"


@pytest.mark.parametrize("broken", ["<body></body>", "<html><body></body></html>"])
def test_page_html_refuses_a_page_it_cannot_place_things_in(broken: str) -> None:
    with pytest.raises(ValueError):
        index_page.page_html(broken, "", "/", "T")


def test_base_path_and_page_paths() -> None:
    assert index_page.base_path(None) == index_page.base_path("/") == ""
    assert index_page.base_path("/a//b/") == "/a/b"
    assert index_page.page_paths("", ["carte", "fiche"]) == ["/", "/carte", "/fiche"]
    assert index_page.page_paths("/t", ["carte"]) == ["/t/", "/t", "/t/carte"]


def test_app_pages_are_the_page_files(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    for name in ("carte.py", "a-propos.py", "notes.txt"):
        (tmp_path / "pages" / name).write_text("", encoding="utf-8")
    assert index_page.app_pages(tmp_path) == ["a-propos", "carte"]
    repo = Path(__file__).resolve().parents[1]
    assert {"carte", "fiche", "couverture"} <= set(index_page.app_pages(repo))


def test_index_page_answers_the_pages_and_passes_the_rest_on() -> None:
    passed: list[tuple[str, str]] = []

    async def streamlit(scope: dict, receive: object, send: object) -> None:
        passed.append((scope["type"], scope["path"]))

    app = index_page.IndexPage(streamlit, {"/": "<html>accueil</html>",
                                           "/carte": "<html>carte é</html>"})
    start, body = asgi_request(app, "GET", "/carte")
    headers = dict(start["headers"])
    assert start["status"] == 200 and body["body"] == "<html>carte é</html>".encode()
    assert headers[b"content-type"] == b"text/html; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"content-length"] == str(len(body["body"])).encode()
    etag = headers[b"etag"]
    # the browser's copy is still good: 304, no body
    start, body = asgi_request(app, "GET", "/carte", [(b"if-none-match", b'"x", ' + etag)])
    assert start["status"] == 304 and body["body"] == b""
    start, body = asgi_request(app, "HEAD", "/")
    assert start["status"] == 200 and body["body"] == b""
    assert dict(start["headers"])[b"etag"] != etag
    assert passed == []
    asgi_request(app, "POST", "/carte")
    asgi_request(app, "GET", "/_stcore/health")
    asgi_request(app, "GET", "/carte/_stcore/health")
    asgi_request(app, "GET", "/carte", kind="websocket")
    assert passed == [("http", "/carte"), ("http", "/_stcore/health"),
                      ("http", "/carte/_stcore/health"), ("websocket", "/carte")]


# ------------------------------------------------------------------ in a real browser

@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from browser_support import browser_available, browser_context

    if not browser_available():
        pytest.skip("chromium absent (/usr/bin/chromium)")
    with browser_context() as context:
        yield context


@pytest.mark.browser
@pytest.mark.parametrize("base", ["", "territoires"])
def test_served_pages_connect_at_once_in_french(tmp_path: Path, tiny_layers: Layers,
                                                browser, base: str) -> None:
    """Through ``territoires serve``, a shared link (``/carte?…``, ``/fiche?id=…``) asks
    the server's health and host config once, at the server's base, never at the page's
    address (Streamlit's frontend did: two 404s and 100 ms of waiting); the page is French
    before any of the app's scripts runs, with no ``st.html`` element on Carte to load
    code for.
    The Fiche's map document and Leaflet, named by their content, are sent to be kept
    (``static_cache``)."""
    import requests

    from app_env import make_env
    from browser_support import (
        MAP_IFRAME,
        REPO,
        ensure_map_assets,
        free_port,
        process,
        serve_command,
        settle,
    )
    from territoires.app import assets, static_cache

    ensure_map_assets()

    env = {**make_env(tmp_path, tiny_layers), "TERRITOIRES_HOME": str(REPO)}
    port = free_port()
    root = f"http://127.0.0.1:{port}" + (f"/{base}" if base else "")
    extra = ("--server.baseUrlPath", base) if base else ()
    with process(serve_command(port, *extra), env, tmp_path / "serve.log",
                 f"{root}/_stcore/health", 120):
        page = browser.new_page()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))
        page.add_init_script("document.addEventListener('DOMContentLoaded', () => "
                             "{ window.__langAtLoad = document.documentElement.lang; })")
        for path, heading in (("/carte?t=commune:33119", "Carte"),
                              ("/fiche?id=cenon-culture", "Culture à Cenon")):
            asked.clear()
            page.goto(root + path)
            settle(page)
            page.get_by_role("heading", name=heading).first.wait_for(timeout=30_000)
            assert page.evaluate("window.__langAtLoad") == "fr"
            assert [u for u in asked if "/_stcore/health" in u] == [f"{root}/_stcore/health"]
            assert [u for u in asked if "/_stcore/host-config" in u] == [
                f"{root}/_stcore/host-config"]
            # the language is in the page, not set by a script that needs st.html's code
            # and DOMPurify (the Fiche loads them for its tables, ui.text_table)
            if path.startswith("/carte"):
                assert not [u for u in asked if "/static/js/Html." in u]
        document = page.locator(MAP_IFRAME).first.get_attribute("src")
        assert document and "/app/static/maps/" in document
        page.close()
        origin = f"http://127.0.0.1:{port}"
        leaflet = assets.served_url(f"vendor/{assets.PACKAGES[0].folder}/dist/leaflet.js",
                                    base)
        for url in (origin + document, origin + leaflet):
            answer = requests.get(url, timeout=10)
            assert answer.status_code == 200, url
            assert answer.headers["cache-control"] == static_cache.IMMUTABLE.decode()

"""Files named by their content served with ``Cache-Control: immutable``; nothing else."""

from __future__ import annotations

import pytest

from asgi_support import asgi_request
from territoires.app import assets, static_cache

HASH = "0123456789abcdef" * 4


@pytest.mark.parametrize(("base", "path", "immutable"), [
    ("", f"/app/static/layers/{HASH}.json", True),
    ("", f"/app/static/maps/{HASH}.html", True),
    ("", f"/app/static/vendor/{assets.PACKAGES[0].folder}/dist/leaflet.js", True),
    ("/t", f"/t/app/static/maps/{HASH}.html", True),
    # not named by their content
    ("", "/app/static/vendor/manifest.json", False),
    ("", "/app/static/vendor/leaflet-0.0.1/dist/leaflet.js", False),
    ("", f"/app/static/layers/{HASH[:-1]}.json", False),
    ("", f"/app/static/layers/{HASH.upper()}.json", False),
    ("", f"/app/static/maps/{HASH}.json", False),
    ("", "/app/static/notes.html", False),
    ("/t", f"/app/static/maps/{HASH}.html", False),
    ("", f"/carte/app/static/maps/{HASH}.html", False),
])
def test_immutable_paths(base: str, path: str, immutable: bool) -> None:
    assert bool(static_cache.immutable_paths(base).fullmatch(path)) is immutable


def _server(status: int) -> object:
    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": status,  # type: ignore[operator]
                    "headers": [(b"etag", b'"e"'), (b"Cache-Control", b"no-cache")]})
        await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]
    return app


def test_immutable_files_header() -> None:
    app = static_cache.ImmutableFiles(_server(200), static_cache.immutable_paths())
    layer = f"/app/static/layers/{HASH}.json"
    for method in ("GET", "HEAD"):
        start, body = asgi_request(app, method, layer)
        assert start["headers"] == [(b"etag", b'"e"'),
                                    (b"cache-control", static_cache.IMMUTABLE)]
        assert body["body"] == b"{}"
    # another path, another method, or an answer that is not the file: as Streamlit sent it
    for path, method in (("/app/static/vendor/manifest.json", "GET"), (layer, "POST")):
        start, _ = asgi_request(app, method, path)
        assert dict(start["headers"])[b"Cache-Control"] == b"no-cache"
    missing = static_cache.ImmutableFiles(_server(404), static_cache.immutable_paths())
    start, _ = asgi_request(missing, "GET", layer)
    assert (b"cache-control", static_cache.IMMUTABLE) not in start["headers"]

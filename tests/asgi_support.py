"""One ASGI request to an application or middleware, for the tests of the server's front
(``territoires.app.index_page``, ``territoires.app.static_cache``, ``serve.front``)."""

from __future__ import annotations

import asyncio


def asgi_request(app: object, method: str, path: str,
                 headers: list[tuple[bytes, bytes]] | None = None, kind: str = "http"
                 ) -> list[dict]:
    """Send ``method path`` (a ``kind`` scope) to ``app``; the messages it sent back."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": kind, "method": method, "path": path, "headers": headers or []}
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return sent

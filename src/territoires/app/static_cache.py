"""Files the app serves whose name says their content, kept by browsers without asking again.

Streamlit serves the app's ``static/`` folder (``/app/static/``) with an ``ETag`` and a
``Last-Modified`` but no ``Cache-Control``: a browser then keeps a file for a tenth of its
age (HTTP caches' heuristic freshness) and asks the server again after that (a 304). A map
document written a minute earlier (``static/maps/<sha256>.html``) was fresh for six seconds,
then asked again at a visit of its Fiche, while the server ran that page's script. Three
folders only hold files that never change under their name, so they are sent
``Cache-Control: public, max-age=31536000, immutable``:

- ``vendor/<package>-<version>/`` (:mod:`territoires.app.assets`: a pinned npm package,
  checked against its integrity);
- ``layers/<sha256>.json`` (:mod:`territoires.app.layer_files`) and
  ``maps/<sha256>.html`` (:mod:`territoires.app.map_documents`): named by the hash of
  their content.

Anything else there (``vendor/manifest.json``, a file put by hand) keeps Streamlit's
headers. :class:`ImmutableFiles` is the ASGI middleware that adds the header;
``territoires serve`` puts it in front of Streamlit's server (``serve.front``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from territoires.app import assets, layer_files, map_documents

if TYPE_CHECKING:  # Starlette's ASGI types (Streamlit's server is Starlette's)
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The header of a file that never changes under its name
IMMUTABLE = b"public, max-age=31536000, immutable"


def immutable_paths(base: str = "") -> re.Pattern[str]:
    """URL paths of the files that never change under their name, under the server's base
    path ``base`` (``""`` or ``"/territoires"``)."""
    static = re.escape(assets.served_url("", base))
    vendor = "|".join(re.escape(p.folder) for p in assets.PACKAGES)
    return re.compile(
        rf"{static}(?:vendor/(?:{vendor})/[^?#]+"
        rf"|{re.escape(layer_files.FOLDER)}/[0-9a-f]{{64}}\.json"
        rf"|{re.escape(map_documents.FOLDER)}/[0-9a-f]{{64}}\.html)")


class ImmutableFiles:
    """ASGI middleware: a successful GET or HEAD of a path that ``paths`` matches whole is
    sent with ``Cache-Control:`` :data:`IMMUTABLE` (replacing any); nothing else changes."""

    def __init__(self, app: ASGIApp, paths: re.Pattern[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the header to the answer when it applies."""
        if (scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD")
                or not self.paths.fullmatch(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return

        async def send_immutable(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", IMMUTABLE)]}
            await send(message)

        await self.app(scope, receive, send_immutable)

"""Reference geography of the maps served as files, fetched once by each browser.

A filter change redraws the Carte's layers: the map frame gets them all again, as one
script, through the websocket (~0.5 MB for France), although the outlines, the QPV, the
contracts, the cités and the choropleth's geometry are the same for every filter of a view;
only the choropleth's values and the initiatives change. Here the payload of every
:attr:`~territoires.analysis.maps.CompactGeoJson.shareable` layer (reference geography
only: names, codes, coordinates; never catalogue text) above :data:`MIN_CHARS` is written
once to ``static/layers/<sha256>.json``, which Streamlit serves at ``/app/static/layers/…``,
and the layer fetches it (the browser's cache answers the next times). A file's name is the
hash of its content: a rebuilt geography gives new files, never a stale one; two processes
writing the same file write the same bytes (atomic rename). The folder holds a file per
distinct layer of the views drawn (about 0.5 MB for France, tens of kB per département or
commune viewed); a new build of the layers leaves the older files unused, and harmless (a
server still running on the older layers keeps drawing with them): ``territoires data
build`` and ``territoires setup --rebuild`` empty the folder (:func:`prune`) once the new
layers are in place; restart the servers then, as after every rebuild.

No streamlit import here (file I/O at the app's edge; the URL prefix is passed in).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from territoires.app import assets

#: Folder of the files under the static folder.
FOLDER = "layers"
#: Payloads shorter than this stay inline (a request would cost more than it saves).
MIN_CHARS = 16_384


def layers_dir(static: Path | None = None) -> Path:
    """``static/layers`` (see :func:`territoires.app.assets.static_dir`)."""
    return (static or assets.static_dir()) / FOLDER


def externalise(element: object, static: Path | None = None, base_path: str = "",
                min_chars: int = MIN_CHARS) -> int:
    """Serve the payload of every shareable compact layer under ``element`` (a folium map
    or feature group) of at least ``min_chars`` characters as a file: written if absent,
    the layer's :attr:`external` set to its URL. Returns how many layers were changed. A
    folder that cannot be written leaves the layers inline (the map still draws)."""
    from territoires.analysis.maps import CompactGeoJson

    folder = layers_dir(static)
    changed = 0
    for layer in assets.walk(element):
        if not (isinstance(layer, CompactGeoJson) and layer.shareable):
            continue
        text = layer.payload
        if len(text) < min_chars:
            continue
        name = hashlib.sha256(text.encode("utf-8")).hexdigest() + ".json"
        try:
            assets.write_once(folder, name, text)
        except OSError:
            continue
        layer.external = assets.served_url(f"{FOLDER}/{name}", base_path)
        changed += 1
    return changed


def prune(static: Path | None = None) -> int:
    """Remove every served layer file (after a rebuild of the layers: the running servers
    are restarted, and each writes again the files of the views it draws); returns how many
    files were removed. Only this module's files are touched: ``*.json``, its temporary
    ``.tmp-*.json`` included (pathlib's ``*`` matches a leading dot); a folder that is
    absent or cannot be written removes nothing."""
    return assets.remove_matching(layers_dir(static), "*.json")

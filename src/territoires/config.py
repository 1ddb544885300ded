"""Paths and settings, read from the environment at call time (never cached at import).

- ``TERRITOIRES_HOME``: project folder holding ``geo/`` and ``data/`` (default: current dir).
- ``TERRITOIRES_GEO_DIR``: built layers (default ``$HOME/geo``).
- ``TERRITOIRES_CACHE``: downloaded raw sources (default ``$HOME/.cache/raw``).
- ``TERRITOIRES_MIRROR``: offline mirror folder; when set, sources are read from it.
- ``TERRITOIRES_DATABASE_URL``: SQLAlchemy URL (default SQLite ``$HOME/data/territoires.sqlite``).
- ``TERRITOIRES_SEEDS``: seed fiches folder (default ``$HOME/data/initiatives``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Project folder (``TERRITOIRES_HOME`` or the current directory)."""
    return Path(os.environ.get("TERRITOIRES_HOME") or Path.cwd()).resolve()


def geo_dir() -> Path:
    """Folder of the built GeoParquet layers."""
    env = os.environ.get("TERRITOIRES_GEO_DIR")
    return Path(env).resolve() if env else home() / "geo"


def cache_dir() -> Path:
    """Folder where fetched raw sources are kept (git-ignored)."""
    env = os.environ.get("TERRITOIRES_CACHE")
    return Path(env).resolve() if env else home() / ".cache" / "raw"


def mirror_dir() -> Path | None:
    """Offline mirror folder, or None to download official files."""
    env = os.environ.get("TERRITOIRES_MIRROR")
    return Path(env).resolve() if env else None


def database_url() -> str:
    """SQLAlchemy URL of the catalogue database (embedded SQLite by default)."""
    env = os.environ.get("TERRITOIRES_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{home() / 'data' / 'territoires.sqlite'}"


def seeds_dir() -> Path:
    """Folder of the committed seed fiches (YAML, one file per initiative)."""
    env = os.environ.get("TERRITOIRES_SEEDS")
    return Path(env).resolve() if env else home() / "data" / "initiatives"


def sources_manifest_path() -> Path:
    """Committed manifest of fetched sources (version, URL, size, sha256)."""
    return home() / "data" / "sources.json"


def map_first() -> bool:
    """A session's first view of Carte or Couverture sends the map before the page's
    widgets (``territoires.app.ui.first_view_step``): the default. Measured, the map is
    drawn sooner and the widgets come later, about when the page would have settled
    without it (README, benchmarks: ``bench/bench_map_parts.py``).
    ``TERRITOIRES_MAP_FIRST=0`` sends everything in one run."""
    value = os.environ.get("TERRITOIRES_MAP_FIRST", "").strip().lower()
    return value not in ("0", "non", "false", "no")

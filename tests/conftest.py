"""Shared fixtures: tiny reference layers, written to a temporary ``geo/`` when needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from territoires.layers import Layers, write_layers
from tiny import make_layers

REPO = Path(__file__).resolve().parents[1]

# Integration tests read the offline mirror; default to ../shared/data beside the repo.
_DEFAULT_MIRROR = REPO.parent / "shared" / "data"
if not os.environ.get("TERRITOIRES_MIRROR") and _DEFAULT_MIRROR.is_dir():
    os.environ["TERRITOIRES_MIRROR"] = str(_DEFAULT_MIRROR)


@pytest.fixture(scope="session")
def tiny_layers() -> Layers:
    """The tiny hand-made layers (see ``tests/tiny.py``)."""
    return make_layers()


@pytest.fixture
def tiny_geo_dir(tmp_path: Path, tiny_layers: Layers) -> Path:
    """A temporary ``geo/`` folder holding the tiny layers as GeoParquet."""
    geo = tmp_path / "geo"
    write_layers(tiny_layers, geo)
    return geo


@pytest.fixture(scope="session")
def mirror_geo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``geo/`` built once per session from the offline mirror (``TERRITOIRES_MIRROR``, default
    ``/work/shared/data``); the fetched cache is beside it (``<geo>/../cache``). Skips the
    test when the mirror folder does not exist."""
    import os

    from territoires import build, sources

    mirror = Path(os.environ.get("TERRITOIRES_MIRROR") or "/work/shared/data")
    if not mirror.is_dir():
        pytest.skip(f"miroir hors ligne absent : {mirror}")
    base = tmp_path_factory.mktemp("mirror_build")
    sources.fetch_all(base / "cache", mirror, progress=False)
    build.build_all(base / "cache", base / "geo")
    return base / "geo"

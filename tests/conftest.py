"""Shared fixtures: tiny reference layers, written to a temporary ``geo/`` when needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import make_layers

from territoires.layers import Layers, write_layers

REPO = Path(__file__).resolve().parents[1]


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

"""Shared by the benchmarks: a built ``geo/`` folder to measure against."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from territoires import config
from territoires.errors import LayersMissingError
from territoires.pipeline.layers import load_layers

REPO = Path(__file__).resolve().parents[1]


def built_geo_dir() -> Path:
    """``geo/`` when the layers are built, else the layers built from the mirror
    (``TERRITOIRES_MIRROR``, default ``../shared/data``) into a temporary folder."""
    try:
        load_layers()
        return config.geo_dir()
    except LayersMissingError:
        from territoires.pipeline.build import build_all
        from territoires.pipeline.sources import fetch_all

        mirror = Path(os.environ.get("TERRITOIRES_MIRROR") or REPO.parent / "shared" / "data")
        tmp = Path(tempfile.mkdtemp(prefix="territoires-bench-"))
        print(f"geo/ not built: building from {mirror} into {tmp}", flush=True)
        fetch_all(tmp / "cache", mirror=mirror, progress=False)
        build_all(tmp / "cache", tmp / "geo")
        return tmp / "geo"

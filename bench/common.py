"""Shared by the benchmarks: a built ``geo/`` folder and the catalogues to measure against
(the seed fiches; the synthetic national catalogue, written once to ``bench/out/``)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from territoires import config
from territoires.errors import LayersMissingError
from territoires.pipeline.layers import load_layers

REPO = Path(__file__).resolve().parents[1]
#: A seed fiche with a map (the Fiche page of the seed catalogue)
SEED_FIRST_ID = "cenon-erasmus-plus"


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


def seed_db(path: Path) -> str:
    """A SQLite catalogue of the seed fiches."""
    from territoires.catalogue import storage
    from territoires.catalogue.seeds import load_seed_dir

    url = f"sqlite:///{path}"
    if path.exists():
        path.unlink()
    store = storage.Store(url)
    store.create_or_upgrade()
    store.upsert(load_seed_dir(REPO / "data" / "initiatives"))
    store.dispose()
    return url


def synthetic_db(path: Path, geo: Path, n: int, funding: int) -> tuple[str, str]:
    """A SQLite catalogue of ``n`` synthetic initiatives (kept in bench/out between runs);
    returns (URL, first initiative id)."""
    from sqlalchemy import text

    from synthetic import make_synthetic
    from territoires.catalogue import storage
    from territoires.pipeline import layers as layers_mod
    from territoires.pipeline.territories import TerritoryIndex

    url = f"sqlite:///{path}"
    if not path.exists():
        t0 = time.perf_counter()
        index = TerritoryIndex.from_layers(layers_mod.load_layers(geo))
        cat = make_synthetic(index, n, funding, seed=0)
        tmp = path.with_suffix(".tmp")
        if tmp.exists():
            tmp.unlink()
        store = storage.Store(f"sqlite:///{tmp}")
        store.create_or_upgrade()
        store.upsert(cat)
        store.dispose()
        tmp.rename(path)
        print(f"synthetic catalogue written to {path} ({time.perf_counter() - t0:.0f} s)")
    store = storage.Store(url)
    with store.engine.connect() as conn:
        # a fiche whose map draws (one on a commune: see issue 13 on centroid-only QPV)
        first = conn.execute(text("select initiative_id from territories where level = "
                                  "'commune' order by initiative_id limit 1")).scalar()
    store.dispose()
    return url, str(first)

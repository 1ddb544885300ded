"""Shared fixtures: tiny reference layers, written to a temporary ``geo/`` when needed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from territoires.catalogue.storage import Store
from territoires.pipeline.layers import Layers, write_layers
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

    from territoires.pipeline import build, sources

    mirror = Path(os.environ.get("TERRITOIRES_MIRROR") or "/work/shared/data")
    if not mirror.is_dir():
        pytest.skip(f"miroir hors ligne absent : {mirror}")
    base = tmp_path_factory.mktemp("mirror_build")
    sources.fetch_all(base / "cache", mirror, progress=False)
    build.build_all(base / "cache", base / "geo")
    return base / "geo"


# --- databases: SQLite always, PostgreSQL when reachable (CI: required)

PG_URL = os.environ.get("TERRITOIRES_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_factory(request: pytest.FixtureRequest, tmp_path) -> Iterator:
    """Factory of fresh, empty stores (``factory()``), on SQLite or PostgreSQL."""
    created: list[Store] = []
    if request.param == "sqlite":
        def factory() -> Store:
            s = Store(f"sqlite:///{tmp_path / 'sub' / 'cat.sqlite'}")
            created.append(s)
            return s
    else:
        if not _pg_reachable():
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL injoignable ({PG_URL})")
            pytest.skip(f"PostgreSQL injoignable ({PG_URL})")
        schema = f"t_{uuid.uuid4().hex[:12]}"

        def factory() -> Store:
            s = Store(PG_URL, schema=schema)
            created.append(s)
            return s
    yield factory
    for s in created:
        s.dispose()
    if request.param == "postgres":
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()

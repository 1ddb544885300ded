"""Test environment for the dashboard: tiny layers (+ display copies) and a tiny SQLite
catalogue in a temporary folder, exposed through the TERRITOIRES_* variables."""

from __future__ import annotations

import json
from pathlib import Path

from catalogue_factory import funding_line, initiative, make_catalogue
from territoires.catalogue.model import Catalogue
from territoires.pipeline.layers import (
    DISPLAY_LEVELS,
    Layers,
    display_path,
    has_display_level,
    write_layers,
)

#: Title with markup, quotes and ampersand: must never reach HTML unescaped.
NASTY_TITLE = '<script>alert("x")</script> Lire & "écrire" \'ensemble\''


def tiny_catalogue() -> Catalogue:
    """Three initiatives (Cenon, a Bordeaux QPV, Pau) and one unattached national line."""
    return make_catalogue(
        [
            initiative("cenon-culture", [("commune", "33119")], themes=["culture"],
                       title="Culture à Cenon", maturity="deploiement",
                       porteurs=[("Ville de Cenon", "collectivite")]),
            initiative("lac-lecture", [("qpv", "QN03307M")], themes=["parentalite"],
                       title=NASTY_TITLE, maturity="emergence",
                       porteurs=[("Asso <b>Lac</b>", "association")]),
            initiative("pau-sport", [("commune", "64445")], themes=["sport"],
                       title="Sport à Pau", maturity="essaimage",
                       porteurs=[("Club de Pau", "association")]),
        ],
        [
            funding_line("f-cenon", 10_000, "commune", "33119", initiative_id="cenon-culture"),
            funding_line("f-lac", 5_000, "qpv", "QN03307M", initiative_id="lac-lecture"),
            funding_line("f-pau", 20_000, "commune", "64445", initiative_id="pau-sport"),
            funding_line("f-ar", 30_000, "qpv", "QN03312M", scheme="adultes_relais",
                         source="national:adultes-relais"),
        ],
    )


def write_display(layers: Layers, geo: Path) -> None:
    """Display layers = copies of the tiny polygon layers (they are already tiny)."""
    for name, gdf in layers.items():
        if name in ("contrats_ville", "cites_educatives"):
            continue
        for level in DISPLAY_LEVELS:
            if not has_display_level(name, level):
                continue
            path = display_path(name, level, geo)
            path.parent.mkdir(parents=True, exist_ok=True)
            gdf.to_parquet(path, index=False)


def make_env(root: Path, layers: Layers, catalogue: Catalogue | None = None) -> dict[str, str]:
    """Write geo/ and the SQLite DB under ``root``; return the environment variables."""
    from territoires.catalogue.storage import Store

    geo = root / "geo"
    write_layers(layers, geo)
    write_display(layers, geo)
    status = {"layers": {name: {"name": name, "source": "tiny", "vintage": "2024",
                                "count": len(gdf), "with_polygon": len(gdf)}
                         for name, gdf in layers.items()}}
    (geo / "layers.json").write_text(json.dumps(status), encoding="utf-8")
    url = f"sqlite:///{root / 'territoires.sqlite'}"
    store = Store(url)
    store.create_or_upgrade()
    store.upsert(catalogue if catalogue is not None else tiny_catalogue())
    store.dispose()
    return {
        "TERRITOIRES_HOME": str(root),
        "TERRITOIRES_GEO_DIR": str(geo),
        "TERRITOIRES_DATABASE_URL": url,
    }

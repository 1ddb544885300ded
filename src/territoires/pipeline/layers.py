"""Reference layers: their schema, and reading them from ``geo/``.

All layers are GeoParquet files in EPSG:4326 written by :mod:`territoires.pipeline.build`:

``regions.parquet``           code_reg, nom, geometry
``departements.parquet``      code_dep, nom, code_reg, geometry
``epci.parquet``              siren_epci, nom, type, population, code_deps (list), code_regs
                              (list), geometry (union of member communes' polygons when known)
``communes.parquet``          code_insee, nom, type ("commune" | "arrondissement"), parent
                              (code of the commune an arrondissement belongs to, else null),
                              code_dep, code_reg, siren_epci, population, geometry (may be
                              null where no contour is known)
``qpv.parquet``               code_qp, nom, communes (list of code_insee), code_dep,
                              code_reg, siren_epci, population (nullable),
                              population_source (where the figure comes from, null when
                              unknown), geom_kind ("polygon" | "centroid" | "none"), geometry
``contrats_ville.parquet``    code_cv, nom, siren (EPCI or commune carrying it), siren_epci,
                              code_dep, generation ("2015-2023" | "2024-2030"), population,
                              geometry (point)
``cites_educatives.parquet``  id_cite, nom, communes (list of code_insee), code_dep, geometry
                              (point or multipoint)

Display versions for the map live in ``geo/display/<layer>_<level>.parquet`` with
``level`` in :data:`DISPLAY_LEVELS` (coverage-simplified, coordinates rounded to ~1 m).
``geo/layers.json`` records, per layer: source, vintage, count and how many have polygons.

Memory (issue 13): the full polygons of :data:`POLYGON_LAYERS` (all communes of France: 2.2
million coordinates, ~100 MB once decoded) are needed only by the geographic exports; the map
draws the display versions. The server therefore reads its layers with
``load_layers(polygons=False)``: those layers are held as their attribute columns only and
:meth:`Layers.layer` reads the full layer from disk when asked (an export), without keeping it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from territoires import config
from territoires.errors import LayerError, LayersMissingError

CRS = "EPSG:4326"

#: Layer name -> (key column, columns in order, without geometry).
LAYER_SCHEMAS: dict[str, tuple[str, list[str]]] = {
    "regions": ("code_reg", ["code_reg", "nom"]),
    "departements": ("code_dep", ["code_dep", "nom", "code_reg"]),
    "epci": (
        "siren_epci",
        ["siren_epci", "nom", "type", "population", "code_deps", "code_regs"],
    ),
    "communes": (
        "code_insee",
        ["code_insee", "nom", "type", "parent", "code_dep", "code_reg", "siren_epci", "population"],
    ),
    "qpv": (
        "code_qp",
        ["code_qp", "nom", "communes", "code_dep", "code_reg", "siren_epci", "population",
         "population_source", "geom_kind"],
    ),
    "contrats_ville": (
        "code_cv",
        ["code_cv", "nom", "siren", "siren_epci", "code_dep", "generation", "population"],
    ),
    "cites_educatives": ("id_cite", ["id_cite", "nom", "communes", "code_dep"]),
}

#: Territory level (vocabulary ``territory_level``) -> layer name.
LEVEL_LAYER: dict[str, str] = {
    "region": "regions",
    "departement": "departements",
    "epci": "epci",
    "commune": "communes",
    "qpv": "qpv",
    "contrat_ville": "contrats_ville",
    "cite_educative": "cites_educatives",
}

#: Layers whose full polygons only the geographic exports need (they have display versions):
#: ``load_layers(polygons=False)`` reads their attribute columns only.
POLYGON_LAYERS: tuple[str, ...] = ("regions", "departements", "epci", "communes")

#: Display simplification levels: name -> tolerance in degrees. "france": the map of all
#: France (zoom 5-6, where a pixel is 1.5-3 km), for :data:`FRANCE_LAYERS` only: the 101
#: départements in 23,720 points instead of 46,487 (their choropleth was the largest
#: layer the browser builds at the national view: 93 ms of the map frame's 430).
DISPLAY_LEVELS: dict[str, float] = {"national": 0.004, "local": 0.0004, "france": 0.008}
#: The layers with a "france" display version (the others draw their "national" one there)
FRANCE_LAYERS: tuple[str, ...] = ("regions", "departements")


def has_display_level(name: str, level: str) -> bool:
    """Whether polygon layer ``name`` has a display version at ``level``."""
    return level != "france" or name in FRANCE_LAYERS


#: Decimal places kept in display coordinates (5 ≈ 1 m).
DISPLAY_DECIMALS = 5


@dataclass
class Layers:
    """The seven reference layers as GeoDataFrames (EPSG:4326).

    Read with ``load_layers(polygons=False)``, the attributes named in :attr:`light` hold the
    layer's attribute columns only (a DataFrame without geometry, enough for the territory
    index); :meth:`layer`, :meth:`for_level` and :meth:`items` still give the full layers,
    read again from :attr:`source` at each call.
    """

    regions: gpd.GeoDataFrame
    departements: gpd.GeoDataFrame
    epci: gpd.GeoDataFrame
    communes: gpd.GeoDataFrame
    qpv: gpd.GeoDataFrame
    contrats_ville: gpd.GeoDataFrame
    cites_educatives: gpd.GeoDataFrame
    #: layers held without their geometry (read in full from ``source`` when asked)
    light: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    #: the ``geo/`` folder the layers were read from (None: built in memory)
    source: Path | None = field(default=None, repr=False, compare=False)

    def layer(self, name: str) -> gpd.GeoDataFrame:
        """Layer by name (see :data:`LAYER_SCHEMAS`), with its geometry (a light layer is read
        from disk, not kept: callers needing it often should hold on to it)."""
        if name in self.light:
            return _read(layer_path(name, self.source), name)
        return getattr(self, name)

    def rows(self, name: str, codes: Iterable[object]) -> gpd.GeoDataFrame:
        """The territories ``codes`` (values of the layer's key, see :data:`LAYER_SCHEMAS`)
        of layer ``name``, with their geometry, in the layer's order; from a light layer
        only those rows are decoded (a filtered read), not the whole of France."""
        key = LAYER_SCHEMAS[name][0]
        wanted = sorted({str(c) for c in codes})
        if name in self.light:
            # no code asked: a code no territory has (the read skips every row group)
            return _read(layer_path(name, self.source), name,
                         filters=[(key, "in", wanted or ["\x00"])])
        gdf = getattr(self, name)
        return gdf[gdf[key].astype(str).isin(wanted).to_numpy(dtype=bool)]

    def for_level(self, level: str) -> gpd.GeoDataFrame:
        """Layer holding territories of ``level`` (vocabulary ``territory_level``)."""
        return self.layer(LEVEL_LAYER[level])

    def items(self) -> list[tuple[str, gpd.GeoDataFrame]]:
        """(name, layer) pairs in schema order (full layers: see :meth:`layer`)."""
        return [(name, self.layer(name)) for name in LAYER_SCHEMAS]


def layer_path(name: str, geo: Path | None = None) -> Path:
    """Path of layer ``name`` in ``geo`` (default :func:`config.geo_dir`)."""
    return (geo or config.geo_dir()) / f"{name}.parquet"


def display_path(name: str, level: str, geo: Path | None = None) -> Path:
    """Path of the display version of layer ``name`` at simplification ``level``."""
    return (geo or config.geo_dir()) / "display" / f"{name}_{level}.parquet"


def _read(path: Path, name: str, filters: list | None = None) -> gpd.GeoDataFrame:
    """Layer ``name`` read from ``path`` (``filters``: pyarrow row filters), checked:
    present, readable, in EPSG:4326."""
    if not path.exists():
        raise LayersMissingError(
            f"La couche « {name} » n'est pas construite ({path}). "
            "Lancez « territoires data fetch » puis « territoires data build »."
        )
    try:
        gdf = gpd.read_parquet(path, filters=filters)
    except Exception as exc:  # pyarrow/geopandas raise many kinds
        raise LayerError(f"Lecture impossible de la couche « {name} » ({path}) : {exc}") from exc
    # the decoded WKB went back to Arrow's pool (mimalloc), which keeps freed pages: up to
    # 120 MB after the display layers; give them back to the system
    pa.default_memory_pool().release_unused()
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        raise LayerError(f"La couche « {name} » ({path}) n'est pas en EPSG:4326 : {gdf.crs}")
    return gdf


def _read_attributes(path: Path, name: str) -> pd.DataFrame:
    """The columns of a GeoParquet layer but its geometry (not decoded), after the same checks
    as :func:`_read` (file present and readable, geometry in EPSG:4326)."""
    if not path.exists():
        _read(path, name)  # raises LayersMissingError
    try:
        schema = pq.read_schema(path)
        meta = json.loads(schema.metadata[b"geo"])
        geometry = {str(c) for c in meta["columns"]}
        crs = meta["columns"][meta["primary_column"]].get("crs", "OGC:CRS84")
        table = pq.read_table(path, columns=[c for c in schema.names if c not in geometry])
    except Exception as exc:  # pyarrow raises many kinds; KeyError: not a GeoParquet file
        raise LayerError(f"Lecture impossible de la couche « {name} » ({path}) : {exc}") from exc
    from pyproj import CRS as ProjCRS

    if crs is None or ProjCRS.from_user_input(crs).to_epsg() != 4326:
        raise LayerError(f"La couche « {name} » ({path}) n'est pas en EPSG:4326 : {crs}")
    out = table.to_pandas()
    del table
    pa.default_memory_pool().release_unused()
    return out


def load_layers(geo: Path | None = None, *, polygons: bool = True) -> Layers:
    """Read the seven built layers from ``geo`` (default :func:`config.geo_dir`).

    ``polygons=False``: the layers of :data:`POLYGON_LAYERS` are read without their geometry
    (see :class:`Layers`): what a server holds (a few MB instead of ~100 MB)."""
    folder = geo or config.geo_dir()
    light = frozenset() if polygons else frozenset(POLYGON_LAYERS)
    frames = {name: (_read_attributes if name in light else _read)(layer_path(name, folder), name)
              for name in LAYER_SCHEMAS}
    return Layers(**frames, light=light, source=folder)


def load_display(name: str, level: str, geo: Path | None = None) -> gpd.GeoDataFrame:
    """Read the display version of layer ``name`` at ``level`` (see :data:`DISPLAY_LEVELS`)."""
    return _read(display_path(name, level, geo), f"{name} ({level})")


def write_layers(layers: Layers, geo: Path) -> None:
    """Write the seven layers as GeoParquet into ``geo`` (no atomicity: see build)."""
    geo.mkdir(parents=True, exist_ok=True)
    for name, gdf in layers.items():
        gdf.to_parquet(layer_path(name, geo), index=False)


def read_status(geo: Path | None = None) -> dict:
    """Content of ``geo/layers.json`` written by the last successful build."""
    path = (geo or config.geo_dir()) / "layers.json"
    if not path.exists():
        raise LayersMissingError(
            f"Aucune construction trouvée dans {path.parent}. Lancez « territoires data build »."
        )
    return json.loads(path.read_text(encoding="utf-8"))

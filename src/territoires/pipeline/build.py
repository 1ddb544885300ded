"""Build the seven reference layers (GeoParquet, EPSG:4326) from the fetched raw sources.

Reads whatever :mod:`territoires.pipeline.sources` put in the cache — the official files
(``<cache>/official/…``) or the offline mirror's (``<cache>/mirror/…``) — and writes into
``geo/``: the layers described in :mod:`territoires.pipeline.layers`, their display versions
(``geo/display/<layer>_<level>.parquet``, coverage-simplified, ~1 m precision) and
``geo/layers.json``. The build happens in a temp folder beside ``geo/`` that replaces it only
when everything succeeded: a failed build leaves the previous ``geo/`` intact.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPoint
from shapely.geometry.base import BaseGeometry

from territoires.errors import LayerError, LayersMissingError, SourceError
from territoires.pipeline import sources as src
from territoires.pipeline.layers import (
    CRS,
    DISPLAY_DECIMALS,
    DISPLAY_LEVELS,
    LAYER_SCHEMAS,
    display_path,
    has_display_level,
    layer_path,
    read_status,
)

#: Layers that have display versions (polygon layers).
POLYGON_LAYERS = ("regions", "departements", "epci", "communes", "qpv")
#: Columns kept in display versions (besides the geometry).
DISPLAY_COLUMNS: dict[str, list[str]] = {
    "regions": ["code_reg", "nom"],
    "departements": ["code_dep", "nom", "code_reg"],
    "epci": ["siren_epci", "nom", "type"],
    "communes": ["code_insee", "nom", "type", "siren_epci", "population"],
    "qpv": ["code_qp", "nom", "geom_kind"],
}
_POLYGONAL = ("Polygon", "MultiPolygon")
_ARRONDISSEMENT_PARENTS = ("75056", "69123", "13055")
_CODE_INSEE_RE = re.compile(r"\(\s*([0-9][0-9AB][0-9]{3})\s*\)")
_QP_RE = re.compile(r"^Q[NP]\w{5,7}$")


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class LayerInfo:
    """What the build knows about one layer (written to ``geo/layers.json``)."""

    name: str
    source: str = ""
    origin: str = ""
    vintage: str = ""
    files: list[str] = field(default_factory=list)
    count: int = 0
    with_polygon: int = 0
    with_centroid: int = 0
    without_geometry: int = 0
    repaired: int = 0
    reprojected_from: list[str] = field(default_factory=list)
    #: how many territories have a known population (None: the layer has no population)
    population_known: int | None = None
    #: territories named in the notes (e.g. EPCI with a partial contour)
    partial: list[str] = field(default_factory=list)
    display_bytes: dict[str, int] = field(default_factory=dict)
    simplification: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class BuildReport:
    """Result of :func:`build_all`."""

    geo_dir: Path
    layers: dict[str, LayerInfo]
    seconds: float

    def describe(self) -> str:
        """French summary for the command line."""
        lines = [f"Couches construites dans {self.geo_dir} en {self.seconds:.1f} s :"]
        for info in self.layers.values():
            lines.append("- " + _describe_layer(asdict(info)))
            for crs in info.reprojected_from:
                lines.append(f"    reprojetée de {crs} vers EPSG:4326")
            if info.repaired:
                lines.append(f"    {info.repaired} géométrie(s) invalide(s) réparée(s)")
            lines.extend(f"    {n}" for n in info.notes)
        return "\n".join(lines)


def _describe_layer(d: dict) -> str:
    origin = {"official": "source officielle", "mirror": "miroir"}.get(d.get("origin", ""), "")
    geo = f"{d.get('with_polygon', 0)} avec contour"
    if d.get("with_centroid"):
        geo += f", {d['with_centroid']} avec centroïde seulement"
    if d.get("without_geometry"):
        geo += f", {d['without_geometry']} sans géométrie"
    if d.get("population_known") is not None:
        geo += f" ; population connue pour {d['population_known']}"
    return (f"{d['name']} : {d.get('count', 0)} entités ({geo}) — source {d.get('source', '?')}"
            f" ({origin}), millésime {d.get('vintage', '?')}")


# ---------------------------------------------------------------------------------------------
# Reading helpers


def read_vector(path: Path, layer: str, info: LayerInfo | None = None) -> gpd.GeoDataFrame:
    """Read a vector file, refuse it without CRS, reproject it to EPSG:4326 (noted in
    ``info``) and repair invalid geometries (counted in ``info``)."""
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several kinds
        raise LayerError(
            f"Fichier « {path.name} » illisible pour la couche « {layer} » : {exc}"
        ) from exc
    if gdf.crs is None:
        raise LayerError(
            f"Fichier « {path.name} », couche « {layer} » : système de coordonnées (CRS) "
            "absent ; impossible de savoir comment placer ces géométries."
        )
    if gdf.crs.to_epsg() != 4326:
        name = f"EPSG:{gdf.crs.to_epsg()}" if gdf.crs.to_epsg() else gdf.crs.to_string()
        gdf = gdf.to_crs(CRS)
        if info is not None:
            info.reprojected_from.append(f"{name} ({path.name})")
    gdf = gdf.set_crs(CRS, allow_override=True)
    repaired = _repair(gdf)
    if info is not None:
        info.repaired += repaired
    return gdf


def _repair(gdf: gpd.GeoDataFrame) -> int:
    """Repair invalid geometries of ``gdf`` in place (shapely.make_valid); return how many."""
    arr = np.asarray(gdf.geometry.values, dtype=object)
    present = ~shapely.is_missing(arr)
    invalid = present & ~shapely.is_valid(arr)
    n = int(invalid.sum())
    if n:
        arr = arr.copy()
        arr[invalid] = shapely.make_valid(arr[invalid], method="structure",
                                          keep_collapsed=False)
        gdf[gdf.geometry.name] = gpd.GeoSeries(arr, index=gdf.index, crs=gdf.crs)
    return n


def _read_json(path: Path, layer: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LayerError(
            f"Fichier « {path.name} » illisible pour la couche « {layer} » : {exc}"
        ) from exc


def _require(columns: Iterable[str], needed: Iterable[str], path: Path, layer: str) -> None:
    cols = set(columns)
    for f in needed:
        if f not in cols:
            raise LayerError(
                f"Fichier « {path.name} », couche « {layer} » : champ « {f} » absent "
                f"(champs présents : {', '.join(sorted(cols))})."
            )


def _check_unique(values: Iterable[object], path: Path | str, layer: str, fld: str) -> None:
    seen: set[object] = set()
    for v in values:
        if v in seen:
            name = path.name if isinstance(path, Path) else path
            raise LayerError(
                f"Fichier « {name} », couche « {layer} », champ « {fld} » : code en double "
                f"(valeur : « {v} »)."
            )
        seen.add(v)


def _code(v: object, width: int | None = None) -> str | None:
    """Normalise a code read from a source as a string (never a number: keeps 2A/2B)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    s = str(v).strip()
    if not s:
        return None
    if width and s.isdigit() and len(s) < width:
        s = s.zfill(width)
    return s


def _split_codes(v: object) -> list[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    return [c for c in (p.strip() for p in str(v).split(",")) if c]


def _is_polygonal(g: BaseGeometry | None) -> bool:
    return g is not None and not g.is_empty and g.geom_type in _POLYGONAL


def _polygonal_part(g: BaseGeometry | None) -> BaseGeometry | None:
    if g is None or g.is_empty:
        return None
    if g.geom_type in _POLYGONAL:
        return g
    if g.geom_type == "GeometryCollection":
        polys = [p for p in g.geoms if p.geom_type in _POLYGONAL]
        return shapely.union_all(polys) if polys else None
    return None


def _locate(cache_dir: Path, name: str, required: bool) -> src.Located | None:
    found = src.locate(cache_dir, name)
    if found is None and required:
        raise LayerError(
            f"Source « {name} » absente du cache {cache_dir} : lancez d'abord "
            "« territoires data fetch »."
        )
    return found


def _info(name: str, located: src.Located | None) -> LayerInfo:
    info = LayerInfo(name=name)
    if located is not None:
        info.source = located.source.producer
        info.origin = located.origin
        info.vintage = located.source.version
        info.files = sorted(p.name for p in located.paths.values())
    return info


# ---------------------------------------------------------------------------------------------
# COG


@dataclass
class Cog:
    """The COG tables the layers are built from."""

    communes: pd.DataFrame  # code_insee, nom, type, parent, code_dep, code_reg, siren_epci, …
    old_to_new: dict[str, str]  # old commune code -> current code (anciensCodes)
    epci: list[dict]
    departements: list[dict]
    regions: list[dict]
    paths: dict[str, Path]

    def lookup(self, code: str | None) -> pd.Series | None:
        """COG row of commune ``code`` (following ``anciensCodes``), else None."""
        if code is None:
            return None
        idx = self._index
        if code in idx:
            return self.communes.loc[idx[code]]
        new = self.old_to_new.get(code)
        return self.communes.loc[idx[new]] if new in idx else None

    @property
    def _index(self) -> dict[str, int]:
        if not hasattr(self, "_idx"):
            self._idx = {c: i for i, c in enumerate(self.communes["code_insee"])}
        return self._idx


def _cog_paths(located: src.Located) -> dict[str, Path]:
    out = {}
    for key, p in located.paths.items():
        out[Path(key).stem] = p
    for n in ("communes", "epci", "departements", "regions"):
        if n not in out:
            raise LayerError(f"Fichier COG « {n}.json » absent du cache.")
    return out


def load_cog(located: src.Located) -> Cog:
    """Read the COG lists (same format whether official tgz or mirror copy)."""
    paths = _cog_paths(located)
    raw = _read_json(paths["communes"], "communes")
    if not isinstance(raw, list):
        raise LayerError(f"Fichier « {paths['communes'].name} », couche « communes » : "
                         "une liste JSON est attendue.")
    epci = _read_json(paths["epci"], "epci")
    assert isinstance(epci, list)
    member_epci: dict[str, str] = {}
    for e in epci:
        for m in e.get("membres", []):
            member_epci[str(m["code"])] = str(e["code"])
    rows = []
    old_to_new: dict[str, str] = {}
    for c in raw:
        t = c.get("type")
        if t not in ("commune-actuelle", "arrondissement-municipal"):
            continue
        code = _code(c.get("code"))
        if code is None:
            raise LayerError(f"Fichier « {paths['communes'].name} », couche « communes », "
                             f"champ « code » : valeur vide (entrée « {c.get('nom')} »).")
        is_arr = t == "arrondissement-municipal"
        parent = _code(c.get("commune")) if is_arr else None
        rows.append({
            "code_insee": code,
            "nom": c.get("nom"),
            "type": "arrondissement" if is_arr else "commune",
            "parent": parent,
            "code_dep": _code(c.get("departement")),
            "code_reg": _code(c.get("region")),
            "siren_epci": member_epci.get(parent if is_arr and parent else code),
            "population": c.get("population"),
            "siren": _code(c.get("siren")),
        })
        if not is_arr:
            for old in c.get("anciensCodes", []) or []:
                old_to_new.setdefault(str(old), code)
    df = pd.DataFrame(rows)
    _check_unique(df["code_insee"], paths["communes"], "communes", "code")
    df["population"] = pd.array(df["population"], dtype="Int64")
    # A current code always wins over an old code reused elsewhere.
    current = set(df["code_insee"])
    old_to_new = {o: n for o, n in old_to_new.items() if o not in current}
    deps = _read_json(paths["departements"], "departements")
    regs = _read_json(paths["regions"], "regions")
    assert isinstance(deps, list) and isinstance(regs, list)
    return Cog(df, old_to_new, epci, deps, regs, paths)


# ---------------------------------------------------------------------------------------------
# Layers


def build_communes(cog: Cog, contours: src.Located | None, info: LayerInfo) -> gpd.GeoDataFrame:
    """Communes and arrondissements of the COG, with contours where known."""
    df = cog.communes.copy()
    geoms: dict[str, BaseGeometry] = {}
    if contours is not None and contours.origin == src.OFFICIAL:
        for path in contours.paths.values():
            gdf = read_vector(path, "communes", info)
            _require(gdf.columns, ["code"], path, "communes")
            codes = [_code(c) for c in gdf["code"]]
            _check_unique(codes, path, "communes", "code")
            geoms.update({c: g for c, g in zip(codes, gdf.geometry, strict=True)
                          if c and _is_polygonal(g)})
            if "population" in gdf.columns:
                pop = dict(zip(codes, gdf["population"], strict=True))
                missing = df["population"].isna()
                df.loc[missing, "population"] = pd.array(
                    [pop.get(c) for c in df.loc[missing, "code_insee"]], dtype="Int64")
    elif contours is not None:
        current = set(df["code_insee"])
        parts: dict[str, list[BaseGeometry]] = {}
        unmatched = 0
        for path in sorted(contours.paths.values()):
            gdf = read_vector(path, "communes", info)
            _require(gdf.columns, ["code"], path, "communes")
            codes = [_code(c, 5) for c in gdf["code"]]
            _check_unique(codes, path, "communes", "code")
            for c, g in zip(codes, gdf.geometry, strict=True):
                if not c or not _is_polygonal(g):
                    continue
                target = c if c in current else cog.old_to_new.get(c)
                if target is None:
                    unmatched += 1
                    continue
                parts.setdefault(target, []).append(g)
        merged = 0
        for code, gs in parts.items():
            if len(gs) == 1:
                geoms[code] = gs[0]
            else:
                merged += 1
                geoms[code] = _polygonal_part(shapely.make_valid(shapely.union_all(gs)))
        info.notes.append(
            f"contours 2018 rattachés au COG 2026 : {merged} commune(s) fusionnée(s) "
            f"(union des anciens contours via anciensCodes), {unmatched} contour(s) sans "
            "correspondance"
        )
    gdf = gpd.GeoDataFrame(
        df.drop(columns=["siren"]),
        geometry=gpd.GeoSeries([geoms.get(c) for c in df["code_insee"]], crs=CRS),
        crs=CRS,
    )
    return gdf


def _union(geoms: list[BaseGeometry], coverage: bool) -> BaseGeometry | None:
    """Union of polygons: the fast coverage union when they form a valid coverage (edges
    shared exactly, no overlap), else the general union."""
    if not geoms:
        return None
    if len(geoms) == 1:
        return geoms[0]
    arr = np.asarray(geoms, dtype=object)
    out = shapely.coverage_union_all(arr) if coverage else shapely.union_all(arr)
    if not out.is_valid:
        out = shapely.make_valid(out)
    return _polygonal_part(out)


def communes_are_coverage(communes: gpd.GeoDataFrame) -> bool:
    """True when the (commune) polygons of a layer form a valid coverage (see
    :func:`_union`)."""
    arr = np.asarray(communes.geometry.values, dtype=object)
    arr = arr[np.array([_is_polygonal(g) for g in arr], dtype=bool)]
    return bool(len(arr)) and bool(shapely.coverage_is_valid(arr))


def _dissolve(communes: gpd.GeoDataFrame, column: str, coverage: bool
              ) -> dict[str, tuple[BaseGeometry | None, int, int]]:
    """Per value of ``column``: (union of the polygons of its communes, communes with a
    polygon, communes)."""
    base = communes[communes["type"] == "commune"]
    geoms = np.asarray(base.geometry.values, dtype=object)
    has = np.array([_is_polygonal(g) for g in geoms], dtype=bool)
    out: dict[str, tuple[BaseGeometry | None, int, int]] = {}
    for key, idx in base.groupby(base[column].astype("string")).indices.items():
        if key is None or pd.isna(key):
            continue
        polys = list(geoms[idx][has[idx]])
        out[str(key)] = (_union(polys, coverage), len(polys), len(idx))
    return out


def _name_partial(info: LayerInfo, names: list[str], what: str) -> None:
    if not names:
        return
    info.partial = sorted(names)
    shown = ", ".join(info.partial[:12]) + (" …" if len(names) > 12 else "")
    info.notes.append(f"{len(names)} {what} : {shown}")


def build_epci(cog: Cog, communes: gpd.GeoDataFrame, info: LayerInfo,
               coverage: bool = False) -> gpd.GeoDataFrame:
    """EPCI à fiscalité propre, geometry = union of the member communes' polygons
    (``coverage``: they form a valid coverage, see :func:`_union`). EPCI some of whose
    members have no contour are named in ``info.partial``."""
    path = cog.paths["epci"]
    _check_unique([str(e.get("code")) for e in cog.epci], path, "epci", "code")
    base = communes[communes["type"] == "commune"]
    pos = {c: i for i, c in enumerate(base["code_insee"].astype(str))}
    geoms = np.asarray(base.geometry.values, dtype=object)
    c_dep = base["code_dep"].to_numpy(dtype=object)
    c_reg = base["code_reg"].to_numpy(dtype=object)
    rows, out_geoms, partial = [], [], []
    for e in cog.epci:
        members = [str(m["code"]) for m in e.get("membres", [])]
        idx = np.array([pos[m] for m in members if m in pos], dtype=np.int64)
        deps = sorted({d for d in c_dep[idx] if isinstance(d, str)})
        regs = sorted({r for r in c_reg[idx] if isinstance(r, str)})
        polys = [g for g in geoms[idx] if _is_polygonal(g)]
        if polys and len(polys) < len(members):
            partial.append(f"{e.get('nom')} ({e['code']}, {len(polys)}/{len(members)} "
                           "communes)")
        pop = e.get("populationMunicipale", e.get("populationTotale"))
        rows.append({"siren_epci": str(e["code"]), "nom": e.get("nom"), "type": e.get("type"),
                     "population": pop, "code_deps": deps, "code_regs": regs})
        out_geoms.append(_union(polys, coverage))
    df = pd.DataFrame(rows, columns=LAYER_SCHEMAS["epci"][1])
    df["population"] = pd.array(df["population"], dtype="Int64")
    info.notes.append("contours dissous à partir des communes membres")
    _name_partial(info, partial, "EPCI avec un contour partiel (communes sans contour)")
    info.population_known = int(df["population"].notna().sum())
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(out_geoms, crs=CRS), crs=CRS)


def _admin_geoms(
    contours: src.Located | None, stems: tuple[str, ...], layer: str, info: LayerInfo
) -> dict[str, BaseGeometry]:
    """Polygons by code from the first file of ``contours`` whose name starts with one of
    ``stems`` (in that order of preference)."""
    if contours is None:
        return {}
    for stem in stems:
        for key, path in sorted(contours.paths.items()):
            if Path(key).name.startswith(stem):
                gdf = read_vector(path, layer, info)
                _require(gdf.columns, ["code"], path, layer)
                codes = [_code(c, 2) for c in gdf["code"]]
                _check_unique(codes, path, layer, "code")
                info.notes.append(f"contours : {path.name}")
                return {c: g for c, g in zip(codes, gdf.geometry, strict=True)
                        if c and _is_polygonal(g)}
    return {}


def _complete_from_communes(
    codes: list[str], names: list[str], geoms: dict[str, BaseGeometry],
    dissolved: dict[str, tuple[BaseGeometry | None, int, int]], info: LayerInfo, what: str,
) -> list[BaseGeometry | None]:
    """Geometry per code: the contour file's, else the union of its communes (named in the
    notes, and in ``info.partial`` when some communes lack a contour)."""
    out: list[BaseGeometry | None] = []
    made, partial = [], []
    for code, name in zip(codes, names, strict=True):
        g = geoms.get(code)
        if g is None and code in dissolved and dissolved[code][0] is not None:
            g, n_poly, n_all = dissolved[code]
            made.append(f"{name} ({code})")
            if n_poly < n_all:
                partial.append(f"{name} ({code}, {n_poly}/{n_all} communes)")
        out.append(g)
    if made:
        info.notes.append(f"{len(made)} {what} dissous à partir des communes : "
                          + ", ".join(made))
    _name_partial(info, partial, f"{what} au contour partiel (communes sans contour)")
    return out


def build_departements(
    cog: Cog, contours: src.Located | None, info: LayerInfo,
    communes: gpd.GeoDataFrame | None = None, coverage: bool = False,
) -> gpd.GeoDataFrame:
    """Départements (metropolitan + DROM: 101): contours of the contour file (with outre-mer
    when present), else dissolved from ``communes``."""
    deps = [d for d in cog.departements if d.get("zone") in ("metro", "drom")]
    codes = [_code(d["code"]) for d in deps]
    _check_unique(codes, cog.paths["departements"], "departements", "code")
    names = [d.get("nom") for d in deps]
    geoms = _admin_geoms(contours, ("departements-avec-outre-mer", "departements"),
                         "departements", info)
    dissolved = {} if communes is None else _dissolve(communes, "code_dep", coverage)
    df = pd.DataFrame({"code_dep": codes, "nom": names,
                       "code_reg": [_code(d.get("region")) for d in deps]})
    out = _complete_from_communes(codes, names, geoms, dissolved, info, "département(s)")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(out, crs=CRS), crs=CRS)


def build_regions(cog: Cog, contours: src.Located | None, info: LayerInfo,
                  communes: gpd.GeoDataFrame | None = None,
                  coverage: bool = False) -> gpd.GeoDataFrame:
    """Régions (metropolitan + DROM: 18): contours of the contour file, else dissolved from
    ``communes``."""
    regs = [r for r in cog.regions if r.get("zone") in ("metro", "drom")]
    codes = [_code(r["code"]) for r in regs]
    _check_unique(codes, cog.paths["regions"], "regions", "code")
    names = [r.get("nom") for r in regs]
    geoms = _admin_geoms(contours, ("regions",), "regions", info)
    dissolved = {} if communes is None else _dissolve(communes, "code_reg", coverage)
    df = pd.DataFrame({"code_reg": codes, "nom": names})
    out = _complete_from_communes(codes, names, geoms, dissolved, info, "région(s)")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(out, crs=CRS), crs=CRS)


def _read_csv(path: Path, layer: str) -> pd.DataFrame:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_bytes().decode("latin-1")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=";,\t")
        sep = dialect.delimiter
    except csv.Error:
        sep = ";"
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise LayerError(f"Fichier « {path.name} » illisible pour la couche « {layer} » : "
                         f"{exc}") from exc


def read_qpv_population(path: Path) -> dict[str, int]:
    """QPV code -> population from INSEE ``pop_QPV24.csv`` (columns found by content:
    the one holding QPV codes, and the first whose name contains « pop »)."""
    df = _read_csv(path, "qpv")
    code_col = next((c for c in df.columns
                     if len(df) and df[c].head(20).str.match(_QP_RE.pattern).all()), None)
    pop_col = next((c for c in df.columns if "pop" in c.lower()), None)
    if code_col is None or pop_col is None:
        raise LayerError(f"Fichier « {path.name} », couche « qpv » : colonnes du code QPV ou "
                         f"de la population introuvables (colonnes : {', '.join(df.columns)}).")
    _check_unique(df[code_col], path, "qpv", code_col)
    out: dict[str, int] = {}
    for line, (code, pop) in enumerate(zip(df[code_col], df[pop_col], strict=True), start=2):
        raw = str(pop).replace("\u202f", "").replace(" ", "").replace(",", ".")
        if not raw:
            continue
        try:
            out[code] = round(float(raw))
        except ValueError as exc:
            raise LayerError(f"Fichier « {path.name} », couche « qpv », ligne {line}, champ "
                             f"« {pop_col} » : population illisible (valeur : « {pop} »).") from exc
    return out


#: ``population_source`` of a QPV population read from INSEE's ``pop_QPV24.csv``.
POP_SOURCE_INSEE = "INSEE pop_QPV24"
#: ``population_source`` of a population read from the third-party copy of SIG Ville figures.
POP_SOURCE_COPY = "SIG Ville (republication tierce)"


def _qpv_records_from(gdf: gpd.GeoDataFrame, path: Path) -> dict[str, dict]:
    _require(gdf.columns, ["code_qp", "lib_qp", "insee_com"], path, "qpv")
    codes = [_code(c) for c in gdf["code_qp"]]
    _check_unique(codes, path, "qpv", "code_qp")
    out: dict[str, dict] = {}
    for code, name, com, g in zip(codes, gdf["lib_qp"], gdf["insee_com"], gdf.geometry,
                                  strict=True):
        if code is None:
            raise LayerError(f"Fichier « {path.name} », couche « qpv », champ « code_qp » : "
                             f"valeur vide (QPV « {name} »).")
        out[code] = {"nom": name, "communes": [_code(c, 5) or c for c in _split_codes(com)],
                     "geometry": _polygonal_part(g)}
    return out


def _qpv_from_partial_mirror(paths: dict[str, Path], info: LayerInfo) -> dict[str, dict]:
    """QPV of an older mirror without the national file: code list + centroids + subset."""
    records: dict[str, dict] = {}
    code_list = paths.get("qpv2024_code_list_derived.csv")
    if code_list is not None:
        df = _read_csv(code_list, "qpv")
        _require(df.columns, ["code_qp", "lib_qp", "insee_com"], code_list, "qpv")
        _check_unique(df["code_qp"], code_list, "qpv", "code_qp")
        for code, name, com in zip(df["code_qp"], df["lib_qp"], df["insee_com"], strict=True):
            records[code] = {"nom": name, "communes": _split_codes(com), "geometry": None}
    cpath = paths.get("qpv2024_centroids_by_commune_anct.geojson")
    points: dict[str, list[BaseGeometry]] = {}
    if cpath is not None:
        cg = read_vector(cpath, "qpv", info)
        _require(cg.columns, ["code_qp", "insee_com"], cpath, "qpv")
        for codes, names, com, g in zip(cg["code_qp"], cg.get("lib_qp", cg["code_qp"]),
                                        cg["insee_com"], cg.geometry, strict=True):
            cl = _split_codes(codes)
            nl = [n.strip() for n in str(names).split(",")]
            if len(nl) != len(cl):
                nl = cl
            for code, name in zip(cl, nl, strict=True):
                rec = records.setdefault(code, {"nom": name, "communes": [], "geometry": None})
                c = _code(com)
                if c and c not in rec["communes"]:
                    rec["communes"].append(c)
                if g is not None and not g.is_empty:
                    points.setdefault(code, []).append(g)
    for code, rec in records.items():
        if rec["geometry"] is None and code in points:
            pts = points[code]
            rec["geometry"] = pts[0] if len(pts) == 1 else MultiPoint(
                [p for g in pts for p in getattr(g, "geoms", [g])]).centroid
    return records


def _qpv_population(
    population: src.Located | None, copy: src.Located | None, codes: set[str], info: LayerInfo,
) -> tuple[dict[str, int], dict[str, str]]:
    """Population and its source per QPV code: INSEE's ``pop_QPV24.csv`` when fetched, the
    third-party copy of the SIG Ville figures for the QPV INSEE's file lacks (or when it is
    absent). Codes absent from the QPV layer (obsolete ones) are left out and counted."""
    pops: dict[str, int] = {}
    origin: dict[str, str] = {}
    for located, label in ((population, POP_SOURCE_INSEE), (copy, POP_SOURCE_COPY)):
        if located is None:
            continue
        read = read_qpv_population(next(iter(located.paths.values())))
        unknown = sorted(set(read) - codes)
        added = 0
        for code, value in read.items():
            if code in codes and code not in pops:
                pops[code], origin[code] = value, label
                added += 1
        note = f"population : {added} QPV d'après {label}"
        if unknown:
            note += f" ({len(unknown)} code(s) du fichier absents de la couche, ignorés)"
        info.notes.append(note)
    if population is None:
        info.notes.append(
            "pop_QPV24 de l'INSEE non récupéré"
            + (" : population d'après une republication tierce des chiffres SIG Ville, "
               "à vérifier auprès de l'INSEE" if copy is not None else " : population inconnue"))
    info.population_known = len(pops)
    return pops, origin


def build_qpv(
    cog: Cog, located: src.Located, population: src.Located | None, info: LayerInfo,
    population_copy: src.Located | None = None,
) -> gpd.GeoDataFrame:
    """QPV 2024: the official polygons; offline, the mirror's national (simplified) file with
    the full-resolution polygons of its subset where the codes match (an older mirror: the
    subset's polygons and centroids of the others). Population per QPV with its source
    (see :func:`_qpv_population`)."""
    records: dict[str, dict] = {}
    if located.origin == src.OFFICIAL:
        path = next(iter(located.paths.values()))
        records = _qpv_records_from(read_vector(path, "qpv", info), path)
    else:
        paths = {Path(k).name: p for k, p in located.paths.items()}
        national = paths.get(Path(src.QPV_NATIONAL_MIRROR).name)
        if national is not None:
            records = _qpv_records_from(read_vector(national, "qpv", info), national)
        else:
            records = _qpv_from_partial_mirror(paths, info)
        spath = paths.get(Path(src.QPV_SUBSET_MIRROR).name)
        full_res = 0
        if spath is not None:
            for code, rec in _qpv_records_from(read_vector(spath, "qpv", info), spath).items():
                old = records.setdefault(code, {"nom": rec["nom"], "communes": [],
                                                "geometry": None})
                old["nom"] = rec["nom"]
                old["communes"] = rec["communes"] or old["communes"]
                if rec["geometry"] is not None:
                    old["geometry"] = rec["geometry"]
                    full_res += 1
        if national is not None:
            info.notes.append(
                f"hors ligne : contours simplifiés du fichier national ({national.name}), "
                f"{full_res} QPV à pleine résolution "
                f"(sous-ensemble {spath.name if spath else '—'})")
        else:
            n_centroid = sum(1 for r in records.values()
                             if r["geometry"] is not None and not _is_polygonal(r["geometry"]))
            info.notes.append(f"hors ligne : {n_centroid} QPV sans contour gardés avec leur "
                              "centroïde (geom_kind « centroid »)")
    pops, pop_source = _qpv_population(population, population_copy, set(records), info)
    rows, geoms = [], []
    renamed = 0
    for code in sorted(records):
        rec = records[code]
        first = cog.lookup(rec["communes"][0]) if rec["communes"] else None
        g = rec["geometry"]
        kind = "none" if g is None else ("polygon" if _is_polygonal(g) else "centroid")
        communes = _current_codes(cog, rec["communes"])
        if communes != list(rec["communes"]):
            renamed += 1
        rows.append({
            "code_qp": code, "nom": rec["nom"], "communes": communes,
            "code_dep": None if first is None else first["code_dep"],
            "code_reg": None if first is None else first["code_reg"],
            "siren_epci": None if first is None else first["siren_epci"],
            "population": pops.get(code), "population_source": pop_source.get(code),
            "geom_kind": kind,
        })
        geoms.append(g)
    if renamed:
        info.notes.append(f"{renamed} QPV sur une commune fusionnée depuis : code de la commune "
                          "actuelle (COG 2026, anciensCodes)")
    df = pd.DataFrame(rows, columns=LAYER_SCHEMAS["qpv"][1])
    df["population"] = pd.array(df["population"], dtype="Int64")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)


def _current_codes(cog: Cog, codes: Iterable[str]) -> list[str]:
    """Commune codes as in the COG: an old code (commune merged since) becomes the current
    one (``anciensCodes``); unknown codes are kept; duplicates dropped, order kept."""
    out: list[str] = []
    for c in codes:
        row = cog.lookup(c)
        current = str(row["code_insee"]) if row is not None else c
        if current not in out:
            out.append(current)
    return out


def build_contrats(cog: Cog, located: src.Located | None, info: LayerInfo) -> gpd.GeoDataFrame:
    """Contrats de ville of both generations (centroids)."""
    cols = LAYER_SCHEMAS["contrats_ville"][1]
    if located is None:
        info.notes.append("source absente : couche vide")
        return gpd.GeoDataFrame(pd.DataFrame(columns=cols), geometry=gpd.GeoSeries([], crs=CRS),
                                crs=CRS)
    epcis = {str(e["code"]) for e in cog.epci}
    siren_to_epci = {s: e for s, e in zip(cog.communes["siren"], cog.communes["siren_epci"],
                                          strict=True) if s}
    parts: dict[str, list[dict]] = {}
    for key in sorted(located.paths):
        path = located.paths[key]
        file_generation = "2024-2030" if "ci-ville2" in key else "2015-2023"
        gdf = read_vector(path, "contrats_ville", info)
        _require(gdf.columns, ["code_cv", "codgeo", "lib_cv"], path, "contrats_ville")
        for _, r in gdf.iterrows():
            code = _code(r["code_cv"])
            if code is None:
                raise LayerError(f"Fichier « {path.name} », couche « contrats_ville », champ "
                                 f"« code_cv » : valeur vide (contrat « {r['lib_cv']} »).")
            generation = {"CV": "2015-2023", "CN": "2024-2030"}.get(code[:2], file_generation)
            parts.setdefault(code, []).append({
                "row": r, "file": path.name, "own_file": generation == file_generation,
                "generation": generation,
            })
    rows, geoms = [], []
    merged = dropped = 0
    for code in sorted(parts):
        group = parts[code]
        own = [p for p in group if p["own_file"]] or group
        dropped += len(group) - len(own)
        if len(own) > 1:
            merged += 1
        recs = [p["row"] for p in own]
        sirens = [_code(r["codgeo"]) for r in recs]
        siren = next((s for s in sirens if s in epcis), sirens[0])
        pops = [float(r["pop"]) for r in recs if pd.notna(r.get("pop"))]
        pop = (pops[0] if len(set(pops)) == 1 else sum(pops)) if pops else None
        pts = [r.geometry for r in recs if r.geometry is not None and not r.geometry.is_empty]
        geom = pts[0] if len(pts) == 1 else (MultiPoint(
            [q for g in pts for q in getattr(g, "geoms", [g])]).centroid if pts else None)
        rows.append({
            "code_cv": code, "nom": recs[0]["lib_cv"], "siren": siren,
            "siren_epci": siren if siren in epcis else siren_to_epci.get(siren or ""),
            "code_dep": _code(recs[0].get("insee_dep")), "generation": own[0]["generation"],
            "population": pop,
        })
        geoms.append(geom)
    if merged:
        info.notes.append(f"{merged} contrat(s) en plusieurs parties (plusieurs départements ou "
                          "communes) regroupé(s) : population additionnée, centroïde commun")
    if dropped:
        info.notes.append(f"{dropped} contrat(s) d'une génération présents aussi dans le fichier "
                          "de l'autre génération : gardés dans le fichier de leur génération")
    df = pd.DataFrame(rows, columns=cols)
    df["population"] = pd.to_numeric(df["population"]).astype("Float64")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)


def _points_only(g: BaseGeometry | None) -> BaseGeometry | None:
    if g is None or g.is_empty:
        return None
    if g.geom_type in ("Point", "MultiPoint"):
        return g
    pts = [p for p in shapely.get_parts(shapely.extract_unique_points(g))]
    return pts[0] if len(pts) == 1 else MultiPoint(pts)


def build_cites(cog: Cog, located: src.Located | None, info: LayerInfo) -> gpd.GeoDataFrame:
    """Cités éducatives, one row per id (merged ids split), communes parsed from liste_geo."""
    cols = LAYER_SCHEMAS["cites_educatives"][1]
    if located is None:
        info.notes.append("source absente : couche vide")
        return gpd.GeoDataFrame(pd.DataFrame(columns=cols), geometry=gpd.GeoSeries([], crs=CRS),
                                crs=CRS)
    path = next(iter(located.paths.values()))
    gdf = read_vector(path, "cites_educatives", info)
    _require(gdf.columns, ["id_territoire", "lib_territoire", "liste_geo"], path,
             "cites_educatives")
    rows, geoms = [], []
    for ids, names, geo, g in zip(gdf["id_territoire"], gdf["lib_territoire"],
                                  gdf["liste_geo"], gdf.geometry, strict=True):
        id_list = [i.strip() for i in str(ids).split(";") if i.strip()]
        name_list = [n.strip() for n in str(names).split(" ; ")]
        if len(name_list) != len(id_list):
            name_list = [str(names)] * len(id_list)
        communes = _CODE_INSEE_RE.findall(str(geo or ""))
        first = cog.lookup(communes[0]) if communes else None
        for i, n in zip(id_list, name_list, strict=True):
            rows.append({"id_cite": i, "nom": n, "communes": list(communes),
                         "code_dep": None if first is None else first["code_dep"]})
            geoms.append(_points_only(g))
    df = pd.DataFrame(rows, columns=cols)
    _check_unique(df["id_cite"], path, "cites_educatives", "id_territoire")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)


# ---------------------------------------------------------------------------------------------
# Display versions


def mean_segment(arr: np.ndarray) -> float:
    """Mean segment length (degrees) over all the geometries' rings (total length / number
    of segments), so that dense parts weigh by their vertices."""
    n = shapely.get_num_coordinates(arr).astype(float)
    rings = shapely.get_num_interior_rings(arr).astype(float) + 1
    length = float(np.nansum(shapely.length(arr)))
    segments = float(np.nansum(np.maximum(n - rings, 0)))
    return length / segments if segments else 0.0


def simplify_display(
    gdf: gpd.GeoDataFrame, layer: str, tolerance: float, coverage: bool | None = None,
) -> tuple[gpd.GeoDataFrame, str]:
    """Display version of a polygon layer: polygonal rows only, few columns, simplified as a
    coverage when the layer is a valid coverage (else per geometry, topology preserved),
    coordinates rounded to :data:`DISPLAY_DECIMALS` decimals (``coverage``: whether the
    polygons are a valid coverage, computed when None). A layer whose segments are already
    much longer than ``tolerance`` (already simplified contours) is only rounded: simplifying
    it would remove next to nothing. Returns (layer, method)."""
    cols = DISPLAY_COLUMNS[layer]
    keep = np.array([_is_polygonal(g) for g in gdf.geometry], dtype=bool)
    sub = gdf.loc[keep, [*cols, "geometry"]].reset_index(drop=True)
    arr = np.asarray(sub.geometry.values)
    if len(arr) == 0:
        method = "aucune géométrie"
        out = arr
    elif mean_segment(arr) > 5 * tolerance:
        method = "déjà simplifiée (segments plus longs que la tolérance) : arrondie seulement"
        out = arr
    elif coverage if coverage is not None else bool(shapely.coverage_is_valid(arr)):
        method = "coverage_simplify (couverture valide)"
        out = shapely.coverage_simplify(arr, tolerance)
    else:
        method = "simplify(preserve_topology=True) par géométrie (couverture non valide)"
        out = shapely.simplify(arr, tolerance, preserve_topology=True)
    # display only: coordinates rounded point by point (no costly topology repair)
    out = shapely.set_precision(out, 10.0 ** -DISPLAY_DECIMALS, mode="pointwise")
    sub = sub.set_geometry(gpd.GeoSeries(out, crs=CRS))
    sub = sub[~sub.geometry.is_empty & sub.geometry.notna()].reset_index(drop=True)
    return sub, method


# ---------------------------------------------------------------------------------------------
# Orchestration


def _finalise(gdf: gpd.GeoDataFrame, name: str, info: LayerInfo) -> gpd.GeoDataFrame:
    key, cols = LAYER_SCHEMAS[name]
    _check_unique(gdf[key], f"{name}.parquet", name, key)
    out = gpd.GeoDataFrame(gdf[cols].reset_index(drop=True),
                           geometry=gdf.geometry.reset_index(drop=True), crs=CRS)
    kinds = [None if g is None or g.is_empty else g.geom_type for g in out.geometry]
    info.count = len(out)
    info.with_polygon = sum(1 for k in kinds if k in _POLYGONAL)
    info.without_geometry = sum(1 for k in kinds if k is None)
    info.with_centroid = len(out) - info.with_polygon - info.without_geometry
    return out


def build_layers(cache_dir: Path, coverages: dict[str, bool] | None = None
                 ) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, LayerInfo]]:
    """Build the seven layers in memory from the cache (no writing). ``coverages`` receives
    the layers known to be valid coverages (communes, and the EPCI dissolved from them)."""
    cog_loc = _locate(cache_dir, "cog", required=True)
    assert cog_loc is not None
    cog = load_cog(cog_loc)
    contours = _locate(cache_dir, "communes_contours", required=False)
    admin = _locate(cache_dir, "admin_contours", required=False)
    qpv_loc = _locate(cache_dir, "qpv", required=True)
    assert qpv_loc is not None
    pop_loc = _locate(cache_dir, "qpv_population", required=False)
    pop_copy_loc = _locate(cache_dir, "qpv_population_copy", required=False)
    cv_loc = _locate(cache_dir, "contrats_ville", required=False)
    cites_loc = _locate(cache_dir, "cites_educatives", required=False)

    infos: dict[str, LayerInfo] = {}
    layers: dict[str, gpd.GeoDataFrame] = {}

    def with_cog(name: str, geo: src.Located | None) -> LayerInfo:
        info = _info(name, cog_loc)
        if geo is not None:
            info.source += f" ; contours : {geo.source.producer}"
            info.vintage += f" ; contours : {geo.source.version}"
            info.files += sorted(p.name for p in geo.paths.values())
            if geo.origin != cog_loc.origin:
                info.origin = f"{cog_loc.origin}+{geo.origin}"
        return info

    infos["communes"] = with_cog("communes", contours)
    layers["communes"] = build_communes(cog, contours, infos["communes"])
    infos["communes"].population_known = int(layers["communes"]["population"].notna().sum())
    coverage = communes_are_coverage(layers["communes"])
    if coverages is not None:
        # unions of disjoint groups of cells of a valid coverage are a valid coverage
        coverages.update({"communes": coverage, "epci": coverage})
    infos["regions"] = with_cog("regions", admin)
    layers["regions"] = build_regions(cog, admin, infos["regions"], layers["communes"],
                                      coverage)
    infos["departements"] = with_cog("departements", admin)
    layers["departements"] = build_departements(cog, admin, infos["departements"],
                                                layers["communes"], coverage)
    infos["epci"] = with_cog("epci", contours)
    layers["epci"] = build_epci(cog, layers["communes"], infos["epci"], coverage)
    infos["qpv"] = _info("qpv", qpv_loc)
    for loc in (pop_loc, pop_copy_loc):
        if loc is not None:
            infos["qpv"].source += f" ; population : {loc.source.producer}"
            infos["qpv"].vintage += f" ; population : {loc.source.version}"
            infos["qpv"].files += sorted(p.name for p in loc.paths.values())
    layers["qpv"] = build_qpv(cog, qpv_loc, pop_loc, infos["qpv"], pop_copy_loc)
    infos["contrats_ville"] = _info("contrats_ville", cv_loc)
    layers["contrats_ville"] = build_contrats(cog, cv_loc, infos["contrats_ville"])
    infos["cites_educatives"] = _info("cites_educatives", cites_loc)
    layers["cites_educatives"] = build_cites(cog, cites_loc, infos["cites_educatives"])

    ordered = {n: _finalise(layers[n], n, infos[n]) for n in LAYER_SCHEMAS}
    return ordered, {n: infos[n] for n in LAYER_SCHEMAS}


def build_all(cache_dir: Path, geo_dir: Path) -> BuildReport:
    """Build every layer from ``cache_dir`` into ``geo_dir`` atomically.

    Everything is written into a temp folder beside ``geo_dir`` which replaces it at the end;
    on any error the temp folder is removed and the previous ``geo_dir`` is left untouched.
    """
    t0 = time.perf_counter()
    geo_dir = Path(geo_dir)
    geo_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = _build_lock(geo_dir)
    _remove_leftovers(geo_dir)
    tmp = Path(tempfile.mkdtemp(dir=geo_dir.parent, prefix=f".{geo_dir.name}.", suffix=".build"))
    try:
        coverages: dict[str, bool] = {}
        layers, infos = build_layers(cache_dir, coverages)
        for name, gdf in layers.items():
            gdf.to_parquet(layer_path(name, tmp), index=False)
            if name in POLYGON_LAYERS:
                coverage = (coverages[name] if coverages.get(name)
                            else communes_are_coverage(gdf))
                for level, tol in DISPLAY_LEVELS.items():
                    if not has_display_level(name, level):
                        continue
                    disp, method = simplify_display(gdf, name, tol, coverage)
                    path = display_path(name, level, tmp)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    disp.to_parquet(path, index=False)
                    infos[name].display_bytes[level] = path.stat().st_size
                    infos[name].simplification[level] = method
        status = {"layers": {n: asdict(i) for n, i in infos.items()}}
        (tmp / "layers.json").write_text(
            json.dumps(status, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
            encoding="utf-8")
        _swap_in(tmp, geo_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.close()
    return BuildReport(geo_dir, infos, time.perf_counter() - t0)


class _BuildLock:
    """An exclusive lock on the folder holding ``geo_dir`` (one build at a time: waits for a
    running build; released by :meth:`close` or when the process dies, even by ``kill -9``).
    No lock file is left behind."""

    def __init__(self, folder: Path) -> None:
        import fcntl

        self.fd = os.open(folder, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def close(self) -> None:
        """Release the lock."""
        os.close(self.fd)


def _build_lock(geo_dir: Path) -> _BuildLock:
    return _BuildLock(geo_dir.parent)


def _remove_leftovers(geo_dir: Path) -> list[Path]:
    """Remove the temp folders (``.geo.*.build``, ``.geo.*.old``) of killed builds: under
    :func:`_build_lock` no other build is running, so every one is a leftover."""
    removed = []
    for path in geo_dir.parent.glob(f".{geo_dir.name}.*"):
        if path.is_dir() and path.suffix in (".build", ".old"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _swap_in(tmp: Path, geo_dir: Path) -> None:
    old: Path | None = None
    if geo_dir.exists():
        readme = geo_dir / "README.md"  # committed, not produced by the build
        if readme.exists():
            shutil.copy2(readme, tmp / "README.md")
        old = Path(tempfile.mkdtemp(dir=geo_dir.parent, prefix=f".{geo_dir.name}.",
                                    suffix=".old"))
        os.rmdir(old)
        os.replace(geo_dir, old)
    os.replace(tmp, geo_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def status_text(geo_dir: Path, cache_dir: Path) -> str:
    """French status: per layer its source, vintage, count and how many have polygons
    (from ``geo/layers.json``), then what the cache holds."""
    lines: list[str] = []
    try:
        status = read_status(geo_dir)
        lines.append(f"Couches construites dans {geo_dir} :")
        for name in LAYER_SCHEMAS:
            d = status.get("layers", {}).get(name)
            if d is None:
                lines.append(f"- {name} : absente de layers.json")
                continue
            lines.append("- " + _describe_layer(d))
            lines.extend(f"    {n}" for n in d.get("notes", []))
            if d.get("display_bytes"):
                sizes = ", ".join(f"{lvl} {n / 1000:.0f} ko"
                                  for lvl, n in sorted(d["display_bytes"].items()))
                lines.append(f"    affichage : {sizes}")
    except LayersMissingError as exc:
        lines.append(str(exc))
    lines.append(f"Cache des sources ({cache_dir}) :")
    for s in src.registry():
        try:
            found = src.locate(cache_dir, s.name)
        except SourceError:
            found = None
        where = ("absente" if found is None else
                 f"{'source officielle' if found.origin == src.OFFICIAL else 'miroir'}, "
                 f"{len(found.paths)} fichier(s)")
        lines.append(f"- {s.name} : {where}")
    return "\n".join(lines)

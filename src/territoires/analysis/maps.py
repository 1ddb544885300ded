"""Folium maps of the dashboard: pure functions from display layers and tables to a map.

Only the display layers (simplified, rounded: see :mod:`territoires.pipeline.layers`) reach the map,
with the few properties the tooltips need. Every string property is ``html.escape``-d before
it is embedded, because Leaflet tooltips and popups render properties as HTML, and its braces
become character references, because branca renders each element's output again as a Jinja
template (:func:`_esc`, :func:`map_html`): no text of the catalogue or of the layers can run as
a template on the server. Styles are
grouped (one style per class, feature ids listed once) instead of one style per feature.

Every clickable feature carries ``lvl`` (territory level) and ``code`` properties so the page
can turn a click (the map frame's ``last_active_drawing``) into a territory filter.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from cachetools import LRUCache
from folium.elements import ElementAddToElement, JSCSSMixin
from folium.plugins import MarkerCluster
from folium.template import Template as FoliumTemplate
from folium.utilities import get_obj_in_upper_tree
from jinja2 import Template

from territoires.analysis.formatting import fmt_eur, fmt_eur_short, fmt_int, fmt_pct
from territoires.catalogue.model import Catalogue
from territoires.pipeline.layers import LAYER_SCHEMAS, LEVEL_LAYER
from territoires.vocab import MATURITY, TERRITORY_LEVELS, THEMES

#: Choropleth measures (columns of :func:`territoires.analysis.queries.aggregate`) -> French label.
MEASURES: dict[str, str] = {
    "initiatives": "Nombre d'initiatives",
    "funding_eur": "Financements (€)",
    "funding_per_inhabitant": "Financement par habitant (€)",
    "qpv_share_reached": "Part de la population des QPV touchée",
}
#: Measures that only make sense where there are QPV (units without a known QPV population
#: are left out of national views instead of being drawn as "non renseigné").
QPV_MEASURES = ("qpv_share_reached",)
#: Fixed class edges of a share (0 % is a class of its own, see :func:`classify`).
SHARE_BREAKS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Choropleth levels -> French label.
CHOROPLETH_LEVELS: dict[str, str] = {
    "departement": "Départements",
    "epci": "EPCI",
    "commune": "Communes",
    "qpv": "QPV",
}
_PER_LEVEL: dict[str, str] = {
    "departement": "par département",
    "epci": "par EPCI",
    "commune": "par commune",
    "qpv": "par QPV",
}
#: Marker colouring options -> French label.
COLOUR_BY: dict[str, str] = {"theme": "Thème", "maturity": "Maturité"}

#: Sequential palette (ColorBrewer YlOrRd, 5 classes) for the choropleth.
PALETTE: list[str] = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]
ZERO_COLOUR = "#f0f0f0"
NO_DATA_COLOUR = "#bdbdbd"
_CATEGORICAL = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
]
THEME_COLOURS: dict[str, str] = dict(zip(THEMES.codes, _CATEGORICAL, strict=False))
MATURITY_COLOURS: dict[str, str] = dict(
    zip(MATURITY.codes, ["#9ecae1", "#4292c6", "#08519c", "#31a354", "#969696"], strict=True)
)

TILES_URL = "https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png"
TILES_ATTRIBUTION = (
    '&copy; les contributeurs <a href="https://www.openstreetmap.org/copyright" '
    'target="_blank">OpenStreetMap</a>'
)
SOURCES_CREDIT = (
    "Sources : IGN / Etalab (contours), INSEE (population), ANCT (QPV, contrats de ville, "
    "cités éducatives) — Licence Ouverte 2.0 ; fond © OpenStreetMap"
)
#: Decimal places of the coordinates sent to the browser (3 ≈ 100 m, 4 ≈ 10 m).
NATIONAL_DECIMALS = 3
LOCAL_DECIMALS = 4
#: Decimal places of point coordinates (4 ≈ 10 m).
POINT_DECIMALS = 4
#: Above this many (initiative, territory) points, initiatives are drawn as one circle per
#: département (France) or commune (area) with their count and a link to the catalogue.
MAX_INITIATIVE_POINTS = 800
#: Areas with more communes than this are drawn from the "national" display layers.
LOCAL_MAX_COMMUNES = 150
#: A small map (:attr:`MapSpec.compact`: a Fiche's) outlines the area's communes only up
#: to this many: the 1,265 communes of a region, a few pixels each at that size, hid the
#: initiative's own territories and were most of what the browser built (issue 13: the
#: Fiche of a region-wide initiative drawn 0.12 s sooner without them); départements,
#: QPV and the highlighted territories stay.
COMPACT_MAX_COMMUNES = 200
#: Maximum zoom of the maps, and of a map fitted to its area; smallest box fitted (degrees).
MAX_ZOOM = 18
FIT_MAX_ZOOM = 15
MIN_FIT_SPAN = 0.01
FRANCE_CENTER: tuple[float, float] = (46.6, 2.4)
FRANCE_ZOOM = 6
#: Metropolitan France (minx, miny, maxx, maxy), for maps fitted to their size.
FRANCE_BOUNDS: tuple[float, float, float, float] = (-5.2, 41.3, 9.6, 51.1)


@dataclass(frozen=True)
class Area:
    """The filter area: communes and QPV it covers (``None`` = all of France)."""

    communes: frozenset[str] | None = None
    qpv: frozenset[str] | None = None

    @property
    def national(self) -> bool:
        """True when no territory filter restricts the map."""
        return self.communes is None


@dataclass
class MapSpec:
    """What to draw on the map."""

    area: Area = field(default_factory=Area)
    choropleth_level: str | None = None
    measure: str = "initiatives"
    values: pd.DataFrame | None = None
    initiatives: pd.DataFrame | None = None
    colour_by: str = "theme"
    selected: tuple[tuple[str, str], ...] = ()
    center: tuple[float, float] | None = None
    zoom: int | None = None
    link_base: str = "/"
    #: Fit the view to the area in the browser, whatever the map's size (small maps).
    fit: bool = False
    #: A small map: layer control folded into an icon, the outlines of the area's communes
    #: left out beyond :data:`COMPACT_MAX_COMMUNES`.
    compact: bool = False


def area_from_filters(territories: Iterable[tuple[str, str]], index: object) -> Area:
    """Area covered by the filter ``territories`` through ``index`` (a TerritoryIndex);
    unknown territories are skipped."""
    territories = list(territories)
    if not territories:
        return Area()
    communes: set[str] = set()
    qpvs: set[str] = set()
    for level, code in territories:
        try:
            fp = index.footprint(level, code)  # type: ignore[attr-defined]
            communes |= set(fp.communes)
            qpvs |= set(fp.qpvs) if fp.qpvs is not None else set(index.qpv_in(level, code))  # type: ignore[attr-defined]
        except Exception:  # unknown code in a shared link: ignored, never fatal
            continue
    return Area(frozenset(communes), frozenset(qpvs))


# --------------------------------------------------------------------------- classes


def class_breaks(values: Iterable[float], k: int = 5, integer: bool = False) -> list[float]:
    """Quantile class edges (at most ``k`` classes) of the positive finite ``values``:
    ``[e0, e1, …, en]`` with ``e0`` the minimum and ``en`` the maximum. Zeros and missing
    values are classed apart (see :func:`classify`). Empty list when no positive value.

    Counts (``integer``) with at most ``k`` distinct values get one class per value; when
    the quantiles of counts collapse (most communes at 1 initiative, say), the minimum gets
    a class of its own instead of sharing one with all the rest."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    if arr.size == 0:
        return []
    if integer:
        distinct = sorted(set(float(v) for v in np.round(arr)))
        if len(distinct) <= k:
            return [distinct[0], *distinct]
    edges = np.quantile(arr, np.linspace(0, 1, k + 1))
    if integer:
        edges = np.round(edges)
    unique = sorted(set(float(e) for e in edges))
    if len(unique) == 1:
        unique = [unique[0], unique[0]]
    elif integer and len(unique) - 1 < k:
        unique = [unique[0], *unique]
    return unique


def classify(values: Iterable[float], breaks: list[float]) -> list[int]:
    """Class of each value: ``-2`` missing, ``-1`` zero (or no breaks), else 0…n-1 where class
    ``i`` holds values in ``(e_i, e_{i+1}]`` (the first class includes ``e_0``)."""
    out: list[int] = []
    inner = np.asarray(breaks[1:-1], dtype=float)
    top = len(breaks) - 2
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v):
            out.append(-2)
        elif float(v) <= 0 or not breaks:
            out.append(-1)
        else:
            out.append(min(int(np.searchsorted(inner, float(v), side="left")), max(top, 0)))
    return out


def format_measure(value: float | None, measure: str) -> str:
    """French text of a measure value."""
    if value is None or pd.isna(value):
        return "inconnue" if measure in QPV_MEASURES else "non renseigné"
    if measure == "qpv_share_reached":
        return fmt_pct(value)
    if measure == "qpv_population":
        return fmt_int(value)
    if measure == "initiatives":
        return fmt_int(value)
    if measure == "funding_per_inhabitant":
        return fmt_eur(value, 2)
    return fmt_eur(value)


def class_labels(breaks: list[float], measure: str) -> list[str]:
    """French labels of the classes defined by ``breaks``."""

    def fmt(v: float) -> str:
        if measure == "qpv_share_reached":
            return fmt_pct(v)
        if measure == "initiatives":
            return fmt_int(v)
        if measure == "funding_per_inhabitant":
            return fmt_eur(v, 2) if v < 100 else fmt_eur(v)
        return fmt_eur_short(v)

    labels = []
    for i in range(len(breaks) - 1):
        lo, hi = breaks[i], breaks[i + 1]
        if measure == "initiatives" and i > 0:
            lo = math.floor(lo) + 1
        labels.append(fmt(lo) if lo >= hi else f"{fmt(lo)} – {fmt(hi)}")
    return labels


# --------------------------------------------------------------------------- GeoJSON


#: Braces as HTML character references: folium/branca render the output of every element's
#: template a second time as Jinja source (``MacroElement.render`` wraps it in an ``Element``),
#: so no brace of the data may reach that output, or ``{{ … }}`` would run on the server.
_BRACES = str.maketrans({"{": "&#123;", "}": "&#125;"})


def _esc(value: object) -> str:
    """``value`` as HTML text: markup escaped, and braces as character references so that
    no Jinja delimiter (``{{``, ``{%``, ``{#``) can come from data (see :data:`_BRACES`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True).translate(_BRACES)


def representative_points(geoms: gpd.GeoSeries | np.ndarray) -> np.ndarray:
    """A point of each geometry (a point stays itself, a polygon gives a point inside it,
    None stays None), as an array of shapely points.

    Works on the bare geometry array: a GeoSeries built here would compare its CRS with the
    source's, and pyproj rebuilds a CRS object in every new thread (Streamlit runs each
    script in a new thread), about 15 to 60 ms per comparison."""
    arr = np.asarray(geoms.to_numpy() if isinstance(geoms, gpd.GeoSeries) else geoms,
                     dtype=object)
    out = np.empty(len(arr), dtype=object)
    todo = []
    for i, g in enumerate(arr):
        hit = _POINTS.get(id(g))
        if hit is not None and hit[0] is g:
            out[i] = hit[1]
        else:
            todo.append(i)
    if todo:
        idx = np.asarray(todo, dtype=np.int64)
        pts = shapely.point_on_surface(arr[idx])
        if len(_POINTS) + len(idx) > _ENCODED_MAX:
            _POINTS.clear()
        for i, p in zip(idx, pts, strict=True):
            out[i] = p
            if arr[i] is not None:
                _POINTS[id(arr[i])] = (arr[i], p)
    return out


#: Memo of representative points, as :data:`_ENCODED`: id of the geometry -> (geometry,
#: point).
_POINTS: dict[int, tuple[object, object]] = {}


def has_polygon(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """Rows drawn as a polygon: a (multi)polygon geometry that is a real contour (not a
    ``geom_kind`` other than "polygon", e.g. a QPV known by its centroid)."""
    is_poly = gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if "geom_kind" in gdf.columns:
        is_poly = is_poly & (gdf["geom_kind"].astype(str) == "polygon").to_numpy()
    return is_poly


@dataclass(frozen=True)
class Payload:
    """A compact payload (see :func:`compact_rows`): its JavaScript text (:func:`_js`), how
    many features it holds and, unless kept in a :class:`PayloadMemo` (their Python lists
    weigh several times the text), its rows."""

    text: str
    count: int
    rows: dict | None = None
    #: which of the layer's candidate rows the payload holds (those with a drawable
    #: geometry), when the layer needs to know
    kept: np.ndarray | None = None

    @classmethod
    def of(cls, rows: dict, kept: np.ndarray | None = None) -> Payload:
        """The payload ``rows`` with its text."""
        return cls(_js(rows), len(rows["f"]), rows, kept)

    def light(self) -> Payload:
        """This payload without its rows."""
        return Payload(self.text, self.count, None, self.kept)


class PayloadMemo:
    """The compact payloads of reference layers (outlines, QPV, contracts, cités, a
    choropleth's geometry) already built for one set of display layers, the most recently
    used kept, at most ``max_chars`` characters of text in all. A filter change redraws
    the same reference layers, and their encoding (geometry, escaped names, JSON) was most
    of the map's rendering in a Carte rerun. Keys name the source layer and the codes of
    its rows, so a memo serves one set of display layers only (the app keeps one per
    layers folder, as it keeps the layers). Safe to share between sessions (threads)."""

    def __init__(self, max_chars: int = 16_000_000) -> None:
        self.max_chars = max_chars
        self._items: LRUCache = LRUCache(maxsize=max_chars,
                                         getsizeof=lambda p: max(len(p.text), 1))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def chars(self) -> int:
        """Characters of text kept."""
        return int(self._items.currsize)

    def get(self, key: tuple, build: Callable[[], Payload]) -> Payload:
        """The payload under ``key``, built by ``build()`` when absent (then kept, without
        its rows, unless larger than the whole memo)."""
        with self._lock:
            found = self._items.get(key)
        if found is not None:
            return found
        made = build().light()
        # larger than the whole memo (ValueError): returned, not kept
        with self._lock, contextlib.suppress(ValueError):
            self._items[key] = made
        return made


def _payload(memo: PayloadMemo | None, key: tuple, build: Callable[[], Payload]) -> Payload:
    """The payload ``build()``, kept in ``memo`` (if any) under ``key``."""
    return build() if memo is None else memo.get(key, build)


def _key_col(level: str) -> str:
    return LAYER_SCHEMAS[LEVEL_LAYER[level]][0]


def _outline_layer(
    gdf: gpd.GeoDataFrame, level: str, name: str, style: dict, show: bool = True,
    clickable: bool = True, decimals: int = LOCAL_DECIMALS,
    memo: PayloadMemo | None = None, source: str = "",
) -> CompactGeoJson | None:
    """Outlines of ``gdf`` (``source``: the display layer it comes from, for ``memo``)."""
    if gdf.empty:
        return None
    codes = gdf[_key_col(level)].astype(str)
    payload = _payload(memo, ("outline", source, level, decimals, tuple(codes)),
                       lambda: Payload.of(compact_rows(
                           gdf.geometry.to_numpy(),
                           {"nom": gdf["nom"].astype(str), "code": codes}, decimals)))
    if not payload.count:
        return None
    tooltip = _table_js([(TERRITORY_LEVELS.label_of(level), "nom"), ("Code", "code")])
    layer = CompactGeoJson(
        payload, _esc(name),
        _options(tooltip=tooltip, style=f"function(){{return {_js(style)};}}",
                 level=level if clickable else None, smooth=1.0),
        show=show,
    )
    layer.shareable = True
    return layer


def _points_layer(
    gdf: gpd.GeoDataFrame, level: str, name: str, colour: str, radius: int, show: bool = True,
    fill_opacity: float = 0.7, weight: float = 1, memo: PayloadMemo | None = None,
    source: str = "",
) -> CompactGeoJson | None:
    """One layer for all the points of ``gdf`` (polygons drawn at a representative point),
    circle markers made in the browser; properties ``nom``, ``code`` (+ ``lvl``).
    ``source``: the display layer ``gdf`` comes from (for ``memo``)."""
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if gdf.empty:
        return None
    codes = gdf[_key_col(level)].astype(str)
    payload = _payload(memo, ("points", source, level, tuple(codes)),
                       lambda: Payload.of(compact_rows(
                           representative_points(gdf.geometry),
                           {"nom": gdf["nom"].astype(str), "code": codes}, POINT_DECIMALS)))
    tooltip = _table_js([(TERRITORY_LEVELS.label_of(level), "nom"), ("Code", "code")])
    layer = CompactGeoJson(payload, _esc(name),
                           _options(tooltip=tooltip,
                                    point=_circle_js(radius, colour, fill_opacity,
                                                     weight=weight),
                                    level=level), show=show)
    layer.shareable = True
    return layer


def highlight_layers(gdf: gpd.GeoDataFrame, level: str, codes: Iterable[str], name: str,
                     colour: str, mark_polygons: bool = False) -> list[CompactGeoJson]:
    """Compact layers drawing the territories ``codes`` of ``gdf`` (a display layer of
    ``level``) in ``colour``: polygons where the layer has one, a circle at a point inside
    otherwise (QPV known by a centroid, cités, contrats). With ``mark_polygons`` the
    polygons get a circle too (a QPV is a few pixels wide on a map of France). Tooltip: name
    and code."""
    key = _key_col(level)
    sub = gdf[gdf[key].astype(str).isin(set(map(str, codes)))]
    sub = sub[sub.geometry.notna() & ~sub.geometry.is_empty]
    if sub.empty:
        return []
    is_poly = has_polygon(sub)
    style = {"color": colour, "weight": 2.5, "fillColor": colour, "fillOpacity": 0.35}
    layers = [
        _outline_layer(sub[is_poly], level, name, style),
        _points_layer(sub if mark_polygons else sub[~is_poly], level, name, colour, 8,
                      fill_opacity=0.8, weight=2),
    ]
    out = [lay for lay in layers if lay is not None]
    for lay in out:
        lay.control = False
    return out


# --------------------------------------------------------------------------- compact layers

#: JavaScript turning the compact payload ``{"s": scale, "k": keys, "f": rows}`` into a
#: GeoJSON FeatureCollection: each row holds the property values (in ``k`` order) then the
#: geometry: ``[x, y]`` (point) or rings of delta-encoded integer coordinates (polygon,
#: multipolygon), divided by ``s``.
_DECODER = (
    "function(d,e){var s=d.s,k=d.k;"
    "function R(a){var o=[],x=0,y=0;for(var i=0;i<a.length;i+=2){x+=a[i];y+=a[i+1];"
    "o.push([x/s,y/s]);}return o;}"
    "function G(g){if(typeof g[0]==='number')return{type:'Point',coordinates:[g[0]/s,g[1]/s]};"
    "if(typeof g[0][0]==='number')return{type:'Polygon',coordinates:g.map(R)};"
    "return{type:'MultiPolygon',coordinates:g.map(function(p){return p.map(R);})};}"
    "return{type:'FeatureCollection',features:d.f.map(function(r,j){var p={},i;"
    "for(i=0;i<k.length;i++){p[k[i]]=r[i];}"
    "if(e){for(i=0;i<e.k.length;i++){p[e.k[i]]=e.f[j][i];}}"
    "return{type:'Feature',id:j,properties:p,geometry:G(r[k.length])};})};}"
)
"""Decoder of a compact payload ``d`` (see :func:`compact_rows`) and of the optional values
``e`` (``{"k": keys, "f": rows}``, one row per feature of ``d``, see :class:`CompactGeoJson`)
into a GeoJSON FeatureCollection; each feature's ``id`` is its row number (the row of its
values)."""


def _js(value: object) -> str:
    """``value`` as a JavaScript literal safe inside a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def _ring(coords: np.ndarray, scale: float) -> list[int] | None:
    ints = np.round(np.asarray(coords)[:, :2] * scale).astype(np.int64)
    deltas = np.diff(ints, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    keep = np.any(deltas != 0, axis=1)
    keep[0] = True
    deltas = deltas[keep]
    if len(deltas) < 3:
        return None
    return deltas.ravel().tolist()


#: Memo of encoded polygons: (id of the geometry, decimals) -> (geometry, encoding). The
#: display layers are loaded once per process and their geometry objects drawn again on
#: every rerun; keeping the geometry in the value makes a reused id impossible while cached.
_ENCODED: dict[tuple[int, int], tuple[object, list | None]] = {}
_ENCODED_MAX = 200_000


def encode_geometry(geom: object, decimals: int) -> list | None:
    """Compact geometry: ``[x, y]`` integers (coordinates × 10^decimals) for a point, rings
    of delta-encoded integers for (multi)polygons; None when empty or degenerate.
    (Multi)polygons are memoised (see :data:`_ENCODED`)."""
    if geom is None:
        return None
    key = (id(geom), decimals)
    hit = _ENCODED.get(key)
    if hit is not None and hit[0] is geom:
        return hit[1]
    out = _encode_geometry(geom, decimals)
    if getattr(geom, "geom_type", "") in ("Polygon", "MultiPolygon"):
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        _ENCODED[key] = (geom, out)
    return out


def _encode_geometry(geom: object, decimals: int) -> list | None:
    if geom is None or geom.is_empty:  # type: ignore[attr-defined]
        return None
    scale = 10.0 ** decimals
    kind = geom.geom_type  # type: ignore[attr-defined]
    shape: Any = geom
    if kind == "Point":
        return [round(shape.x * scale), round(shape.y * scale)]
    if kind == "Polygon":
        rings = [_ring(np.asarray(r.coords), scale) for r in (shape.exterior, *shape.interiors)]
        if rings[0] is None:
            return None
        return [r for r in rings if r is not None]
    if kind == "MultiPolygon":
        parts = [_encode_geometry(p, decimals) for p in geom.geoms]  # type: ignore[attr-defined]
        parts = [p for p in parts if p]
        return parts or None
    if kind == "MultiPoint":
        return encode_geometry(shapely.point_on_surface(geom), decimals)
    return None


def _prop(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return _esc(value)


#: :func:`_esc` as replacements, ``&`` first (``html.escape(quote=True)``, then braces).
_ESCAPES: tuple[tuple[str, str], ...] = (
    ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;"),
    ("{", "&#123;"), ("}", "&#125;"))


def _prop_values(values: Iterable[object]) -> list[object]:
    """:func:`_prop` of each value; a column of strings is escaped at once (Arrow string
    kernels), not value by value: the national QPV layer's 3,000 names and codes took
    20-40 ms per map in ``html.escape``."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values),
                                                                     dtype=object)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if len(series) == 0 or pd.api.types.infer_dtype(series, skipna=True) != "string":
        return [_prop(v) for v in series]
    text = series.astype("string[pyarrow]")
    for char, ref in _ESCAPES:
        text = text.str.replace(char, ref, regex=False)
    return text.astype(object).where(text.notna(), None).tolist()


def compact_rows(
    geoms: Iterable[object], properties: Mapping[str, Iterable[object]], decimals: int,
) -> dict:
    """The compact payload of a layer (see :data:`_DECODER`): strings HTML-escaped, numbers
    kept, features without geometry dropped."""
    return _compact([encode_geometry(g, decimals) for g in geoms], properties, decimals)


def _compact(encoded: Sequence[object], properties: Mapping[str, Iterable[object]],
             decimals: int) -> dict:
    """:func:`compact_rows` of geometries already encoded (:func:`encode_geometry`; None:
    no drawable geometry, the feature is dropped)."""
    cols = [_prop_values(v) for v in properties.values()]
    rows = [[col[i] for col in cols] + [geom] for i, geom in enumerate(encoded)
            if geom is not None]
    return {"s": 10 ** decimals, "k": list(properties), "f": rows}


def decode_rows(payload: Mapping) -> list[dict]:
    """Properties of each feature of a compact payload (tests and debugging)."""
    keys = payload["k"]
    return [dict(zip(keys, row[: len(keys)], strict=True)) for row in payload["f"]]


class CompactGeoJson(folium.GeoJson):
    """A ``folium.GeoJson`` layer whose FeatureCollection travels as compact rows (short
    keys, integer delta-encoded coordinates) decoded in the browser, styled, tooltipped
    and popped up by small JavaScript functions instead of per-feature style maps.

    ``values`` (``{"k": keys, "f": rows}``, a row per feature of ``payload``) are properties
    kept apart from the payload: a choropleth's geometry and names are the same for every
    filter, its values are not. For a :attr:`shareable` layer the app may set
    :attr:`external` to the URL of a file holding :attr:`payload` (JSON text): the browser
    fetches it once per map frame (``window.__territoiresFiles``; the map frame may have
    started the fetch, ``window.__territoiresPending``; a file's name is its content's hash,
    so any copy in the HTTP cache answers the next frames) instead of receiving it inline in
    every redraw, and keeps the layer built (see :attr:`reuse_key`);
    ``window.__territoiresLoading`` counts the fetches under way, and the frame's
    ``window.__territoiresRestack`` puts the layers back in their order once a file's
    features are added."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {%- if this.external %}
        var {{ this.get_name() }} = null;
        var {{ this.get_name() }}_values = {{ this.values }};
        {%- if this.reuse_key %}
        window.__territoiresLayers = window.__territoiresLayers || {};
        {{ this.get_name() }} = window.__territoiresLayers[{{ this.reuse_key_js }}] || null;
        {%- if this.value_rows is not none %}
        if ({{ this.get_name() }}) {
            {{ this.get_name() }}.__revalue({{ this.get_name() }}_values);
        }
        {%- endif %}
        {%- endif %}
        if (!{{ this.get_name() }}) {
        {{ this.get_name() }} = L.geoJson(null, {{ this.js_options }});
        {{ this.bind_tooltip }}
        {%- if this.reuse_key %}
        window.__territoiresLayers[{{ this.reuse_key_js }}] = {{ this.get_name() }};
        {%- endif %}
        (function (w, layer, url, values) {
            var decode = {{ this.decoder }};
            layer.__values = values;
            {%- if this.value_rows is not none %}
            layer.__revalue = function (v) {
                layer.__values = v;
                layer.eachLayer(function (l) {
                    var f = l.feature, row = f && v.f[f.id], i;
                    if (!row) { return; }
                    for (i = 0; i < v.k.length; i += 1) { f.properties[v.k[i]] = row[i]; }
                    layer.resetStyle(l);
                });
            };
            {%- endif %}
            var files = w.__territoiresFiles = w.__territoiresFiles || {};
            if (files[url]) { layer.addData(decode(files[url], layer.__values)); return; }
            w.__territoiresLoading = (w.__territoiresLoading || 0) + 1;
            var early = (w.__territoiresPending || {})[url];
            (early || fetch(url, {cache: "force-cache"}).then(function (r) {
                if (!r.ok) { throw new Error("HTTP " + r.status); }
                return r.json();
            })).then(function (d) {
                files[url] = d;
                layer.addData(decode(d, layer.__values));
                if (w.__territoiresRestack) { w.__territoiresRestack(); }
            }).catch(function (err) {
                console.error("couche non chargée : " + url, err);
            }).finally(function () { w.__territoiresLoading -= 1; });
        })(window, {{ this.get_name() }}, {{ this.external_js }}, {{ this.get_name() }}_values);
        }
        {%- else %}
        var {{ this.get_name() }} = L.geoJson(null, {{ this.js_options }});
        {{ this.bind_tooltip }}
        {{ this.get_name() }}.addData(({{ this.decoder }})({{ this.payload }}, {{ this.values }}));
        {%- endif %}
        {% endmacro %}
        """
    )

    def __init__(self, payload: dict | Payload, name: str, js_options: str,
                 show: bool = True, control: bool = True, values: dict | None = None) -> None:
        super().__init__({"type": "FeatureCollection", "features": []}, name=name, show=show,
                         control=control)
        made = payload if isinstance(payload, Payload) else Payload.of(payload)
        self.payload = made.text
        #: the payload's rows (None: taken from a :class:`PayloadMemo`, text only)
        self.rows = made.rows
        self.values = _js(values) if values is not None else "null"
        self.value_rows = values
        self.js_options = js_options.replace("</", "<\\/")
        self.decoder = _DECODER
        #: URL of a file holding :attr:`payload` (set by the app), None: inline
        self.external: str | None = None
        #: the payload holds reference geography only (no catalogue text or figure), the
        #: same for every filter of a view: it may be served as a file (see :attr:`external`)
        self.shareable = False

    @property
    def bind_tooltip(self) -> str:
        """JavaScript binding the layer's tooltip (the :data:`LAYER_TOOLTIP` option that
        :func:`_options` gives, a function of the feature's properties), once: a sticky
        tooltip of the feature under the pointer."""
        return (f"(function(g,t){{if(t)g.bindTooltip(function(l){{return l.feature?"
                f"t(l.feature.properties):''}},{{sticky:true}})}})({self.get_name()},"
                f"{self.get_name()}.options.{LAYER_TOOLTIP});")

    @property
    def external_js(self) -> str:
        """:attr:`external` as a JavaScript string literal."""
        return _js(self.external)

    @property
    def reuse_key(self) -> str | None:
        """Key under which the map frame keeps this layer once built
        (``window.__territoiresLayers``), so that a redraw swapping in the same layer (same
        file, same options) re-adds it instead of decoding and building its features
        again; None for a layer of inline data. A layer with values (a choropleth at a
        filter change) is kept too: its features get the new values (``__revalue``, by
        feature id, the row's number) and are styled again, their tooltips read them at
        the next hover (see :func:`_options`). At the national view that is the 101
        départements' 46,000 points neither decoded nor made into polygons again."""
        if not self.external:
            return None
        kind = "values" if self.value_rows is not None else "reference"
        text = f"{self.external}\n{self.js_options}\n{kind}".encode()
        return hashlib.sha256(text).hexdigest()[:24]

    @property
    def reuse_key_js(self) -> str:
        """:attr:`reuse_key` as a JavaScript string literal."""
        return _js(self.reuse_key)

    def _get_self_bounds(self) -> list[list[float | None]]:
        return [[None, None], [None, None]]

    def render(self, **kwargs: Any) -> None:
        """As folium's ``GeoJson.render`` and ``Layer.render`` (added to its parent when
        shown), but the script goes into the figure as plain text (:class:`RenderedText`):
        branca wraps each element's rendered script in a new template, so that the whole
        payload (hundreds of kB of coordinates) was compiled by Jinja at every render, 40 %
        of a map's render time, for nothing (the output is never a template)."""
        figure = self.get_root()
        if not isinstance(figure, Figure):
            raise TypeError("rendu impossible hors d'une figure")
        self.parent_map = get_obj_in_upper_tree(self, folium.Map)
        if self.show:
            self.add_child(ElementAddToElement(element_name=self.get_name(),
                                               element_parent_name=self._parent.get_name()),
                           name=self.get_name() + "_add")
        figure.script.add_child(RenderedText(self._template.module.script(self, kwargs)),
                                name=self.get_name())
        for child in self._children.values():
            child.render(**kwargs)


class RenderedText(Element):
    """Text already rendered, written out as it is: never compiled as a template."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def render(self, **kwargs: Any) -> str:
        """The text itself."""
        return self.text


def _table_js(rows: list[tuple[str, str]]) -> str:
    """JS expression building an HTML table from ``p`` (properties, pre-escaped)."""
    cells = "+".join(
        f"'<tr><th>'+{_js(_esc(label))}+'</th><td>'+(p.{key}==null?'':p.{key})+'</td></tr>'"
        for label, key in rows
    )
    return f"'<table>'+{cells}+'</table>'"


#: Option of ``L.geoJson`` holding the layer's tooltip (see :func:`_options`)
LAYER_TOOLTIP = "tipOf"


def _options(
    tooltip: str | None = None, popup: str | None = None, style: str | None = None,
    point: str | None = None, level: str | None = None, smooth: float | None = None,
    feature_tooltips: bool = False,
) -> str:
    """Options object of ``L.geoJson``: ``tooltip``/``popup`` are JS expressions of ``p``;
    ``level`` is set as property ``lvl`` of every feature (click-to-filter).

    The tooltip is the layer's own (:class:`CompactGeoJson` binds it once, a function of
    the feature under the pointer), not one per feature: at the national view the map has
    some 2,800 features, and a tooltip bound to each (its object, its listeners, its HTML
    built in advance) took a quarter of the time the browser spent building them (175 ms,
    135 without). A layer whose features go into a marker cluster takes
    ``feature_tooltips`` (the cluster, not the layer, is on the map: a layer's own tooltip
    would never open)."""
    each = "var p=f.properties;"
    if level:
        each += f"p.lvl={_js(level)};"
    if tooltip and feature_tooltips:
        each += f"l.bindTooltip({tooltip},{{sticky:true}});"
    if popup:
        each += f"l.bindPopup({popup},{{maxWidth:320}});"
    parts = [f"onEachFeature:function(f,l){{{each}}}"]
    if tooltip and not feature_tooltips:
        parts.append(f"{LAYER_TOOLTIP}:function(p){{return {tooltip};}}")
    if style:
        parts.append(f"style:{style}")
    if point:
        parts.append(f"pointToLayer:{point}")
    if smooth is not None:
        parts.append(f"smoothFactor:{smooth}")
    return "{" + ",".join(parts) + "}"


def _circle_js(radius: float | str, colour: str, fill_opacity: float = 0.7,
               stroke: str | None = None, weight: float = 1) -> str:
    line = _js(stroke or colour)
    return (f"function(f,ll){{var p=f.properties;return L.circleMarker(ll,{{radius:{radius},"
            f"color:{line},weight:{weight},fillColor:{_js(colour)},"
            f"fillOpacity:{fill_opacity}}});}}")


# --------------------------------------------------------------------------- legend


class Legend(MacroElement):
    """A Leaflet control (bottom right) holding pre-escaped legend HTML."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "bottomright"});
        {{ this.get_name() }}.onAdd = function (map) {
            var div = L.DomUtil.create("div", "territoires-legend");
            div.innerHTML = {{ this.html|tojson }} || window.__territoiresLegend || "";
            L.DomEvent.disableClickPropagation(div);
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str) -> None:
        super().__init__()
        self._name = "Legend"
        self.html = html_text


def legend_html(title: str, items: list[tuple[str, str]], note: str = "") -> str:
    """Legend block: escaped ``title`` and ``(colour, label)`` swatches."""
    rows = "".join(
        f'<div><span style="display:inline-block;width:14px;height:14px;margin-right:6px;'
        f'vertical-align:middle;border:1px solid #555;background:{_esc(colour)}"></span>'
        f"{_esc(label)}</div>"
        for colour, label in items
    )
    extra = f'<div style="margin-top:4px;font-size:10px">{_esc(note)}</div>' if note else ""
    return (
        '<div style="background:rgba(255,255,255,.92);padding:6px 8px;border-radius:4px;'
        'font:12px/1.4 sans-serif;max-width:260px">'
        f"<strong>{_esc(title)}</strong>{rows}{extra}</div>"
    )


# --------------------------------------------------------------------------- initiatives


def territory_points(display: Mapping[str, gpd.GeoDataFrame]) -> pd.DataFrame:
    """Representative point of every territory of the display layers:
    ``level, code, lat, lon``."""
    frames = []
    for level, layer in LEVEL_LAYER.items():
        gdf = display.get(layer)
        if gdf is None or gdf.empty:
            continue
        gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        pts = representative_points(gdf.geometry)
        frames.append(
            pd.DataFrame(
                {
                    "level": level,
                    "code": gdf[_key_col(level)].astype(str).to_numpy(),
                    "lat": np.round(shapely.get_y(pts), 5),
                    "lon": np.round(shapely.get_x(pts), 5),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["level", "code", "lat", "lon"])
    return pd.concat(frames, ignore_index=True).drop_duplicates(["level", "code"])


def initiative_points(catalogue: Catalogue, points: pd.DataFrame) -> pd.DataFrame:
    """One row per (initiative, territory) with a known point:
    ``id, title, theme, maturity, porteurs, level, code, lat, lon``."""
    cols = ["id", "title", "theme", "maturity", "porteurs", "level", "code", "lat", "lon"]
    ini = catalogue.initiatives
    if ini.empty or catalogue.territories.empty:
        return pd.DataFrame(columns=cols)
    terr = catalogue.territories[["initiative_id", "level", "code"]].astype(str)
    merged = terr.merge(points, on=["level", "code"], how="inner")
    orgs = catalogue.organisations
    porteurs = pd.Series(dtype=object)
    if not orgs.empty and not merged.empty:
        # only the initiatives drawn, names joined by str.join (not a Python lambda per
        # group: 0.5 s a rerun at 50,000 initiatives)
        drawn = orgs["initiative_id"].astype(str).isin(set(merged["initiative_id"]))
        sub = orgs.loc[drawn & (orgs["role"] == "porteur"), ["initiative_id", "name"]]
        if not sub.empty:
            porteurs = sub["name"].astype(str).groupby(
                sub["initiative_id"].astype(str).to_numpy(), sort=False).agg(", ".join)
    info = pd.DataFrame(
        {
            "id": ini["id"].astype(str).to_numpy(),
            "title": ini["title"].astype(str).to_numpy(),
            "theme": [
                (next(iter(t)) if t is not None and len(t) else "") for t in ini["themes"]
            ],
            "maturity": ini["maturity"].astype(str).to_numpy(),
        }
    )
    info["porteurs"] = info["id"].map(porteurs).fillna("")
    out = merged.merge(info, left_on="initiative_id", right_on="id", how="inner")
    return out[cols].reset_index(drop=True)


def _initiatives_layer(
    points: pd.DataFrame, colour_by: str, link_base: str,
) -> tuple[MarkerCluster, list[tuple[str, str]]]:
    """One clustered layer, one circle per (initiative, territory); popups built in the
    browser from the short properties ``t`` title, ``c`` theme, ``m`` maturity (indexes in
    label tables sent once), ``p`` porteurs, ``i`` URL-quoted id (all escaped here)."""
    if colour_by == "maturity":
        colours, vocab, column = MATURITY_COLOURS, MATURITY, "maturity"
    else:
        colours, vocab, column = THEME_COLOURS, THEMES, "theme"
    theme_pos = {c: i for i, c in enumerate(THEMES.codes)}
    maturity_pos = {c: i for i, c in enumerate(MATURITY.codes)}
    geoms = gpd.points_from_xy(points["lon"], points["lat"])
    payload = compact_rows(geoms, {
        "t": points["title"],
        "c": [theme_pos.get(str(t), -1) for t in points["theme"]],
        "m": [maturity_pos.get(str(m), -1) for m in points["maturity"]],
        "p": points["porteurs"],
        "i": [quote(str(i), safe="") for i in points["id"]],
    }, POINT_DECIMALS)
    themes = _js([_esc(THEMES.label_of(c)) for c in THEMES.codes])
    maturities = _js([_esc(MATURITY.label_of(c)) for c in MATURITY.codes])
    codes = THEMES.codes if column == "theme" else MATURITY.codes
    palette = _js([colours.get(c, "#555555") for c in codes])
    key = "c" if column == "theme" else "m"
    base = _js(_esc(link_base.rstrip("/")))
    popup = (f"'<b>'+p.t+'</b><br>Thème : '+({themes}[p.c]||'')"
             f"+'<br>Maturité : '+({maturities}[p.m]||'')"
             "+(p.p?'<br>Porteurs : '+p.p:'')"
             f"+'<br><a href=\"'+{base}+'/fiche?id='+p.i+'\" target=\"_top\">Voir la fiche</a>'")
    point = ("function(f,ll){var p=f.properties;return L.circleMarker(ll,{radius:7,"
             f"color:'#333333',weight:1,fillColor:({palette}[p.{key}]||'#555555'),"
             "fillOpacity:0.9});}")
    cluster = MarkerCluster(name="Initiatives", control=True)
    CompactGeoJson(payload, "Initiatives (points)",
                   _options(tooltip="p.t", popup=popup, point=point, feature_tooltips=True),
                   control=False).add_to(cluster)
    used = [c for c in vocab.codes if c in set(points[column])]
    return cluster, [(colours.get(c, "#555555"), vocab.label_of(c)) for c in used]


def _aggregated_initiatives_layer(
    points: pd.DataFrame, units: gpd.GeoDataFrame, level: str, link_base: str,
) -> tuple[CompactGeoJson | None, str]:
    """One circle per territory of ``units`` (départements or communes) holding initiative
    points: ``n`` distinct initiatives, ``nom``, ``q`` the catalogue filter (escaped)."""
    key = _key_col(level)
    units = units[units.geometry.notna() & ~units.geometry.is_empty][[key, "nom", "geometry"]]
    # initiative points are longitude/latitude (EPSG:4326), like every display layer; the
    # join runs on the bare geometries (see representative_points on CRS comparisons)
    pts = shapely.points(points["lon"].to_numpy(dtype=float), points["lat"].to_numpy(dtype=float))
    p_idx, u_idx = shapely.STRtree(units.geometry.to_numpy()).query(pts, predicate="intersects")
    if len(p_idx) == 0:
        return None, ""
    unit_codes = units[key].astype(str).to_numpy(dtype=object)
    pairs = pd.DataFrame({"unit": unit_codes[u_idx],
                          "id": points["id"].astype(str).to_numpy(dtype=object)[p_idx]})
    counts = pairs.drop_duplicates().groupby("unit").size()
    shown = units[units[key].astype(str).isin(set(counts.index))].copy()
    shown = shown.drop_duplicates(key)
    shown["n"] = shown[key].astype(str).map(counts).fillna(0).astype(int)
    payload = compact_rows(representative_points(shown.geometry), {
        "n": shown["n"],
        "nom": shown["nom"].astype(str),
        "q": [quote(f"{level}:{c}", safe=":") for c in shown[key].astype(str)],
    }, POINT_DECIMALS)
    base = _js(_esc(link_base.rstrip("/")))
    popup = ("'<b>'+p.nom+'</b><br>'+p.n.toLocaleString('fr-FR')+' initiative'+(p.n>1?'s':'')"
             f"+'<br><a href=\"'+{base}+'/catalogue?t='+p.q+'\" target=\"_top\">"
             "Voir dans le catalogue</a>'")
    tooltip = "p.nom+' : '+p.n.toLocaleString('fr-FR')+' initiative'+(p.n>1?'s':'')"
    point = _circle_js("Math.min(26,5+2.2*Math.sqrt(p.n))", "#08519c", 0.6, "#08306b")
    layer = CompactGeoJson(payload, "Initiatives",
                           _options(tooltip=tooltip, popup=popup, point=point))
    return layer, f"Initiatives regroupées {_PER_LEVEL[level]} (cercle ∝ nombre)"


# --------------------------------------------------------------------------- map


def _choropleth_layer(
    display: gpd.GeoDataFrame, level: str, values: pd.DataFrame, measure: str, area: Area,
    decimals: int = LOCAL_DECIMALS, memo: PayloadMemo | None = None, source: str = "",
) -> tuple[CompactGeoJson | None, list[tuple[str, str]]]:
    """The choropleth of ``measure`` over the units of ``display`` (``source``: its
    display layer, for ``memo``), and its legend items."""
    key = _key_col(level)
    gdf = display[[key, "nom", "geometry"]].copy()
    gdf[key] = gdf[key].astype(str)
    vals = values.copy()
    vals["code"] = vals["code"].astype(str)
    for col in ("qpv_population", "qpv_share_reached"):
        if col not in vals.columns:
            vals[col] = np.nan
    gdf = gdf.merge(
        vals[["code", "initiatives", "funding_eur", "funding_per_inhabitant",
              "qpv_population", "qpv_share_reached"]],
        left_on=key, right_on="code", how="inner",
    )
    if measure in QPV_MEASURES:
        # a share of the QPV population: only the units with known QPV inhabitants
        gdf = gdf[gdf["qpv_population"].notna()]
    elif area.national and level in ("commune", "qpv"):
        # never all the communes (or QPV) of France: only those with something to show
        gdf = gdf[(gdf["initiatives"].fillna(0) > 0) | (gdf["funding_eur"].fillna(0) > 0)]
    if gdf.empty:
        return None, []
    if measure in QPV_MEASURES:
        breaks = list(SHARE_BREAKS)  # fixed classes: shares compare across views
    else:
        breaks = class_breaks(gdf[measure], integer=measure == "initiatives")
    classes = classify(list(gdf[measure]), breaks)
    n = len(breaks) - 1
    palette = PALETTE[len(PALETTE) - n:] if 0 < n < len(PALETTE) else PALETTE
    # geometry and names (the same whatever the filters: the app may serve them as a file)
    # apart from the values; the features without a drawable geometry are left out of both
    units = gdf  # all the units, before those without a drawable geometry are left out

    def build() -> Payload:
        encoded = [encode_geometry(g, decimals) for g in units.geometry.to_numpy()]
        kept = np.array([g is not None for g in encoded], dtype=bool)
        rows = _compact([g for g in encoded if g is not None],
                        {"nom": units["nom"].astype(str)[kept],
                         "code": units[key][kept]}, decimals)
        return Payload.of(rows, kept)

    payload = _payload(memo, ("choropleth", source, level, decimals, tuple(units[key])),
                       build)
    drawable = payload.kept
    gdf = gdf[drawable]
    classes = [c for c, keep in zip(classes, drawable, strict=True) if keep]
    columns = {
        "k": classes,
        # the colour of each unit, not the palette in the style: the layer's options (its
        # key in the map frame) stay the same when a filter change changes the classes
        "c": [NO_DATA_COLOUR if c == -2 else ZERO_COLOUR if c == -1 else palette[c]
              for c in classes],
        "ini": [format_measure(v, "initiatives") for v in gdf["initiatives"]],
        "fin": [format_measure(v, "funding_eur") for v in gdf["funding_eur"]],
        "hab": [format_measure(v, "funding_per_inhabitant") for v in gdf["funding_per_inhabitant"]],
        "qp": [format_measure(v, "qpv_population") if pd.notna(v) else "inconnue"
               for v in gdf["qpv_population"]],
        "qs": [format_measure(v, "qpv_share_reached") for v in gdf["qpv_share_reached"]],
    }
    escaped = [_prop_values(v) for v in columns.values()]
    values = {"k": list(columns), "f": [list(row) for row in zip(*escaped, strict=True)]}
    # the class and its colour are computed here
    style = ("function(f){return{fillColor:f.properties.c,color:'#666666',weight:0.5,"
             "fillOpacity:0.75};}")
    tooltip = _table_js([(TERRITORY_LEVELS.label_of(level), "nom"), ("Code", "code"),
                         ("Initiatives", "ini"), ("Financements", "fin"),
                         ("Par habitant", "hab"), ("Habitants des QPV", "qp"),
                         ("Part touchée", "qs")])
    layer = CompactGeoJson(
        payload, _esc(f"{CHOROPLETH_LEVELS[level]} — {MEASURES[measure].lower()}"),
        _options(tooltip=tooltip, style=style, level=level, smooth=1.0), values=values,
    )
    # the rows are the units of the area (not those with something to show): the same
    # geometry file for every filter of the view
    layer.shareable = not (measure in QPV_MEASURES
                           or (area.national and level in ("commune", "qpv")))
    labels = class_labels(breaks, measure)
    items = [(palette[i], label) for i, label in enumerate(labels)]
    items.append((ZERO_COLOUR, {"initiatives": "Aucun", "qpv_share_reached": "0 %"}.get(
        measure, "0 €")))
    if any(c == -2 for c in classes):
        items.append((NO_DATA_COLOUR, "Inconnue" if measure in QPV_MEASURES
                      else "Non renseigné"))
    return layer, items


def table_rows(values: pd.DataFrame, area: Area, level: str, measure: str) -> pd.DataFrame:
    """Rows of :func:`territoires.analysis.queries.aggregate` shown in the table under the map: the
    same as the choropleth (units with known QPV inhabitants for a QPV measure; nationally,
    communes and QPV with something to show)."""
    if measure in QPV_MEASURES and "qpv_population" in values.columns:
        return values[values["qpv_population"].notna()]
    if area.national and level in ("commune", "qpv"):
        return values[(values["initiatives"] > 0) | (values["funding_eur"] > 0)]
    return values


def padded_bounds(bounds: tuple[float, float, float, float],
                  minimum: float = MIN_FIT_SPAN) -> tuple[float, float, float, float]:
    """``bounds`` (minx, miny, maxx, maxy) widened to at least ``minimum`` degrees each way
    around their centre (a single point, a tiny QPV)."""
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    hx, hy = max((maxx - minx) / 2, minimum / 2), max((maxy - miny) / 2, minimum / 2)
    return cx - hx, cy - hy, cx + hx, cy + hy


def view_for(bounds: tuple[float, float, float, float] | None) -> tuple[tuple[float, float], int]:
    """Centre (lat, lon) and zoom showing ``bounds`` (minx, miny, maxx, maxy)."""
    if bounds is None or not all(np.isfinite(bounds)):
        return FRANCE_CENTER, FRANCE_ZOOM
    minx, miny, maxx, maxy = bounds
    span = max(maxx - minx, (maxy - miny) * 1.4, 1e-4)
    zoom = int(max(5, min(14, math.floor(math.log2(360 / span)) + 1)))
    return ((miny + maxy) / 2, (minx + maxx) / 2), zoom


def _dep_of(code_insee: str) -> str:
    """Département code of a commune code (3 characters overseas)."""
    return code_insee[:3] if code_insee.startswith("97") else code_insee[:2]


def _in_area(gdf: gpd.GeoDataFrame, column: str, codes: frozenset[str]) -> gpd.GeoDataFrame:
    if column not in gdf.columns:
        return gdf.iloc[0:0]
    col = gdf[column]
    if col.dtype == object and len(col) and isinstance(col.iloc[0], (list, np.ndarray)):
        mask = [any(str(c) in codes for c in v) if v is not None else False for v in col]
        return gdf[mask]
    return gdf[col.astype(str).isin(codes)]


def area_bounds(local: Mapping[str, gpd.GeoDataFrame], area: Area) -> tuple | None:
    """Bounds of the area's communes (or QPV) in the display layers."""
    if area.national:
        return None
    parts = []
    if area.communes and "communes" in local:
        parts.append(_in_area(local["communes"], "code_insee", area.communes))
    if area.qpv and "qpv" in local:
        parts.append(_in_area(local["qpv"], "code_qp", area.qpv))
    parts = [p[p.geometry.notna() & ~p.geometry.is_empty] for p in parts]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return None
    bounds = np.array([p.total_bounds for p in parts])
    return (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())


def base_map(spec: MapSpec, bounds: tuple | None = None, stable: bool = False) -> folium.Map:
    """The map without its data layers: tiles, scale, the (empty) legend control and the
    scripts every layer may need (MarkerCluster). With ``stable`` its script is the same
    for every ``spec`` of a view kind (France view; centre and zoom are sent apart), so
    that the map frame stays the same and only swaps the layers
    (:func:`dynamic_map`)."""
    if stable:
        center, zoom = FRANCE_CENTER, FRANCE_ZOOM
    elif spec.center is not None and spec.zoom is not None:
        center, zoom = spec.center, spec.zoom
    else:
        center, zoom = view_for(bounds)
    m = folium.Map(location=list(center), zoom_start=zoom, tiles=None, control_scale=True,
                   prefer_canvas=True, max_zoom=MAX_ZOOM)
    folium.TileLayer(TILES_URL, attr=TILES_ATTRIBUTION, name="Fond OpenStreetMap",
                     control=False, max_zoom=MAX_ZOOM).add_to(m)
    if spec.fit and not stable:
        # after the tile layer, and never on a zero-size box: Leaflet fitting a single point
        # without a maximum zoom computes an infinite zoom ("Invalid LatLng (NaN, NaN)");
        # not animated: Leaflet would zoom from the first view to the fitted one in 250 ms,
        # fetching the tiles of both and drawing every layer twice
        minx, miny, maxx, maxy = padded_bounds(bounds if bounds is not None else FRANCE_BOUNDS)
        fit = folium.map.FitBounds([[miny, minx], [maxy, maxx]], padding=(10, 10),
                                   max_zoom=FIT_MAX_ZOOM)
        fit.options["animate"] = False
        fit.add_to(m)
    _PluginScripts().add_to(m)
    return m


@dataclass
class MapLayers:
    """The data layers of a map (bottom first) and its legend HTML (escaped)."""

    layers: list[folium.map.Layer]
    legend: str


def map_layers(
    national: Mapping[str, gpd.GeoDataFrame],
    local: Mapping[str, gpd.GeoDataFrame],
    spec: MapSpec,
    extra_layers: Iterable[folium.map.Layer] = (),
    memo: PayloadMemo | None = None,
    france: Mapping[str, gpd.GeoDataFrame] | None = None,
) -> MapLayers:
    """The layers of the dashboard map (what changes with the filters and the measure):
    choropleth, outlines, QPV, contracts and cités, initiatives, then ``extra_layers``;
    and the legend (see :func:`build_map`). ``memo``: the reference layers' payloads
    already built from these ``national`` and ``local`` layers (see :class:`PayloadMemo`).
    ``france``: the display layers of the map of all France (the "france" level: régions
    and départements simplified further), drawn instead of ``national``'s at that view."""

    def source(layers: Mapping[str, gpd.GeoDataFrame], name: str) -> str:
        kind = ("france" if layers is france else "national" if layers is national
                else "local")
        return f"{kind}:{name}"

    area = spec.area
    # régions and départements of the whole of France: the coarser ones if given
    outer = france if (area.national and france is not None) else national
    layers: list[folium.map.Layer] = []
    legend_blocks: list[str] = []
    decimals = NATIONAL_DECIMALS if area.national else LOCAL_DECIMALS
    # large areas (a département, a région) use the national simplification
    detail = local if len(area.communes or ()) <= LOCAL_MAX_COMMUNES else national

    # choropleth (bottom); it stands for the outline layer of its level
    drawn: str | None = None
    if spec.choropleth_level and spec.values is not None and not spec.values.empty:
        level = spec.choropleth_level
        source_layers = (outer if (area.national and level == "departement")
                         else national if (area.national and level == "epci") else detail)
        layer_name = LEVEL_LAYER[level]
        gdf = source_layers.get(layer_name, national.get(layer_name))
        if gdf is not None:
            origin = source(source_layers if layer_name in source_layers else national,
                            layer_name)
            layer, items = _choropleth_layer(gdf, level, spec.values, spec.measure, area,
                                             decimals, memo, origin)
            if layer is not None:
                layers.append(layer)
                drawn = level
                legend_blocks.append(legend_html(
                    f"{MEASURES[spec.measure]} {_PER_LEVEL[level]}", items))

    # outlines: of the area only when a territory is selected
    deps = outer.get("departements")
    regions = outer.get("regions")
    if not area.national and deps is not None:
        dep_codes = frozenset(_dep_of(c) for c in area.communes or ())
        deps = _in_area(deps, "code_dep", dep_codes)
        if regions is not None:
            regions = _in_area(regions, "code_reg",
                               frozenset(deps["code_reg"].astype(str)))
    if regions is not None:
        lay = _outline_layer(regions, "region", "Régions",
                             {"color": "#222222", "weight": 2, "fill": False}, clickable=False,
                             decimals=NATIONAL_DECIMALS, memo=memo,
                             source=source(outer, "regions"))
        if lay is not None:
            layers.append(lay)
    if deps is not None and drawn != "departement":
        lay = _outline_layer(deps, "departement", "Départements",
                             {"color": "#555555", "weight": 1, "fill": False,
                              "dashArray": "4 3"}, decimals=NATIONAL_DECIMALS, memo=memo,
                            source=source(outer, "departements"))
        if lay is not None:
            layers.append(lay)

    if (not area.national and area.communes and drawn != "commune"
            and not (spec.compact and len(area.communes) > COMPACT_MAX_COMMUNES)):
        holder = detail if "communes" in detail else national
        communes = _in_area(holder.get("communes"), "code_insee", area.communes)
        lay = _outline_layer(communes, "commune", "Communes de la zone",
                             {"color": "#3182bd", "weight": 1, "fill": True,
                              "fillOpacity": 0.03}, decimals=decimals, memo=memo,
                             source=source(holder, "communes"))
        if lay is not None:
            layers.append(lay)

    # QPV: polygons where known, centroids elsewhere
    qpv_from = national if area.national else local
    qpv_src = qpv_from.get("qpv")
    if qpv_src is not None:
        origin = source(qpv_from, "qpv")
        qpv = qpv_src if area.national else _in_area(qpv_src, "code_qp", area.qpv or frozenset())
        is_poly = has_polygon(qpv)
        if area.national:
            lay = _points_layer(qpv, "qpv", "QPV", "#6a51a3", 3, memo=memo, source=origin)
            if lay is not None:
                layers.append(lay)
        else:
            group = folium.FeatureGroup(name="QPV")
            poly = _outline_layer(qpv[is_poly], "qpv", "QPV (contours)",
                                  {"color": "#54278f", "weight": 1.5, "fillColor": "#9e9ac8",
                                   "fillOpacity": 0.35}, decimals=5, memo=memo,
                                  source=origin)
            pts = _points_layer(qpv[~is_poly], "qpv", "QPV (centroïdes)", "#6a51a3", 5,
                                memo=memo, source=origin)
            for lay in (poly, pts):
                if lay is not None:
                    lay.control = False
                    lay.add_to(group)
            layers.append(group)

    for name, level, colour, column, codes in (
        ("contrats_ville", "contrat_ville", "#e6550d", "code_dep", None),
        ("cites_educatives", "cite_educative", "#31a354", "communes", area.communes),
    ):
        holder = national if name in national else local
        gdf = holder.get(name)
        if gdf is None:
            continue
        if not area.national:
            if codes is None:
                deps_in = frozenset(_dep_of(c) for c in (area.communes or ()))
                gdf = _in_area(gdf, column, deps_in)
            else:
                gdf = _in_area(gdf, column, codes)
        label = "Contrats de ville" if level == "contrat_ville" else "Cités éducatives"
        lay = _points_layer(gdf, level, label, colour, 6, show=level == "cite_educative",
                            memo=memo, source=source(holder, name))
        if lay is not None:
            layers.append(lay)

    if spec.initiatives is not None and not spec.initiatives.empty:
        ini = spec.initiatives
        units = None
        if len(ini) > MAX_INITIATIVE_POINTS:
            # too many circles: one per département (France) or commune (area) instead
            if area.national:
                units, unit_level = outer.get("departements"), "departement"
            else:
                units = _in_area(detail.get("communes", national.get("communes")),
                                 "code_insee", area.communes or frozenset())
                unit_level = "commune"
        if units is not None and not units.empty:
            layer, title = _aggregated_initiatives_layer(ini, units, unit_level,
                                                         spec.link_base)
            if layer is not None:
                layers.append(layer)
                legend_blocks.append(legend_html(title, [("#08519c", "Initiatives")]))
        else:
            cluster, items = _initiatives_layer(ini, spec.colour_by, spec.link_base)
            layers.append(cluster)
            legend_blocks.append(legend_html(
                f"Initiatives par {COLOUR_BY[spec.colour_by].lower()}", items))

    layers.extend(extra_layers)
    credit = ('<div style="background:rgba(255,255,255,.92);padding:3px 8px;border-radius:4px;'
              'font:10px/1.3 sans-serif;margin-top:4px;max-width:260px">'
              f"{_esc(SOURCES_CREDIT)}</div>")
    return MapLayers(layers, "".join(legend_blocks) + credit)


def build_map(
    national: Mapping[str, gpd.GeoDataFrame],
    local: Mapping[str, gpd.GeoDataFrame],
    spec: MapSpec,
    extra_layers: Iterable[folium.map.Layer] = (),
    france: Mapping[str, gpd.GeoDataFrame] | None = None,
) -> folium.Map:
    """The dashboard map in one piece (small fitted maps, exports, tests).

    ``national`` and ``local`` are the display layers by name (see
    :func:`territoires.pipeline.layers.load_display`); régions and départements come from
    ``national``,
    communes and QPV of the area from ``local`` (national QPV are drawn as points).
    ``extra_layers`` (e.g. highlighted territories) go on top, before the layer control:
    a layer added after the control would be referenced by its script before it exists, and
    the whole map would fail to draw. ``france``: see :func:`map_layers`.
    """
    given = spec.center is not None and spec.zoom is not None
    bounds = area_bounds(local, spec.area) if spec.fit or not given else None
    m = base_map(spec, bounds)
    parts = map_layers(national, local, spec, extra_layers, france=france)
    for layer in parts.layers:
        layer.add_to(m)
    folium.LayerControl(collapsed=spec.compact, position="topright").add_to(m)
    Legend(parts.legend).add_to(m)
    return m


@dataclass
class DynamicMap:
    """A map split for the map frame (``app.map_component``): ``base`` (same script for
    every filter, so the same frame), ``groups`` (one feature group per layer, named as in
    the layer control, sent as ``st_folium`` sends ``feature_group_to_add``) and
    ``control`` (``layer_control``)."""

    base: folium.Map
    groups: list[folium.FeatureGroup]
    control: folium.LayerControl


def dynamic_map(
    national: Mapping[str, gpd.GeoDataFrame],
    local: Mapping[str, gpd.GeoDataFrame],
    spec: MapSpec,
    memo: PayloadMemo | None = None,
    france: Mapping[str, gpd.GeoDataFrame] | None = None,
) -> DynamicMap:
    """The dashboard map as a stable base and the layers that change (see
    :class:`DynamicMap`): the map frame swaps the layers, the layer control and the
    legend in the same Leaflet map instead of loading a new frame. The view (centre, zoom)
    is passed to the frame apart. ``memo``, ``france``: see :func:`map_layers`."""
    base = base_map(spec, stable=True)
    Legend("").add_to(base)
    parts = map_layers(national, local, spec, memo=memo, france=france)
    groups: list[folium.FeatureGroup] = []
    for layer in parts.layers:
        group = folium.FeatureGroup(name=layer.layer_name, control=layer.control,
                                    show=layer.show)
        layer.control = False
        layer.show = True
        layer.add_to(group)
        groups.append(group)
    holder = folium.FeatureGroup(name="Légende", control=False)
    LegendUpdate(parts.legend).add_to(holder)
    groups.append(holder)
    return DynamicMap(base, groups, SwapLayerControl(collapsed=spec.compact,
                                                     position="topright"))


class SwapLayerControl(folium.LayerControl):
    """The layer control of a :class:`DynamicMap`: the map frame adds every feature
    group to the map, so the groups not shown at first (``show=False``) are taken off
    again here, after the control that lists them is made."""

    _template = FoliumTemplate(
        """
        {% macro script(this,kwargs) %}
            var {{ this.get_name() }}_layers = {
                base_layers : {
                    {%- for key, val in this.base_layers.items() %}
                    {{ key|tojson }} : {{val}},
                    {%- endfor %}
                },
                overlays :  {
                    {%- for key, val in this.overlays.items() %}
                    {{ key|tojson }} : {{val}},
                    {%- endfor %}
                },
            };
            let {{ this.get_name() }} = L.control.layers(
                {{ this.get_name() }}_layers.base_layers,
                {{ this.get_name() }}_layers.overlays,
                {{ this.options|tojavascript }}
            ).addTo({{this._parent.get_name()}});
            {%- for val in this.hidden %}
            {{ this._parent.get_name() }}.removeLayer({{ val }});
            {%- endfor %}
        {% endmacro %}
        """
    )

    def render(self, **kwargs: Any) -> None:
        """List the layers (as folium does) and the ones to hide."""
        self.hidden = [item.get_name() for item in self._parent._children.values()
                       if isinstance(item, folium.map.Layer) and not item.show
                       and item is not self]
        super().render(**kwargs)


class LegendUpdate(MacroElement):
    """Sets the content of the map's :class:`Legend` (pre-escaped HTML, passed as a JSON
    string, never as template source). The map frame counts its draws itself
    (``window.__territoiresDraws``, read by the browser tests and benchmarks): a redraw
    that leaves the legend as it was does not run this again."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.__territoiresLegend = {{ this.html|tojson }};
        document.querySelectorAll(".territoires-legend").forEach(function (d) {
            d.innerHTML = window.__territoiresLegend;
        });
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str) -> None:
        super().__init__()
        self._name = "LegendUpdate"
        self.html = html_text


class _PluginScripts(JSCSSMixin):
    """The scripts and styles of the plugins a layer may use (MarkerCluster), loaded with
    the base map: the map frame loads scripts only with its first drawing."""

    _template = Template("")

    def __init__(self) -> None:
        super().__init__()
        self._name = "PluginScripts"
        self.default_js = list(MarkerCluster.default_js)
        self.default_css = list(MarkerCluster.default_css)


class _Rendered(Element):
    """Text already produced by an element's template: written out as is, never parsed as a
    template again."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def render(self, **kwargs: Any) -> str:
        """The text itself."""
        return self.text


def map_html(m: folium.Map) -> str:
    """The full HTML page of a map (what the browser receives), each element's template
    rendered once: branca would render the output of every element again as Jinja source,
    so text of the map (catalogue, layers) could be run as a template; here that output is
    written out as text instead."""
    figure = m.get_root()
    for child in list(figure._children.values()):
        child.render()
    for section in (figure.header, figure.html, figure.script):
        for name, child in list(section._children.items()):
            if type(child) is Element and child._template_str is not None:
                section._children[name] = _Rendered(child._template_str)
    return figure._template.render(this=figure, kwargs={})


def naive_map(layers: Mapping[str, gpd.GeoDataFrame],
              markers: pd.DataFrame | None = None) -> folium.Map:
    """Reference for benchmarks/tests, written without care: every layer passed whole (all
    its properties, full geometry) to ``folium.GeoJson`` with a tooltip of all its fields,
    plus one ``folium.Marker`` with a popup per row of ``markers`` (``lat, lon, title``).
    It draws in Leaflet (multi-part points are split into points, empty geometries left
    out), so that its render time in a browser can be measured beside ours."""
    m = folium.Map(location=list(FRANCE_CENTER), zoom_start=FRANCE_ZOOM)
    for name, gdf in layers.items():
        gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        if gdf.empty:
            continue
        if gdf.geometry.geom_type.isin(["MultiPoint", "GeometryCollection"]).any():
            # Leaflet's GeoJSON layer makes a MultiPoint a group of markers, which folium's
            # tooltip cannot bind to ("t.getElement is not a function"): one point each
            gdf = gdf.explode(index_parts=False)
            gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        fields = [c for c in gdf.columns if c != gdf.geometry.name]
        folium.GeoJson(gdf.to_json(default=str), name=name,
                       style_function=lambda _f: {"color": "#333333"},
                       tooltip=folium.GeoJsonTooltip(fields=fields)).add_to(m)
    if markers is not None and not markers.empty:
        group = folium.FeatureGroup(name="initiatives").add_to(m)
        for lat, lon, title in zip(markers["lat"], markers["lon"], markers["title"],
                                   strict=True):
            folium.Marker([lat, lon], popup=folium.Popup(_esc(title))).add_to(group)
    folium.LayerControl().add_to(m)
    return m


def with_qpv_centroids(display_qpv: gpd.GeoDataFrame, full_qpv: gpd.GeoDataFrame
                       ) -> gpd.GeoDataFrame:
    """The display QPV layer completed with the QPV it lacks (those known only by a centroid
    in the full layer), so that the map shows every QPV: polygon, else point."""
    key = _key_col("qpv")
    missing = full_qpv[~full_qpv[key].astype(str).isin(set(display_qpv[key].astype(str)))]
    missing = missing[missing.geometry.notna() & ~missing.geometry.is_empty]
    if missing.empty:
        return display_qpv
    missing = missing.to_crs(display_qpv.crs) if display_qpv.crs is not None else missing
    return gpd.GeoDataFrame(pd.concat([display_qpv, missing[display_qpv.columns]],
                                      ignore_index=True),
                            geometry=display_qpv.geometry.name, crs=display_qpv.crs)


def clicked_territory(returned: Mapping[str, object] | None) -> tuple[str, str] | None:
    """``(level, code)`` of the territory clicked on the map, from st_folium's return value
    (``last_active_drawing``), or None."""
    if not returned:
        return None
    drawing = returned.get("last_active_drawing")
    if not isinstance(drawing, Mapping):
        return None
    props = drawing.get("properties")
    if not isinstance(props, Mapping):
        return None
    level, code = props.get("lvl"), props.get("code")
    if not isinstance(level, str) or not isinstance(code, str) or level not in LEVEL_LAYER:
        return None
    return level, html.unescape(code)

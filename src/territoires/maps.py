"""Folium maps of the dashboard: pure functions from display layers and tables to a map.

Only the display layers (simplified, rounded: see :mod:`territoires.layers`) reach the map,
with the few properties the tooltips need. Every string property is ``html.escape``-d before
it is embedded, because Leaflet tooltips and popups render properties as HTML. Styles are
grouped (one style per class, feature ids listed once) instead of one style per feature.

Every clickable feature carries ``lvl`` (territory level) and ``code`` properties so the page
can turn a click (streamlit-folium's ``last_active_drawing``) into a territory filter.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.plugins import MarkerCluster
from jinja2 import Template

from territoires.formatting import fmt_eur, fmt_eur_short, fmt_int
from territoires.layers import LAYER_SCHEMAS, LEVEL_LAYER
from territoires.model import Catalogue
from territoires.vocab import MATURITY, TERRITORY_LEVELS, THEMES

#: Choropleth measures (columns of :func:`territoires.queries.aggregate`) -> French label.
MEASURES: dict[str, str] = {
    "initiatives": "Nombre d'initiatives",
    "funding_eur": "Financements (€)",
    "funding_per_inhabitant": "Financement par habitant (€)",
}
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
#: Areas with more communes than this are drawn from the "national" display layers.
LOCAL_MAX_COMMUNES = 150
FRANCE_CENTER: tuple[float, float] = (46.6, 2.4)
FRANCE_ZOOM = 6


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
    values are classed apart (see :func:`classify`). Empty list when no positive value."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    if arr.size == 0:
        return []
    edges = np.quantile(arr, np.linspace(0, 1, k + 1))
    if integer:
        edges = np.round(edges)
    unique = sorted(set(float(e) for e in edges))
    if len(unique) == 1:
        unique = [unique[0], unique[0]]
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
        return "non renseigné"
    if measure == "initiatives":
        return fmt_int(value)
    if measure == "funding_per_inhabitant":
        return fmt_eur(value, 2)
    return fmt_eur(value)


def class_labels(breaks: list[float], measure: str) -> list[str]:
    """French labels of the classes defined by ``breaks``."""

    def fmt(v: float) -> str:
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


def _esc(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def feature_collection(
    gdf: gpd.GeoDataFrame, properties: Mapping[str, Iterable[object]], ids: Iterable[str],
    decimals: int | None = None,
) -> dict:
    """A GeoJSON FeatureCollection of ``gdf``'s geometries with the given ``properties``
    (strings are HTML-escaped; numbers kept) and feature ``ids``; null/empty geometries are
    dropped; coordinates are rounded to ``decimals`` places when given."""
    geoms = gdf.geometry.to_numpy()
    if decimals is not None:
        geoms = shapely.transform(geoms, lambda c: np.round(c, decimals))
    texts = shapely.to_geojson(geoms)
    cols = {k: list(v) for k, v in properties.items()}
    features = []
    for i, (fid, geom, text) in enumerate(zip(ids, geoms, texts, strict=True)):
        if geom is None or geom.is_empty or text is None:
            continue
        props: dict[str, object] = {}
        for key, col in cols.items():
            value = col[i]
            if isinstance(value, (bool, np.bool_)):
                props[key] = bool(value)
            elif isinstance(value, (int, np.integer)):
                props[key] = int(value)
            elif isinstance(value, (float, np.floating)):
                props[key] = None if math.isnan(value) else float(value)
            else:
                props[key] = _esc(value)
        features.append(
            {"type": "Feature", "id": str(fid), "properties": props, "geometry": json.loads(text)}
        )
    return {"type": "FeatureCollection", "features": features}


def _tooltip(fields: list[str], aliases: list[str]) -> folium.GeoJsonTooltip:
    return folium.GeoJsonTooltip(
        fields=fields, aliases=[_esc(a) for a in aliases], sticky=True, localize=False
    )


def _key_col(level: str) -> str:
    return LAYER_SCHEMAS[LEVEL_LAYER[level]][0]


def _outline_layer(
    gdf: gpd.GeoDataFrame, level: str, name: str, style: dict, show: bool = True,
    clickable: bool = True, decimals: int | None = None,
) -> folium.GeoJson | None:
    if gdf.empty:
        return None
    key = _key_col(level)
    codes = gdf[key].astype(str)
    props = {"nom": gdf["nom"].astype(str), "code": codes}
    if clickable:
        props["lvl"] = [level] * len(gdf)
    data = feature_collection(gdf, props, codes, decimals)
    if not data["features"]:
        return None
    return folium.GeoJson(
        data,
        name=_esc(name),
        style_function=lambda _f, s=style: s,
        tooltip=_tooltip(["nom", "code"], [TERRITORY_LEVELS.label_of(level), "Code"]),
        show=show,
        smooth_factor=1.0,
    )


def _points_layer(
    gdf: gpd.GeoDataFrame, level: str, name: str, colour: str, radius: int, show: bool = True,
) -> folium.GeoJson | None:
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if gdf.empty:
        return None
    if not gdf.geometry.geom_type.isin(["Point", "MultiPoint"]).all():
        gdf = gdf.set_geometry(gdf.geometry.representative_point())
    key = _key_col(level)
    codes = gdf[key].astype(str)
    data = feature_collection(
        gdf, {"nom": gdf["nom"].astype(str), "code": codes, "lvl": [level] * len(gdf)}, codes
    )
    style = {"color": colour, "fillColor": colour, "fillOpacity": 0.7, "weight": 1}
    return folium.GeoJson(
        data,
        name=_esc(name),
        marker=folium.CircleMarker(radius=radius),
        style_function=lambda _f, s=style: s,
        tooltip=_tooltip(["nom", "code"], [TERRITORY_LEVELS.label_of(level), "Code"]),
        show=show,
    )


# --------------------------------------------------------------------------- legend


class Legend(MacroElement):
    """A Leaflet control (bottom right) holding pre-escaped legend HTML."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "bottomright"});
        {{ this.get_name() }}.onAdd = function (map) {
            var div = L.DomUtil.create("div", "territoires-legend");
            div.innerHTML = {{ this.html|tojson }};
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
        pts = gdf.geometry.representative_point()
        frames.append(
            pd.DataFrame(
                {
                    "level": level,
                    "code": gdf[_key_col(level)].astype(str).to_numpy(),
                    "lat": pts.y.round(5).to_numpy(),
                    "lon": pts.x.round(5).to_numpy(),
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
    porteurs = (
        orgs[orgs["role"] == "porteur"].groupby("initiative_id")["name"].agg(
            lambda s: ", ".join(map(str, s))
        )
        if not orgs.empty
        else pd.Series(dtype=object)
    )
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


def _initiatives_layer(points: pd.DataFrame, colour_by: str, link_base: str) -> tuple[
    MarkerCluster, list[tuple[str, str]]
]:
    if colour_by == "maturity":
        colours, vocab, column = MATURITY_COLOURS, MATURITY, "maturity"
    else:
        colours, vocab, column = THEME_COLOURS, THEMES, "theme"
    gdf = gpd.GeoDataFrame(
        points, geometry=gpd.points_from_xy(points["lon"], points["lat"]), crs="EPSG:4326"
    )
    base = link_base.rstrip("/")
    links = [
        f'<a href="{_esc(base)}/fiche?id={_esc(quote(str(i), safe=""))}" target="_top">'
        "Voir la fiche</a>"
        for i in points["id"]
    ]
    ids = [str(n) for n in range(len(points))]
    data = feature_collection(
        gdf,
        {
            "titre": points["title"],
            "theme": [THEMES.label_of(t) for t in points["theme"]],
            "maturite": [MATURITY.label_of(m) for m in points["maturity"]],
            "porteurs": points["porteurs"],
        },
        ids,
    )
    # The link is built from escaped parts: it is the only property holding markup.
    for feature, link in zip(data["features"], links, strict=True):
        feature["properties"]["fiche"] = link

    colour_of = {fid: colours.get(str(cat), "#555555") for fid, cat in zip(ids, points[column],
                                                                          strict=True)}

    def style(feature: dict) -> dict:
        colour = colour_of.get(str(feature["id"]), "#555555")
        return {"color": "#333333", "weight": 1, "fillColor": colour, "fillOpacity": 0.9}

    cluster = MarkerCluster(name="Initiatives", control=True)
    folium.GeoJson(
        data,
        name="Initiatives (points)",
        marker=folium.CircleMarker(radius=7),
        style_function=style,
        tooltip=_tooltip(["titre"], ["Initiative"]),
        popup=folium.GeoJsonPopup(
            fields=["titre", "theme", "maturite", "porteurs", "fiche"],
            aliases=["Initiative", "Thème", "Maturité", "Porteurs", "Fiche"],
            labels=True,
        ),
        control=False,
    ).add_to(cluster)
    used = [c for c in vocab.codes if c in set(points[column])]
    return cluster, [(colours.get(c, "#555555"), vocab.label_of(c)) for c in used]


# --------------------------------------------------------------------------- map


def _choropleth_layer(
    display: gpd.GeoDataFrame, level: str, values: pd.DataFrame, measure: str, area: Area,
    decimals: int | None = None,
) -> tuple[folium.GeoJson | None, list[tuple[str, str]]]:
    key = _key_col(level)
    gdf = display[[key, "nom", "geometry"]].copy()
    gdf[key] = gdf[key].astype(str)
    vals = values.copy()
    vals["code"] = vals["code"].astype(str)
    gdf = gdf.merge(
        vals[["code", "initiatives", "funding_eur", "funding_per_inhabitant"]],
        left_on=key, right_on="code", how="inner",
    )
    if area.national and level in ("commune", "qpv"):
        # never all the communes (or QPV) of France: only those with something to show
        gdf = gdf[(gdf["initiatives"].fillna(0) > 0) | (gdf["funding_eur"].fillna(0) > 0)]
    if gdf.empty:
        return None, []
    breaks = class_breaks(gdf[measure], integer=measure == "initiatives")
    classes = classify(list(gdf[measure]), breaks)
    n = len(breaks) - 1
    palette = PALETTE[len(PALETTE) - n:] if 0 < n < len(PALETTE) else PALETTE
    colours = [
        NO_DATA_COLOUR if c == -2 else ZERO_COLOUR if c == -1 else palette[c] for c in classes
    ]
    colour_of = dict(zip(gdf[key], colours, strict=True))
    data = feature_collection(
        gdf,
        {
            "nom": gdf["nom"].astype(str),
            "code": gdf[key],
            "lvl": [level] * len(gdf),
            "ini": [format_measure(v, "initiatives") for v in gdf["initiatives"]],
            "fin": [format_measure(v, "funding_eur") for v in gdf["funding_eur"]],
            "hab": [format_measure(v, "funding_per_inhabitant")
                    for v in gdf["funding_per_inhabitant"]],
        },
        gdf[key],
        decimals,
    )

    def style(feature: dict) -> dict:
        return {"fillColor": colour_of.get(str(feature["id"]), NO_DATA_COLOUR),
                "color": "#666666", "weight": 0.5, "fillOpacity": 0.75}

    layer = folium.GeoJson(
        data,
        name=_esc(f"{CHOROPLETH_LEVELS[level]} — {MEASURES[measure].lower()}"),
        style_function=style,
        tooltip=_tooltip(
            ["nom", "code", "ini", "fin", "hab"],
            [TERRITORY_LEVELS.label_of(level), "Code", "Initiatives", "Financements",
             "Par habitant"],
        ),
        smooth_factor=1.0,
    )
    labels = class_labels(breaks, measure)
    items = [(palette[i], label) for i, label in enumerate(labels)]
    items.append((ZERO_COLOUR, "Aucun" if measure == "initiatives" else "0 €"))
    if any(c == -2 for c in classes):
        items.append((NO_DATA_COLOUR, "Non renseigné"))
    return layer, items


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
    parts = [p for p in parts if not p.empty]
    if not parts:
        return None
    bounds = np.array([p.total_bounds for p in parts])
    return (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())


def build_map(
    national: Mapping[str, gpd.GeoDataFrame],
    local: Mapping[str, gpd.GeoDataFrame],
    spec: MapSpec,
) -> folium.Map:
    """The dashboard map.

    ``national`` and ``local`` are the display layers by name (see
    :func:`territoires.layers.load_display`); régions and départements come from ``national``,
    communes and QPV of the area from ``local`` (national QPV are drawn as points).
    """
    area = spec.area
    if spec.center is not None and spec.zoom is not None:
        center, zoom = spec.center, spec.zoom
    else:
        center, zoom = view_for(area_bounds(local, area))
    m = folium.Map(location=list(center), zoom_start=zoom, tiles=None, control_scale=True,
                   prefer_canvas=True)
    folium.TileLayer(TILES_URL, attr=TILES_ATTRIBUTION, name="Fond OpenStreetMap",
                     control=False, max_zoom=18).add_to(m)

    legend_blocks: list[str] = []
    decimals = NATIONAL_DECIMALS if area.national else LOCAL_DECIMALS
    # large areas (a département, a région) use the national simplification
    detail = local if len(area.communes or ()) <= LOCAL_MAX_COMMUNES else national

    # choropleth (bottom); it stands for the outline layer of its level
    drawn: str | None = None
    if spec.choropleth_level and spec.values is not None and not spec.values.empty:
        level = spec.choropleth_level
        source = national if (area.national and level in ("departement", "epci")) else detail
        layer_name = LEVEL_LAYER[level]
        gdf = source.get(layer_name, national.get(layer_name))
        if gdf is not None:
            layer, items = _choropleth_layer(gdf, level, spec.values, spec.measure, area,
                                             decimals)
            if layer is not None:
                layer.add_to(m)
                drawn = level
                legend_blocks.append(legend_html(
                    f"{MEASURES[spec.measure]} {_PER_LEVEL[level]}", items))

    # outlines: of the area only when a territory is selected
    deps = national.get("departements")
    regions = national.get("regions")
    if not area.national and deps is not None:
        dep_codes = frozenset(_dep_of(c) for c in area.communes or ())
        deps = _in_area(deps, "code_dep", dep_codes)
        if regions is not None:
            regions = _in_area(regions, "code_reg",
                               frozenset(deps["code_reg"].astype(str)))
    if regions is not None:
        lay = _outline_layer(regions, "region", "Régions",
                             {"color": "#222222", "weight": 2, "fill": False}, clickable=False,
                             decimals=NATIONAL_DECIMALS)
        if lay is not None:
            lay.add_to(m)
    if deps is not None and drawn != "departement":
        lay = _outline_layer(deps, "departement", "Départements",
                             {"color": "#555555", "weight": 1, "fill": False,
                              "dashArray": "4 3"}, decimals=NATIONAL_DECIMALS)
        if lay is not None:
            lay.add_to(m)

    if not area.national and area.communes and drawn != "commune":
        communes = _in_area(detail.get("communes", national.get("communes")), "code_insee",
                            area.communes)
        lay = _outline_layer(communes, "commune", "Communes de la zone",
                             {"color": "#3182bd", "weight": 1, "fill": True,
                              "fillOpacity": 0.03}, decimals=decimals)
        if lay is not None:
            lay.add_to(m)

    # QPV: polygons where known, centroids elsewhere
    qpv_src = local.get("qpv") if not area.national else national.get("qpv")
    if qpv_src is not None:
        qpv = qpv_src if area.national else _in_area(qpv_src, "code_qp", area.qpv or frozenset())
        kind = qpv["geom_kind"].astype(str) if "geom_kind" in qpv.columns else None
        is_poly = qpv.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
        if kind is not None:
            is_poly = is_poly & (kind == "polygon")
        if area.national:
            lay = _points_layer(qpv, "qpv", "QPV", "#6a51a3", 3)
            if lay is not None:
                lay.add_to(m)
        else:
            group = folium.FeatureGroup(name="QPV")
            poly = _outline_layer(qpv[is_poly], "qpv", "QPV (contours)",
                                  {"color": "#54278f", "weight": 1.5, "fillColor": "#9e9ac8",
                                   "fillOpacity": 0.35}, decimals=5)
            pts = _points_layer(qpv[~is_poly], "qpv", "QPV (centroïdes)", "#6a51a3", 5)
            for lay in (poly, pts):
                if lay is not None:
                    lay.control = False
                    lay.add_to(group)
            group.add_to(m)

    for name, level, colour, column, codes in (
        ("contrats_ville", "contrat_ville", "#e6550d", "code_dep", None),
        ("cites_educatives", "cite_educative", "#31a354", "communes", area.communes),
    ):
        gdf = national.get(name) if name in national else local.get(name)
        if gdf is None:
            continue
        if not area.national:
            if codes is None:
                deps_in = frozenset(_dep_of(c) for c in (area.communes or ()))
                gdf = _in_area(gdf, column, deps_in)
            else:
                gdf = _in_area(gdf, column, codes)
        label = "Contrats de ville" if level == "contrat_ville" else "Cités éducatives"
        lay = _points_layer(gdf, level, label, colour, 6, show=level == "cite_educative")
        if lay is not None:
            lay.add_to(m)

    if spec.initiatives is not None and not spec.initiatives.empty:
        cluster, items = _initiatives_layer(spec.initiatives, spec.colour_by, spec.link_base)
        cluster.add_to(m)
        legend_blocks.append(legend_html(f"Initiatives par {COLOUR_BY[spec.colour_by].lower()}",
                                         items))

    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    credit = f'<div style="font:10px sans-serif;margin-top:4px">{_esc(SOURCES_CREDIT)}</div>'
    Legend("".join(legend_blocks) + credit).add_to(m)
    return m


def map_html(m: folium.Map) -> str:
    """The full HTML page of a map (what the browser receives)."""
    return m.get_root().render()


def naive_map(layers: Mapping[str, gpd.GeoDataFrame]) -> folium.Map:
    """Reference for benchmarks/tests: every layer passed whole to ``folium.GeoJson``."""
    m = folium.Map(location=list(FRANCE_CENTER), zoom_start=FRANCE_ZOOM)
    for name, gdf in layers.items():
        folium.GeoJson(gdf.to_json(default=str), name=name,
                       style_function=lambda _f: {"color": "#333333"}).add_to(m)
    folium.LayerControl().add_to(m)
    return m


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

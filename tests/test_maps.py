"""maps.py on the tiny layers: layers drawn, escaping, classes, payload size, clicks."""

from __future__ import annotations

import html
import json
import math
import re

import folium
import geopandas as gpd
import pandas as pd
import pytest
import shapely

from app_env import NASTY_TITLE, tiny_catalogue
from territoires.analysis import maps
from territoires.pipeline.layers import Layers

GIRONDE = frozenset(["33063", "33119", "33249", "33069", "33162"])
GIRONDE_QPV = frozenset(["QN03307M", "QN03309M", "QN03312M", "QN03317M", "QN03301I"])


@pytest.fixture
def display(tiny_layers: Layers) -> dict:
    return dict(tiny_layers.items())


def _values(codes: list[str], initiatives: list[int], funding: list[float]) -> pd.DataFrame:
    return pd.DataFrame({
        "code": codes, "nom": codes, "population": [1000] * len(codes),
        "initiatives": initiatives, "funding_eur": funding,
        "funding_per_inhabitant": [f / 1000 for f in funding],
    })


def _layer_names(page: str) -> set[str]:
    """Names in the layer control, decoded as the browser shows them."""
    raw = re.findall(r'("[^"]+") : (?:geo_json|feature_group|marker_cluster)_', page)
    return {html.unescape(json.loads(r)) for r in raw}


_PAYLOAD = re.compile(
    r"\.addData\(\(function\(d,e\).*?\)\((\{.*?\}), (null|\{.*?\})\)\);\n")


def _merged(payload: dict, values: dict | None) -> dict:
    """A layer's payload with its values (see ``maps.CompactGeoJson``) as one payload."""
    if values is None:
        return payload
    n = len(payload["k"])
    return {"s": payload["s"], "k": payload["k"] + values["k"],
            "f": [row[:n] + extra + row[n:] for row, extra in zip(
                payload["f"], values["f"], strict=True)]}


def _payloads(page: str) -> list[dict]:
    """The compact layer payloads embedded in the page (JSON-decoded, values merged)."""
    return [_merged(json.loads(blob), json.loads(values))
            for blob, values in _PAYLOAD.findall(page)]


def _embedded_strings(page: str) -> list[str]:
    """Every string property of the layer data embedded in the page (JSON-decoded)."""
    out = []
    for payload in _payloads(page):
        for props in maps.decode_rows(payload):
            out += [v for v in props.values() if isinstance(v, str)]
    return out


def _codes(page: str) -> set[str]:
    return {p["code"] for payload in _payloads(page) for p in maps.decode_rows(payload)
            if "code" in p}


def test_area_map_has_every_layer(display: dict) -> None:
    points = maps.territory_points(display)
    spec = maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV), choropleth_level="commune", measure="funding_eur",
        values=_values(sorted(GIRONDE), [1, 2, 0, 0, 3], [1e3, 2e4, 0, 0, 5e5]),
        initiatives=maps.initiative_points(tiny_catalogue(), points),
    )
    page = maps.map_html(maps.build_map(display, display, spec))
    names = _layer_names(page)
    # the choropleth stands for the communes' outline layer
    assert {"Régions", "Départements", "Communes — financements (€)", "QPV",
            "Contrats de ville", "Cités éducatives", "Initiatives"} <= names
    assert "Communes de la zone" not in names
    assert "openstreetmap.org" in page and "OpenStreetMap" in page
    assert "Licence Ouverte 2.0" in page
    # communes of the area only: Pau (64445) is not drawn as a commune
    assert "33119" in _codes(page) and "64445" not in _codes(page)
    # legend with French-formatted class bounds (narrow no-break spaces, escaped in JSON)
    assert "k\\u20ac" in page


def test_national_map_has_no_commune_layer_and_qpv_points(display: dict) -> None:
    spec = maps.MapSpec(choropleth_level="departement", measure="initiatives",
                        values=_values(["33", "64", "17", "93"], [2, 1, 0, 0], [0, 0, 0, 0]))
    page = maps.map_html(maps.build_map(display, display, spec))
    names = _layer_names(page)
    assert "Communes de la zone" not in names
    assert "QPV" in names
    assert 'p.lvl="commune"' not in page
    assert "Départements — nombre d'initiatives" in names
    assert "Départements" not in names  # the choropleth stands for the outlines


def test_tooltips_bound_to_each_layer_not_to_each_feature(display: dict) -> None:
    """Each layer binds one tooltip, a function of the feature under the pointer; none is
    bound feature by feature (some 2,800 tooltip objects and listeners at the national
    view: a quarter of the time the browser took to build the layers)."""
    spec = maps.MapSpec(choropleth_level="departement", measure="initiatives",
                        values=_values(["33", "64", "17", "93"], [2, 1, 0, 0], [0, 0, 0, 0]))
    page = maps.map_html(maps.build_map(display, display, spec))
    layers = page.count("L.geoJson(null,")
    assert layers >= 4
    assert page.count("g.bindTooltip(function(l)") == layers
    assert page.count(f"{maps.LAYER_TOOLTIP}:function(p)") == layers
    assert "l.bindTooltip(" not in page  # per feature
    # a layer whose features go into a marker cluster keeps them per feature (the cluster,
    # not the layer, is on the map)
    clustered = maps._options(tooltip="p.t", feature_tooltips=True)
    assert "l.bindTooltip(p.t," in clustered and f"{maps.LAYER_TOOLTIP}:" not in clustered


def test_area_outlines_without_choropleth(display: dict) -> None:
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV))))
    assert "Communes de la zone" in _layer_names(page)
    strings = _embedded_strings(page)
    assert "Gironde" in strings and "Seine-Saint-Denis" not in strings  # area outlines only


def test_compact_map_outlines_communes_of_small_areas_only(
        display: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small map (a Fiche's) leaves out the outlines of an area's communes beyond
    COMPACT_MAX_COMMUNES (a region's 1,265); a full-size map keeps them."""
    monkeypatch.setattr(maps, "COMPACT_MAX_COMMUNES", len(GIRONDE) - 1, raising=False)
    area = maps.Area(GIRONDE, GIRONDE_QPV)

    def names(compact: bool, area: maps.Area = area) -> set[str]:
        spec = maps.MapSpec(area=area, fit=compact, compact=compact)
        return _layer_names(maps.map_html(maps.build_map(display, display, spec)))

    big = names(True)
    assert "Communes de la zone" not in big
    assert {"Départements", "QPV"} <= big  # the rest of the reference layers stay
    assert "Communes de la zone" in names(False)
    small = maps.Area(frozenset(sorted(GIRONDE)[:-1]), GIRONDE_QPV)
    assert "Communes de la zone" in names(True, small)


def test_centroid_qpv_drawn_as_point(display: dict) -> None:
    area = maps.Area(frozenset(["93066"]), frozenset(["QN09301M"]))
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(area=area)))
    assert "QN09301M" in _codes(page)
    assert "L.circleMarker(ll," in page


def test_one_layer_per_point_kind(display: dict) -> None:
    """Points travel as one compact GeoJson per kind, never one folium object per point."""
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV))))
    assert "L.marker(" not in page and "L.circleMarker([" not in page
    layers = {json.loads(k): v for k, v in re.findall(
        r'("[^"]+") : (geo_json_[0-9a-f]+)', page)}
    for name in ("Contrats de ville", "Cités éducatives"):
        assert page.count(f"var {layers[name]} = L.geoJson(") == 1
    # QPV: one group holding the polygons and (when any) one layer of centroids
    assert 1 <= page.count('p.lvl="qpv"') <= 2
    payloads = _payloads(page)
    point_payloads = [p for p in payloads if p["f"] and isinstance(p["f"][0][-1][0], int)]
    assert point_payloads and all(p["k"] == ["nom", "code"] for p in point_payloads
                                  if "nom" in p["k"])


def test_with_qpv_centroids(tiny_layers: Layers) -> None:
    full = tiny_layers.qpv
    polygons = full[full["geom_kind"] == "polygon"]
    both = maps.with_qpv_centroids(polygons, full)
    assert set(both["code_qp"]) == set(full[full.geometry.notna() & ~full.geometry.is_empty]
                                      ["code_qp"])
    assert both.crs == full.crs
    assert maps.with_qpv_centroids(full, full) is full


def test_encode_geometry_round_trip() -> None:
    poly = shapely.Polygon([(-0.5, 44.8), (-0.4, 44.8), (-0.4, 44.9), (-0.5, 44.8)])
    enc = maps.encode_geometry(poly, 4)
    ring = enc[0]
    xs = [sum(ring[0:i + 1:2]) / 1e4 for i in range(0, len(ring), 2)]
    ys = [sum(ring[1:i + 2:2]) / 1e4 for i in range(0, len(ring), 2)]
    flat = [c for xy in poly.exterior.coords for c in xy]
    assert [c for xy in zip(xs, ys, strict=True) for c in xy] == pytest.approx(flat)
    assert maps.encode_geometry(shapely.Point(-0.57912, 44.83781), 4) == [-5791, 448378]
    assert maps.encode_geometry(shapely.Polygon(), 4) is None
    multi = shapely.MultiPolygon([poly, shapely.affinity.translate(poly, 1, 0)])
    assert len(maps.encode_geometry(multi, 3)) == 2


def test_aggregated_initiatives_when_many(display: dict, monkeypatch) -> None:
    points = maps.territory_points(display)
    ini = maps.initiative_points(tiny_catalogue(), points)
    monkeypatch.setattr(maps, "MAX_INITIATIVE_POINTS", 1)
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(initiatives=ini)))
    assert "Initiatives" in _layer_names(page)
    assert "marker_cluster" not in page
    assert "/catalogue?t=" in page
    rows = [p for payload in _payloads(page) if payload["k"][0] == "n"
            for p in maps.decode_rows(payload)]
    assert rows and all(r["q"].startswith("departement:") for r in rows)
    assert sum(r["n"] for r in rows) >= ini["id"].nunique() - 1  # overseas may fall outside
    assert NASTY_TITLE not in page and "<script>alert" not in page


def test_catalogue_text_is_escaped(display: dict) -> None:
    points = maps.territory_points(display)
    ini = maps.initiative_points(tiny_catalogue(), points)
    assert NASTY_TITLE in set(ini["title"])
    spec = maps.MapSpec(area=maps.Area(GIRONDE, GIRONDE_QPV), initiatives=ini)
    page = maps.map_html(maps.build_map(display, display, spec))
    assert "<script>alert" not in page
    assert "<b>Lac</b>" not in page
    strings = _embedded_strings(page)
    assert ("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Lire &amp; &quot;écrire&quot; "
            "&#x27;ensemble&#x27;") in strings
    assert "Asso &lt;b&gt;Lac&lt;/b&gt;" in strings
    assert not any("<script" in s or "<b>" in s for s in strings)
    ids = [p["i"] for payload in _payloads(page) if "i" in payload["k"]
           for p in maps.decode_rows(payload)]
    assert "lac-lecture" in ids
    assert "'/fiche?id='+p.i+'\\\" target=\\\"_top\\\">Voir la fiche" in page or \
        "/fiche?id='+p.i+'\" target=\"_top\"" in page


def test_class_breaks_and_classify() -> None:
    values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, None]
    breaks = maps.class_breaks(values, k=5, integer=True)
    assert breaks[0] == 1 and breaks[-1] == 10 and len(breaks) == 6
    classes = maps.classify([0, None, 1, 10, 5], breaks)
    assert classes[:2] == [-1, -2]
    assert classes[2] == 0 and classes[3] == 4
    assert 0 <= classes[4] <= 4
    assert maps.class_breaks([0, 0, None]) == []
    assert maps.class_breaks([7, 7, 7]) == [7.0, 7.0]
    assert maps.classify([7], [7.0, 7.0]) == [0]


def test_class_breaks_of_few_counts() -> None:
    """Most communes of a département at 1 initiative: one class per count, not "1 – 5"."""
    values = [1] * 500 + [2] * 20 + [3] * 3 + [5]
    breaks = maps.class_breaks(values, k=5, integer=True)
    assert maps.class_labels(breaks, "initiatives") == ["1", "2", "3", "4 – 5"]
    assert maps.classify([1, 2, 3, 5], breaks) == [0, 1, 2, 3]
    skewed = [1] * 900 + list(range(2, 40))  # more distinct counts than classes
    breaks = maps.class_breaks(skewed, k=5, integer=True)
    labels = maps.class_labels(breaks, "initiatives")
    assert labels[0] == "1" and labels[-1].endswith("39") and len(labels) <= 5
    assert maps.classify([1], breaks) == [0] and maps.classify([2], breaks) == [1]


def test_class_labels_are_french() -> None:
    assert maps.class_labels([1, 3, 10], "initiatives") == ["1 – 3", "4 – 10"]
    labels = maps.class_labels([1000, 25_000, 2_000_000], "funding_eur")
    assert labels[0] == "1\u202fk€ – 25\u202fk€" and labels[1].endswith("2\u202fM€")


def test_payload_smaller_than_naive_geojson(tiny_layers: Layers) -> None:
    # "full" layers with detailed outlines (many vertices), and their display versions
    full, simple = {}, {}
    for name, gdf in tiny_layers.items():
        detailed = gdf.copy()
        detailed["geometry"] = shapely.segmentize(gdf.geometry.to_numpy(), 0.0002)
        full[name] = detailed
        shown = detailed.copy()
        shown["geometry"] = shapely.set_precision(
            shapely.simplify(detailed.geometry.to_numpy(), 0.0004), 1e-5)
        simple[name] = shown
    spec = maps.MapSpec(area=maps.Area(GIRONDE, GIRONDE_QPV), choropleth_level="commune",
                        measure="initiatives",
                        values=_values(sorted(GIRONDE), [1, 2, 0, 0, 3], [0.0] * 5))
    ours = len(maps.map_html(maps.build_map(simple, simple, spec)).encode())
    naive = len(maps.map_html(maps.naive_map(full)).encode())
    assert ours * 3 < naive


def _many_points(gdf: gpd.GeoDataFrame, times: int) -> gpd.GeoDataFrame:
    """``gdf`` repeated ``times`` times, each copy moved a little and given its own codes."""
    copies = []
    for i in range(times):
        copy = gdf.copy()
        copy["geometry"] = copy.geometry.translate(0.01 * i, 0.005 * i)
        for column in copy.columns:
            if column.startswith("code"):
                copy[column] = copy[column].astype(str) + f"-{i}"
        copies.append(copy)
    return gpd.GeoDataFrame(pd.concat(copies, ignore_index=True), crs=gdf.crs)


def test_point_layers_far_smaller_than_naive(tiny_layers: Layers) -> None:
    """The point layers alone cost much less than the naive GeoJson of the same layers (at
    some hundreds of points: each layer's fixed code, its decoder and tooltip, would
    outweigh the five points of the fixtures)."""
    points = {n: _many_points(tiny_layers.layer(n), 40)
              for n in ("contrats_ville", "cites_educatives")}
    ours_map = maps.build_map({**points, "qpv": tiny_layers.qpv.iloc[0:0]}, points,
                              maps.MapSpec())
    base = len(maps.map_html(maps.build_map({}, {}, maps.MapSpec())).encode())
    ours = len(maps.map_html(ours_map).encode()) - base
    naive_base = len(maps.map_html(maps.naive_map({})).encode())
    naive = len(maps.map_html(maps.naive_map(points)).encode()) - naive_base
    assert 0 < ours * 2 < naive


def test_clicked_territory() -> None:
    feature = {"type": "Feature", "properties": {"lvl": "commune", "code": "33119",
                                                  "nom": "Cenon"}}
    assert maps.clicked_territory({"last_active_drawing": feature}) == ("commune", "33119")
    assert maps.clicked_territory({"last_active_drawing": None}) is None
    assert maps.clicked_territory(None) is None
    bad = {"last_active_drawing": {"properties": {"lvl": "planet", "code": "x"}}}
    assert maps.clicked_territory(bad) is None
    point = {"last_active_drawing": {"properties": {"titre": "x"}}}
    assert maps.clicked_territory(point) is None


def test_highlight_layers_polygons_points_escaping(display: dict) -> None:
    communes = display["communes"].head(3).copy()
    communes.loc[communes.index[0], "nom"] = "<i>A</i> & \"B\""
    communes.loc[communes.index[1], "geometry"] = None  # dropped
    communes.loc[communes.index[2], "geometry"] = communes.geometry.iloc[2].centroid
    codes = list(communes["code_insee"].astype(str))
    layers = maps.highlight_layers(communes, "commune", [*codes, "99999"], "Surlignés",
                                   "#d7301f")
    assert len(layers) == 2 and not any(lay.control for lay in layers)
    polygons, points = ([maps.decode_rows(lay.rows) for lay in layers])
    assert polygons == [{"nom": "&lt;i&gt;A&lt;/i&gt; &amp; &quot;B&quot;", "code": codes[0]}]
    assert [p["code"] for p in points] == [codes[2]]
    assert len(layers[1].rows["f"][0][-1]) == 2  # drawn as a point: [x, y]
    assert maps.highlight_layers(communes, "commune", ["99999"], "x", "#000000") == []
    marked = maps.highlight_layers(communes, "commune", codes, "x", "#000000",
                                   mark_polygons=True)
    assert [p["code"] for p in maps.decode_rows(marked[1].rows)] == [codes[0], codes[2]]


def test_representative_points_inside_and_none() -> None:
    square = shapely.box(0, 0, 2, 2)
    ring = shapely.box(0, 0, 4, 4).difference(shapely.box(1, 1, 3, 3))  # centroid outside
    pts = maps.representative_points([square, ring, shapely.Point(5, 5), None])
    assert shapely.contains(square, pts[0]) and shapely.contains(ring, pts[1])
    assert pts[2].equals(shapely.Point(5, 5)) and pts[3] is None


def test_view_for() -> None:
    assert maps.view_for(None) == (maps.FRANCE_CENTER, maps.FRANCE_ZOOM)
    center, zoom = maps.view_for((-0.6, 44.8, -0.5, 44.9))
    assert center == pytest.approx((44.85, -0.55)) and zoom >= 10


#: Jinja syntax a hostile catalogue (or layer) text may hold: it must come out as text.
INJECTIONS = ["{{7*7}}", "{{ lipsum.__globals__.os.getpid() }}", "{% for x in y %}",
              "{# c #}"]


def _hostile_map(display: dict, text: str) -> tuple[object, str]:
    """A map where every text field that reaches it holds ``text``: initiative titles,
    porteurs, territory names of the layers, the highlight layer's name."""
    from catalogue_factory import initiative, make_catalogue

    layers = {}
    for name, gdf in display.items():
        gdf = gdf.copy()
        if "nom" in gdf.columns:
            gdf["nom"] = text + " " + gdf["nom"].astype(str)
        layers[name] = gdf
    cat = make_catalogue([
        initiative(f"i{k}", [("commune", "33119"), ("qpv", "QN03307M")],
                   title=f"{text} titre", themes=["culture"],
                   porteurs=[(f"{text} porteur", "association")])
        for k in range(2)])
    points = maps.territory_points(layers)
    spec = maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV), choropleth_level="commune",
        measure="initiatives", values=_values(sorted(GIRONDE), [1, 2, 0, 0, 3], [0] * 5),
        initiatives=maps.initiative_points(cat, points))
    from territoires.analysis import views

    highlight = views.highlight_layer(layers, layers, [("commune", "33119")],
                                      f"{text} surlignés")
    return maps.build_map(layers, layers, spec, extra_layers=[highlight]), text


@pytest.mark.parametrize("text", INJECTIONS)
def test_catalogue_text_never_runs_as_template(display: dict, text: str) -> None:
    import os

    fmap, text = _hostile_map(display, text)
    # the standalone HTML (Exporter) and the whole-figure render streamlit-folium runs
    for page in (maps.map_html(fmap), fmap.get_root().render()):
        strings = [html.unescape(s) for s in _embedded_strings(page)]
        for suffix in ("titre", "porteur"):
            assert f"{text} {suffix}" in strings, suffix
        assert any(s.startswith(f"{text} ") and s != f"{text} titre"
                   and s != f"{text} porteur" for s in strings)  # territory names
        assert f"{text} surlignés" in {html.unescape(n) for n in _layer_names(page)}
        assert "49 titre" not in page and f"{os.getpid()} titre" not in page


def test_map_html_renders_each_template_once(display: dict) -> None:
    """Even text that no one escaped (the naive map's raw layer properties and tooltip)
    is never run as a template by the standalone HTML (it is still parsed: escaping, as
    :func:`maps._esc` does, is what keeps ``{%`` from breaking the page)."""
    layers = {"communes": display["communes"].assign(nom="{{7*7}} {{ 3*3 }}")}
    markers = pd.DataFrame({"lat": [44.8], "lon": [-0.5], "title": ["{{ 6*7 }}"]})
    page = maps.map_html(maps.naive_map(layers, markers))
    assert "{{7*7}} {{ 3*3 }}" in page and "49 9" not in page
    assert "&#123;&#123; 6*7 &#125;&#125;" in page


def test_share_choropleth_fixed_classes_and_unknown(display: dict) -> None:
    values = _values(["33", "64", "17", "93"], [2, 1, 0, 0], [0, 0, 0, 0]).assign(
        qpv_population=[19_200, 7_000, 8_000, None],
        qpv_share_reached=[0.73, 0.0, 0.1, None])
    spec = maps.MapSpec(choropleth_level="departement", measure="qpv_share_reached",
                        values=values)
    page = maps.map_html(maps.build_map(display, display, spec))
    choro = next(p for p in _payloads(page) if "qs" in p["k"])
    rows = {r["code"]: r for r in maps.decode_rows(choro)}
    # unknown QPV population: not drawn (never shown as 0 %)
    assert set(rows) == {"33", "64", "17"}
    assert rows["33"]["qs"] == "73\u202f%" and rows["33"]["k"] == 3  # class (60 %, 80 %]
    assert rows["64"]["k"] == -1 and rows["17"]["k"] == 0
    assert rows["33"]["qp"] == "19\u202f200"
    assert "Départements — part de la population des qpv touchée" in _layer_names(page)
    assert maps.format_measure(None, "qpv_share_reached") == "inconnue"
    assert maps.class_labels(list(maps.SHARE_BREAKS), "qpv_share_reached")[0] == (
        "0\u202f% – 20\u202f%")


def test_fitted_map_is_not_animated(tiny_layers: Layers) -> None:
    """A fitted map shows its fitted view at once: Leaflet's zoom animation from the first
    view would fetch the tiles of both zooms and draw every layer twice."""
    display = dict(tiny_layers.items())
    area = maps.Area(frozenset({"33063"}), frozenset())
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(area=area, fit=True)))
    options = page[page.index("fitBounds("):].split(");", 1)[0]
    assert '"animate": false' in options


def test_fit_on_a_single_point_never_degenerates(tiny_layers: Layers) -> None:
    """An area known by a single point (a QPV known by its centroid, whose commune has no
    contour): the fitted box has a size and comes after the tile layer, with a maximum zoom
    (Leaflet otherwise computes an infinite zoom: "Invalid LatLng object: (NaN, NaN)")."""
    display = dict(tiny_layers.items())
    communes = display["communes"].copy()
    communes.loc[communes["code_insee"] == "93066", "geometry"] = None
    display["communes"] = communes
    area = maps.Area(frozenset({"93066"}), frozenset({"QN09301M"}))
    assert maps.area_bounds(display, area) == pytest.approx((2.36, 48.945, 2.36, 48.945))
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(area=area, fit=True)))
    fit = re.search(r"fitBounds\(\s*\[\[([-\d.e]+), ([-\d.e]+)\], \[([-\d.e]+), ([-\d.e]+)\]\]",
                    page)
    assert fit is not None
    miny, minx, maxy, maxx = map(float, fit.groups())
    assert min(maxx - minx, maxy - miny) >= maps.MIN_FIT_SPAN - 1e-9
    assert page.index("L.tileLayer(") < page.index("fitBounds(")
    assert '"maxZoom": 15' in page[page.index("fitBounds("):]
    # a missing geometry never turns the box into NaN
    communes.loc[communes["code_insee"] == "33063", "geometry"] = None
    bounds = maps.area_bounds(display, maps.Area(frozenset({"33063", "33119"}), frozenset()))
    assert bounds is not None and all(map(math.isfinite, bounds))


def _swapped(dyn: maps.DynamicMap) -> tuple[str, str, str]:
    """What streamlit-folium sends for a :class:`maps.DynamicMap`: the key of the frame
    (hash of the base map's script), the feature groups' script, the layer control's."""
    import streamlit_folium as sf

    dyn.base.get_root().render()
    key = sf.generate_js_hash(sf._get_map_string(dyn.base), "carte", False)
    groups = "".join(sf._get_feature_group_string(g, dyn.base, i)
                     for i, g in enumerate(dyn.groups))
    control = sf._get_layer_control_string(dyn.control, dyn.base)
    return key, groups, control


def test_dynamic_map_keeps_its_frame_across_filters(display: dict) -> None:
    """The base map's script (streamlit-folium's frame key) is the same for France and for
    an area, whatever the measure; only the layers' script changes."""
    points = maps.territory_points(display)
    ini = maps.initiative_points(tiny_catalogue(), points)
    national = maps.MapSpec(choropleth_level="departement", measure="initiatives",
                            values=_values(["33", "64"], [3, 1], [0, 0]), initiatives=ini)
    area = maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV), choropleth_level="commune",
        measure="funding_eur", initiatives=ini, center=(44.8, -0.6), zoom=10,
        values=_values(sorted(GIRONDE), [1, 2, 0, 0, 3], [1e3, 2e4, 0, 0, 5e5]))
    key1, groups1, control1 = _swapped(maps.dynamic_map(display, display, national))
    key2, groups2, control2 = _swapped(maps.dynamic_map(display, display, area))
    assert key1 == key2
    assert groups1 != groups2 and control1 != control2
    assert "Financements (\\u20ac) par commune" in groups2  # the legend, as JSON
    assert "Financements (" not in groups1


def test_dynamic_map_layer_control_and_hidden_layers(display: dict) -> None:
    """The swapped layer control lists every layer by its name; the layers hidden at first
    (contrats de ville) are taken off the map again after the control is made."""
    points = maps.territory_points(display)
    spec = maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV), choropleth_level="commune",
        measure="initiatives", values=_values(sorted(GIRONDE), [1, 2, 0, 0, 3], [0] * 5),
        initiatives=maps.initiative_points(tiny_catalogue(), points))
    dyn = maps.dynamic_map(display, display, spec)
    _key, groups, control = _swapped(dyn)
    names = {html.unescape(json.loads(r)) for r in re.findall(
        r'("[^"]+") : feature_group_', control)}
    assert names == {"Communes — nombre d'initiatives", "Régions", "Départements", "QPV",
                     "Contrats de ville", "Cités éducatives", "Initiatives"}
    hidden = [g for g in dyn.groups if not g.show]
    assert [g.layer_name for g in hidden] == ["Contrats de ville"]
    assert control.count(".removeLayer(") == 1
    assert f"map_div.removeLayer({hidden[0].get_name()})" in control
    # the legend travels with the layers, as a JSON string
    assert "window.__territoiresLegend = " in groups
    assert "Licence Ouverte 2.0" in groups


@pytest.mark.parametrize("text", INJECTIONS)
def test_dynamic_map_text_never_runs_as_template(display: dict, text: str) -> None:
    """The swapped layers carry catalogue and layer text escaped, never run as a template
    (the base map holds no data at all)."""
    import os

    layers = {}
    for name, gdf in display.items():
        gdf = gdf.copy()
        if "nom" in gdf.columns:
            gdf["nom"] = text + " " + gdf["nom"].astype(str)
        layers[name] = gdf
    spec = maps.MapSpec(area=maps.Area(GIRONDE, GIRONDE_QPV), choropleth_level="commune",
                        measure="initiatives", values=_values(sorted(GIRONDE), [1, 2, 0, 0, 3],
                                                              [0] * 5))
    dyn = maps.dynamic_map(layers, layers, spec)
    base_page = dyn.base.get_root().render()
    assert text not in base_page and html.escape(text) not in base_page
    _key, groups, _control = _swapped(dyn)
    strings = [html.unescape(s) for s in _embedded_strings(groups)]
    assert any(s.startswith(f"{text} ") for s in strings)
    assert text not in groups  # braces only as character references
    assert f"{os.getpid()} " not in groups


@pytest.mark.parametrize("values", [
    ["Cenon", "<b>x</b> & 'y' \"z\"", "{{7*7}} {% if %}", None, float("nan"), "é – ok", ""],
    pd.Series(["a&b", None, "{x}"], dtype="string[pyarrow]"),
    pd.Series(["<i>", "<i>", "ok"], dtype="category"),
    [1, 2.5, None, True, "mixed <"],
    [],
])
def test_property_columns_escaped_at_once_as_value_by_value(values: object) -> None:
    """The vectorised escaping of a column gives exactly what :func:`maps._prop` gives."""
    expected = [maps._prop(None if v is pd.NA else v) for v in list(values)]
    assert maps._prop_values(values) == expected
    assert not any("{" in v or "<" in v for v in maps._prop_values(values)
                   if isinstance(v, str))


def test_compact_layer_script_is_written_not_compiled() -> None:
    """A compact layer's script (its whole payload) enters the figure as plain text: branca
    compiled it as a Jinja template at every render (40 % of a map's render time)."""
    payload = maps.compact_rows([shapely.Point(-0.5, 44.8)] * 3,
                                {"nom": ["Cenon"] * 3, "code": ["33119"] * 3}, 4)
    fmap = folium.Map(tiles=None)
    layer = maps.CompactGeoJson(payload, "Communes", "{}")
    layer.add_to(fmap)
    page = fmap.get_root().render()
    child = fmap.get_root().script._children[layer.get_name()]
    assert isinstance(child, maps.RenderedText) and "Cenon" in child.text
    assert "Cenon" in page and f"{layer.get_name()}.addTo(" in page
    hidden = maps.CompactGeoJson(payload, "QPV", "{}", show=False)
    hidden.add_to(fmap)
    assert f"{hidden.get_name()}.addTo(" not in fmap.get_root().render()


def _area_spec(display: dict, measure: str, funding: list[float]) -> maps.MapSpec:
    return maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV), choropleth_level="commune", measure=measure,
        center=(44.8, -0.6), zoom=10,
        values=_values(sorted(GIRONDE), [1, 2, 0, 0, 3], funding))


@pytest.mark.parametrize("spec_of", [
    lambda d: _area_spec(d, "funding_eur", [1e3, 2e4, 0, 0, 5e5]),
    lambda d: maps.MapSpec(choropleth_level="departement", measure="initiatives",
                           values=_values(["33", "64"], [3, 1], [0, 0])),
])
def test_payload_memo_gives_the_same_map_and_spares_the_encoding(
        display: dict, monkeypatch: pytest.MonkeyPatch, spec_of: object) -> None:
    """The reference layers' payloads kept in a memo: the map is the same as without it
    (text for text), and drawing it again, for other values, encodes no geometry (the
    initiatives, catalogue data, are left out here: they are never kept)."""
    spec = spec_of(display)  # type: ignore[operator]
    plain = _swapped(maps.dynamic_map(display, display, spec))
    memo = maps.PayloadMemo()
    assert _swapped(maps.dynamic_map(display, display, spec, memo=memo)) == plain
    assert len(memo) >= 3
    encoded: list[object] = []
    real = maps.encode_geometry
    monkeypatch.setattr(maps, "encode_geometry",
                        lambda *a: encoded.append(a) or real(*a))  # type: ignore[func-returns-value]
    again = spec_of(display)  # type: ignore[operator]
    again.values = again.values.assign(funding_eur=again.values["funding_eur"] * 2)
    other = _swapped(maps.dynamic_map(display, display, again, memo=memo))
    assert encoded == []
    monkeypatch.setattr(maps, "encode_geometry", real)
    assert other == _swapped(maps.dynamic_map(display, display, again))


def test_payload_memo_is_bounded_and_keeps_the_most_recent() -> None:
    """At most ``max_chars`` characters of payload text, the least recently used dropped;
    a payload larger than the whole memo is returned, never kept."""
    memo = maps.PayloadMemo(max_chars=150)  # each payload below: 66 characters

    def rows(n: int) -> maps.Payload:
        return maps.Payload.of({"s": 1, "k": ["nom"], "f": [["x" * n, [0, 0]]]})

    first = memo.get(("a",), lambda: rows(30))
    assert first.rows is None and first.count == 1  # kept as text only
    memo.get(("b",), lambda: rows(30))
    assert memo.get(("a",), lambda: rows(1)).text == first.text  # found, now most recent
    memo.get(("c",), lambda: rows(30))  # over 150 characters: "b" goes
    assert memo.chars <= 150 and len(memo) == 2
    assert memo.get(("b",), lambda: rows(2)).text != first.text  # built again
    big = memo.get(("d",), lambda: rows(500))
    assert big.count == 1 and ("d",) not in memo._items


def test_the_map_of_france_draws_the_france_level(display: dict) -> None:
    """At the national view the régions and départements (outlines, choropleth) come from
    the "france" display layers when given; a map of an area keeps the national ones
    (finer, as its communes)."""
    france = dict(display)
    for name in ("regions", "departements"):
        coarse = display[name].copy()
        coarse["nom"] = coarse["nom"] + " (France)"
        coarse["geometry"] = coarse.geometry.envelope
        france[name] = coarse
    strings = _embedded_strings(maps.map_html(maps.build_map(
        display, display, maps.MapSpec(), france=france)))
    assert "Gironde (France)" in strings and "Gironde" not in strings
    values = _values(["33", "93"], [2, 1], [100.0, 50.0])
    strings = _embedded_strings(maps.map_html(maps.build_map(
        display, display, maps.MapSpec(choropleth_level="departement", values=values),
        france=france)))
    assert "Gironde (France)" in strings and "Gironde" not in strings
    local = _embedded_strings(maps.map_html(maps.build_map(
        display, display, maps.MapSpec(area=maps.Area(GIRONDE, GIRONDE_QPV)), france=france)))
    assert "Gironde" in local and "Gironde (France)" not in local
    # without it, the national layers (layers built before the level existed)
    strings = _embedded_strings(maps.map_html(maps.build_map(display, display, maps.MapSpec())))
    assert "Gironde" in strings and "Gironde (France)" not in strings

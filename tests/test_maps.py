"""maps.py on the tiny layers: layers drawn, escaping, classes, payload size, clicks."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest
import shapely

from app_env import NASTY_TITLE, tiny_catalogue
from territoires import maps
from territoires.layers import Layers

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


def _embedded_strings(page: str) -> list[str]:
    """Every string property of the GeoJSON data embedded in the page (JSON-decoded)."""
    out = []
    for blob in re.findall(r"_add\((\{.*?\})\);\n", page):
        for feature in json.loads(blob)["features"]:
            out += [v for v in feature["properties"].values() if isinstance(v, str)]
    return out


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
    assert '"code": "33119"' in page and '"code": "64445", "lvl": "commune"' not in page
    # legend with French-formatted class bounds (narrow no-break spaces, escaped in JSON)
    assert "k\\u20ac" in page


def test_national_map_has_no_commune_layer_and_qpv_points(display: dict) -> None:
    spec = maps.MapSpec(choropleth_level="departement", measure="initiatives",
                        values=_values(["33", "64", "17", "93"], [2, 1, 0, 0], [0, 0, 0, 0]))
    page = maps.map_html(maps.build_map(display, display, spec))
    names = _layer_names(page)
    assert "Communes de la zone" not in names
    assert "QPV" in names
    assert '"lvl": "commune"' not in page
    assert "Départements — nombre d'initiatives" in names
    assert "Départements" not in names  # the choropleth stands for the outlines


def test_area_outlines_without_choropleth(display: dict) -> None:
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(
        area=maps.Area(GIRONDE, GIRONDE_QPV))))
    assert "Communes de la zone" in _layer_names(page)
    strings = _embedded_strings(page)
    assert "Gironde" in strings and "Seine-Saint-Denis" not in strings  # area outlines only


def test_centroid_qpv_drawn_as_point(display: dict) -> None:
    area = maps.Area(frozenset(["93066"]), frozenset(["QN09301M"]))
    page = maps.map_html(maps.build_map(display, display, maps.MapSpec(area=area)))
    assert '"code": "QN09301M"' in page
    assert "L.CircleMarker" in page or "new L.circleMarker" in page.replace("L.CircleMarker",
                                                                            "L.CircleMarker")


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
    links = [s for s in strings if s.startswith("<a ")]
    assert any('href="/fiche?id=lac-lecture" target="_top"' in link for link in links)


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
    ours = len(maps.map_html(maps.build_map(simple, simple, spec)))
    naive = len(maps.map_html(maps.naive_map(full)))
    assert ours * 3 < naive


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


def test_feature_collection_escapes_and_drops_empty(display: dict) -> None:
    communes = display["communes"].head(2).copy()
    communes.loc[communes.index[1], "geometry"] = None
    fc = maps.feature_collection(communes, {"nom": ["<i>A</i>", "B"], "n": [1, 2]},
                                 communes["code_insee"])
    assert len(fc["features"]) == 1
    assert fc["features"][0]["properties"] == {"nom": "&lt;i&gt;A&lt;/i&gt;", "n": 1}
    json.dumps(fc)


def test_view_for() -> None:
    assert maps.view_for(None) == (maps.FRANCE_CENTER, maps.FRANCE_ZOOM)
    center, zoom = maps.view_for((-0.6, 44.8, -0.5, 44.9))
    assert center == pytest.approx((44.85, -0.55)) and zoom >= 10

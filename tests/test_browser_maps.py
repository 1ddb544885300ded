"""Maps in a real browser (Debian's chromium through Playwright): national layers drawn as
polygons on an area, the naive baseline map drawing, the Fiche map of a QPV known by a
point. Servers and browsers come from :mod:`browser_support`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import MultiPoint

from app_env import make_env, tiny_catalogue
from browser_support import (
    assert_in_order,
    browser_available,
    browser_context,
    ensure_map_assets,
    map_frame,
    serve_env,
    settle,
)
from catalogue_factory import initiative, make_catalogue
from territoires.analysis import maps
from territoires.app import assets
from territoires.pipeline.layers import Layers
from tiny import make_layers

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"

if not browser_available():
    pytest.skip("chromium absent (/usr/bin/chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A French user's chromium context, offline (see :mod:`browser_support`)."""
    with browser_context() as context:
        yield context


_QPV_DRAWN = """() => {
    const out = {};
    window.map.eachLayer(l => {
        if (l.feature && l.feature.properties && l.feature.properties.lvl === 'qpv') {
            const t = l.feature.geometry.type;
            out[t] = (out[t] || 0) + 1;
        }
    });
    return out; }"""


#: The layers the frame keeps built (``window.__territoiresLayers``): their Leaflet ids and
#: how many are on the map now.
_REUSED = """() => { const kept = window.__territoiresLayers || {};
  const ids = Object.keys(kept).sort().map(k => kept[k]._leaflet_id);
  return {ids, shown: Object.values(kept).filter(l => window.map.hasLayer(l)).length,
          draws: window.__territoiresDraws || 0}; }"""


#: The frame's requests: URL path -> (start, end), ms since the frame's navigation.
_LOADS = """() => Object.fromEntries(performance.getEntriesByType('resource')
    .filter(e => !e.name.endsWith('.png'))
    .map(e => [new URL(e.name).pathname, [e.startTime, e.responseEnd]]))"""


#: The départements of the choropleth: code -> [class, initiatives, colour], and whether
#: every one of them carries ``window.__revalueMark`` (set on the features of a first view:
#: the same Leaflet objects, not built again).
CHOROPLETH = """(mark) => { const out = {}; let kept = true, n = 0;
  window.map.eachLayer(l => { const p = l.feature && l.feature.properties;
    if (!p || p.lvl !== 'departement') return;
    if (mark) l.__revalueMark = true;
    kept = kept && l.__revalueMark === true; n += 1;
    out[p.code] = [p.k, p.ini, l.options.fillColor]; });
  return {values: out, kept: kept && n > 0}; }"""


@pytest.mark.integration
def test_a_filter_change_gives_the_choropleth_its_new_values_in_place(
        mirror_geo_dir: Path, browser, tmp_path: Path) -> None:
    """At a filter change the national choropleth of the départements (a layer file: the
    tiny fixtures' layers are sent inline) is kept built: its features, the same Leaflet
    objects, take the new values and colours, those a first view of the new address
    draws."""
    env = make_env(tmp_path, make_layers(), tiny_catalogue())  # geo/ replaced below
    env["TERRITOIRES_GEO_DIR"] = str(mirror_geo_dir)
    with serve_env(tmp_path, env) as base:
        page = browser.new_page()
        fresh = browser.new_page()
        try:
            _revalued(base, page, fresh)
        finally:
            fresh.close()
            page.close()


def _revalued(base: str, page: object, fresh: object) -> None:
    """The theme filter set to Culture on the national Carte of ``base``: the
    choropleth's values as a first view of the new address gives them, on the same features."""
    page.goto(f"{base}/carte")
    frame_el = map_frame(page, timeout=120_000)
    settle(page)
    frame = frame_el.element_handle().content_frame()
    before = frame.evaluate(CHOROPLETH, True)
    assert before["kept"] and before["values"], before
    draws = frame.evaluate("() => window.__territoiresDraws || 0")
    box = page.get_by_test_id("stMultiSelect").filter(has_text="Thèmes").first
    box.click()
    page.keyboard.type("Culture")
    page.keyboard.press("Enter")
    frame.wait_for_function(f"() => (window.__territoiresDraws || 0) > {draws}",
                            timeout=60_000)
    settle(page)
    after = frame.evaluate(CHOROPLETH, False)
    assert "Culture" in page.url or "culture" in page.url, page.url
    fresh.goto(page.url)
    settle(fresh)
    expected = map_frame(fresh).element_handle().content_frame().evaluate(
        CHOROPLETH, False)
    assert after["values"] == expected["values"], (after, expected)
    assert after["values"] != before["values"], after
    assert after["kept"], "the choropleth was built again"


@pytest.mark.integration
def test_carte_seine_saint_denis_draws_qpv_polygons(mirror_geo_dir: Path, browser,
                                                    tmp_path: Path) -> None:
    """On the national layers built from the mirror, Carte on Seine-Saint-Denis draws its
    QPV as polygons, not circles."""
    qpv = gpd.read_parquet(mirror_geo_dir / "qpv.parquet")
    expected = int((qpv["code_dep"] == "93").sum())
    assert expected > 30
    env = make_env(tmp_path, make_layers(), tiny_catalogue())  # geo/ replaced below
    env["TERRITOIRES_GEO_DIR"] = str(mirror_geo_dir)
    with serve_env(tmp_path, env) as base:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        files: list[str] = []
        page.on("response", lambda r: files.append(r.url)
                if "/app/static/layers/" in r.url and r.ok else None)
        page.goto(f"{base}/carte?t=departement:93&niveau=commune")
        frame_el = map_frame(page, timeout=120_000)
        drawn = frame_el.element_handle().content_frame().evaluate(_QPV_DRAWN)
        polygons = drawn.get("Polygon", 0) + drawn.get("MultiPolygon", 0)
        assert polygons == expected, drawn  # Joncherolles (on old Pierrefitte) included
        assert drawn.get("Point", 0) == 0, drawn
        # the reference geography came as files (territoires.app.layer_files), not inline
        assert files, "aucune couche servie en fichier"
        # the app's map frame: no framework bundle; Leaflet, its plugins and the layer
        # files asked for at once, before any of them arrived (streamlit-folium's frame
        # loaded a React bundle, then each script after the previous one, then the files)
        loads = frame_el.element_handle().content_frame().evaluate(_LOADS)
        assert not [n for n in loads if n.endswith(".js") and "leaflet" not in n], loads
        first_end = min(end for _, end in loads.values())
        asked = [n for n in loads if n.endswith((".js", ".css")) or "/layers/" in n]
        assert any("/layers/" in n for n in asked) and any("markercluster" in n for n in asked)
        assert all(loads[n][0] <= first_end for n in asked), loads
        # drawn bottom first in the layers' order (choropleth, outlines, QPV...), whatever
        # order their files arrived in
        assert_in_order(frame_el.element_handle().content_frame())
        # a measure change swaps the layers in: the reference layers already built are
        # re-added (the same Leaflet objects), not decoded and built again
        frame = frame_el.element_handle().content_frame()
        kept = frame.evaluate(_REUSED)
        assert kept["ids"], kept
        page.get_by_text("Financements (€)", exact=True).first.click()
        frame.wait_for_function(f"() => (window.__territoiresDraws || 0) > {kept['draws']}",
                                timeout=60_000)
        map_frame(page)
        after = frame.evaluate(_REUSED)
        assert after["ids"] == kept["ids"] and after["shown"] >= len(kept["ids"]) - 1, after
        drawn = frame.evaluate(_QPV_DRAWN)
        assert drawn.get("Polygon", 0) + drawn.get("MultiPolygon", 0) == expected, drawn
        assert_in_order(frame)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "carte_seine_saint_denis.png"), full_page=True)
        assert errors == []
        page.close()


def test_naive_map_draws_in_leaflet(tiny_layers: Layers, browser) -> None:
    """The benchmark's naive baseline draws, MultiPoint cités included (it used to throw
    "t.getElement is not a function")."""
    cites = tiny_layers.cites_educatives.copy()
    cites.loc[0, "geometry"] = MultiPoint([(-0.585, 44.845), (-0.575, 44.85)])
    layers = {"communes": tiny_layers.communes, "qpv": tiny_layers.qpv,
              "cites_educatives": gpd.GeoDataFrame(cites, geometry="geometry",
                                                   crs=tiny_layers.cites_educatives.crs)}
    markers = pd.DataFrame({"lat": [44.84], "lon": [-0.58], "title": ["Une <b>fiche</b>"]})
    html = maps.map_html(maps.naive_map(layers, markers))
    page = browser.new_page()
    ensure_map_assets()

    def from_static(r) -> None:
        """The naive map links the CDN: serve the app's own copies of those files."""
        path = assets.local_file(r.request.url)
        if path is not None and path.exists():
            r.fulfill(path=str(path))
        elif r.request.url.split("?")[0].endswith((".js", ".css")):
            r.fulfill(status=200, body="", content_type="text/plain")  # bootstrap & co.
        else:
            r.abort()

    page.route("**/*", from_static)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_content(html, wait_until="load")
    page.wait_for_timeout(500)
    assert errors == []
    # every point is a marker: 2 (multipoint) + 2 cités + the initiative + QN09301M
    assert page.locator(".leaflet-marker-icon").count() == 6
    assert page.locator("path.leaflet-interactive").count() >= len(tiny_layers.communes)
    page.close()


def test_fiche_map_of_a_qpv_known_by_a_point(tiny_layers: Layers, browser,
                                            tmp_path: Path) -> None:
    """The Fiche map of an initiative whose only territory is a QPV known by its centroid
    (its commune without contour) draws (it used to fail: "Invalid LatLng (NaN, NaN)")."""
    communes = tiny_layers.communes.copy()
    communes.loc[communes["code_insee"] == "93066", "geometry"] = None
    layers = Layers(**{**dict(tiny_layers.items()), "communes": communes})
    catalogue = make_catalogue([
        initiative("quartier-nord", [("qpv", "QN09301M")], title="Lecture au Quartier Nord",
                   themes=["culture"], porteurs=[("Ville de Saint-Denis", "collectivite")]),
    ], [])
    with serve_env(tmp_path, make_env(tmp_path, layers, catalogue)) as base:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/fiche?id=quartier-nord")
        frame_el = map_frame(page)
        frame = frame_el.element_handle().content_frame()
        page.wait_for_timeout(1000)
        centre = frame.evaluate("() => { const c = window.map.getCenter(); "
                                "return [c.lat, c.lng, window.map.getZoom()]; }")
        assert centre[0] == pytest.approx(48.945, abs=0.01)
        assert centre[1] == pytest.approx(2.36, abs=0.01)
        assert 5 <= centre[2] <= 18
        drawn = frame.evaluate(_QPV_DRAWN)
        assert drawn.get("Point", 0) >= 1
        assert not [e for e in errors if "LatLng" in e], errors
        page.close()


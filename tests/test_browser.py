"""End-to-end: the real Streamlit server driven by Debian's chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from browser_support import (
    ARTIFACTS,
    MAP_IFRAME,
    OUTSIDE,
    browser_available,
    browser_context,
    map_frame,
    serve,
    wait_idle,
)
from territoires.analysis import html_tables
from territoires.analysis.views import HIGHLIGHT_COLOUR
from territoires.app import map_documents
from territoires.pipeline.layers import Layers

pytestmark = pytest.mark.browser

if not browser_available():
    pytest.skip("chromium absent (/usr/bin/chromium)", allow_module_level=True)

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_layers: Layers) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("browser"), tiny_layers) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """An offline French chromium context (see browser_support.browser_context)."""
    with browser_context() as context:
        yield context


def test_accueil_key_figures(server: str, browser) -> None:
    page = browser.new_page()
    page.goto(f"{server}/?t=commune:33119")
    page.get_by_test_id("stPageLink").first.wait_for(timeout=30_000)
    metric = page.get_by_test_id("stMetric").filter(has_text="Initiatives").first
    metric.wait_for(timeout=30_000)
    # the figure of the shared link's commune, once the run reading the link has drawn it
    # (a loaded machine may show the previous run's elements for a moment)
    expect(metric.get_by_test_id("stMetricValue")).to_have_text("1", timeout=30_000)
    page.close()


def test_map_scripts_served_by_the_app(server: str, browser) -> None:
    """Offline (every request outside 127.0.0.1 refused), the map draws from the app's own
    copies of Leaflet and MarkerCluster: no script or style sheet is asked of a CDN."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    served: list[str] = []
    page.on("response", lambda r: served.append(r.url) if "/app/static/vendor/" in r.url
            and r.ok else None)
    OUTSIDE.clear()
    page.goto(f"{server}/carte")
    frame_el = page.locator(MAP_IFRAME).first
    frame_el.wait_for(timeout=60_000)
    frame_el.content_frame.locator(".leaflet-control-layers-overlays").wait_for(timeout=30_000)
    assert frame_el.content_frame.locator(".marker-cluster, .leaflet-interactive").count() > 0
    assert any(u.endswith("leaflet.js") for u in served)
    assert any(u.endswith("leaflet.markercluster.js") for u in served)
    assert any(u.endswith("leaflet.css") for u in served)
    outside = [(kind, url) for kind, url in OUTSIDE if kind in ("script", "stylesheet")]
    assert outside == []
    assert errors == []
    page.close()


def test_shared_map_link_and_click(server: str, browser) -> None:
    page = browser.new_page()
    page.goto(f"{server}/carte?t=departement:33&niveau=commune")
    frame_el = page.locator(MAP_IFRAME).first
    frame_el.wait_for(timeout=60_000)
    frame = frame_el.content_frame
    control = frame.locator(".leaflet-control-layers-overlays")
    control.wait_for(timeout=30_000)
    text = control.inner_text()
    for name in ("Régions", "Départements", "Communes — nombre d'initiatives", "QPV",
                 "Contrats de ville", "Cités éducatives", "Initiatives"):
        assert name in text
    legend = frame.locator(".territoires-legend").inner_text()
    assert "Licence Ouverte 2.0" in legend
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "carte_gironde.png"), full_page=True)
    # the pointer over Lormont shows its tooltip (the choropleth layer's own, a function
    # of the feature under the pointer)
    tip = frame_el.element_handle().content_frame().evaluate(
        """() => {
        let target = null;
        window.map.eachLayer(l => { if (l.feature && l.feature.properties
            && l.feature.properties.lvl === 'commune'
            && l.feature.properties.code === '33249') target = l; });
        target.fire('mouseover', {latlng: target.getBounds().getCenter(), layer: target,
                                  sourceTarget: target, target: target}, true);
        const shown = document.querySelector('.leaflet-tooltip');
        return shown ? shown.textContent : null;
        }"""
    )
    assert tip is not None and "Lormont" in tip and "33249" in tip
    # click the Lormont commune (a feature of the choropleth, drawn on a canvas)
    frame_el.element_handle().content_frame().evaluate(
        """() => {
        const m = window.map;
        let target = null;
        m.eachLayer(l => { if (l.feature && l.feature.properties
            && l.feature.properties.lvl === 'commune'
            && l.feature.properties.code === '33249') target = l; });
        target.fire('click', {latlng: target.getBounds().getCenter(), layer: target,
                              sourceTarget: target, target: target});
        }"""
    )
    page.wait_for_url(lambda url: "33249" in url, timeout=30_000)
    params = parse_qs(urlparse(page.url).query)
    assert params["t"] == ["commune:33249"]
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "carte_apres_clic.png"), full_page=True)
    page.close()


#: Page script: when the map's frame and the first menu link appear (ms since navigation),
#: how many frame elements were created and how many documents they loaded
FIRST_VIEW_JS = """(() => { if (window !== window.top) return;
  const v = window.__firstView = {elements: 0, loads: 0}; const seen = new WeakSet();
  new MutationObserver(() => {
    const f = document.querySelector(`MAP_IFRAME`);
    if (f && !seen.has(f)) { seen.add(f); v.elements += 1;
      if (v.frame === undefined) v.frame = performance.now();
      f.addEventListener('load', () => { v.loads += 1; }); }
    if (v.link === undefined && document.querySelector('[data-testid="stPageLink"]'))
      v.link = performance.now();
  }).observe(document, {subtree: true, childList: true}); })()""".replace("`MAP_IFRAME`",
                                                                          repr(MAP_IFRAME))


@pytest.mark.parametrize("path", ["/carte?t=departement:33", "/couverture?t=departement:33"])
def test_first_view_draws_the_map_before_the_widgets(server: str, browser, path: str
                                                     ) -> None:
    """By default, a new visit of Carte or Couverture: the map's frame
    comes first, then the menu and the filters (a second run of the app, that the frame
    triggers), in the same frame, never reloaded."""
    page = browser.new_page()
    page.add_init_script(FIRST_VIEW_JS)
    page.goto(server + path)
    frame_el = map_frame(page)
    radios = {"/carte": 3, "/couverture": 1}[path.split("?")[0]]
    page.get_by_test_id("stPageLink").first.wait_for(timeout=30_000)
    page.get_by_test_id("stMultiSelect").first.wait_for(timeout=30_000)
    expect(page.get_by_test_id("stRadio")).to_have_count(radios, timeout=30_000)
    page.wait_for_timeout(500)  # a frame created or loaded again would be by now
    seen = page.evaluate("window.__firstView")
    assert seen["frame"] < seen["link"], seen
    assert (seen["elements"], seen["loads"]) == (1, 1), seen
    assert frame_el.count() == 1
    assert parse_qs(urlparse(page.url).query)["t"] == ["departement:33"]  # kept in the URL
    page.close()


def test_couverture_highlights_uncovered_qpv(server: str, browser) -> None:
    """Couverture's map draws every QPV no initiative reaches in the highlight colour:
    polygons where the QPV has a contour, a circle for the one known by its centroid."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server}/couverture")
    frame_el = page.locator(MAP_IFRAME).first
    frame_el.wait_for(timeout=60_000)
    frame = frame_el.content_frame
    frame.locator(".leaflet-control-layers-overlays").wait_for(timeout=30_000)
    assert "Non touchés" in frame.locator(".leaflet-control-layers-overlays").inner_text()
    drawn = frame_el.element_handle().content_frame().evaluate(
        """(colour) => {
        const out = [];
        window.map.eachLayer(l => { if (l.feature && l.options && l.options.color === colour)
            out.push([l.feature.properties.code, l.feature.geometry.type]); });
        return out; }""", HIGHLIGHT_COLOUR
    )
    # a map of France: polygons, and a circle on each so that small QPV show
    assert sorted(map(tuple, drawn)) == [
        ("QN01701M", "Point"), ("QN01701M", "Polygon"), ("QN03301I", "Point"),
        ("QN03301I", "Polygon"), ("QN03317M", "Point"), ("QN03317M", "Polygon"),
        ("QN09301M", "Point")]
    page.get_by_text("QPV que ne touche aucune initiative : 4").first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "couverture.png"), full_page=True)

    # the fiche's small map uses the same highlighted map: it must draw too
    page.goto(f"{server}/fiche?id=cenon-culture")
    frame_el = page.locator(MAP_IFRAME).first
    frame_el.wait_for(timeout=60_000)
    frame_el.content_frame.locator(".leaflet-control-layers-overlays").get_by_text(
        "Territoires de l'initiative").wait_for(state="attached", timeout=30_000)
    assert frame_el.bounding_box()["height"] > 300
    assert errors == []
    page.close()


def test_fiche_map_is_a_document_of_its_own(server: str, browser) -> None:
    """The Fiche's map is a document in a sandboxed iframe (drawn in a process of its own,
    created with the page's first elements), not a component's frame: named for screen
    readers, out of the page's reach, and kept as it is by a rerun that does not change
    it (no reload)."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server}/fiche?id=cenon-culture")
    frame_el = map_frame(page)
    assert frame_el.get_attribute("sandbox") == map_documents.SANDBOX
    assert frame_el.get_attribute("title") == "Carte des territoires de l'initiative"
    assert frame_el.get_attribute("src").startswith("/app/static/maps/")
    assert page.locator("iframe[title*='carte_interactive']").count() == 0
    assert page.evaluate("""() => { const f = document.querySelector('iframe.territoires-carte');
        try { return f.contentWindow.document ? 'reached' : 'null'; }
        catch (e) { return 'blocked'; } }""") == "blocked"  # an origin of its own
    frame = frame_el.element_handle().content_frame()
    assert frame.evaluate("() => document.documentElement.lang") == "fr"
    assert frame.evaluate("() => window.map.getZoom()") >= 8  # fitted to Cenon
    frame.evaluate("() => { window.__sameDocument = true; }")
    # a rerun (the report form's expander reruns as it opens); the map is the same
    page.get_by_text("Signaler une erreur sur cette fiche").click()
    page.get_by_text("Ce qui est inexact ou manque").wait_for()
    wait_idle(page)
    assert frame_el.element_handle().content_frame().evaluate(
        "() => window.__sameDocument === true")
    assert errors == []
    page.close()


def test_fiche_print_style(server: str, browser) -> None:
    """The Fiche's print style sheet (Markdown's HTML, no ``st.html``: no lazily loaded
    code) hides the menu and the map when printing, and its element takes no room."""
    page = browser.new_page()
    page.goto(f"{server}/fiche?id=cenon-culture")
    map_frame(page)
    holder = page.locator(".stElementContainer:has(#territoires-print)")
    assert holder.count() == 1 and not holder.is_visible()
    sidebar = page.get_by_test_id("stSidebar")
    assert sidebar.is_visible()
    page.emulate_media(media="print")
    assert not sidebar.is_visible()
    assert not page.locator(MAP_IFRAME).first.is_visible()
    page.emulate_media(media="screen")
    assert sidebar.is_visible()
    page.close()


def test_fiche_tables_and_filters(server: str, browser) -> None:
    """The Fiche's tables are HTML tables in the page (``st.html``), styled and printed; the
    sidebar states the filters as text (no widget on a fiche) and the menu keeps them."""
    page = browser.new_page()
    page.goto(f"{server}/fiche?id=cenon-culture&themes=culture")
    map_frame(page)
    tables = page.locator(f"table.{html_tables.TABLE_CLASS}")
    tables.first.wait_for()
    assert tables.count() >= 3
    head = tables.first.locator("th").first
    assert head.get_attribute("scope") == "col"
    assert head.evaluate("e => getComputedStyle(e).fontWeight") == "600"
    assert head.evaluate("e => getComputedStyle(e).borderBottomStyle") == "solid"
    sidebar = page.get_by_test_id("stSidebar")
    assert sidebar.get_by_text("Thèmes : Culture", exact=False).is_visible()
    assert sidebar.get_by_test_id("stMultiSelect").count() == 0
    assert sidebar.get_by_test_id("stTextInput").count() == 0
    assert "themes=culture" in sidebar.get_by_role("link", name="Carte").get_attribute("href")
    page.emulate_media(media="print")
    assert tables.first.is_visible()
    page.close()


def test_comparer_and_xlsx_download(server: str, browser) -> None:
    """Comparer with two territories in the URL shows both columns; Exporter's XLSX
    download opens with openpyxl and holds the initiatives sheet."""
    import io

    from openpyxl import load_workbook

    page = browser.new_page()
    page.goto(f"{server}/comparer?cmp=commune:33119,commune:64445")
    grid = page.get_by_test_id("stDataFrame").first
    grid.wait_for(timeout=60_000)
    for name in ("Cenon (commune)", "Pau (commune)"):  # the grid's (hidden) a11y table
        page.locator("th[role=columnheader]", has_text=name).first.wait_for(
            state="attached", timeout=30_000)
    page.get_by_role("tab", name="Pau (commune) — 1").click()
    page.get_by_text("Sport à Pau").first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "comparer_cenon_pau.png"), full_page=True)

    page.goto(f"{server}/exporter?format=xlsx")
    button = page.get_by_test_id("stDownloadButton").first
    button.wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as info:
        button.locator("button").click()
    download = info.value
    assert download.suggested_filename.endswith(".xlsx")
    wb = load_workbook(io.BytesIO(Path(download.path()).read_bytes()), read_only=True)
    assert "initiatives" in wb.sheetnames
    rows = list(wb["initiatives"].iter_rows(values_only=True))
    assert len(rows) == 4  # header + the three tiny initiatives
    page.close()


def test_deep_link_on_fresh_server(tmp_path: Path, tiny_layers: Layers, browser) -> None:
    """The very first session of a new server opened on a shared link (not on "/") gets the
    app's own menu, the page asked for and its filters, not Streamlit's pages/ fallback."""
    with serve(tmp_path, tiny_layers) as base:
        page = browser.new_page()
        page.goto(f"{base}/catalogue?t=commune:33119&themes=culture")
        page.get_by_test_id("stPageLink").filter(has_text="Accueil").first.wait_for(
            timeout=60_000)
        page.get_by_role("heading", name="Catalogue").first.wait_for(timeout=30_000)
        page.wait_for_url(lambda url: "/catalogue" in url and "33119" in url, timeout=30_000)
        params = parse_qs(urlparse(page.url).query)
        assert params["t"] == ["commune:33119"]
        assert params["themes"] == ["culture"]
        assert page.get_by_test_id("stSidebarNav").count() == 0  # no pages/ fallback menu
        page.get_by_text("Culture à Cenon").first.wait_for(state="attached", timeout=30_000)
        page.close()

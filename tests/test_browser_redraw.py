"""Carte in a real browser: a change of measure or of filter redraws the layers in the same
map frame (no new iframe, no Leaflet reload), with the layer control and legend of the new
layers; a click on a territory still makes it the filter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from browser_support import browser_available, browser_context, map_frame, serve, settle
from territoires.pipeline.layers import Layers

pytestmark = pytest.mark.browser

if not browser_available():
    pytest.skip("chromium absent (/usr/bin/chromium)", allow_module_level=True)

FRAME = "iframe[title*='carte_interactive']"
#: Marks the frame's window: a reloaded frame (new document) loses the mark.
MARK = "() => { window.__redrawMark = 'kept'; return window.__territoiresDraws || 0; }"
STATE = """() => ({mark: window.__redrawMark || null, draws: window.__territoiresDraws || 0,
    legend: (document.querySelector('.territoires-legend') || {}).innerText || '',
    layers: [...document.querySelectorAll('.leaflet-control-layers-overlays label')]
        .map(l => l.innerText.trim()),
    checked: [...document.querySelectorAll('.leaflet-control-layers-overlays label')]
        .filter(l => l.querySelector('input').checked).map(l => l.innerText.trim()),
    features: Object.values(window.map._layers).filter(l => l.feature).length})"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_layers: Layers) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("redraw"), tiny_layers) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with browser_context() as context:
        yield context


def _wait_redrawn(frame, draws: int, timeout: float = 60_000) -> dict:
    frame.wait_for_function(f"() => (window.__territoiresDraws || 0) > {draws}",
                            timeout=timeout)
    return frame.evaluate(STATE)


def test_measure_and_filter_change_redraw_in_the_same_frame(server: str, browser) -> None:
    page = browser.new_page()
    fragments: list[str] = []
    _reruns(page, fragments)
    try:
        page.goto(f"{server}/carte")
        frame_el = map_frame(page)
        settle(page)
        frame = frame_el.element_handle().content_frame()
        before = frame.evaluate(STATE)
        assert before["draws"] >= 1, before
        assert "Nombre d'initiatives" in before["legend"], before
        assert any(name.startswith("Départements —") for name in before["layers"]), before
        handle = frame_el.element_handle()
        draws = frame.evaluate(MARK)

        # measure (a page choice) -> the choropleth and its legend change, same frame
        page.get_by_text("Financements (€)", exact=True).first.click()
        after = _wait_redrawn(frame, draws)
        settle(page)
        after = frame.evaluate(STATE)
        assert after["mark"] == "kept", "the map frame was reloaded"
        assert page.locator(FRAME).count() == 1
        assert page.locator(FRAME).first.element_handle().evaluate(
            "(el, old) => el === old", handle)
        assert "Financements (€)" in after["legend"], after
        assert "Nombre d'initiatives" not in after["legend"], after
        assert any("financements" in name for name in after["layers"]), after
        assert not any("nombre d'initiatives" in name for name in after["layers"]), after
        assert after["features"] > 0, after
        # a layer hidden at first stays hidden (unticked) after the swap
        assert "Contrats de ville" in after["layers"], after
        assert "Contrats de ville" not in after["checked"], after
        assert "Cités éducatives" in after["checked"] or "Cités éducatives" not in after[
            "layers"], after

        # the measure is a choice of the map's part of the page (a fragment): its change
        # runs that part only, not the filter sidebar
        assert fragments[0] == "" and fragments[-1], fragments

        # filter (sidebar) -> the initiatives layer changes, same frame
        draws = after["draws"]
        box = page.get_by_test_id("stMultiSelect").filter(has_text="Thèmes").first
        box.click()
        page.keyboard.type("Culture")
        page.keyboard.press("Enter")
        filtered = _wait_redrawn(frame, draws)
        settle(page)
        filtered = frame.evaluate(STATE)
        assert filtered["mark"] == "kept", "the map frame was reloaded"
        assert page.locator(FRAME).count() == 1
        # the layers are those of the new selection, each listed once
        assert len(filtered["layers"]) == len(set(filtered["layers"])), filtered
        themes = filtered["legend"].split("Initiatives par thème")[-1]
        assert "Culture" in themes, filtered
        assert (filtered["legend"], filtered["features"]) != (after["legend"],
                                                              after["features"]), filtered
        assert filtered["features"] > 0, filtered
        assert fragments[-1] == "", fragments  # a filter change runs the whole page
    finally:
        page.close()


def test_click_on_a_territory_after_a_redraw_filters(server: str, browser) -> None:
    """The layers swapped in after a change are clickable (streamlit-folium binds its click
    handler to the new layers): a click on a département makes it the filter."""
    page = browser.new_page()
    try:
        page.goto(f"{server}/carte")
        frame_el = map_frame(page)
        settle(page)
        frame = frame_el.element_handle().content_frame()
        draws = frame.evaluate(MARK)
        page.get_by_text("Financements (€)", exact=True).first.click()
        _wait_redrawn(frame, draws)
        settle(page)
        frame.evaluate("""() => { let target = null;
            window.map.eachLayer(l => { if (l.feature && l.feature.properties
                && l.feature.properties.lvl === 'departement') target = l; });
            target.fire('click', {latlng: target.getBounds().getCenter(), layer: target,
                                  sourceTarget: target, target: target}); }""")
        page.wait_for_url(lambda url: "t=departement" in url, timeout=60_000)
        assert "mesure=funding_eur" in page.url
    finally:
        page.close()


def _reruns(page, fragments: list[str] | None = None) -> list[str]:
    """The script runs the page asks for over its websocket (Streamlit's BackMsg): their
    page names; ``fragments`` gets the fragment each run is limited to ("": the page)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    asked: list[str] = []

    def sent(payload: object) -> None:
        if isinstance(payload, bytes | bytearray):
            msg = BackMsg()
            msg.ParseFromString(bytes(payload))
            if msg.WhichOneof("type") == "rerun_script":
                asked.append(msg.rerun_script.page_name or "?")
                if fragments is not None:
                    fragments.append(msg.rerun_script.fragment_id)

    page.on("websocket", lambda ws: ws.on("framesent", sent))
    return asked


@pytest.mark.parametrize(("path", "runs"), [("/carte", 2), ("/fiche?id=cenon-culture", 1)])
def test_a_first_view_runs_the_page_once(server: str, browser, path: str, runs: int) -> None:
    """Drawing the map, and the view the page sets, post nothing back: a value posted
    would run the page a second time after every first view. Carte's first view asks for
    one more run, once, as its map starts drawing (the run that draws the menu and the
    widgets, ``ui.first_view_step``)."""
    page = browser.new_page()
    asked = _reruns(page)
    page.goto(server + path)
    map_frame(page)
    settle(page)
    page.wait_for_timeout(1500)  # past the 250 ms the frame waits after a move
    settle(page)
    assert len(asked) == runs, asked
    page.close()

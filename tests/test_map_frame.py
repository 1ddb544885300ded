"""The map frame's page (``territoires/app/map_frame/index.html``) in chromium, without
Streamlit: a stand-in parent page speaks Streamlit's component protocol to it (the
handshake, render messages, the values it posts back). The whole app around it is tested by
``test_browser*.py``."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import folium
import pytest

from browser_support import (
    assert_in_order,
    browser_available,
    browser_context,
    ensure_map_assets,
)
from territoires.analysis import maps
from territoires.app import assets, map_component

pytestmark = pytest.mark.browser

if not browser_available():
    pytest.skip("chromium absent (/usr/bin/chromium)", allow_module_level=True)

#: The stand-in for Streamlit's page: it records the frame's messages, answers its
#: handshake with nothing (the test sends the renders) and relays renders to it.
PARENT = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Parent</title>
</head><body>
<iframe id="map" title="carte_interactive" src="/frame/index.html" style="width:600px"></iframe>
<iframe id="other" title="autre" srcdoc="<p>autre</p>"></iframe>
<script>
window.messages = [];
window.addEventListener("message", e => {
  if (e.source === document.getElementById("map").contentWindow) window.messages.push(e.data);
});
window.render = args => document.getElementById("map").contentWindow.postMessage(
  {type: "streamlit:render", args: args, dfs: [], disabled: false}, "*");
</script></body></html>"""


class _Handler(SimpleHTTPRequestHandler):
    """``/parent.html``, ``/frame/…`` (the map frame's folder), ``/app/static/…`` (the
    app's static folder: Leaflet and its plugins, layer files)."""

    def __init__(self, *args: object, static: Path, **kwargs: object) -> None:
        self.static = static
        super().__init__(*args, directory=str(static), **kwargs)  # type: ignore[arg-type]

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/frame/"):
            return str(map_component.FRAME_DIR / path.removeprefix("/frame/"))
        if path.startswith(assets.STATIC_URL + "/"):
            return str(self.static / path.removeprefix(assets.STATIC_URL + "/"))
        return str(self.static / "__absent__")

    def do_GET(self) -> None:
        if self.path == "/parent.html":
            body = PARENT.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    ensure_map_assets()
    handler = functools.partial(_Handler, static=assets.static_dir())
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with browser_context() as context:
        yield context


def _args(name: str, *, height: int = 300, returned: list[str] | None = None,
          js_links: list[str] | None = None, center: list[float] | None = None,
          zoom: int | None = None, tooltip: str | None = None) -> dict[str, object]:
    """The frame's arguments for a small map: a base map, a feature group ``name`` of one
    clickable polygon (a commune of that name) and its layer control."""
    fmap = folium.Map(location=[44.85, -0.55], zoom_start=9, tiles=None)
    group = folium.FeatureGroup(name=name)
    feature = {"type": "Feature",
               "properties": {"lvl": "commune", "code": "33119", "name": name},
               "geometry": {"type": "Polygon", "coordinates": [[
                   [-0.6, 44.8], [-0.5, 44.8], [-0.5, 44.9], [-0.6, 44.8]]]}}
    folium.GeoJson({"type": "FeatureCollection", "features": [feature]},
                   tooltip=tooltip or folium.GeoJsonTooltip(["name"])).add_to(group)
    assets.localise(fmap)
    rendered = map_component.render(fmap, [group], folium.LayerControl(), key="t")
    kwargs = map_component.component_kwargs(rendered, key="t", height=height,
                                            returned_objects=returned, center=center,
                                            zoom=zoom)
    if js_links is not None:
        kwargs["js_links"] = js_links
    return json.loads(json.dumps(kwargs))


def _groups_args(groups: list[tuple[str, int, float, bool]]) -> dict[str, object]:
    """The frame's arguments for a map drawn on a canvas (as the app's) with the feature
    groups ``(name, features, offset, shown at first)``, bottom first, each of
    ``features`` squares ``offset`` degrees east, and their layer control (the app's:
    groups not shown at first taken off)."""
    fmap = folium.Map(location=[44.85, -0.55], zoom_start=8, tiles=None, prefer_canvas=True)
    made = []
    for name, count, offset, show in groups:
        group = folium.FeatureGroup(name=name, show=show)
        features = [{"type": "Feature", "properties": {"name": f"{name} {i}"},
                     "geometry": {"type": "Polygon", "coordinates": [[
                         [x, 44.8], [x + 0.2, 44.8], [x + 0.2, 45.0], [x, 44.8]]]}}
                    for i in range(count) for x in [-1.0 + offset + 0.05 * i]]
        folium.GeoJson({"type": "FeatureCollection", "features": features}).add_to(group)
        made.append(group)
    assets.localise(fmap)
    rendered = map_component.render(fmap, made, maps.SwapLayerControl(collapsed=False),
                                    key="t")
    return json.loads(json.dumps(map_component.component_kwargs(rendered, key="t",
                                                                height=300)))


#: Marks the groups drawn (their index then) and records any of them leaving the map.
_MARK_GROUPS = """() => { window.feature_group.forEach((g, i) => { g.__mark = i;
    g.on('remove', () => { g.__removed = true; }); });
  return window.__territoiresDraws; }"""
_MARKS = """() => window.feature_group.map(g => g.__mark === undefined ? null
    : (g.__removed ? 'removed' : g.__mark))"""
_SHOWN = "() => window.feature_group.map(g => window.map.hasLayer(g))"


def _redraw(page, frame, args: dict[str, object], draws: int) -> None:
    page.evaluate("args => render(args)", args)
    frame.locator("body").element_handle().owner_frame().wait_for_function(
        f"() => window.__territoiresDraws > {draws}", timeout=10_000)


@pytest.mark.parametrize("changed", [0, 1])
def test_redraw_keeps_the_groups_that_did_not_change(base: str, browser,
                                                     changed: int) -> None:
    """A filter change usually changes one or two groups (the choropleth, the
    initiatives): the other groups stay on the map as they are (same Leaflet objects,
    never taken off), the changed one is drawn anew, and the canvas still draws the
    groups bottom first (a new group at the bottom brought to the back, one in the middle
    with its upper groups brought to the front)."""
    page, frame, errors = _open(browser, base)
    layout = [("Bas", 6, 0.0, True), ("Milieu", 2, 0.3, True), ("Haut", 1, 0.6, True)]
    page.evaluate("args => render(args)", _groups_args(layout))
    frame.locator(".leaflet-control-layers").wait_for(state="attached")
    draws = frame.locator("body").evaluate(_MARK_GROUPS)
    name, count, offset, show = layout[changed]
    layout[changed] = (name, count, offset + 0.01, show)
    _redraw(page, frame, _groups_args(layout), draws)
    marks = frame.locator("body").evaluate(_MARKS)
    assert marks == [None if i == changed else i for i in range(3)], marks
    assert frame.locator("body").evaluate(_SHOWN) == [True, True, True]
    assert_in_order(frame.locator("body").element_handle().owner_frame())
    assert _groups_drawn(page) == ["Bas", "Milieu", "Haut"]
    # the same render again draws nothing (Streamlit sends one at every rerun)
    draws = frame.locator("body").evaluate("() => window.__territoiresDraws")
    page.evaluate("args => render(args)", _groups_args(layout))
    page.wait_for_timeout(300)
    assert frame.locator("body").evaluate("() => window.__territoiresDraws") == draws
    assert errors == []
    page.close()


def test_redraw_keeps_the_layers_the_user_chose(base: str, browser) -> None:
    """A group the user hid in the layer control stays hidden after a redraw, and one the
    user showed (hidden at first) stays shown, whether the group changed or not."""
    page, frame, errors = _open(browser, base)
    layout = [("QPV", 2, 0.0, True), ("Contrats de ville", 1, 0.3, False),
              ("Initiatives", 1, 0.6, True)]
    page.evaluate("args => render(args)", _groups_args(layout))
    control = frame.locator(".leaflet-control-layers")
    control.wait_for(state="attached")
    assert frame.locator("body").evaluate(_SHOWN) == [True, False, True]
    control.get_by_text("QPV").click()
    control.get_by_text("Contrats de ville").click()
    assert frame.locator("body").evaluate(_SHOWN) == [False, True, True]
    draws = frame.locator("body").evaluate("() => window.__territoiresDraws")
    layout[2] = ("Initiatives", 1, 0.65, True)  # a filter change: another group
    _redraw(page, frame, _groups_args(layout), draws)
    assert frame.locator("body").evaluate(_SHOWN) == [False, True, True]
    draws = frame.locator("body").evaluate("() => window.__territoiresDraws")
    layout = [(n, c, o + 0.01, s) for n, c, o, s in layout]  # every group changed
    _redraw(page, frame, _groups_args(layout), draws)
    assert frame.locator("body").evaluate(_SHOWN) == [False, True, True]
    assert _groups_drawn(page) == ["Contrats de ville", "Initiatives"]
    assert errors == []
    page.close()


def _open(browser, base: str):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/parent.html")
    page.wait_for_function(
        "() => messages.some(m => m.type === 'streamlit:componentReady' && m.apiVersion === 1)")
    frame = page.frame_locator("#map")
    return page, frame, errors


def _groups_drawn(page) -> list[str]:
    return page.frame_locator("#map").locator("body").evaluate(
        """() => (window.layer_control ? window.layer_control._layers : [])
                 .filter(l => window.map.hasLayer(l.layer)).map(l => l.name)""")


def test_handshake_height_draw_and_redraw_in_place(base: str, browser) -> None:
    """The frame says it is ready, takes its height from the first render at once, draws;
    the next render swaps the groups in the same Leaflet map and sets the view."""
    page, frame, errors = _open(browser, base)
    page.evaluate("args => render(args)", _args("Cenon", height=320))
    page.wait_for_function("() => messages.some(m => m.type === 'streamlit:setFrameHeight')")
    heights = page.evaluate(
        "() => messages.filter(m => m.type === 'streamlit:setFrameHeight').map(m => m.height)")
    assert heights[0] == 320
    frame.locator(".leaflet-control-layers").wait_for(state="attached")
    assert _groups_drawn(page) == ["Cenon"]
    leaflet_id = frame.locator("body").evaluate("() => L.stamp(window.map)")
    page.evaluate("args => render(args)", _args("Lormont", height=320, center=[45.0, -0.4],
                                                zoom=11))
    page.wait_for_function("() => document.getElementById('map').contentWindow"
                           ".__territoiresGroups.includes('Lormont')")
    assert _groups_drawn(page) == ["Lormont"]
    view = frame.locator("body").evaluate(
        "() => [L.stamp(window.map), window.map.getZoom(), window.map.getCenter().lat]")
    assert view == [leaflet_id, 11, pytest.approx(45.0)]
    # the frame never posts a value nobody asked for (no rerun of the app at each draw)
    assert not page.evaluate(
        "() => messages.filter(m => m.type === 'streamlit:setComponentValue').length")
    assert errors == []
    page.close()


def test_a_view_set_by_the_app_posts_nothing(base: str, browser) -> None:
    """The view the app sets (centre, zoom: a move the user did not make) posts no value,
    even when the view is returned: a value posted reruns the app's page."""
    page, frame, errors = _open(browser, base)
    page.evaluate("args => render(args)", _args("Cenon", returned=["zoom", "bounds"],
                                                center=[45.0, -0.4], zoom=11))
    frame.locator(".leaflet-control-layers").wait_for(state="attached")
    assert frame.locator("body").evaluate("() => window.map.getZoom()") == 11
    page.wait_for_timeout(800)  # past the 250 ms a move waits for
    assert not page.evaluate(
        "() => messages.filter(m => m.type === 'streamlit:setComponentValue').length")
    assert errors == []
    page.close()


def test_render_arriving_while_loading_is_the_one_drawn(base: str, browser) -> None:
    """Streamlit sends a render at every rerun: one arriving while Leaflet still loads is
    drawn once the map is there (not lost, not drawn twice)."""
    page, frame, errors = _open(browser, base)
    page.evaluate("([a, b]) => { render(a); render(b); }",
                  [_args("Cenon"), _args("Bègles")])
    frame.locator(".leaflet-control-layers").wait_for(state="attached")
    page.wait_for_timeout(300)
    assert _groups_drawn(page) == ["Bègles"]
    assert frame.locator("body").evaluate("() => window.feature_group.length") == 1
    assert errors == []
    page.close()


def test_click_on_a_territory_is_returned_at_once(base: str, browser) -> None:
    """A click on a feature posts the feature (``last_active_drawing``) at once, filtered
    by ``returned_objects``; moving the map then posts nothing more (bounds not asked)."""
    page, frame, errors = _open(browser, base)
    page.evaluate("args => render(args)", _args("Cenon", returned=["last_active_drawing"]))
    frame.locator(".leaflet-control-layers").wait_for(state="attached")
    sent = frame.locator("body").evaluate("""() => {
        let target = null;
        window.map.eachLayer(l => { if (l.feature) target = l; });
        // what the frame posts during the click itself (no timer in between)
        const posted = [], post = window.parent.postMessage;
        window.parent.postMessage = (m, o) => { posted.push(m); post.call(window.parent, m, o); };
        target.fire('click', {latlng: target.getBounds().getCenter(), layer: target,
                              sourceTarget: target});
        window.parent.postMessage = post;
        return posted; }""")
    values = [m for m in sent if m["type"] == "streamlit:setComponentValue"]
    assert len(values) == 1 and values[0]["dataType"] == "json"
    value = values[0]["value"]
    assert list(value) == ["last_active_drawing"]
    assert maps.clicked_territory(value) == ("commune", "33119")
    # the same click going up to the feature's GeoJSON layer and its group: no new value
    frame.locator("body").evaluate("""() => { window.map.eachLayer(l => {
        if (l.feature) l.fire('click', {latlng: l.getBounds().getCenter()}, true); }); }""")
    frame.locator("body").evaluate("() => window.map.setZoom(6)")
    page.wait_for_timeout(600)  # past the 250 ms a move waits for
    assert page.evaluate(
        "() => messages.filter(m => m.type === 'streamlit:setComponentValue').length") == 1
    assert errors == []
    page.close()


def test_tooltip_text_read_without_running_its_markup(base: str, browser) -> None:
    """The clicked feature's tooltip is returned as text; markup in it (the app escapes
    catalogue text, this is the frame's own guard) is never run or loaded."""
    page, frame, errors = _open(browser, base)
    tip = '<img src="/x.png" onerror="parent.__xss = 1">Cenon'
    page.evaluate("args => render(args)",
                  _args("Cenon", tooltip=tip, returned=["last_object_clicked_tooltip"]))
    frame.locator(".leaflet-control-layers").wait_for(state="attached")
    frame.locator("body").evaluate("""() => {
        let target = null;
        window.map.eachLayer(l => { if (l.feature) target = l; });
        // Leaflet itself shows a tooltip on click (as HTML): not what is tested here
        window.map.eachLayer(l => { if (l._tooltip) l.off('click', l._openTooltip, l); });
        // as a real click: from the polygon up to its GeoJSON layer, which has the tooltip
        target.fire('click', {latlng: target.getBounds().getCenter()}, true); }""")
    page.wait_for_function(
        "() => messages.some(m => m.type === 'streamlit:setComponentValue')", timeout=5000)
    page.wait_for_timeout(300)
    values = page.evaluate(
        "() => messages.filter(m => m.type === 'streamlit:setComponentValue')")
    assert [v["value"] for v in values] == [{"last_object_clicked_tooltip": "Cenon"}]
    assert page.evaluate("() => window.__xss") is None
    assert errors == []
    page.close()


def test_view_returned_once_the_map_stops(base: str, browser) -> None:
    page, frame, _ = _open(browser, base)
    page.evaluate("args => render(args)", _args("Cenon", returned=["zoom", "bounds"]))
    frame.locator(".leaflet-control-layers").wait_for(state="attached")
    frame.locator("body").evaluate("() => window.map.setZoom(7, {animate: false})")
    page.wait_for_function(
        "() => messages.some(m => m.type === 'streamlit:setComponentValue')", timeout=5000)
    value = page.evaluate(
        "() => messages.filter(m => m.type === 'streamlit:setComponentValue')[0].value")
    assert value["zoom"] == 7 and set(value["bounds"]) == {"_southWest", "_northEast"}
    page.close()


def test_only_the_parent_is_listened_to(base: str, browser) -> None:
    """A render posted by another window (a sibling frame) is ignored."""
    page, frame, _ = _open(browser, base)
    page.evaluate("""args => {
        const other = document.getElementById('other').contentWindow;
        const s = other.document.createElement('script');
        s.textContent = 'parent.document.getElementById("map").contentWindow.postMessage('
            + JSON.stringify({type: 'streamlit:render', args: args}) + ', "*");';
        other.document.body.appendChild(s); }""", _args("Cenon"))
    page.wait_for_timeout(800)
    assert frame.locator("body").evaluate("() => window.map === undefined")
    assert not page.evaluate(
        "() => messages.filter(m => m.type === 'streamlit:setFrameHeight').length")
    page.close()


def test_a_script_that_cannot_load_says_so(base: str, browser) -> None:
    """A map that cannot load says so, and still announces itself (a first view's widgets
    wait for that announce)."""
    page, frame, _ = _open(browser, base)
    page.evaluate("args => render(args)",
                  {**_args("Cenon", js_links=[f"{assets.STATIC_URL}/absent/leaflet.js"]),
                   "announce": True})
    frame.get_by_text("La carte n'a pas pu être chargée.").wait_for(timeout=10_000)
    page.wait_for_function(
        "() => messages.some(m => m.type === 'streamlit:setComponentValue')", timeout=2_000)
    page.close()


def test_announce_posts_shown_once_the_map_is_drawn(base: str, browser) -> None:
    """``announce`` (a page's first view, ``ui.announce_map``): the frame posts
    ``{shown: true}`` once, when its first render has drawn the map (its layers and
    control are there); later renders post nothing more."""
    page, _frame, errors = _open(browser, base)
    page.evaluate("""() => { const w = document.getElementById('map').contentWindow;
        window.addEventListener('message', e => { if (e.data && e.data.type ===
            'streamlit:setComponentValue') window.__drawnAtShown = !!w.document
            .querySelector('.leaflet-control-layers') && w.__territoiresGroups
            .includes('Cenon'); }); }""")
    args = {**_args("Cenon"), "announce": True}
    page.evaluate("args => render(args)", args)
    page.wait_for_function(
        "() => messages.some(m => m.type === 'streamlit:setComponentValue')")
    assert page.evaluate("() => window.__drawnAtShown") is True
    page.evaluate("args => render(args)", {**_args("Lormont"), "announce": True})
    page.wait_for_function("() => document.getElementById('map').contentWindow"
                           ".__territoiresGroups.includes('Lormont')")
    values = page.evaluate("() => messages.filter(m => m.type === "
                           "'streamlit:setComponentValue').map(m => m.value)")
    assert values == [{"shown": True}]
    assert map_component.component_kwargs(
        map_component.render(folium.Map(tiles=None), [], None, key="k"), key="k",
        height=300)["announce"] is False
    assert errors == []
    page.close()

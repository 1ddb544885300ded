"""Maps rendered once and drawn again in the app's map frame: the strings ``st_folium``
renders, the frame's own page and protocol."""

from __future__ import annotations

from collections.abc import Callable

import folium
import pytest
import streamlit_folium as sf
from folium.plugins import MarkerCluster

from territoires.app import map_component


def _map() -> tuple[folium.Map, list[folium.FeatureGroup], folium.LayerControl]:
    fmap = folium.Map(location=[44.8, -0.6], zoom_start=6, tiles=None)
    folium.GeoJson({"type": "Feature", "properties": {"nom": "Gironde"},
                    "geometry": {"type": "Point", "coordinates": [-0.6, 44.8]}}).add_to(fmap)
    group = folium.FeatureGroup(name="Initiatives")
    cluster = MarkerCluster().add_to(group)
    folium.CircleMarker([44.9, -0.5], radius=4, tooltip="Cenon").add_to(cluster)
    other = folium.FeatureGroup(name="QPV", show=False)
    folium.CircleMarker([44.8, -0.6], radius=3).add_to(other)
    return fmap, [group, other], folium.LayerControl(collapsed=False)


def _recorder(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Records what st_folium sends to its component, then what draw sends to the frame."""
    calls: list[dict] = []

    def component(**kwargs: object) -> None:
        calls.append(kwargs)

    monkeypatch.setattr(sf, "_component_func", component)
    monkeypatch.setattr(map_component, "component", lambda: component)
    return calls


#: What the frame draws from, as st_folium's frame would (the rest is st_folium's own)
SAME = ("script", "header", "html", "key", "height", "width", "returned_objects", "zoom",
        "center", "feature_group", "layer_control", "css_links", "js_links",
        "return_on_hover")


@pytest.mark.parametrize("returned", [None, ["last_active_drawing"], []])
def test_draw_sends_what_st_folium_sends(monkeypatch: pytest.MonkeyPatch,
                                         returned: list[str] | None) -> None:
    """Same map, same arguments: whatever st_folium of the installed streamlit-folium
    sends (a new release changing them fails here, not in users' browsers)."""
    calls = _recorder(monkeypatch)
    fmap, groups, control = _map()
    sf.st_folium(fmap, key="carte", height=500, use_container_width=True,
                 returned_objects=returned, center=(45.0, 0.0), zoom=7,
                 feature_group_to_add=groups, layer_control=control)
    fmap, groups, control = _map()
    rendered = map_component.render(fmap, groups, control, key="carte")
    map_component.draw(rendered, key="carte", height=500, returned_objects=returned,
                       center=(45.0, 0.0), zoom=7)
    expected, got = calls
    on_change: Callable[[], None] = got.pop("on_change")
    # the groups go one by one (the frame keeps those unchanged): st_folium's one string
    assert got["feature_group"] is None
    assert [name for name, _ in got["groups"]] == [  # type: ignore[union-attr]
        map_component.GROUP_NAME.format(i) for i in range(len(groups))]
    got["feature_group"] = "".join(code for _, code in got["groups"])  # type: ignore[union-attr]
    # folium gives each element a random name; streamlit-folium renames the map's, not all
    strip = __import__("re").compile(r"_[0-9a-f]{32}").sub

    def same(call: dict) -> dict:
        return {k: strip("_x", call[k]) if isinstance(call[k], str) else call[k]
                for k in SAME}

    assert same(got) == same(expected)
    # the value before any interaction: st_folium's, for what the frame returns
    assert set(got["default"]) == set(returned if returned is not None
                                      else map_component.RETURNED)
    assert {k: v for k, v in got["default"].items() if k in expected["default"]} == {
        k: v for k, v in expected["default"].items() if k in got["default"]}
    assert got["prefetch"] == []  # no layer file
    assert "feature_group_feature_group_1" in got["groups"][1][1]  # type: ignore[index]
    assert any("markercluster" in link for link in got["js_links"])  # type: ignore[union-attr]
    assert callable(on_change)


def test_draw_refuses_what_the_frame_does_not_return(monkeypatch: pytest.MonkeyPatch) -> None:
    _recorder(monkeypatch)
    fmap, _, _ = _map()
    with pytest.raises(ValueError, match="all_drawings"):
        map_component.draw(map_component.render(fmap, key="x"), key="x", height=300,
                           returned_objects=["all_drawings"])


def test_render_lists_the_layer_files_to_prefetch() -> None:
    """The frame starts fetching the map's layer files while Leaflet loads: render lists
    every file of the base map and of its feature groups, once."""
    from territoires.analysis.maps import CompactGeoJson

    fmap, groups, control = _map()
    payload = {"k": [], "f": []}
    for target, url in ((fmap, "/app/static/layers/a.json"),
                        (groups[0], "/app/static/layers/b.json"),
                        (groups[1], "/app/static/layers/a.json")):
        layer = CompactGeoJson(payload, name="x", js_options="{}")
        layer.external = url
        layer.add_to(target)
    CompactGeoJson(payload, name="inline", js_options="{}").add_to(fmap)
    rendered = map_component.render(fmap, groups, control, key="carte")
    assert rendered.prefetch == ("/app/static/layers/a.json", "/app/static/layers/b.json")
    kwargs = map_component.component_kwargs(rendered, key="carte", height=300)
    assert kwargs["prefetch"] == list(rendered.prefetch)


def test_frame_page_is_packaged_and_french() -> None:
    """The frame's page ships with the package (pyproject's package data), is in French
    and speaks Streamlit's component protocol itself (no framework bundle to load)."""
    import tomllib
    from pathlib import Path

    page = map_component.FRAME_DIR / "index.html"
    text = page.read_text(encoding="utf-8")
    assert '<html lang="fr">' in text and "<title>Carte interactive</title>" in text
    for message in ("streamlit:componentReady", "streamlit:render",
                    "streamlit:setFrameHeight", "streamlit:setComponentValue"):
        assert message in text
    assert "<script src" not in text  # nothing to fetch before the handshake
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]["territoires.app"]
    assert str(page.relative_to(map_component.FRAME_DIR.parent)) in data


def test_draw_without_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _recorder(monkeypatch)
    fmap, _, _ = _map()
    sf.st_folium(fmap, key="fiche", height=300, returned_objects=[])
    fmap, _, _ = _map()
    map_component.draw(map_component.render(fmap, key="fiche"), key="fiche", height=300,
                       use_container_width=False, returned_objects=[])
    expected, got = calls
    assert got["feature_group"] is None and got["layer_control"] is None
    assert got["groups"] == []
    assert got["key"] == expected["key"] and got["width"] == expected["width"] == 500


def test_render_refuses_what_is_not_a_map() -> None:
    with pytest.raises(TypeError):
        map_component.render(folium.FeatureGroup())  # type: ignore[arg-type]


def test_rendered_size_counts_every_string() -> None:
    fmap, groups, control = _map()
    rendered = map_component.render(fmap, groups, control)
    assert rendered.size == (len(rendered.script) + len(rendered.header)
                             + len(rendered.html) + len(rendered.feature_group or "")
                             + len(rendered.layer_control or ""))


def test_component_registered_with_a_runtime_started_after_the_import(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``territoires serve`` renders the first map before the server starts, outside any
    script run: a component declared then is not registered with the server, and the map's
    frame was a 404 in the browser. Drawing registers it with the running server's
    registry."""
    from types import SimpleNamespace

    from streamlit import runtime
    from streamlit.components.lib.local_component_registry import LocalComponentRegistry

    registry = LocalComponentRegistry()
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance",
                        lambda: SimpleNamespace(component_registry=registry))
    name = f"territoires.app.map_component.{map_component.FRAME_NAME}"
    assert registry.get_component(name) is None
    declared = map_component.component()
    assert declared.name == name  # type: ignore[attr-defined]
    assert registry.get_component_path(name) == str(map_component.FRAME_DIR)
    assert map_component.component() is declared  # declared and registered once only
    assert len(registry.get_components()) == 1


def test_a_map_document_holds_its_arguments_as_inert_json() -> None:
    """A static map's document is the frame's page with the map's arguments in it: the
    text of the map (a tooltip here) cannot end their element or run, and the page keeps
    its language and gets the given title, escaped."""
    import json
    import re

    fmap = folium.Map(location=[45, 0], zoom_start=6, tiles=None)
    evil = "</script><script>window.pwned=1</script><!-- & -->"
    folium.CircleMarker([45, 0], radius=3, tooltip=evil).add_to(fmap)
    rendered = map_component.render(fmap, key="fiche_map")
    page = map_component.document(rendered, height=430, title="Carte <b>des</b> territoires")
    assert page.startswith("<!doctype html>") and '<html lang="fr">' in page
    assert "<title>Carte &lt;b&gt;des&lt;/b&gt; territoires</title>" in page
    found = re.findall(r'<script type="application/json" id="territoires-map-args">(.*?)'
                       r"</script>", page, flags=re.S)
    assert len(found) == 1 and "<" not in found[0] and "&" not in found[0]
    assert page.count("</script>") == (map_component.FRAME_DIR / "index.html").read_text(
        encoding="utf-8").count("</script>") + 1  # the map's text closed no element
    args = json.loads(found[0])
    assert args["script"] == rendered.script
    # whatever the map's text, its JSON neither ends the element nor opens a comment
    text = map_component._json_in_html({"t": evil})
    assert "<" not in text and ">" not in text and json.loads(text) == {"t": evil}
    assert args["height"] == 430 and args["returned_objects"] == []
    assert args["js_links"] == list(rendered.js_links) and "key" not in args
    # the frame's page reads them before anything else (its script, in the head, after)
    assert page.index('id="territoires-map-args"') < page.index("use strict")

"""Maps rendered once and drawn again: the same component arguments as ``st_folium``."""

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
    calls: list[dict] = []

    def component(**kwargs: object) -> None:
        calls.append(kwargs)

    monkeypatch.setattr(sf, "_component_func", component)
    return calls


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
    expected.pop("on_change")
    # folium gives each element a random name; streamlit-folium renames the map's, not all
    strip = __import__("re").compile(r"_[0-9a-f]{32}").sub
    assert {k: strip("_x", v) if isinstance(v, str) else v for k, v in got.items()} == {
        k: strip("_x", v) if isinstance(v, str) else v for k, v in expected.items()}
    assert "feature_group_feature_group_1" in got["feature_group"]  # type: ignore[operator]
    assert any("markercluster" in link for link in got["js_links"])  # type: ignore[union-attr]
    assert callable(on_change)


def test_draw_without_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _recorder(monkeypatch)
    fmap, _, _ = _map()
    sf.st_folium(fmap, key="fiche", height=300, returned_objects=[])
    fmap, _, _ = _map()
    map_component.draw(map_component.render(fmap, key="fiche"), key="fiche", height=300,
                       use_container_width=False, returned_objects=[])
    expected, got = calls
    assert got["feature_group"] is None and got["layer_control"] is None
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
    """``territoires serve`` imports streamlit_folium before the server starts, outside any
    script run: Streamlit did not register the component then, and the map's frame was a
    404 in the browser. Drawing registers it with the running server's registry."""
    from types import SimpleNamespace

    from streamlit import runtime
    from streamlit.components.lib.local_component_registry import LocalComponentRegistry

    registry = LocalComponentRegistry()
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance",
                        lambda: SimpleNamespace(component_registry=registry))
    assert registry.get_component("streamlit_folium.st_folium") is None
    assert map_component.component() is sf._component_func
    assert registry.get_component_path("streamlit_folium.st_folium") is not None
    map_component.component()  # once only
    assert len(registry.get_components()) == 1

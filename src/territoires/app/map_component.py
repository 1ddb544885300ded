"""Folium maps rendered once, drawn many times, in the app's own map frame.

``st_folium`` renders its folium objects (Jinja templates, one per element) into the
strings its browser component takes, on every script run: 150-400 ms of server CPU for
the dashboard's map, paid by every session's every rerun and serialised by the GIL when
many visitors come at once (issue 13: 20 first visits of Carte, median 12.6 s). Here the
rendering (:func:`render`) is apart from the drawing (:func:`draw`), so the app caches the
:class:`RenderedMap` of a view (see ``ui.carte_map``) and draws it again at almost no cost.

:func:`render` produces the strings ``st_folium`` produces (same script, header, HTML,
feature groups, layer control, links: checked by ``tests/test_map_component.py`` against
``st_folium`` itself) with streamlit-folium's own helpers, hence the version range of
``streamlit-folium`` in ``pyproject.toml``. :func:`draw` sends them to the app's map frame
(``map_frame/index.html``), a Streamlit component of one small page: streamlit-folium's
frame booted a 225 kB React bundle, then loaded Leaflet, its plugins and styles one after
the other before drawing; this one speaks Streamlit's component protocol directly, loads
them all at once and fetches the reference layer files (:attr:`RenderedMap.prefetch`)
meanwhile. The feature groups go to the frame one by one (:attr:`RenderedMap.groups`): at a
redraw it keeps on the map the groups whose code has not changed (most of them, at a
filter change) and the layers the user showed or hid. It returns what the map returns
(``returned_objects``: clicks, the clicked feature, the view), a click at once and a move
once the map has stopped for 250 ms. :func:`document` makes of the frame's page and a
map's strings a whole document that draws by itself, for a static map shown in an iframe
of its own (:mod:`territoires.app.map_documents`).
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import branca
import folium
import folium.elements
import streamlit as st
import streamlit_folium as sf
from streamlit.components import v1 as components

#: The map frame's page (a Streamlit component's folder)
FRAME_DIR = Path(__file__).with_name("map_frame")
#: Name of the map frame's component (the frame's title holds it: ``...carte_interactive``)
FRAME_NAME = "carte_interactive"


@dataclass(frozen=True)
class RenderedMap:
    """The strings of a folium map for the map frame (as ``st_folium`` renders them)."""

    script: str
    header: str
    html: str
    map_id: str
    #: (variable name, JavaScript adding it to the map) of each feature group, bottom
    #: first. The map frame runs the code of a group it has not drawn yet, keeps on the
    #: map the groups whose code is unchanged, and gives the layer control its groups by
    #: name (:data:`GROUP_NAME`)
    groups: tuple[tuple[str, str], ...] = ()
    #: JavaScript of the layer control of the feature groups (``None``: none given)
    layer_control: str | None = None
    css_links: tuple[str, ...] = ()
    js_links: tuple[str, ...] = ()
    bounds: tuple[tuple[float | None, float | None], ...] = ((None, None), (None, None))
    zoom: object = None
    #: What the map's base script is keyed by in the browser (same: same frame)
    component_key: str = field(default="", compare=False)
    #: URLs of the layer files the map's layers fetch (fetched as the frame loads Leaflet)
    prefetch: tuple[str, ...] = ()

    @property
    def feature_group(self) -> str | None:
        """JavaScript adding all the feature groups to the map, as ``st_folium`` sends it
        (``None``: none given)."""
        return "".join(code for _, code in self.groups) if self.groups else None

    @property
    def size(self) -> int:
        """Characters sent to the browser (a cache's weight)."""
        return (sum(len(s or "") for s in (self.script, self.header, self.html,
                                            self.layer_control))
                + sum(len(code) for _, code in self.groups))


def _links(fmap: folium.Map) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(css, js) links of the map's elements, in streamlit-folium's order."""
    css: list[str] = []
    js: list[str] = []

    def walk(element: object) -> object:
        if isinstance(element, branca.colormap.ColorMap):
            yield element
        if isinstance(element, folium.elements.JSCSSMixin):
            yield element
        for child in getattr(element, "_children", {}).values():
            yield from walk(child)

    for element in walk(fmap):
        if isinstance(element, branca.colormap.ColorMap):
            js.insert(0, "https://cdnjs.cloudflare.com/ajax/libs/d3/3.5.5/d3.min.js")
            js.insert(0, "https://d3js.org/d3.v4.min.js")
        css.extend(href for _, href in getattr(element, "default_css", []))
        js.extend(src for _, src in getattr(element, "default_js", []))
    return tuple(dict.fromkeys(css)), tuple(dict.fromkeys(js))


def render(fmap: folium.Map, feature_groups: Sequence[folium.FeatureGroup] = (),
           layer_control: folium.LayerControl | None = None, *,
           key: str | None = None) -> RenderedMap:
    """Render ``fmap`` (a ``folium.Map``), its ``feature_groups`` and ``layer_control``
    as ``st_folium(fmap, key=key, feature_group_to_add=..., layer_control=...)`` does.
    The folium objects are changed by the rendering (as by ``st_folium``): render fresh
    ones each time."""
    if not isinstance(fmap, folium.Map):
        raise TypeError(f"folium.Map attendue, reçu {type(fmap).__name__}")
    fmap.get_root().render()
    fmap.render()
    html = sf._get_html(fmap)
    header = sf._get_header(fmap)
    script = sf._get_map_string(fmap)
    map_id = sf.get_full_id(fmap)
    try:
        bounds = fmap.get_bounds()
    except AttributeError:
        bounds = [[None, None], [None, None]]
    codes = tuple((GROUP_NAME.format(i), sf._get_feature_group_string(group, map=fmap, idx=i))
                  for i, group in enumerate(feature_groups))
    control = (None if layer_control is None
               else sf._get_layer_control_string(layer_control, fmap))
    css, js = _links(fmap)
    prefetch = tuple(dict.fromkeys(_external_files(fmap, *feature_groups)))
    return RenderedMap(
        script=script, header=header, html=html, map_id=map_id,
        groups=codes, layer_control=control, css_links=css, js_links=js,
        bounds=tuple(tuple(corner) for corner in bounds),  # type: ignore[misc]
        zoom=fmap.options.get("zoom"),
        component_key=sf.generate_js_hash(script, key, False), prefetch=prefetch,
    )


#: The JavaScript variable of the ``i``-th feature group in ``st_folium``'s strings
GROUP_NAME = "feature_group_feature_group_{}"


def _external_files(*elements: object) -> list[str]:
    """URLs of the layer files (``CompactGeoJson.external``) under ``elements``."""
    from territoires.analysis.maps import CompactGeoJson
    from territoires.app.assets import walk

    return [layer.external for element in elements for layer in walk(element)
            if isinstance(layer, CompactGeoJson) and layer.external]


#: What the map frame can return (``returned_objects``): the point last clicked, the point
#: and tooltip text of the feature last clicked, that feature (GeoJSON), the view.
RETURNED = ("last_clicked", "last_object_clicked", "last_object_clicked_tooltip",
            "last_active_drawing", "bounds", "zoom", "center")


def _bounds_dict(bounds: Sequence[Sequence[float | None]]) -> dict[str, dict[str, object]]:
    (south, west), (north, east) = bounds
    return {"_southWest": {"lat": south, "lng": west},
            "_northEast": {"lat": north, "lng": east}}


def defaults(rendered: RenderedMap, returned_objects: Sequence[str] | None) -> dict:
    """The value the map returns before any interaction: every name of
    :data:`RETURNED` (or of ``returned_objects``, a subset of it), as ``st_folium``."""
    every = {
        "last_clicked": None, "last_object_clicked": None,
        "last_object_clicked_tooltip": None, "last_active_drawing": None,
        "bounds": _bounds_dict(rendered.bounds), "zoom": rendered.zoom, "center": None,
    }
    return {k: v for k, v in every.items()
            if returned_objects is None or k in returned_objects}


def component_kwargs(rendered: RenderedMap, *, key: str | None, height: int,
                     width: int | None = None, returned_objects: Sequence[str] | None = None,
                     center: tuple[float, float] | None = None, zoom: int | None = None,
                     announce: bool = False) -> dict[str, object]:
    """Arguments of the map frame's component for ``rendered`` (without ``on_change``).
    ``announce``: the frame returns ``{"shown": True}`` once, when it has drawn the map
    (or failed to load it; at most 3 s after it starts: ``ui.announce_map``)."""
    returned = None if returned_objects is None else list(returned_objects)
    unknown = set(returned or ()) - set(RETURNED)
    if unknown:
        raise ValueError(f"la carte ne renvoie pas {sorted(unknown)} (seulement {RETURNED})")
    return dict(
        script=rendered.script, header=rendered.header, html=rendered.html,
        key=rendered.component_key or sf.generate_js_hash(rendered.script, key, False),
        height=height, width=width, returned_objects=returned,
        default=defaults(rendered, returned_objects), zoom=zoom, center=center,
        # the groups one by one (st_folium sends them all in one string, ``feature_group``)
        feature_group=None, groups=[list(group) for group in rendered.groups],
        return_on_hover=False,
        layer_control=rendered.layer_control,
        css_links=list(rendered.css_links), js_links=list(rendered.js_links),
        prefetch=list(rendered.prefetch), announce=announce,
    )

#: Id of the element holding a map document's arguments (read by the map frame's page)
ARGS_ID = "territoires-map-args"


@functools.cache
def _frame_page() -> str:
    return (FRAME_DIR / "index.html").read_text(encoding="utf-8")


def _json_in_html(value: object) -> str:
    """JSON text of ``value`` that can stand inside an HTML ``<script>`` element: no ``<``,
    ``>`` or ``&`` left as such (escaped in strings, where JSON alone has them), so that no
    text of the map ends the element or opens a comment."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def document(rendered: RenderedMap, *, height: int, title: str) -> str:
    """The map frame's page holding ``rendered`` as its arguments: a whole HTML document
    that draws the map by itself (no component protocol, nothing returned to the app), for
    a static map shown in an iframe of its own (``ui.static_map``). Its ``title`` (plain
    text, escaped here) names the frame for screen readers."""
    args = component_kwargs(rendered, key=None, height=height, returned_objects=[])
    for name in ("key", "default"):
        args.pop(name)
    page = _frame_page()
    head = "<title>Carte interactive</title>"
    if page.count(head) != 1:
        raise RuntimeError("page du cadre de carte inattendue : titre introuvable")
    embedded = (f"<title>{html.escape(title)}</title>\n<script type=\"application/json\" "
                f"id=\"{ARGS_ID}\">{_json_in_html(args)}</script>")
    return page.replace(head, embedded)


@functools.cache
def _declared() -> object:
    """The map frame's component, declared once per process."""
    return components.declare_component(FRAME_NAME, path=str(FRAME_DIR))


def component() -> object:
    """The map frame's component, registered with this server's runtime. Streamlit
    registers a component declared outside a script run only with a runtime that exists
    then: ``territoires serve`` renders the first map before the server starts, and the
    browser would get a 404 for the frame's page."""
    from streamlit import runtime

    declared = _declared()
    if runtime.exists():
        registry = runtime.get_instance().component_registry
        if registry.get_component(declared.name) is None:  # type: ignore[attr-defined]
            registry.register_component(declared)  # type: ignore[arg-type]
    return declared


def draw(rendered: RenderedMap, *, key: str | None, height: int,
         use_container_width: bool = True, width: int = 500,
         returned_objects: Sequence[str] | None = None,
         center: tuple[float, float] | None = None, zoom: int | None = None,
         on_change: Callable[[], None] | None = None, announce: bool = False
         ) -> dict | None:
    """Draw ``rendered`` (see :func:`render`, which must have been given the same ``key``)
    in the map frame, as ``st_folium`` would; returns what the map returns
    (``returned_objects``, names of :data:`RETURNED`; None: all of them; with
    ``announce``, ``{"shown": True}`` once the frame draws the map, until the next value)."""
    kwargs = component_kwargs(rendered, key=key, height=height,
                              width=None if use_container_width else width,
                              returned_objects=returned_objects, center=center, zoom=zoom,
                              announce=announce)
    hash_key = kwargs["key"]

    def changed() -> None:
        if key is not None:
            st.session_state[key] = st.session_state.get(hash_key, {})
        if on_change is not None:
            on_change()

    return component()(**kwargs, on_change=changed)  # type: ignore[operator]

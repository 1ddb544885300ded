"""Streamlit glue of the dashboard (the only module importing streamlit).

- cached loaders (``st.cache_resource``: loaded once per process, shared by sessions);
- the shared filters: one sidebar widget set, kept in the URL (``st.query_params``) through
  :meth:`Filters.to_params` / :meth:`Filters.from_params`, carried across pages;
- page state in the URL (:func:`param_select`), French metrics, tables and the map.

Pages stay thin: ``with ui.guard(): data = ui.app_data(); filters =
ui.render_filters_sidebar(); …`` then call :mod:`territoires.analysis.queries` and render.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from territoires import config
from territoires.analysis import html_tables, maps, queries, views
from territoires.analysis.formatting import (
    MISSING,
    NNBSP,
    fmt_eur,
    fmt_eur_short,
    fmt_int,
    fmt_pct,
)
from territoires.analysis.formatting import filters_summary as _filters_text
from territoires.analysis.queries import Filters
from territoires.app import assets, layer_files, map_component, map_documents, serve
from territoires.catalogue import auth
from territoires.catalogue.auth import User
from territoires.catalogue.model import Catalogue
from territoires.catalogue.storage import Store
from territoires.errors import LayersMissingError, TerritoiresError
from territoires.pipeline.layers import (
    DISPLAY_LEVELS,
    FRANCE_LAYERS,
    LAYER_SCHEMAS,
    Layers,
    load_display,
    load_layers,
)
from territoires.pipeline.territories import UNIT_LEVELS, TerritoryIndex
from territoires.vocab import (
    ALLIANCE_LEVELS,
    FUNDER_TYPES,
    MATURITY,
    ORG_TYPES,
    PUBLICS,
    SCHEMES,
    THEMES,
    Vocabulary,
)

APP_TITLE = "Territoires — alliances éducatives"
#: Suffix of every page's ``<title>`` ("Carte — Territoires", RGAA 8.6).
TITLE_SUFFIX = "Territoires"
#: Sets the page language (RGAA 8.3) under plain ``streamlit run``: Streamlit's index.html
#: says ``lang="en"`` and has no setting for it (``territoires serve`` sends the pages with
#: ``lang="fr"``, :mod:`territoires.app.index_page`). Static script, no catalogue data; its
#: element is hidden (no blank in the sidebar).
LANG_SCRIPT = ('<style>.stElementContainer:has(#territoires-lang){display:none}</style>'
               '<span id="territoires-lang"></span>'
               '<script>document.documentElement.lang = "fr";</script>')
#: The router script (relative to the app folder).
MAIN_SCRIPT = "app.py"
SOURCES_FOOTER = (
    "Sources : ANCT (QPV, contrats de ville, cités éducatives), INSEE (population, communes), "
    "IGN / Etalab (contours), © contributeurs OpenStreetMap (fond de carte). "
    "Données sous Licence Ouverte 2.0 ; fond de carte sous ODbL."
)

#: Query-string keys used by the shared filters (see Filters.to_params).
FILTER_KEYS: tuple[str, ...] = (
    "t", "themes", "publics", "maturity", "alliance_levels", "porteur_types", "funder_types",
    "schemes", "years", "amount", "q",
)
YEAR_RANGE: tuple[int, int] = (2014, 2030)
AMOUNT_STEPS: list[float] = [
    0, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000,
    math.inf,
]
#: Filters field -> (widget label, vocabulary), in sidebar order.
LIST_WIDGETS: list[tuple[str, str, Vocabulary]] = [
    ("themes", "Thèmes", THEMES),
    ("publics", "Publics", PUBLICS),
    ("maturity", "Maturité", MATURITY),
    ("alliance_levels", "Niveau d'alliance", ALLIANCE_LEVELS),
    ("porteur_types", "Type de porteur", ORG_TYPES),
    ("funder_types", "Type de financeur", FUNDER_TYPES),
    ("schemes", "Dispositif de financement", SCHEMES),
]
_W = "flt_"  # prefix of the filter widgets' keys
#: Key of the sidebar's « Plus de filtres » expander (its widgets are drawn only when open)
MORE_FILTERS_KEY = "flt_more"
#: Key of Carte's « Tableau des valeurs de la carte » expander (drawn only when open)
CARTE_TABLE_KEY = "carte_tableau"
#: Key of Couverture's table of the territories left out (drawn only when open)
COUVERTURE_TABLE_KEY = "couverture_tableau"


# ------------------------------------------------------------------------------ data


def filters_summary(filters: Filters, index: TerritoryIndex | None = None) -> str:
    """:func:`territoires.analysis.formatting.filters_summary` escaped for Markdown (it echoes the
    search text of the URL and territory names: shown as typed, never as a link or image)."""
    return views.md_text(_filters_text(filters, index))


@st.cache_resource(show_spinner="Chargement des couches géographiques…")
def _layers(geo: str) -> Layers:
    """The reference layers, the full polygons of communes, EPCI, départements and régions
    left on disk (~100 MB: the map draws the display layers; an export reads them through
    :meth:`Layers.layer`)."""
    return load_layers(_path(geo), polygons=False)


def _path(geo: str) -> Path:
    return Path(geo)


@st.cache_resource(show_spinner="Chargement des contours simplifiés…")
def _display(geo: str, level: str) -> dict[str, gpd.GeoDataFrame]:
    if level == "france":
        # the national layers, but the régions and départements simplified for the map of
        # all France (layers built before that level existed: the national ones)
        out = dict(_display(geo, "national"))
        for name in FRANCE_LAYERS:
            with contextlib.suppress(LayersMissingError):
                out[name] = load_display(name, level, _path(geo))
        return out
    out = {}
    for name in LAYER_SCHEMAS:
        try:
            out[name] = load_display(name, level, _path(geo))
        except LayersMissingError:
            layer = _layers(geo).layer(name)
            if not layer.geometry.dropna().geom_type.isin(["Point", "MultiPoint"]).all():
                raise
            out[name] = layer  # point layers have no simplified version: they are small
    # QPV known only by a centroid are not in the display files: add them as points
    out["qpv"] = maps.with_qpv_centroids(out["qpv"], _layers(geo).qpv)
    return out


@st.cache_resource(show_spinner=False)
def _payload_memo(geo: str) -> maps.PayloadMemo:
    """The reference layers' payloads already built from the display layers of ``geo``
    (see :class:`territoires.analysis.maps.PayloadMemo`), shared by every session."""
    return maps.PayloadMemo()


@st.cache_resource(show_spinner="Construction de l'index des territoires…")
def _index(geo: str) -> TerritoryIndex:
    return TerritoryIndex.from_layers(_layers(geo))


@st.cache_resource(show_spinner=False)
def _points(geo: str) -> pd.DataFrame:
    return maps.territory_points(_display(geo, "national"))


#: Territory levels offered in the lists without searching (about 120 labels, a few kB:
#: the whole list of 38,000 territories made a 205 kB websocket frame on every rerun).
BROWSABLE_LEVELS: tuple[str, ...] = ("region", "departement")
#: Matches of a territory search added to the list.
SEARCH_LIMIT = 30


@st.cache_resource(show_spinner=False)
def _territory_options(geo: str) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Labels offered without searching (régions, départements: see
    :data:`BROWSABLE_LEVELS`) and the label -> (level, code) lookup of all territories."""
    index = _index(geo)
    table = index.table
    lookup = {
        str(lbl): (str(lvl), str(code))
        for lbl, lvl, code in zip(table["label"], table["level"], table["code"], strict=True)
    }
    keep = table["level"].isin(BROWSABLE_LEVELS)
    return [str(x) for x in table.loc[keep, "label"]], lookup


@st.cache_resource(show_spinner=False)
def _territory_labels(geo: str) -> dict[tuple[str, str], str]:
    """(level, code) -> label of every territory (inverse of the lookup)."""
    return {v: k for k, v in _territory_options(geo)[1].items()}


@st.cache_resource(show_spinner=False, max_entries=512)
def _territory_search(geo: str, text: str) -> tuple[str, ...]:
    """Labels of the territories (any level) matching ``text`` (cached per process)."""
    if not text.strip():
        return ()
    return tuple(str(x) for x in _index(geo).search(text.strip(), limit=SEARCH_LIMIT)["label"])


@st.cache_resource(show_spinner="Chargement du catalogue…", max_entries=2)
def _catalogue(url: str, revision: int) -> Catalogue:
    return _store(url).load_catalogue()


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


@st.cache_resource(show_spinner=False)
def _upgraded_store(url: str) -> Store:
    store = _store(url)
    store.create_or_upgrade()
    return store


def catalogue_revision() -> int:
    """Revision of the published catalogue in the database (one cheap query per rerun): the
    cached catalogue is reloaded when it moves, whichever process wrote."""
    return _store(config.database_url()).revision()


@dataclass
class AppData:
    """Read-only data shared by the pages."""

    geo: str
    layers: Layers
    index: TerritoryIndex
    catalogue: Catalogue
    #: cache key of the catalogue (database URL, version, revision); empty: not cached
    key: tuple[object, ...] = ()

    def display(self, level: str) -> dict[str, gpd.GeoDataFrame]:
        """Display layers at ``level`` (see :data:`territoires.pipeline.layers.DISPLAY_LEVELS`)."""
        if level not in DISPLAY_LEVELS:
            raise ValueError(level)
        return _display(self.geo, level)

    def points(self) -> pd.DataFrame:
        """Representative point of every territory (``level, code, lat, lon``)."""
        return _points(self.geo)

    def payload_memo(self) -> maps.PayloadMemo:
        """The payloads of the reference map layers built from :meth:`display`."""
        return _payload_memo(self.geo)


def app_data() -> AppData:
    """Layers, index and catalogue (cached per process; raises TerritoiresError)."""
    geo = str(config.geo_dir())
    url = config.database_url()
    key = (url, catalogue_revision())
    return AppData(geo, _layers(geo), _index(geo), _catalogue(*key), key)


@st.cache_resource(show_spinner=False, max_entries=2)
def _all_initiative_points(key: tuple[object, ...], geo: str, _catalogue: Catalogue,
                           _index: TerritoryIndex) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`maps.initiative_points` of the whole catalogue (one per catalogue revision) and
    the position of each row's initiative in the catalogue's prepared form."""
    full = maps.initiative_points(_catalogue, _points(geo))
    ids = pd.Index(queries.prepare(_catalogue, _index).ids)
    return full, ids.get_indexer(full["id"].to_numpy(dtype=object))


def initiative_points(data: AppData, selection: queries.Selection) -> pd.DataFrame:
    """:func:`maps.initiative_points` of ``selection`` (same rows, same order), cut from the
    whole catalogue's table computed once per catalogue revision: the national Carte paid
    it on every rerun (0.5-1 s at 50,000 initiatives). A selection of another catalogue
    than ``data``'s is computed directly."""
    p = selection.prepared
    mask = selection.initiative_mask
    if (not data.key or p is None or mask is None
            or p is not queries.prepare(data.catalogue, data.index)):
        return maps.initiative_points(selection.catalogue, data.points())
    full, pos = _all_initiative_points(data.key, data.geo, data.catalogue, data.index)
    keep = (pos >= 0) & mask[np.maximum(pos, 0)]
    if not keep.any():  # an empty selection: maps' own empty frame
        return maps.initiative_points(selection.catalogue, data.points())
    return full[keep].reset_index(drop=True)


#: Steps of :func:`warm_up`, in order (name, what it fills).
WARM_STEPS: tuple[str, ...] = ("couches", "index", "catalogue", "preparation", "contours",
                               "points", "initiatives", "agregats", "carte", "streamlit")


def warm_up(report: Callable[[str, float], None] | None = None) -> dict[str, float]:
    """Fill this process's caches before any user comes (``territoires serve`` calls it
    before the server listens): layers, territory index, catalogue and its
    :func:`~territoires.analysis.queries.prepare`, national display layers and territory
    points, i.e. everything the first visit of a page paid inside its request. Fills the
    same ``st.cache_resource`` entries as :func:`app_data` (same keys), so the first
    session finds them. Returns the seconds of each step (see :data:`WARM_STEPS`);
    ``report(step, seconds)`` is called after each. Raises TerritoiresError (layers not
    built, database unreachable): the server then starts anyway and pages show the error."""
    times: dict[str, float] = {}

    def step(name: str, fn: Callable[[], object]) -> object:
        t0 = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t0
        if report is not None:
            report(name, times[name])
        return out

    geo = str(config.geo_dir())
    url = config.database_url()
    step("couches", lambda: _layers(geo))
    index = step("index", lambda: _index(geo))
    catalogue = step("catalogue",
                     lambda: _catalogue(url, catalogue_revision()))
    step("preparation", lambda: queries.prepare(catalogue, index))  # type: ignore[arg-type]
    step("contours", lambda: [_display(geo, level) for level in DISPLAY_LEVELS])
    step("points", lambda: (_points(geo), _territory_options(geo)))
    step("initiatives", lambda: initiative_points(app_data(), queries.select(
        catalogue, index, Filters())))  # type: ignore[arg-type]
    step("agregats", lambda: [index.incidence(level)  # type: ignore[attr-defined]
                              for level in UNIT_LEVELS])
    # the national Carte as a first visitor opens it (page defaults), rendered once
    step("carte", lambda: carte_rendered(
        app_data(), Filters(), carte_default_level(Filters(), maps.Area()), CARTE_MEASURE,
        CARTE_COLOUR))
    step("streamlit", _warm_streamlit)
    return times


def _warm_streamlit() -> None:
    """Streamlit's own one-off costs of a first script run: its emoji table (compiled when
    ``st.set_page_config`` first checks the page icon, 0.1-0.5 s)."""
    from streamlit import string_util

    string_util.is_emoji("🗺️")


# ------------------------------------------------------------------------------ pages


def setup_page() -> None:
    """Page configuration (call first in app.py); :func:`navigation` then gives each page
    its own title."""
    st.set_page_config(page_title=APP_TITLE, page_icon="🗺️", layout="wide")


def page_title(title: str) -> str:
    """The browser title of a page: ``"Carte — Territoires"``."""
    return f"{title} — {TITLE_SUFFIX}"


@contextmanager
def guard() -> Iterator[None]:
    """Show a TerritoiresError as ``st.error`` (its message is meant for users), as text:
    a message may repeat what the URL or a file holds (an unknown territory's code), which
    must not become a link or an image."""
    try:
        yield
    except TerritoiresError as exc:
        st.error(views.md_text(str(exc)))


def empty_selection_info() -> None:
    """Message for an empty selection."""
    st.info(
        "Aucune initiative ne correspond aux filtres actifs. Élargissez la sélection dans le "
        "panneau de gauche ou cliquez sur « Réinitialiser les filtres »."
    )


def footer() -> None:
    """Sources credit shown under every page."""
    st.divider()
    st.caption(SOURCES_FOOTER)


def navigation(pages: Sequence[tuple[str, str, str, str]],
               menu: Sequence[str] | None = None) -> st.navigation:  # type: ignore[valid-type]
    """Router: ``pages`` = (file, title, icon, url_path) in menu order, the first is the home
    page. The menu is drawn by hand so that links carry the filters' query parameters; only
    the files of ``menu`` are listed (default: all), the others stay reachable by link."""
    objs = [
        st.Page(file, title=title, icon=icon or None, url_path=path or None, default=i == 0)
        for i, (file, title, icon, path) in enumerate(pages)
    ]
    pg = st.navigation(objs, position="hidden")
    st.set_page_config(page_title=page_title(pg.title))
    pending = st.session_state.pop(_DEEPLINK, None)
    if pending is not None:
        stem, params = pending
        for (file, *_), obj in zip(pages, objs, strict=True):
            if Path(file).stem == stem and obj.url_path != pg.url_path:
                st.switch_page(obj, query_params=params or None)
    keep_filters_across_pages(pg.url_path)
    first_view_step(pg.url_path)
    params = current_filters().to_params()
    with st.sidebar:
        st.markdown(f"### {APP_TITLE}")
        if controls_deferred():
            st.caption(DEFERRED_NOTE)
        for (file, *_), page in zip(pages, objs, strict=True):
            if (menu is None or file in menu) and not controls_deferred():
                st.page_link(page, query_params=params or None)
        if not serve.front_installed():  # under plain streamlit run: Streamlit's own page
            st.html(LANG_SCRIPT, unsafe_allow_javascript=True)
    return pg


_ROUTED = "_territoires_routed"
_DEEPLINK = "_territoires_deeplink"

#: Shown in the sidebar while the menu and the filters wait for the map
#: (:func:`controls_deferred`; ``bench/bench_browser.py`` waits for it to go)
DEFERRED_NOTE = "Chargement du menu et des filtres…"
#: Pages (URL paths) whose first view sends their map before their widgets (not the
#: Fiche: its map is a document, drawn in a process of its own; sent first, it came later,
#: bench figures in the README; its sidebar has no filter widgets, filters_sidebar_note)
MAP_FIRST_PAGES = frozenset({"carte", "couverture"})
_FIRST_VIEW = "_territoires_first_view"


def first_view_step(page_path: str) -> None:
    """Called by the router at the start of each run of the whole app. By default
    (:func:`territoires.config.map_first`), a session's first
    run on a page of :data:`MAP_FIRST_PAGES` defers the page's widgets
    (:func:`controls_deferred`): it sends the page's text and its map. The
    next run of the whole app draws them: the one that the map's frame triggers once it
    has drawn the map (:func:`announce_map`; a map in a fragment: see
    :func:`leave_first_view`), or any earlier one; a first run that draws no such map asks
    for it at its end (:func:`run_page`).

    Why (issue 13, ``bench/bench_first_view.py``): Streamlit's frontend loads the code of
    each kind of widget, and of the map's component, when it first draws one, then draws
    every element that waited in one render, on the page's one main thread: the map's
    frame was created with the first view's twenty-odd widgets (menu links, filters,
    choices), after them. Sent once the map is drawn, they are drawn after Leaflet on the
    main thread the frame shares: the map sooner, the widgets later, about when the page
    settled before (the
    README gives the figures; ``TERRITOIRES_MAP_FIRST=0`` turns it off)."""
    state = st.session_state.get(_FIRST_VIEW)
    if state is None:
        deferred = config.map_first() and page_path in MAP_FIRST_PAGES
        st.session_state[_FIRST_VIEW] = "deferred" if deferred else "done"
    elif state != "done":
        st.session_state[_FIRST_VIEW] = "done"


def controls_deferred() -> bool:
    """True in a session's first run on a map page (:func:`first_view_step`): the menu,
    the filters, the page's choices and what else the page defers are not drawn yet
    (their values come from the URL); the page's text and its map are."""
    return st.session_state.get(_FIRST_VIEW) in ("deferred", "awaiting")


def announce_map() -> bool:
    """The ``announce`` argument of a map drawn now (:func:`map_component.draw`): True
    while :func:`controls_deferred`, and the run then counts on the frame's announce."""
    if not controls_deferred():
        return False
    st.session_state[_FIRST_VIEW] = "awaiting"
    return True


def leave_first_view() -> None:
    """First call of a fragment that draws a map (:func:`announce_map`): the map's announce
    reruns only the fragment it is in; that rerun then reruns the whole app, which draws
    the deferred widgets (the fragment's own run in the first view goes on)."""
    if st.session_state.get(_FIRST_VIEW) == "awaiting":
        st.rerun(scope="app")


def _first_view_end() -> None:
    """End of a run: a first view that deferred its widgets and drew no map to announce
    itself (another tab of the page, an empty ranking, an error) draws them at once."""
    if st.session_state.get(_FIRST_VIEW) == "deferred":
        st.rerun()


def run_page(page: st.Page) -> None:  # type: ignore[valid-type]
    """Run the page chosen by :func:`navigation`, marking the session as routed (the flag is
    never reset: writing session state after the page's widgets would drop their changes),
    in one of the process's page-run slots (:func:`territoires.app.serve.script_slot`)."""
    st.session_state[_ROUTED] = True
    with serve.script_slot():
        page.run()
    _first_view_end()


def ensure_routed(page_file: str) -> None:
    """Call first in every page: when Streamlit runs a page file on its own (the first
    session of a fresh server opened on a deep link such as ``/carte?…``, where Streamlit
    still uses the ``pages/`` folder convention), send the user through the router with the
    same page and query parameters."""
    if st.session_state.get(_ROUTED):
        return
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    st.session_state[_DEEPLINK] = (Path(page_file).stem, params)
    st.switch_page(MAIN_SCRIPT)


def keep_filters_across_pages(page_path: str) -> None:
    """When the page changed and the URL lost the filters, put them back."""
    last = st.session_state.get("_page")
    saved = st.session_state.get("_filters_params") or {}
    if (last is not None and last != page_path and saved
            and not any(k in st.query_params for k in FILTER_KEYS)):
        st.query_params.update(saved)
    st.session_state["_page"] = page_path


def url_notices(params: Mapping[str, str | list[str]]) -> list[str]:
    """Short French notices for the filter parameters of a URL that cannot be used (unknown
    codes, malformed years or amounts; unknown territories are an error of their own),
    values echoed as typed; empty if all are fine. :meth:`Filters.from_params` ignores
    those parts; the page says so."""

    def get(key: str) -> str:
        value = params.get(key, "")
        if isinstance(value, list):
            value = value[-1] if value else ""
        return str(value).strip()

    out: list[str] = []
    for name, label, vocab in LIST_WIDGETS:
        bad = [v.strip() for v in get(name).split(",")
               if v.strip() and v.strip() not in vocab.items]
        if bad:
            out.append(f"{label} : {', '.join(f'« {b} »' for b in bad)} "
                       f"inconnu{'s' if len(bad) > 1 else ''} (paramètre « {name} »)")
    years = get("years")
    if years and not re.fullmatch(r"\d{4}(-\d{4})?", years):
        out.append(f"Années : « {years} » illisible (attendu par exemple 2021-2024)")
    amount = get("amount")
    if amount:
        try:
            parts = [float(x) for x in amount.split("-", 1)]
            if len(parts) != 2 or any(math.isnan(x) for x in parts):
                raise ValueError(amount)
        except ValueError:
            out.append(f"Montant : « {amount} » illisible (attendu par exemple 0-50000)")
    return out


def _filter_params() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in FILTER_KEYS if k in st.query_params}


def current_filters() -> Filters:
    """The filters of the URL (the single source of truth)."""
    params = _filter_params()
    filters = Filters.from_params(params)
    st.session_state["_filters_params"] = filters.to_params()
    st.session_state["_url_notices"] = url_notices(params)
    return filters


def show_url_notices() -> None:
    """A short notice on the page for the URL's filter parameters that were ignored."""
    notices = st.session_state.pop("_url_notices", None)
    if notices:
        st.warning(views.md_text("Filtres du lien ignorés — " + " ; ".join(notices) + "."),
                   icon=":material/link_off:")


def set_filters(filters: Filters) -> None:
    """Write ``filters`` to the URL (page parameters are kept)."""
    for key in FILTER_KEYS:
        if key in st.query_params:
            del st.query_params[key]
    params = filters.to_params()
    if params:
        st.query_params.update(params)
    st.session_state["_filters_params"] = params


def widget_values(filters: Filters, lookup_label: Mapping[tuple[str, str], str]) -> dict:
    """Sidebar widget values showing ``filters``."""
    values: dict[str, object] = {
        f"{_W}t": [lookup_label.get(t, f"{t[1]} ({t[0]})") for t in filters.territories],
        f"{_W}q": filters.text,
    }
    for name, _label, vocab in LIST_WIDGETS:
        values[f"{_W}{name}"] = [v for v in getattr(filters, name) if v in vocab.items]
    lo, hi = filters.years or YEAR_RANGE
    values[f"{_W}years"] = (max(YEAR_RANGE[0], min(lo, YEAR_RANGE[1])),
                            max(YEAR_RANGE[0], min(hi, YEAR_RANGE[1])))
    lo_amount, hi_amount = filters.amount or (AMOUNT_STEPS[0], AMOUNT_STEPS[-1])
    values[f"{_W}amount_min"] = float(lo_amount)
    values[f"{_W}amount_max"] = float(hi_amount)
    return values


def filters_from_widgets(state: Mapping[str, object],
                         lookup: Mapping[str, tuple[str, str]]) -> Filters:
    """Filters read from the sidebar widget values (inverse of :func:`widget_values`)."""
    territories = []
    for label in state.get(f"{_W}t") or []:
        if label in lookup:
            territories.append(lookup[label])
        elif label.endswith(")") and " (" in label:  # unknown code kept from a shared link
            code, _, level = label[:-1].rpartition(" (")
            territories.append((level, code))
    kwargs: dict[str, object] = {"territories": tuple(territories),
                                 "text": str(state.get(f"{_W}q") or "").strip()}
    for name, _label, _vocab in LIST_WIDGETS:
        kwargs[name] = tuple(state.get(f"{_W}{name}") or ())
    years = tuple(state.get(f"{_W}years") or YEAR_RANGE)
    kwargs["years"] = None if years == YEAR_RANGE else (int(years[0]), int(years[1]))
    lo = state.get(f"{_W}amount_min")
    hi = state.get(f"{_W}amount_max")
    lo = float(AMOUNT_STEPS[0] if lo is None else lo)  # type: ignore[arg-type]
    hi = float(AMOUNT_STEPS[-1] if hi is None else hi)  # type: ignore[arg-type]
    full = (AMOUNT_STEPS[0], AMOUNT_STEPS[-1])
    kwargs["amount"] = None if (lo, hi) == full else (min(lo, hi), max(lo, hi))
    return Filters(**kwargs)  # type: ignore[arg-type]


def _on_filters_changed() -> None:
    geo = str(config.geo_dir())
    _, lookup = _territory_options(geo)
    # the URL's values for the widgets not drawn (« Plus de filtres » closed)
    shown = widget_values(Filters.from_params(_filter_params()), _territory_labels(geo))
    shown.update({k: st.session_state[k] for k in shown if k in st.session_state})
    set_filters(filters_from_widgets(shown, lookup))


def _on_reset() -> None:
    set_filters(Filters())
    st.session_state[f"{_W}tsearch"] = ""


def _fmt_amount(v: float) -> str:
    return "sans limite" if math.isinf(v) else fmt_eur_short(v)


def render_filters_sidebar() -> Filters:
    """Draw the shared filters in the sidebar and return the active filters (not drawn
    while :func:`controls_deferred`)."""
    data = app_data()
    filters = current_filters()
    show_url_notices()
    if controls_deferred():
        return filters
    options, _ = _territory_options(data.geo)
    label_of = _territory_labels(data.geo)
    expected = widget_values(filters, label_of)
    for key, value in expected.items():
        _from_url(key, value)
    with st.sidebar:
        st.markdown("### Filtres")
        search = st.text_input(
            "Chercher un territoire", key=f"{_W}tsearch",
            placeholder="nom ou code : Cenon, 33119, QN03307M…",
            help="Ajoute à la liste ci-dessous les territoires trouvés (communes, QPV, EPCI, "
                 "cités éducatives… ; la liste offre d'emblée régions et départements).",
        )
        choices = list(expected[f"{_W}t"])  # type: ignore[arg-type]
        choices += _territory_search(data.geo, search)
        seen = set()
        all_options = [x for x in [*choices, *options] if not (x in seen or seen.add(x))]
        st.multiselect(
            "Territoires", all_options, key=f"{_W}t", on_change=_on_filters_changed,
            placeholder="Région, département, EPCI, commune, QPV…",
            help="Tapez pour filtrer la liste. Une initiative est retenue si elle touche l'un "
                 "de ces territoires.",
        )
        _list_widget(*LIST_WIDGETS[0])  # Thèmes: the filter most used, always shown
        st.text_input("Recherche libre", key=f"{_W}q", on_change=_on_filters_changed,
                      placeholder="titre, porteur, action…")
        # a link that sets one of them opens it
        more = lazy_expander("Plus de filtres", MORE_FILTERS_KEY,
                             opened=more_filters_active(filters) > 0)
        if more is not None:
            with more:
                for widget in LIST_WIDGETS[1:]:
                    _list_widget(*widget)
                st.slider("Années", YEAR_RANGE[0], YEAR_RANGE[1], key=f"{_W}years",
                          on_change=_on_filters_changed)
                steps = sorted({float(x) for x in AMOUNT_STEPS}
                               | {expected[f"{_W}amount_min"], expected[f"{_W}amount_max"]})
                low, high = st.columns(2)
                low.selectbox("Montant min. d'une ligne", steps, key=f"{_W}amount_min",
                              format_func=_fmt_amount, on_change=_on_filters_changed)
                high.selectbox("Montant max.", steps, key=f"{_W}amount_max",
                               format_func=_fmt_amount, on_change=_on_filters_changed)
        st.button("Réinitialiser les filtres", on_click=_on_reset, icon=":material/restart_alt:")
        st.caption(filters_summary(filters, data.index))
    return filters


def lazy_expander(label: str, key: str, opened: bool = False,
                  icon: str | None = None) -> DeltaGenerator | None:
    """An expander whose content is drawn only while it is open: the expander when open,
    else ``None`` (the caller draws nothing). Its widgets, tables and charts then cost the
    first view nothing: in the browser, Streamlit's frontend loads each kind of element's
    code when it first draws one and shows a skeleton meanwhile; React then draws all the
    elements that waited in one more render, split into 5 ms slices between the browser's
    frames, and shows them together: one more element there delays them all, the map's
    frame among them (issue 13, ``bench/bench_first_view.py``). Opening or closing it
    reruns the script (the fragment it is in). ``opened``: open at its first drawing in
    the session."""
    if opened and key not in st.session_state:
        st.session_state[key] = True
    box = st.expander(label, key=key, on_change="rerun", icon=icon)
    return box if box.open else None


def _list_widget(name: str, label: str, vocab: Vocabulary) -> None:
    st.multiselect(label, vocab.codes, format_func=vocab.label_of, key=f"{_W}{name}",
                   on_change=_on_filters_changed, placeholder="Tous")


def more_filters_active(filters: Filters) -> int:
    """How many of the filters under « Plus de filtres » are set (all but the territories,
    the themes and the free text)."""
    return (sum(bool(getattr(filters, name)) for name, _l, _v in LIST_WIDGETS[1:])
            + (filters.years is not None) + (filters.amount is not None))


def _from_url(key: str, value: Any) -> None:
    """Give widget ``key`` the value the URL holds, on every run and not only when it
    differs: Streamlit sends a value written to a widget's state to the browser in that run
    only, and a browser that reruns before it has drawn the widget (widgets load lazily; a
    fast user, a slow machine) would draw the widget's default instead and send it back,
    dropping a shared link's filters or setting « Montant max. » to 0 €."""
    st.session_state[key] = value


def param_select(label: str, name: str, options: Mapping[str, str], default: str,
                 horizontal: bool = True) -> str:
    """A radio choice kept in the URL as ``?name=code`` (page state); while
    :func:`controls_deferred`, an empty place for it."""
    value = st.query_params.get(name, default)
    if value not in options:
        value = default
    if controls_deferred():
        st.empty()
        return value
    key = f"prm_{name}"
    _from_url(key, value)

    def changed() -> None:
        st.query_params[name] = st.session_state[key]

    st.radio(label, list(options), format_func=lambda c: options[c], key=key,
             on_change=changed, horizontal=horizontal)
    return value


def param_tabs(name: str, options: Mapping[str, str], default: str
               ) -> tuple[str, DeltaGenerator]:
    """Tabs kept in the URL as ``?name=code`` (page state), of which only the open one is
    drawn: (its code, its tab); the caller draws that tab's content alone, as
    :func:`lazy_expander` does for an expander. Choosing a tab reruns the script."""
    value = st.query_params.get(name, default)
    if value not in options:
        value = default
    key = f"prm_{name}"
    by_label = {label: code for code, label in options.items()}

    def changed() -> None:
        st.query_params[name] = by_label.get(str(st.session_state[key]), default)

    tabs = st.tabs(list(options.values()), default=options[value], key=key,
                   on_change=changed)
    return next((code, tab) for code, tab in zip(options, tabs, strict=True) if tab.open)


def table_page(total: int, page_size: int, name: str = "page") -> int:
    """Page chooser of a long table, kept in the URL (``?page=N``); returns the first row
    of the page (0 when everything fits on one page). Only the page's rows are then sent to
    the browser (the whole table of 50,000 initiatives made a 1.4 MB websocket frame)."""
    pages = max(1, math.ceil(total / page_size))
    try:
        number = int(st.query_params.get(name, "1"))
    except ValueError:
        number = 1
    number = min(max(number, 1), pages)
    if pages == 1:
        return 0
    key = f"prm_{name}"
    _from_url(key, number)

    def changed() -> None:
        st.query_params[name] = str(st.session_state[key])

    first = (number - 1) * page_size
    cols = st.columns([1, 3])
    cols[0].number_input(f"Page (sur {fmt_int(pages)})", min_value=1, max_value=pages,
                         step=1, key=key, on_change=changed)
    cols[1].caption(f"Lignes {fmt_int(first + 1)} à {fmt_int(min(first + page_size, total))} "
                    f"sur {fmt_int(total)}, par titre ; le tri par colonne s'applique à la "
                    "page affichée.")
    return first


def metrics(items: Sequence[tuple[str, str, str | None]], per_row: int = 4) -> None:
    """``st.metric`` tiles from (label, formatted value, help) triples."""
    for start in range(0, len(items), per_row):
        cols = st.columns(per_row)
        for col, (label, value, help_text) in zip(cols, items[start:start + per_row],
                                                  strict=False):
            col.metric(label, value, help=help_text)


def text_table(table: pd.DataFrame, hide_index: bool = False) -> None:
    """A static HTML table of catalogue text (long texts wrap, screen readers read it out,
    it prints): :func:`~territoires.analysis.html_tables.html_table` escapes every value and
    ``st.html`` shows it (sanitised again, never read as Markdown)."""
    st.html(html_tables.html_table(table, hide_index=hide_index))


def territory_table(values: pd.DataFrame, level_label: str, measure: str) -> None:
    """Accessible alternative to the map: the territories with their figures."""
    if values.empty:
        st.info("Aucun territoire à afficher.")
        return
    qpv_cols = [c for c in ("qpv_population", "qpv_share_reached") if c in values.columns]
    table = values[["nom", "code", "population", "initiatives", "funding_eur",
                    "funding_per_inhabitant", *qpv_cols]].sort_values(measure, ascending=False)
    if "qpv_share_reached" in table.columns:
        table = table.assign(qpv_share_reached=table["qpv_share_reached"] * 100)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "nom": st.column_config.TextColumn(level_label),
            "code": st.column_config.TextColumn("Code"),
            "population": st.column_config.NumberColumn("Population", format="localized"),
            "initiatives": st.column_config.NumberColumn("Initiatives", format="localized"),
            "funding_eur": st.column_config.NumberColumn("Financements (€)", format="euro"),
            "funding_per_inhabitant": st.column_config.NumberColumn(
                "Financement par habitant (€)", format="euro"),
            "qpv_population": st.column_config.NumberColumn("Habitants des QPV",
                                                            format="localized"),
            "qpv_share_reached": st.column_config.NumberColumn(
                "Part de la population des QPV touchée (%)", format="%.1f %%"),
        },
    )


# ------------------------------------------------------------------------------ sign-in


def contribution_store() -> Store:
    """The database store, schema upgraded (contribution tables), shared by the sessions."""
    return _upgraded_store(config.database_url())


def auth_configured() -> bool:
    """True when ``.streamlit/secrets.toml`` (or the host's secrets) has an ``[auth]``
    section, i.e. sign-in with OpenID Connect is set up."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def current_user() -> User:
    """The signed-in user (from ``st.user``, role from the database) or anonymous."""
    if not auth_configured():
        return auth.ANONYMOUS
    info = st.user
    if not info.get("is_logged_in"):
        return auth.ANONYMOUS
    return auth.resolve_user(contribution_store(), email=info.get("email"),
                             subject=info.get("sub"), name=info.get("name"))


HOW_TO_ENABLE = (
    "La contribution n'est pas activée sur ce serveur : la connexion (OpenID Connect) n'est "
    "pas configurée. Pour l'activer, copiez `.streamlit/secrets.toml.example` en "
    "`.streamlit/secrets.toml`, renseignez votre fournisseur d'identité (ProConnect, "
    "Keycloak, Microsoft Entra…) puis relancez l'application ; pour un essai sur un seul "
    "poste, lancez `python scripts/try_contribution.py` (voir le README, section "
    "« Contribution »)."
)


def account_sidebar(user: User) -> None:
    """Sidebar block: who is signed in, with which role, and the sign-in/out button (not
    while :func:`controls_deferred`)."""
    if controls_deferred():
        return
    with st.sidebar:
        if not auth_configured():
            st.caption("Consultation seule : contribution non activée (voir la page "
                       "« Proposer une initiative »).")
            return
        if user.is_authenticated:
            st.text(f"Connecté : {user.label}\nRôle : {auth.ROLE_LABELS[user.role]}")
            if st.button("Se déconnecter", key="auth_logout", icon=":material/logout:"):
                st.logout()
        elif st.button("Se connecter", key="auth_login", icon=":material/login:"):
            st.login()


def require_role(user: User, role: str) -> None:
    """Stop the page with a French explanation unless ``user`` has ``role`` (the core
    functions check again: this is only the page's courtesy)."""
    if user.at_least(role):
        return
    if not auth_configured():
        st.info(HOW_TO_ENABLE, icon=":material/lock:")
    elif not user.is_authenticated:
        st.info("Connectez-vous pour contribuer (bouton « Se connecter » du menu).",
                icon=":material/login:")
        if st.button("Se connecter", key="auth_login_page", icon=":material/login:"):
            st.login()
    else:
        st.warning(f"Cette page est réservée au rôle {auth.ROLE_LABELS[role].lower()} ; votre "
                   f"rôle : {auth.ROLE_LABELS[user.role].lower()}. Un administrateur peut "
                   "vous le donner (page Administration ou « territoires users grant »).")
    st.stop()


# ------------------------------------------------------------------------------ map


#: Component key of the Carte page's map.
CARTE_KEY = "carte"
#: Default measure and colouring of the Carte page.
CARTE_MEASURE, CARTE_COLOUR = "initiatives", "theme"


def carte_default_level(filters: Filters, area: maps.Area) -> str:
    """Default choropleth level of the Carte page: départements for France, QPV when only
    communes and QPV are chosen, communes otherwise."""
    if area.national:
        return "departement"
    if all(level in ("commune", "qpv") for level, _ in filters.territories):
        return "qpv"
    return "commune"


def carte_choices(filters: Filters, area: maps.Area) -> tuple[str, str, str]:
    """The Carte page's three choices, side by side, kept in the URL: (choropleth level,
    measure, colour of the initiatives)."""
    cols = st.columns(3)
    with cols[0]:
        level = param_select("Carte choroplèthe par", "niveau", maps.CHOROPLETH_LEVELS,
                             carte_default_level(filters, area))
    with cols[1]:
        measure = param_select("Mesure", "mesure", maps.MEASURES, CARTE_MEASURE)
    with cols[2]:
        colour_by = param_select("Couleur des initiatives", "couleur", maps.COLOUR_BY,
                                 CARTE_COLOUR)
    return level, measure, colour_by


#: Characters of rendered maps kept per process (:func:`carte_map`): ~0.5 M per national
#: view at seed scale, so a hundred views; the least recently drawn go first.
MAP_CACHE_CHARS = 64_000_000


#: What the map cache keeps: a rendered map or a map document (weighed by ``size``)
_Kept = TypeVar("_Kept", map_component.RenderedMap, map_documents.MapDocument)


class _MapCache:
    """Rendered maps of this process, least recently used out first, weighed by size;
    one map built at a time (concurrent first visits of a view wait for its one build
    instead of each building it: the build holds the GIL anyway)."""

    def __init__(self, chars: int) -> None:
        import threading

        from cachetools import LRUCache

        self._maps: LRUCache = LRUCache(maxsize=chars, getsizeof=lambda r: max(r.size, 1))
        self._lock = threading.Lock()
        self._build = threading.Lock()

    def get(self, key: tuple[object, ...], build: Callable[[], _Kept]) -> _Kept:
        """The map of ``key``, built by ``build()`` when absent."""
        with self._lock:
            found = self._maps.get(key)
        if found is not None:
            return found
        with self._build:
            with self._lock:
                found = self._maps.get(key)
            if found is None:
                found = build()
                # larger than the whole cache (ValueError): drawn, not kept
                with self._lock, contextlib.suppress(ValueError):
                    self._maps[key] = found
        return found

    def __len__(self) -> int:
        return len(self._maps)


@st.cache_resource(show_spinner=False)
def map_cache() -> _MapCache:
    """This process's cache of rendered maps (emptied with ``st.cache_resource.clear()``)."""
    return _MapCache(MAP_CACHE_CHARS)


def _base_path() -> str:
    return str(st.get_option("server.baseUrlPath") or "")


@dataclass(frozen=True)
class CarteData:
    """What the Carte page shows of its filters at a level: the selection and the
    choropleth's values (its table and its map)."""

    selection: queries.Selection
    values: pd.DataFrame


def carte_data(data: AppData, filters: Filters, level: str) -> CarteData:
    """The selection of ``filters`` and its values by ``level``."""
    selection = queries.select(data.catalogue, data.index, filters)
    return CarteData(selection, queries.aggregate(selection, data.index, level))


def carte_spec(data: AppData, filters: Filters, level: str, measure: str,
               colour_by: str, shown: CarteData | None = None) -> maps.MapSpec:
    """The Carte page's map of ``filters``: choropleth by ``level`` of ``measure``,
    initiatives coloured by ``colour_by`` (the view, centre and zoom, is set apart).
    ``shown``: the selection and values of ``filters`` and ``level`` the page already
    has (computed here otherwise)."""
    shown = shown or carte_data(data, filters, level)
    return maps.MapSpec(
        area=maps.area_from_filters(filters.territories, data.index),
        choropleth_level=level, measure=measure, values=shown.values,
        initiatives=initiative_points(data, shown.selection), colour_by=colour_by,
        selected=filters.territories,
    )


def render_carte(data: AppData, filters: Filters, level: str, measure: str, colour_by: str,
                 base_path: str = "", shown: CarteData | None = None
                 ) -> map_component.RenderedMap:
    """Render the Carte page's map (see :func:`carte_spec`) for the map frame: a stable
    base (same frame for every filter) and the layers that change, swapped in it."""
    dyn = maps.dynamic_map(data.display("national"), data.display("local"),
                           carte_spec(data, filters, level, measure, colour_by, shown),
                           memo=data.payload_memo(), france=data.display("france"))
    for element in (dyn.base, *dyn.groups):
        serve_map_assets(element, base_path)
    return map_component.render(dyn.base, dyn.groups, dyn.control, key=CARTE_KEY)


def filters_key(filters: Filters) -> tuple[tuple[str, str], ...]:
    """``filters`` as a cache key (their URL parameters, in order)."""
    return tuple(sorted(filters.to_params().items()))


def _kept(data: AppData, key: tuple[object, ...], render: Callable[[], _Kept]) -> _Kept:
    """``render()``, kept in :func:`map_cache` under (catalogue key, layers, ``key``); a
    catalogue read outside the cache (no key) is rendered every time."""
    if not data.key:
        return render()
    return map_cache().get((data.key, data.geo, *key), render)


def carte_rendered(data: AppData, filters: Filters, level: str, measure: str,
                   colour_by: str, base_path: str | None = None,
                   shown: CarteData | None = None) -> map_component.RenderedMap:
    """:func:`render_carte`, kept per process for each (catalogue revision, filters,
    level, measure, colour): a view already drawn for anyone is sent again without being
    rendered (a catalogue change moves the revision, hence the key). ``shown`` (what
    :func:`carte_data` gives for ``filters`` and ``level``) spares computing it again."""
    path = _base_path() if base_path is None else base_path
    return _kept(data, (CARTE_KEY, filters_key(filters), level, measure, colour_by, path),
                 lambda: render_carte(data, filters, level, measure, colour_by, path,
                                      shown))


def carte_map(data: AppData, filters: Filters, level: str, measure: str, colour_by: str,
              height: int = 620, shown: CarteData | None = None) -> None:
    """Draw the Carte page's map; a click on a territory makes it the territory filter
    (and reruns). The view (centre, zoom) follows the territory filter, and stays where
    the user moved it while that filter stays."""
    area_key = filters.territories
    view = st.session_state.get("_map_view")
    if view and view[0] == area_key:
        center, zoom = view[1], view[2]
    else:
        area = maps.area_from_filters(filters.territories, data.index)
        center, zoom = maps.view_for(maps.area_bounds(data.display("local"), area))
        st.session_state["_map_view"] = (area_key, center, zoom)
    rendered = carte_rendered(data, filters, level, measure, colour_by, shown=shown)
    returned = map_component.draw(
        rendered, key=CARTE_KEY, height=height, returned_objects=["last_active_drawing"],
        center=center, zoom=zoom, announce=announce_map())
    clicked = maps.clicked_territory(returned)
    if clicked and clicked != st.session_state.get("_last_click"):
        st.session_state["_last_click"] = clicked
        if filters.territories != (clicked,):
            set_filters(filters.replace(territories=(clicked,)))
            st.rerun()


def serve_map_assets(element: object, base_path: str) -> None:
    """Ready a folium map or feature group for the browser: its scripts and styles from the
    app (``static/vendor``, see :mod:`territoires.app.assets`; the CDN only for files not
    fetched), zooming allowed (a whole map), its reference geography as files the browser
    caches (:mod:`territoires.app.layer_files`)."""
    assets.localise(element, base_path=base_path)
    if isinstance(element, folium.Map):
        assets.allow_zoom(element)
    layer_files.externalise(element, base_path=base_path)


def fmt_big(value: float | None) -> str:
    """Amount for a metric tile ("1 234 567 €")."""
    return fmt_eur(value) if value is not None else MISSING


__all__ = [
    "APP_TITLE", "NNBSP", "AppData", "app_data", "carte_map", "current_filters",
    "empty_selection_info", "filters_summary", "fmt_big", "fmt_eur", "fmt_int", "fmt_pct",
    "footer", "guard", "metrics", "navigation", "param_select", "render_filters_sidebar",
    "set_filters", "table_page", "territory_table", "text_table",
]


# --- helpers for the catalogue/fiche/comparer/couverture/exporter pages

#: Static print style sheet (no catalogue text): hides the menu and widgets when printing.
#: Markdown's HTML, not ``st.html``: Streamlit draws Markdown with the page's first elements,
#: whereas ``st.html`` loads its code and DOMPurify first. Its own element takes no room.
PRINT_CSS = """<span id="territoires-print"></span><style>
.stElementContainer:has(#territoires-print) { display: none; }
@media print {
  [data-testid="stSidebar"], [data-testid="stHeader"], [data-testid="stToolbar"],
  [data-testid="stSidebarCollapsedControl"], iframe, .stButton, .stDownloadButton,
  .stSelectbox { display: none !important; }
  .main .block-container { max-width: 100% !important; padding: 0 !important; }
  a { color: inherit; text-decoration: underline; }
}
</style>"""


def page_params(**extra: str) -> dict[str, str]:
    """The current filters' query parameters plus ``extra`` (for links between pages)."""
    params = current_filters().to_params()
    params.update({k: v for k, v in extra.items() if v})
    return params


def url_initiative(data: AppData) -> tuple[str, dict[str, object]]:
    """The initiative named by the URL's ``id`` and its record (Fiche page). Without ``id``,
    a chooser among the filtered initiatives, with the filters in the sidebar
    (:func:`render_filters_sidebar`); with an unknown one, a warning and a link back to the
    catalogue: both end the page run there."""
    ident = st.query_params.get("id", "")
    record = views.initiative_record(data.catalogue, ident) if ident else None
    if record is not None:
        return ident, record
    filters = render_filters_sidebar() if not ident else current_filters()
    st.title("Fiche initiative")
    if ident:
        st.warning(f"Aucune initiative n'a l'identifiant « {views.md_text(ident)} » : la fiche "
                   "a peut-être été renommée ou supprimée.")
        st.page_link("pages/catalogue.py", label="Retour au catalogue",
                     icon=":material/arrow_back:", query_params=page_params())
        st.stop()
    options = views.initiative_options(queries.select(data.catalogue, data.index,
                                                      filters).catalogue)
    if not options:
        empty_selection_info()
    else:
        choice = st.selectbox("Choisissez une initiative (parmi les filtres actifs)",
                              list(options), format_func=options.get, index=None,
                              placeholder="Titre de l'initiative…")
        if choice:
            st.query_params["id"] = choice
            st.rerun()
    st.stop()


def filters_sidebar_note(data: AppData) -> None:
    """Sidebar of a page the filters do not change (a Fiche): the active filters as one
    line of text, no widget. The menu's links keep them for the other pages. A Fiche's
    first view drew the filters' widgets for nothing, and they delayed its map (issue 13:
    Streamlit's frontend draws the widgets that waited for their code in one render)."""
    filters = current_filters()
    show_url_notices()
    with st.sidebar:
        st.markdown("### Filtres")
        st.caption(f"{filters_summary(filters, data.index)} Ils valent pour la carte, le "
                   "catalogue et les autres pages ; modifiez-les sur ces pages.")


def print_style() -> None:
    """Inject :data:`PRINT_CSS` (static CSS only)."""
    st.markdown(PRINT_CSS, unsafe_allow_html=True)


def static_map(build: Callable[[], object], key: str, height: int = 420, *,
               title: str = "Carte", data: AppData | None = None,
               view: tuple[object, ...] = (), document: bool = True) -> None:
    """Draw the folium map that ``build()`` makes; it returns nothing to the app (no rerun
    on interaction). With ``document``, the map is a document of its own
    (:mod:`territoires.app.map_documents`) in a sandboxed iframe titled ``title`` that the
    page creates with its first elements and the browser draws in another process, instead
    of a component's frame that the browser creates only once the page's lazily loaded
    elements are revealed, and draws between the page's tasks. A heavy map (a national
    one) keeps the component's frame (``document=False``): drawn beside the page on a
    machine of two cores, it slows the page more than it gains (Couverture, document
    against frame, medians of 5 in one run: map drawn 2,606 ms against 2,366, page
    settled 2,578 against 2,078; the Fiche's: 2,261 against 2,719 and 2,504 against
    2,611). With ``data``, the map is kept per process for each (catalogue revision,
    ``key``, ``view``): ``view`` holds whatever else the map depends on (an initiative's
    id, the filters...), and ``build`` is called only for a new one."""
    path = _base_path()

    def rendered() -> map_component.RenderedMap:
        fmap = build()
        serve_map_assets(fmap, path)
        return map_component.render(fmap, key=key)  # type: ignore[arg-type]

    if not document:
        kept = rendered() if data is None else _kept(data, (key, view, path), rendered)
        map_component.draw(kept, key=key, height=height, returned_objects=[],
                           announce=announce_map())
        return

    def render() -> map_documents.MapDocument:
        return map_documents.MapDocument.of(
            map_component.document(rendered(), height=height, title=title))

    doc = render() if data is None else _kept(data, (key, view, path, height, title), render)
    try:
        url = map_documents.publish(doc, base_path=path)
    except OSError as exc:
        raise TerritoiresError(f"carte non enregistrée ({exc.strerror or exc}) : "
                               f"{map_documents.maps_dir()}") from exc
    # Markdown's HTML from the file's name, the escaped title and the height only (see
    # map_documents.iframe): never catalogue text
    st.markdown(map_documents.iframe(url, title, height), unsafe_allow_html=True)


def url_territories_picker(label: str, name: str, max_selections: int = 4,
                           help_text: str | None = None) -> list[tuple[str, str]]:
    """Multiselect of territories (any level, with a search box) kept in the URL as
    ``?name=commune:33063,qpv:QN03307M``; returns the chosen (level, code) pairs."""
    data = app_data()
    options, lookup = _territory_options(data.geo)
    label_of = _territory_labels(data.geo)
    chosen = []
    for part in (st.query_params.get(name) or "").split(","):
        lvl, _, code = part.strip().partition(":")
        if lvl and code and (lvl, code) in label_of and (lvl, code) not in chosen:
            chosen.append((lvl, code))
    chosen = chosen[:max_selections]
    key = f"prm_{name}"
    expected = [label_of[t] for t in chosen]
    _from_url(key, expected)

    def changed() -> None:
        pairs = [lookup[x] for x in st.session_state[key] if x in lookup]
        if pairs:
            st.query_params[name] = ",".join(f"{lvl}:{code}" for lvl, code in pairs)
        elif name in st.query_params:
            del st.query_params[name]

    search = st.text_input("Chercher un territoire à comparer", key=f"prm_{name}_search",
                           placeholder="nom ou code : Lormont, 64445, QN03307M…")
    extra = list(_territory_search(data.geo, search))
    seen: set[str] = set()
    all_options = [x for x in [*expected, *extra, *options] if not (x in seen or seen.add(x))]
    st.multiselect(label, all_options, key=key, on_change=changed,
                   max_selections=max_selections, help=help_text,
                   placeholder="Tapez un nom : Bordeaux, Cenon, Pau…")
    return chosen


def url_ids_picker(label: str, name: str, options: Mapping[str, str],
                   max_selections: int = 3) -> list[str]:
    """Multiselect of initiatives (id -> title) kept in the URL as ``?name=a,b``."""
    wanted = [x for x in (st.query_params.get(name) or "").split(",") if x in options]
    wanted = list(dict.fromkeys(wanted))[:max_selections]
    key = f"prm_{name}"
    _from_url(key, wanted)

    def changed() -> None:
        ids = list(st.session_state[key])
        if ids:
            st.query_params[name] = ",".join(ids)
        elif name in st.query_params:
            del st.query_params[name]

    st.multiselect(label, list(options), format_func=lambda i: options.get(i, i), key=key,
                   on_change=changed, max_selections=max_selections,
                   placeholder="Choisissez des initiatives")
    return wanted

"""Pure helpers of ui.py: widget values <-> Filters, and the shared filters' URL keys."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_env import make_env
from apptest_support import drawn_widgets, rerun_with_only, text_tables
from territoires.analysis.queries import Filters
from territoires.app import ui
from territoires.pipeline.layers import Layers

APP = str(Path(__file__).resolve().parents[1] / "app.py")
LOOKUP = {"Cenon (33119) — Commune": ("commune", "33119"),
          "Gironde (33) — Département": ("departement", "33")}
LABELS = {v: k for k, v in LOOKUP.items()}


def test_filter_keys_cover_every_param() -> None:
    full = Filters(territories=(("commune", "33119"),), themes=("a",), publics=("b",),
                   maturity=("c",), alliance_levels=("d",), porteur_types=("e",),
                   funder_types=("f",), schemes=("g",), years=(2020, 2021),
                   amount=(1.0, 2.0), text="x")
    assert set(full.to_params()) == set(ui.FILTER_KEYS)


def test_widgets_round_trip() -> None:
    filters = Filters(territories=(("commune", "33119"), ("departement", "33")),
                      themes=("culture",), maturity=("emergence",), years=(2019, 2024),
                      amount=(1000.0, 50000.0), text="lecture")
    values = ui.widget_values(filters, LABELS)
    assert values["flt_t"] == ["Cenon (33119) — Commune", "Gironde (33) — Département"]
    assert values["flt_years"] == (2019, 2024)
    assert ui.filters_from_widgets(values, LOOKUP) == filters


def test_widgets_full_ranges_mean_no_filter() -> None:
    values = ui.widget_values(Filters(), LABELS)
    assert values["flt_years"] == ui.YEAR_RANGE
    assert values["flt_amount_max"] == math.inf
    assert ui.filters_from_widgets(values, LOOKUP) == Filters()


def test_unknown_territory_and_codes_survive() -> None:
    filters = Filters(territories=(("commune", "99999"),), themes=("not_a_theme",))
    values = ui.widget_values(filters, LABELS)
    assert values["flt_t"] == ["99999 (commune)"]
    assert values["flt_themes"] == []  # unknown vocabulary codes are not shown
    back = ui.filters_from_widgets(values, LOOKUP)
    assert back.territories == (("commune", "99999"),)


def test_app_pages_are_declared_once() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[1] / "app.py").read_text())
    pages = next(n for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)
                 and getattr(n.target, "id", "") == "PAGES")
    files = [e.elts[0].value for e in pages.value.elts]  # type: ignore[attr-defined]
    assert files[0] == "pages/accueil.py" and "pages/carte.py" in files
    for file in files:
        assert (Path(__file__).resolve().parents[1] / file).exists()


def test_url_notices() -> None:
    from territoires.app.ui import url_notices

    assert url_notices({"themes": "culture", "years": "2021-2024", "t": "commune:33119",
                        "amount": "0-50000", "q": "x"}) == []
    notes = url_notices({"themes": ["nope"], "years": "abc", "publics": "a,b"})
    assert any("« nope »" in n and "themes" in n for n in notes)
    assert any("« abc »" in n for n in notes)
    assert any("« a », « b » inconnus" in n for n in notes)


# --- the sidebar's territory list (AppTest on the tiny data)


@pytest.fixture
def app_env(tmp_path: Path, tiny_layers: Layers, monkeypatch: pytest.MonkeyPatch) -> dict:
    env = make_env(tmp_path, tiny_layers)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _run_app(params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_territory_list_sends_matches_not_every_territory(app_env: dict) -> None:
    """Without a search the list offers régions and départements only (not the 38,000
    territories of France on every rerun); a search adds its matches of any level."""
    at = _run_app()
    options = at.multiselect(key="flt_t").options
    assert options and all(o.endswith(("— Région", "— Département")) for o in options), options
    assert "Cenon (33119) — Commune" not in options  # a commune with a QPV
    at.text_input(key="flt_tsearch").set_value("Cenon").run()
    options = at.multiselect(key="flt_t").options
    assert "Cenon (33119) — Commune" in options
    at.multiselect(key="flt_t").set_value(["Cenon (33119) — Commune"]).run()
    assert at.query_params["t"] in ("commune:33119", ["commune:33119"])


def test_pages_run_in_a_script_slot(app_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page runs inside one of the process's page-run slots (a burst of visitors holds
    the temporary tables of a few runs, not of all of them)."""
    from collections.abc import Iterator
    from contextlib import contextmanager

    from streamlit.navigation.page import StreamlitPage

    from territoires.app import serve

    inside: list[bool] = []
    real_run = StreamlitPage.run

    @contextmanager
    def slot() -> Iterator[None]:
        inside.append(True)
        try:
            yield
        finally:
            inside.append(False)

    runs: list[tuple[str, bool]] = []

    def run(self: StreamlitPage) -> None:
        # (Streamlit runs app.py itself as a page too, outside any slot)
        runs.append((Path(str(self._page)).name, bool(inside and inside[-1])))
        real_run(self)

    monkeypatch.setattr(serve, "script_slot", slot)
    monkeypatch.setattr(StreamlitPage, "run", run)
    _run_app()
    assert runs == [("app.py", False), ("accueil.py", True)]
    assert inside == [True, False]


def test_shared_filters_survive_a_rerun_before_the_browser_drew_them(app_env: dict) -> None:
    """A shared link's filters (and the page's choices) stay on screen when the browser
    reruns before drawing the sidebar (its widgets load lazily): they were pushed in the
    first run only, so a browser that drew them later showed them empty, and its next rerun
    dropped them."""
    at = _run_app({"t": "commune:33119", "themes": "sport", "maturity": "essaimage"})
    first = drawn_widgets(at)
    assert first["multiselect:Thèmes"] == ["Sport"], first
    assert first["multiselect:Territoires"] == ["Cenon (33119) — Commune"], first
    at = rerun_with_only(at)  # a rerun from a browser that has drawn none of them
    assert drawn_widgets(at) == first


def test_shared_territory_stays_in_the_list(app_env: dict) -> None:
    at = _run_app({"t": "qpv:QN03307M"})
    assert at.multiselect(key="flt_t").value[0].startswith("QN03307M") or \
        "QN03307M" in at.multiselect(key="flt_t").value[0]


def test_page_titles_and_language() -> None:
    assert ui.page_title("Carte") == "Carte — Territoires"
    assert 'lang = "fr"' in ui.LANG_SCRIPT


def _paged_script() -> None:
    import streamlit as st

    from territoires.app import ui

    st.session_state["first"] = ui.table_page(1234, 500)


def test_table_page_in_the_url() -> None:
    at = AppTest.from_function(_paged_script)
    at.query_params["page"] = "3"
    at.run()
    assert at.session_state["first"] == 1000
    assert at.number_input(key="prm_page").value == 3
    at.number_input(key="prm_page").set_value(2).run()
    assert at.query_params["page"] in ("2", ["2"])
    assert at.session_state["first"] == 500
    at = AppTest.from_function(_paged_script)
    at.query_params["page"] = "99"  # out of range (the filters changed): the last page
    at.run()
    assert at.session_state["first"] == 1000


def _tabs_script() -> None:
    import streamlit as st

    from territoires.app import ui

    code, tab = ui.param_tabs("vue", {"a": "Premier", "b": "Second"}, "a")
    st.session_state["drawn"] = [code]
    tab.write("contenu")


def test_param_tabs_draw_the_open_one_of_the_url() -> None:
    at = AppTest.from_function(_tabs_script).run()
    assert [t.label for t in at.tabs] == ["Premier", "Second"]
    assert at.session_state["drawn"] == ["a"] and len(at.tabs[0].markdown) == 1
    assert not at.tabs[1].markdown
    at.session_state["prm_vue"] = "Second"  # the user opens the second
    at.run()
    assert at.session_state["drawn"] == ["b"] and not at.tabs[0].markdown
    for value, drawn in (("b", ["b"]), ("inconnu", ["a"])):  # a shared link; a bad one
        at = AppTest.from_function(_tabs_script)
        at.query_params["vue"] = value
        assert at.run().session_state["drawn"] == drawn


def _lazy_script() -> None:
    import streamlit as st

    from territoires.app import ui

    box = ui.lazy_expander("Détails", "details", opened=st.session_state.get("link", False))
    if box is not None:
        box.write("contenu")


def test_lazy_expander_draws_its_content_only_when_open() -> None:
    at = AppTest.from_function(_lazy_script).run()
    assert at.expander[0].label == "Détails" and not at.markdown
    at.session_state["details"] = True
    assert at.run().markdown[0].value == "contenu"
    at = AppTest.from_function(_lazy_script)
    at.session_state["link"] = True  # opened at its first drawing (a link sets its content)
    assert at.run().markdown[0].value == "contenu"
    at.session_state["details"] = False  # closed by the user: it stays closed
    assert not at.run().markdown


def test_warm_up_fills_what_app_data_reads(app_env: dict, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    import streamlit as st

    from territoires.analysis import queries
    from territoires.catalogue.storage import Store

    st.cache_resource.clear()
    steps: list[str] = []
    times = ui.warm_up(lambda step, seconds: steps.append(step))
    assert steps == list(ui.WARM_STEPS) and set(times) == set(ui.WARM_STEPS)

    def cold(*_: object, **__: object) -> None:
        raise AssertionError("loaded again inside the request")

    # a request after the warm-up loads nothing: layers, index, catalogue, display layers
    monkeypatch.setattr(ui, "load_layers", cold)
    monkeypatch.setattr(ui, "load_display", cold)
    monkeypatch.setattr(ui.TerritoryIndex, "from_layers", cold)
    monkeypatch.setattr(Store, "load_catalogue", cold)
    monkeypatch.setattr(queries, "_prepare", cold)
    data = ui.app_data()
    for level in ("national", "local"):
        assert set(data.display(level)) >= {"qpv", "communes"}
    assert queries.prepare(data.catalogue, data.index).n == len(data.catalogue.initiatives)
    assert not data.points().empty
    # ... nor renders the national Carte a first visitor opens
    monkeypatch.setattr(ui, "render_carte", cold)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/carte.py").run()
    assert not at.exception, [e.value for e in at.exception]


def test_initiative_points_cut_from_the_cached_table(app_env: dict) -> None:
    import pandas as pd

    from territoires.analysis import maps, queries

    data = ui.app_data()
    themes = sorted({t for ts in data.catalogue.initiatives["themes"] for t in ts})
    cases = [Filters(), Filters(themes=(themes[0],)), Filters(text="zzz-nothing"),
             Filters(territories=(("commune", "33119"),))]
    sizes = set()
    for filters in cases:
        selection = queries.select(data.catalogue, data.index, filters)
        expected = maps.initiative_points(selection.catalogue, data.points())
        got = ui.initiative_points(data, selection)
        pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))
        sizes.add(len(got))
    assert len(sizes) > 1  # the cases do select different points
    # a selection of another catalogue is computed directly, not cut from this one's
    from territoires.catalogue.model import Catalogue

    tables = data.catalogue.tables()
    tables["initiatives"] = tables["initiatives"].iloc[:1]
    other = queries.select(Catalogue(**tables), data.index, Filters())
    pd.testing.assert_frame_equal(ui.initiative_points(data, other),
                                  maps.initiative_points(other.catalogue, data.points()))


def test_carte_maps_are_rendered_once_per_view(app_env: dict, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """A view drawn once (catalogue revision, filters, level, measure, colour) is sent
    again without rendering: 20 first visits of Carte rendered it 20 times (issue 13)."""
    import streamlit as st

    st.cache_resource.clear()
    renders: list[tuple] = []
    real = ui.render_carte

    def counted(*args: object, **kwargs: object) -> object:
        renders.append(args[1:5])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ui, "render_carte", counted)
    data = ui.app_data()
    view = (Filters(), "departement", "initiatives", "theme")
    first = ui.carte_rendered(data, *view, base_path="")
    assert ui.carte_rendered(data, *view, base_path="") is first
    assert len(renders) == 1
    theme = sorted({t for ts in data.catalogue.initiatives["themes"] for t in ts})[0]
    other = ui.carte_rendered(data, Filters(themes=(theme,)), "departement", "initiatives",
                              "theme", base_path="")
    assert other is not first and other.feature_group != first.feature_group
    ui.carte_rendered(data, Filters(), "departement", "funding_eur", "theme", base_path="")
    ui.carte_rendered(data, *view, base_path="/territoires")  # scripts under another path
    assert len(renders) == 4
    # the same filters written in another order are the same view
    ui.carte_rendered(data, Filters(themes=(theme,)), "departement", "initiatives", "theme",
                      base_path="")
    assert len(renders) == 4
    # a catalogue change moves the revision: the map is rendered anew
    moved = ui.AppData(data.geo, data.layers, data.index, data.catalogue,
                       (data.key[0], -1))
    assert ui.carte_rendered(moved, *view, base_path="") is not first
    assert len(renders) == 5
    # a catalogue read outside the cache (no key) is rendered every time
    uncached = ui.AppData(data.geo, data.layers, data.index, data.catalogue)
    ui.carte_rendered(uncached, *view, base_path="")
    ui.carte_rendered(uncached, *view, base_path="")
    assert len(renders) == 7


def test_map_cache_is_bounded_by_size() -> None:
    from territoires.app.map_component import RenderedMap

    cache = ui._MapCache(100)
    small = RenderedMap(script="x" * 40, header="", html="", map_id="m")
    big = RenderedMap(script="x" * 101, header="", html="", map_id="m")
    assert cache.get(("a",), lambda: small) is small
    assert cache.get(("b",), lambda: small) is small and len(cache) == 2
    cache.get(("c",), lambda: small)  # 120 characters: the least recently used goes
    assert len(cache) == 2
    built: list[int] = []
    assert cache.get(("a",), lambda: built.append(1) or small) is small and built == [1]
    assert cache.get(("big",), lambda: big) is big  # drawn, not kept
    assert len(cache) == 2


def test_static_maps_are_rendered_once_per_view(app_env: dict,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Fiche and Couverture maps are kept per (revision, page key, view), like Carte's: a
    document (the Fiche's) or a component's frame (Couverture's, ``document=False``)."""
    import folium
    import streamlit as st

    from territoires.app import map_component, map_documents

    st.cache_resource.clear()
    drawn: list[map_component.RenderedMap] = []
    monkeypatch.setattr(map_component, "draw", lambda rendered, **_: drawn.append(rendered))
    published: list[map_documents.MapDocument] = []
    shown: list[str] = []

    def publish(doc: map_documents.MapDocument, base_path: str = "") -> str:
        published.append(doc)
        return f"/app/static/maps/{doc.name}"

    monkeypatch.setattr(map_documents, "publish", publish)
    monkeypatch.setattr(st, "markdown", lambda body, **kw: shown.append(body))
    builds: list[str] = []

    def build(name: str) -> folium.Map:
        builds.append(name)
        fmap = folium.Map(location=[45, 0], zoom_start=6, tiles=None)
        folium.CircleMarker([45, 0], radius=3, tooltip=name).add_to(fmap)
        return fmap

    data = ui.app_data()
    for ident in ("a", "a", "b", "a"):
        ui.static_map(lambda ident=ident: build(ident), key="fiche_map", data=data,
                      view=(ident,), title="Carte des territoires de l'initiative")
    assert builds == ["a", "b"] and published[0] is published[1] is published[3]
    assert shown[0] == map_documents.iframe(
        f"/app/static/maps/{published[0].name}", "Carte des territoires de l'initiative", 420)
    assert "tooltip" not in shown[0] and "a" in published[0].text  # the map is in the file
    ui.static_map(lambda: build("c"), key="couverture_map", data=data, view=("a",),
                  document=False)
    ui.static_map(lambda: build("c"), key="couverture_map", data=data, view=("a",),
                  document=False)
    assert builds == ["a", "b", "c"] and len(drawn) == 2 and drawn[0] is drawn[1]
    ui.static_map(lambda: build("d"), key="fiche_map")  # no data: never kept
    ui.static_map(lambda: build("d"), key="fiche_map")
    assert builds == ["a", "b", "c", "d", "d"] and len(shown) == 6


def test_a_static_map_that_cannot_be_written_is_an_app_error(
        app_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A static folder that cannot be written is told in French, as the app's own error
    (which pages catch), not as a trace."""
    import folium

    from territoires.errors import TerritoiresError

    blocked = tmp_path / "lecture-seule"
    blocked.write_text("un fichier, pas un dossier", encoding="utf-8")
    monkeypatch.setenv("TERRITOIRES_STATIC_DIR", str(blocked))
    with pytest.raises(TerritoiresError, match="carte non enregistrée"):
        ui.static_map(lambda: folium.Map(location=[45, 0], tiles=None), key="fiche_map")


def test_layers_held_without_polygons(app_env: dict) -> None:
    """The process holds the communes' (EPCI, départements, régions) attributes, not their
    full polygons (~100 MB for France: the map draws the display layers); an export still
    gets them through ``Layers.layer``."""
    import geopandas as gpd

    from territoires import config

    layers = ui._layers(str(config.geo_dir()))
    for name in ("communes", "epci", "departements", "regions"):
        assert "geometry" not in getattr(layers, name).columns
        assert isinstance(layers.layer(name), gpd.GeoDataFrame)
        assert layers.layer(name).geometry.notna().any()
    assert layers.qpv.geometry.notna().any()  # the QPV centroids the map adds


def test_carte_selects_once_when_its_map_is_rendered(app_env: dict,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A view not yet in the map cache: the page's selection and values serve its table
    and its map (they were computed a second time inside the map's rendering)."""
    import streamlit as st

    from territoires.analysis import queries

    st.cache_resource.clear()
    ui.app_data()  # loaded (and its warm-up selections made) before counting
    ui.map_cache()
    calls: list[object] = []
    real = queries.select

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args[2])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(queries, "select", counted)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/carte.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(ui.map_cache()) == 1  # rendered in this run
    assert len(calls) == 1, calls


def test_text_table_shows_catalogue_text_as_typed() -> None:
    """ui.text_table draws an HTML table with ``st.html`` (never read as Markdown, drawn
    with the page's first elements): text shows as typed, markup never becomes markup."""

    def page() -> None:
        import pandas as pd

        from territoires.app import ui

        ui.text_table(pd.DataFrame({"Structure": ["![x](http://evil/x.png) <img src=x>"]}),
                      hide_index=True)

    at = AppTest.from_function(page).run()
    assert not at.exception and not at.table
    (table,) = text_tables(at)
    assert table["Structure"].iloc[0] == "![x](http://evil/x.png) <img src=x>"
    assert "<img" not in at.get("html")[0].proto.body


def test_display_of_france_falls_back_on_the_national_layers(app_env: dict) -> None:
    """The map of France draws the "france" régions and départements; layers built before
    that level existed (no such file) draw their national ones, and every other layer is
    the national one."""
    import streamlit as st

    from territoires import config
    from territoires.pipeline.layers import display_path

    st.cache_resource.clear()
    data = ui.app_data()
    national, france = data.display("national"), data.display("france")
    assert france["departements"] is not national["departements"]
    assert france["communes"] is national["communes"] and france["qpv"] is national["qpv"]
    for name in ("regions", "departements"):
        display_path(name, "france", config.geo_dir()).unlink()
    st.cache_resource.clear()
    data = ui.app_data()
    national, france = data.display("national"), data.display("france")
    assert france["departements"] is national["departements"]
    assert france["regions"] is national["regions"]

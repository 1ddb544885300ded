"""Pure helpers of ui.py: widget values <-> Filters, and the shared filters' URL keys."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_env import make_env
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

"""AppTest runs of the dashboard shell (app.py, Accueil, Carte, À propos) on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_env import make_env
from apptest_support import run_first_view
from territoires.analysis.queries import Filters
from territoires.app import ui
from territoires.pipeline.layers import Layers

APP = str(Path(__file__).resolve().parents[1] / "app.py")
NNBSP = "\u202f"


@pytest.fixture
def app_env(tmp_path: Path, tiny_layers: Layers, monkeypatch: pytest.MonkeyPatch) -> dict:
    env = make_env(tmp_path, tiny_layers)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _run(params: dict[str, str] | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    if page:
        at.switch_page(page)
    run_first_view(at)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_accueil_key_figures(app_env: dict) -> None:
    at = _run()
    figures = _metrics(at)
    assert figures["Initiatives"] == "3"
    assert figures["Porteurs"] == "3"
    assert figures["Financement des initiatives"] == f"35{NNBSP}000{NNBSP}€"
    assert figures["Financement, toutes lignes"] == f"65{NNBSP}000{NNBSP}€"
    assert figures["QPV touchés / QPV de la zone"].endswith("/ 8")
    # tiny QPV: 34,200 known inhabitants (Champ de Course and Quartier Nord unknown)
    people = figures["Habitants des QPV touchés / habitants des QPV de la zone"]
    assert people.endswith(f"/ 34{NNBSP}200")
    at = _run({"t": "commune:93066"})
    assert _metrics(at)["Habitants des QPV touchés / habitants des QPV de la zone"] == "inconnue"


def test_shared_link_filters_figures(app_env: dict) -> None:
    at = _run({"t": "commune:33119"})
    figures = _metrics(at)
    assert figures["Initiatives"] == "1"
    assert figures["Financement des initiatives"] == f"10{NNBSP}000{NNBSP}€"
    assert at.multiselect(key="flt_t").value == ["Cenon (33119) — Commune"] or \
        "33119" in at.multiselect(key="flt_t").value[0]
    assert any("Cenon" in c.value for c in at.caption)


def test_widget_change_updates_url_and_figures(app_env: dict) -> None:
    at = _run()
    at.multiselect(key="flt_themes").set_value(["sport"]).run()
    assert at.query_params.get("themes") == "sport"
    assert _metrics(at)["Initiatives"] == "1"
    at.button[0].click().run()  # Réinitialiser (the only button)
    assert "themes" not in at.query_params
    assert _metrics(at)["Initiatives"] == "3"
    assert at.multiselect(key="flt_themes").value == []


def test_url_round_trip(app_env: dict) -> None:
    filters = Filters(territories=(("departement", "33"),), themes=("culture", "parentalite"),
                      years=(2020, 2025), amount=(1000.0, 50000.0), text="lecture")
    at = _run(filters.to_params())
    assert Filters.from_params(at.query_params) == filters
    assert at.slider(key="flt_years").value == (2020, 2025)
    assert at.text_input(key="flt_q").value == "lecture"
    # a widget change rewrites the URL from the widgets: the other filters survive it
    at.multiselect(key="flt_publics").set_value(["parents"]).run()
    assert Filters.from_params(at.query_params) == filters.replace(publics=("parents",))


def test_more_filters_drawn_only_when_open(app_env: dict) -> None:
    at = _run()
    assert [e.label for e in at.sidebar.expander] == ["Plus de filtres"]
    assert [m.key for m in at.multiselect] == ["flt_t", "flt_themes"]
    assert not at.slider and not at.selectbox
    at.session_state["flt_more"] = True  # the user opens it
    at.run()
    assert [m.key for m in at.multiselect][2:] == [
        f"flt_{name}" for name, _label, _vocab in ui.LIST_WIDGETS[1:]]
    assert at.slider(key="flt_years").value == ui.YEAR_RANGE
    at.multiselect(key="flt_maturity").set_value(["experimentation"]).run()
    assert at.query_params.get("maturity") == "experimentation"


def test_a_link_with_more_filters_opens_them(app_env: dict) -> None:
    at = _run({"maturity": "experimentation"})
    assert at.multiselect(key="flt_maturity").value == ["experimentation"]
    assert _run({"themes": "sport"}).slider.len == 0


def test_hidden_filters_survive_a_change_of_the_shown_ones(app_env: dict) -> None:
    filters = Filters(maturity=("experimentation",), years=(2020, 2025), amount=(0.0, 50000.0))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(filters.to_params())
    at.run()
    assert at.slider(key="flt_years").value == (2020, 2025)  # opened: the link sets them
    at.session_state["flt_more"] = False  # closed by the user: its widgets are not drawn
    at.run()
    assert not at.slider
    at.multiselect(key="flt_themes").set_value(["sport"]).run()
    assert Filters.from_params(at.query_params) == filters.replace(themes=("sport",))
    at.text_input(key="flt_q").set_value("lecture").run()
    assert Filters.from_params(at.query_params) == filters.replace(themes=("sport",),
                                                                   text="lecture")


def test_filters_kept_across_pages(app_env: dict) -> None:
    at = _run({"t": "commune:33119"})
    at.switch_page("pages/carte.py").run()
    assert not at.exception
    assert at.query_params.get("t") == "commune:33119"
    assert any("Cenon" in c.value for c in at.caption)
    at.switch_page("pages/accueil.py").run()
    assert _metrics(at)["Initiatives"] == "1"


def _open_carte_table(at: AppTest) -> AppTest:
    """Carte's table of values, drawn once its expander is opened."""
    assert not at.dataframe  # closed at first: not drawn
    assert [e.label for e in at.main.expander] == ["Tableau des valeurs de la carte"]
    at.session_state[ui.CARTE_TABLE_KEY] = True  # the user opens it
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_carte_page(app_env: dict) -> None:
    at = _run({"t": "departement:33", "niveau": "commune", "mesure": "funding_eur"},
              "pages/carte.py")
    _open_carte_table(at)
    assert at.radio(key="prm_niveau").value == "commune"
    assert at.radio(key="prm_mesure").value == "funding_eur"
    table = at.dataframe[0].value
    assert set(table["code"]) == {"33063", "33119", "33249", "33069", "33162"}
    assert table.iloc[0]["code"] in {"33119", "33063"}  # sorted by funding, the largest first
    at.radio(key="prm_niveau").set_value("qpv").run()
    assert at.query_params.get("niveau") == "qpv"
    assert at.query_params.get("t") == "departement:33"
    assert "QN03307M" in set(at.dataframe[0].value["code"])


def test_carte_empty_selection_message(app_env: dict) -> None:
    at = _run({"q": "aucune-initiative-ne-contient-ceci"}, "pages/carte.py")
    assert any("Aucune initiative" in i.value for i in at.info)


def test_a_propos(app_env: dict) -> None:
    at = _run(page="pages/a-propos.py")
    text = " ".join(m.value for m in at.markdown)
    for source in ("ANCT", "INSEE", "IGN", "OpenStreetMap", "Licence Ouverte 2.0"):
        assert source in text
    assert "2024" in set(at.dataframe[0].value["Millésime"])
    assert "republiés par un tiers" in text
    assert "Population connue" in at.dataframe[0].value.columns


def test_missing_layers_show_french_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          app_env: dict) -> None:
    monkeypatch.setenv("TERRITOIRES_GEO_DIR", str(tmp_path / "vide"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert any("territoires data build" in e.value for e in at.error)


def test_page_urls_match_file_names() -> None:
    """On a fresh server, Streamlit first resolves a deep link with the ``pages/`` folder
    convention (URL = file name): a page whose URL differs from its file name opens with a
    "Page not found" dialog. Every routed URL must therefore be its file's name."""
    import ast

    tree = ast.parse(Path(APP).read_text(encoding="utf-8"))
    lists = {node.target.id: ast.literal_eval(node.value) for node in ast.walk(tree)
             if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    pages = lists["PAGES"] + [p[:4] for p in lists.get("CONTRIBUTION_PAGES", [])]
    assert len(lists["PAGES"]) == 8
    for file, _title, _icon, url in pages[1:]:  # the first page is the root URL
        assert Path(file).stem == url, file
    assert {Path(f).name for f, *_ in pages} == {p.name for p in Path(APP).parent.glob(
        "pages/*.py")}


def test_carte_share_of_qpv_population_reached(app_env: dict) -> None:
    at = _open_carte_table(_run({"niveau": "departement", "mesure": "qpv_share_reached"},
                                "pages/carte.py"))
    table = at.dataframe[0].value.set_index("code")
    # Seine-Saint-Denis: its QPV has no known population -> left out, not drawn as 0 %
    assert "93" not in table.index and "33" in table.index
    assert table.loc["33", "qpv_share_reached"] > 0  # as a percentage
    assert "Part de la population des QPV touch" in str(at.dataframe[0].proto.columns)



def test_error_from_a_shared_link_shows_as_text(app_env: dict) -> None:
    """An unknown territory's code is repeated in the error: a link, an image or an icon
    written there in the URL stays text (it was Markdown in the error box)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["t"] = ("commune:[Reconnectez-vous](https://evil.test/login) "
                            "![x](https://evil.test/p.png) :material/warning:")
    at.switch_page("pages/carte.py")
    at.run()
    shown = [e.value for e in at.error]
    assert len(shown) == 1 and "Filtre de territoire inconnu" in shown[0]
    assert "\\[Reconnectez-vous\\]\\(https:\u200b//evil.test" in shown[0]
    assert "](https://" not in shown[0] and ":material/" not in shown[0]


@pytest.fixture
def served(app_env: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The default (``TERRITOIRES_MAP_FIRST`` unset): a session's first view of a map page
    defers its widgets (``ui.first_view_step``)."""
    monkeypatch.delenv("TERRITOIRES_MAP_FIRST", raising=False)
    return app_env


def _widgets(at: AppTest) -> dict[str, int]:
    return {kind: len(at.get(kind)) for kind in ("page_link", "multiselect", "text_input",
                                                 "radio", "button")}


def test_first_view_of_a_map_page_sends_the_map_first(served: dict) -> None:
    """The session's first run of Carte draws its text and its map (told to announce
    itself), not the menu, filters and choices, whose values come from the URL; the next
    run of the app (the one the map's announce triggers) draws them all."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["t"] = "departement:33"
    at.query_params["niveau"] = "commune"
    at.switch_page("pages/carte.py")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert _widgets(at) == dict.fromkeys(_widgets(at), 0)
    maps = at.get("component_instance")
    assert len(maps) == 1 and json.loads(maps[0].proto.json_args)["announce"] is True
    assert "Gironde" in at.main.caption[0].value  # the URL's filters apply all the same
    assert [c.value for c in at.sidebar.caption] == [ui.DEFERRED_NOTE]
    assert at.session_state[ui._FIRST_VIEW] == "awaiting"
    # the run the announce triggers: in the browser every run goes through the router
    # (app.py); AppTest reruns the page's file, unless it is sent through the router again
    at.session_state[ui._ROUTED] = False
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[ui._FIRST_VIEW] == "done"
    widgets = _widgets(at)
    assert widgets["page_link"] >= 8 and widgets["multiselect"] >= 2 and widgets["radio"] == 3
    assert at.radio(key="prm_niveau").value == "commune"
    assert json.loads(at.get("component_instance")[0].proto.json_args)["announce"] is False
    assert ui.DEFERRED_NOTE not in [c.value for c in at.sidebar.caption]
    at.session_state[ui._ROUTED] = False
    at.run()
    assert _widgets(at) == widgets  # later runs: everything, at once


def test_first_view_without_a_map_to_announce_draws_its_widgets_at_once(served: dict) -> None:
    """Couverture's themes tab draws no map: its first run asks for the next one at its end
    (nothing would trigger it), which draws the widgets; AppTest runs both."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["vue"] = "themes"
    at.switch_page("pages/couverture.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[ui._FIRST_VIEW] == "done"
    assert at.radio(key="prm_par") and _widgets(at)["page_link"] >= 8


def test_first_view_of_other_pages_and_when_turned_off_defers_nothing(
        served: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()  # Accueil
    assert at.session_state[ui._FIRST_VIEW] == "done" and _widgets(at)["page_link"] >= 8
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/fiche.py").run()  # its map is a document: nothing deferred
    assert at.session_state[ui._FIRST_VIEW] == "done" and _widgets(at)["page_link"] >= 8
    monkeypatch.setenv("TERRITOIRES_MAP_FIRST", "0")  # everything in one run
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/carte.py").run()
    assert _widgets(at)["radio"] == 3 and at.session_state[ui._FIRST_VIEW] == "done"
    assert json.loads(at.get("component_instance")[0].proto.json_args)["announce"] is False

"""AppTest runs of the Catalogue, Fiche, Comparer, Couverture and Exporter pages.

Two environments: the tiny layers with a tiny catalogue (always), and the seed fiches
(``data/initiatives``) over the layers built from the offline mirror (``mirror_geo_dir``,
skipped when the mirror is absent)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_env import NASTY_TITLE, make_env, tiny_catalogue
from apptest_support import run_first_view, text_tables
from catalogue_factory import funding_line, initiative, make_catalogue
from territoires.analysis import views
from territoires.app import ui
from territoires.catalogue.model import Catalogue
from territoires.pipeline.layers import Layers

APP = str(Path(__file__).resolve().parents[1] / "app.py")
#: Couverture's table of the territories left out, opened (the user clicks its expander)
TABLE_OPEN = {ui.COUVERTURE_TABLE_KEY: True}
REPO = Path(__file__).resolve().parents[1]
NNBSP = "\u202f"
SECRET = "secret.contact@example.org"


def _tiny_with_contact() -> Catalogue:
    cat = tiny_catalogue()
    extra = make_catalogue(
        [initiative("lormont-forum", [("commune", "33249")], themes=["culture", "orientation"],
                    title="Forum de Lormont", maturity="arretee",
                    partenaires=[("Collège Lormont", "etablissement_scolaire")],
                    indicators=[("Élèves accueillis", 120, "élèves", 2024)],
                    contact_email=SECRET, contact_organisation="Ville de Lormont",
                    objectives="- accueillir\n- *orienter* [lien](javascript:x)",
                    source_url="https://example.org/fiche")],
        [funding_line("f-lor-1", 1_500.5, "commune", "33249", initiative_id="lormont-forum",
                      year_start=2023, year_end=2024, funder="Ville de Lormont",
                      funder_type="collectivite"),
         funding_line("f-lor-2", 2_000, "commune", "33249", initiative_id="lormont-forum",
                      year_start=2024, funder="CAF de la Gironde", funder_type="caf")],
    )
    import pandas as pd

    return Catalogue(**{name: pd.concat([getattr(cat, name), getattr(extra, name)],
                                        ignore_index=True) for name in cat.tables()})


@pytest.fixture
def tiny_env(tmp_path: Path, tiny_layers: Layers, monkeypatch: pytest.MonkeyPatch) -> dict:
    env = make_env(tmp_path, tiny_layers, _tiny_with_contact())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="module")
def seed_db(mirror_geo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from territoires.catalogue.seeds import load_seed_dir
    from territoires.catalogue.storage import Store

    root = tmp_path_factory.mktemp("seed_db")
    url = f"sqlite:///{root / 'territoires.sqlite'}"
    store = Store(url)
    store.create_or_upgrade()
    store.upsert(load_seed_dir(REPO / "data" / "initiatives"))
    store.dispose()
    return {"TERRITOIRES_HOME": str(root), "TERRITOIRES_GEO_DIR": str(mirror_geo_dir),
            "TERRITOIRES_DATABASE_URL": url}


@pytest.fixture
def seed_env(seed_db: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    for key, value in seed_db.items():
        monkeypatch.setenv(key, value)
    return seed_db


def _run(page: str, params: dict[str, str] | None = None,
         state: dict[str, object] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.switch_page(page)
    run_first_view(at)
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [t.value for t in at.title] + [s.value for s in at.subheader]
    parts += [h.value for h in at.header]
    return "\n".join(parts)


def _tables(at: AppTest) -> list:
    return text_tables(at) + [d.value for d in at.dataframe]


def _downloads(at: AppTest) -> list:
    return list(at.get("download_button"))


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[bytes, str | None]]:
    """Files handed to the (mock) media storage during AppTest runs: id -> (bytes, name)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    files: dict[str, tuple[bytes, str | None]] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = (bytes(path_or_data), filename)  # type: ignore[arg-type]
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return files


def _download(at: AppTest, media: dict[str, tuple[bytes, str | None]]) -> tuple[bytes, str]:
    (button,) = _downloads(at)
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    data, name = media[file_id]
    return data, str(name)


# ----------------------------------------------------------------------------- tiny data


def test_catalogue_table_and_links(tiny_env: dict) -> None:
    at = _run("pages/catalogue.py", {"t": "departement:33"})
    table = at.dataframe[0].value
    assert set(table["id"]) == {"cenon-culture", "lac-lecture", "lormont-forum"}
    assert "3 initiatives" in _text(at)
    assert "Gironde" in _text(at)
    row = table.set_index("id").loc["lormont-forum"]
    assert row["fiche"] == "fiche?id=lormont-forum&t=departement%3A33"
    assert list(row["themes"]) == ["Culture", "Orientation et ambition"]
    assert row["funding_eur"] == pytest.approx(3_500.5)
    assert row["maturity"] == "Arrêtée"


def test_catalogue_empty_selection(tiny_env: dict) -> None:
    at = _run("pages/catalogue.py", {"q": "aucune-initiative-ne-contient-ceci"})
    assert any("Aucune initiative" in i.value for i in at.info)
    assert not at.dataframe


def test_fiche_fields_and_no_email(tiny_env: dict) -> None:
    at = _run("pages/fiche.py", {"id": "lormont-forum"})
    text = _text(at)
    assert at.title[0].value == "Forum de Lormont"
    tables = _tables(at)
    funding = next(t for t in tables if "Montant" in t.columns)
    assert list(funding["Montant"]) == [f"1{NNBSP}500,50{NNBSP}€", f"2{NNBSP}000{NNBSP}€"]
    assert "Collège Lormont" in set(next(t for t in tables if "Structure" in t.columns
                                         and "Collège Lormont" in set(t["Structure"]))
                                    ["Structure"])
    assert SECRET not in text and all(SECRET not in t.to_string() for t in tables)
    assert "\\[lien\\]\\(javascript" in text  # shown as text, not a live link
    assert "Élèves accueillis" in set(next(t for t in tables if t.index.name == "Indicateur")
                                      .index)
    # its few rows are HTML tables (read out by screen readers, printed), no canvas grid,
    # no lazily loaded st.table
    assert not {"Structure", "Territoire"} & {c for d in at.dataframe for c in d.value.columns}
    assert {"Structure", "Territoire"} <= {c for t in text_tables(at) for c in t.columns}
    assert not at.table


def test_fiche_sends_its_map_first(tiny_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The map is the page's first element sent (its document loads while the rest is
    drawn), laid out below the title all the same."""
    import streamlit as st

    from territoires.app import map_documents, ui

    order: list[str] = []

    def spy(name: str, real: object) -> object:
        def call(*args: object, **kwargs: object) -> object:
            order.append(name)
            return real(*args, **kwargs)  # type: ignore[operator]
        return call

    monkeypatch.setattr(ui, "static_map", spy("map", ui.static_map))
    monkeypatch.setattr(st, "title", spy("title", st.title))
    monkeypatch.setattr(ui, "text_table", spy("table", ui.text_table))
    at = _run("pages/fiche.py", {"id": "lormont-forum"})
    assert order[:2] == ["map", "title"] and "table" in order
    main = at.main.children  # an AppTest block iterates over itself and all under it
    title_at = next(i for i, block in main.items() if any(
        getattr(e, "value", None) == "Forum de Lormont" for e in block))
    map_at = next(i for i, block in main.items() if any(
        map_documents.IFRAME_CLASS in str(getattr(e, "body", "")) for e in block))
    assert title_at < map_at


def test_fiche_arretee_warning(tiny_env: dict) -> None:
    at = _run("pages/fiche.py", {"id": "lormont-forum"})
    assert "Arrêtée" in at.warning[0].value
    at = _run("pages/fiche.py", {"id": "pau-sport"})
    assert not at.warning


def test_fiche_escapes_catalogue_text(tiny_env: dict) -> None:
    at = _run("pages/fiche.py", {"id": "lac-lecture"})
    # st.title renders Markdown: the title is backslash-escaped so it shows as plain text
    assert at.title[0].value == views.md_text(NASTY_TITLE)
    assert "<script>" not in at.title[0].value
    assert "<script>" not in " ".join(m.value for m in at.markdown)


def test_fiche_unknown_and_missing_id(tiny_env: dict) -> None:
    at = _run("pages/fiche.py", {"id": "n-existe-pas"})
    assert any("n-existe-pas" in w.value.replace("\\", "") for w in at.warning)
    at = _run("pages/fiche.py", {"id": "[piège](https://example.org)"})  # no link made
    assert any("\\[piège\\]" in w.value for w in at.warning)
    at = _run("pages/fiche.py", {"t": "commune:64445"})
    box = at.selectbox[0]
    assert box.options == ["Sport à Pau"]
    box.set_value("pau-sport").run()
    _ok(at)
    assert at.query_params.get("id") == "pau-sport"
    assert at.title[0].value == "Sport à Pau"


def test_comparer_tiny(tiny_env: dict) -> None:
    at = _run("pages/comparer.py", {"cmp": "commune:33119,commune:64445,qpv:QN03307M",
                                    "ini": "cenon-culture,pau-sport"})
    figures = at.dataframe[0].value
    assert list(figures.columns) == ["Cenon (commune)", "Pau (commune)", "Le Lac (qpv)"]
    assert list(figures.loc["Initiatives"]) == ["1", "1", "1"]
    assert figures.loc["Financements", "Pau (commune)"] == f"20{NNBSP}000{NNBSP}€"
    cmp = text_tables(at)[0]
    assert list(cmp.columns) == ["Culture à Cenon", "Sport à Pau"]
    # labels are markdown, escaped: the browser shows them without the backslashes
    assert [t.label.replace("\\", "") for t in at.tabs] == [
        "Cenon (commune) — 1", "Pau (commune) — 1", "Le Lac (qpv) — 1"]
    assert at.tabs[1].get("page_link")[0].proto.label == "Sport à Pau"
    at.text_input(key="prm_cmp_search").set_value("Cenon").run()  # communes: by search
    at.multiselect(key="prm_cmp").set_value(["Cenon (33119) — Commune"]).run()
    assert at.query_params.get("cmp") == "commune:33119"
    assert any("au moins deux" in i.value for i in at.info)


COUVERTURE_SECTIONS = ("Territoires non touchés", "Par thème et par public", "Chevauchements")


def test_couverture_tiny(tiny_env: dict) -> None:
    # first view: the ranking named in the text, its table drawn only once opened
    at = _run("pages/couverture.py", {"themes": "sport"})
    assert len(at.dataframe) == 0
    assert "Tableau du classement complet (7)" in [e.label for e in at.expander]
    text = _text(at)
    # the five largest QPV left out, largest population first
    leaders = text.split("En tête du classement : ", 1)[1].split("\n", 1)[0]
    assert leaders.startswith("Mireuil (QN01701M, 8\u202f000 habitants) ; Palmer")
    assert leaders.count(" ; ") == 4
    at = _run("pages/couverture.py", {"t": "departement:33"}, TABLE_OPEN)
    table = at.dataframe[0].value
    # reached: Cenon's QPV (commune), Le Lac; Génicart Est by Lormont's (arrêtée) forum
    assert set(table["Code"]) == {"QN03301I"}
    at = _run("pages/couverture.py", {"themes": "sport"}, TABLE_OPEN)
    codes = list(at.dataframe[0].value["Code"])
    assert "QN06403M" not in codes and codes[0] == "QN01701M"  # largest population first
    at.radio(key="prm_unite").set_value("commune").run()
    _ok(at)
    assert "64445" not in set(at.dataframe[0].value["Code"])


def test_exporter_tiny(tiny_env: dict, media: dict) -> None:
    at = _run("pages/exporter.py", {"t": "commune:33249", "format": "csv"})
    assert at.radio(key="prm_format").value == "csv"
    data, name = _download(at, media)
    assert name.startswith("territoires_lormont") and name.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        initiatives = zf.read("initiatives.csv")
        assert initiatives.startswith(b"\xef\xbb\xbf") and b";" in initiatives
        assert b"lormont-forum" in initiatives and SECRET.encode() not in initiatives
        assert b"f-ar" not in zf.read("financements.csv")
    at.radio(key="prm_format").set_value("html").run()
    _ok(at)
    data, name = _download(at, media)
    assert name.startswith("territoires-carte_") and name.endswith(".html")
    assert b"leaflet" in data.lower() and b"<script>alert" not in data
    at = _run("pages/exporter.py", {"q": "aucune-initiative-ne-contient-ceci"})
    assert any("Aucune initiative" in i.value for i in at.info)
    assert not _downloads(at)


def test_export_bytes_have_no_email(tiny_env: dict) -> None:
    from territoires.analysis import queries, views
    from territoires.catalogue.storage import Store
    from territoires.pipeline.layers import load_layers
    from territoires.pipeline.territories import TerritoryIndex

    layers = load_layers(Path(tiny_env["TERRITOIRES_GEO_DIR"]))
    index = TerritoryIndex.from_layers(layers)
    cat = Store(tiny_env["TERRITOIRES_DATABASE_URL"]).load_catalogue()
    assert SECRET in set(cat.initiatives["contact_email"].dropna())
    sel = queries.select(cat, index, queries.Filters())
    for fmt in ("csv", "xlsx", "geojson", "gpkg"):
        data = views.export_file(sel, fmt, layers=layers, index=index, include_national=True)
        assert data
        assert SECRET.encode() not in data
        if fmt == "csv":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                assert b"f-ar" in zf.read("financements.csv")  # national line included
                assert SECRET.encode() not in zf.read("initiatives.csv")


# ----------------------------------------------------------------------------- seed data


@pytest.mark.integration
def test_seed_catalogue_gironde(seed_env: dict) -> None:
    at = _run("pages/catalogue.py", {"t": "departement:33"})
    ids = set(at.dataframe[0].value["id"])
    assert ids == {
        "bordeaux-plurilinguisme-petite-enfance", "bordeaux-theatre-forum-tregey",
        "cenon-erasmus-plus", "cenon-projet-social-global", "gironde-cordee-aerocampus-ensam",
        "gironde-forum-orientation-inter-cites", "le-bouscat-psfp-competences-psychosociales",
    }
    assert "7 initiatives" in _text(at)


@pytest.mark.integration
def test_seed_fiche_erasmus_funding(seed_env: dict) -> None:
    at = _run("pages/fiche.py", {"id": "cenon-erasmus-plus"})
    funding = next(t for t in text_tables(at) if "Montant" in t.columns)
    assert list(funding.index) == ["2023–2024", "2024–2025", "2025–2026"]
    assert list(funding["Montant"]) == [f"267{NNBSP}555{NNBSP}€", f"255{NNBSP}349,05{NNBSP}€",
                                        f"647{NNBSP}066{NNBSP}€"]
    assert f"1{NNBSP}169{NNBSP}970,05{NNBSP}€" in _text(at)
    assert "Cenon" in set(next(d for d in _tables(at) if "Territoire" in d.columns)
                          ["Territoire"])
    # the chart of the funding lines, drawn once its expander is opened
    assert not any("vega" in str(getattr(e, "type", "")) for e in at.main)
    at.session_state["fiche_graphique"] = True
    at.run()
    assert any("vega" in str(getattr(e, "type", "")) for e in at.main)


@pytest.mark.integration
def test_seed_fiche_theatre_forum_arretee(seed_env: dict) -> None:
    at = _run("pages/fiche.py", {"id": "bordeaux-theatre-forum-tregey"})
    assert "Arrêtée" in at.warning[0].value


@pytest.mark.integration
def test_seed_comparer_four_communes(seed_env: dict) -> None:
    at = _run("pages/comparer.py",
              {"cmp": "commune:33063,commune:33119,commune:33249,commune:64445"})
    figures = at.dataframe[0].value
    assert list(figures.columns) == ["Bordeaux (commune)", "Cenon (commune)",
                                     "Lormont (commune)", "Pau (commune)"]
    # Bordeaux: plurilinguisme, théâtre-forum, forum inter-cités, cordée (Gironde); Cenon:
    # Erasmus+, projet social, forum, cordée and plurilinguisme (its QPV QN03309M, Benauge,
    # spans Bordeaux and Cenon); Lormont: forum, cordée; Pau: ambassadeurs
    assert list(figures.loc["Initiatives"]) == ["4", "5", "2", "1"]
    assert figures.loc["Financements", "Pau (commune)"] == f"16{NNBSP}500{NNBSP}€"


@pytest.mark.integration
def test_seed_couverture_mireuil_reached(seed_env: dict) -> None:
    at = _run("pages/couverture.py", state=TABLE_OPEN)
    codes = set(at.dataframe[0].value["Code"])
    assert "QN01701M" not in codes
    assert "QN03312M" not in codes and len(codes) > 1000
    at = _run("pages/couverture.py", {"themes": "parentalite", "publics": "college"},
              TABLE_OPEN)
    codes = set(at.dataframe[0].value["Code"])
    assert "QN06403M" in codes and "QN03312M" not in codes


@pytest.mark.integration
def test_seed_couverture_gironde_ranked_by_people(seed_env: dict) -> None:
    at = _run("pages/couverture.py", {"t": "departement:33", "themes": "parentalite",
                                      "publics": "college"}, TABLE_OPEN)
    _ok(at)
    table = at.dataframe[0].value
    # outside Bordeaux Métropole: Quartier Bourg 2,715, Quartier du Centre 1,464
    assert list(table["Code"]) == ["QN03304M", "QN03303M"]
    assert list(table["Population"]) == [2715, 1464]
    assert any(f"4{NNBSP}179 habitants" in m.value for m in at.markdown)
    # the other tabs are neither computed nor drawn until chosen
    assert len(at.dataframe) == 1 and not any(
        "vega" in str(getattr(e, "type", "")) for e in at.main)
    assert [t.label for t in at.tabs] == list(COUVERTURE_SECTIONS)
    # theme coverage (its tab, as a shared link opens it): chart and table, one per theme
    at = _run("pages/couverture.py", {"t": "departement:33", "themes": "parentalite",
                                      "publics": "college", "vue": "themes"})
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 15
    assert any("vega" in str(getattr(e, "type", "")) for e in at.main)
    assert not any("que ne touche aucune" in h.value for h in at.header)
    at = _run("pages/couverture.py", {"t": "departement:33", "vue": "chevauchements"})
    assert any("Chevauchements" in h.value for h in at.header)


@pytest.mark.integration
def test_seed_exporter(seed_env: dict, media: dict) -> None:
    from openpyxl import load_workbook

    at = _run("pages/exporter.py", {"t": "commune:33119", "format": "xlsx"})
    data, name = _download(at, media)
    assert name.endswith(".xlsx") and "cenon" in name
    wb = load_workbook(io.BytesIO(data), read_only=True)
    rows = list(wb["initiatives"].iter_rows(values_only=True))
    header = rows[0]
    ids = {r[header.index("id")] for r in rows[1:]}
    assert ids == {"cenon-erasmus-plus", "cenon-projet-social-global",
                   "bordeaux-plurilinguisme-petite-enfance",
                   "gironde-cordee-aerocampus-ensam", "gironde-forum-orientation-inter-cites"}
    assert all(r[header.index("contact_email")] is None for r in rows[1:])


# ------------------------------------------------------------------- Markdown injection

IMG = "![x](http://evil/x.png)"
LINK = "[a](http://x)"
#: A live Markdown image or link: brackets not escaped by a backslash.
_LIVE_MD = __import__("re").compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")


def _hostile_catalogue() -> Catalogue:
    text = f"{IMG} {LINK} **gras**"
    return make_catalogue(
        [initiative(f"h{k}", [("commune", "33119")], themes=["culture"],
                    title=f"{text} n°{k}", summary=text,
                    porteurs=[(text, "association")], partenaires=[(text, "association")],
                    indicators=[(text, 12, text, 2024)])
         for k in range(2)],
        [funding_line(f"fh{k}", 1000, "commune", "33119", initiative_id=f"h{k}", funder=text)
         for k in range(2)])


def _all_texts(at: AppTest) -> list[str]:
    """Every text the page hands to a Markdown renderer (and the cells of its tables)."""
    out = [e.value for kind in ("markdown", "caption", "title", "header", "subheader", "warning",
                                "info", "header")
           for e in getattr(at, kind)]
    out += [t.label for t in at.tabs] + [m.label for m in at.metric]
    out += [p.proto.label for p in at.get("page_link")]
    for df in [t.value for t in at.table] + [d.value for d in at.dataframe
                                             if d.value.columns.dtype == object]:
        out += [str(c) for c in df.columns] + [str(i) for i in df.index]
    return out


@pytest.fixture
def hostile_env(tmp_path: Path, tiny_layers: Layers, monkeypatch: pytest.MonkeyPatch) -> dict:
    env = make_env(tmp_path, tiny_layers, _hostile_catalogue())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.mark.parametrize(("page", "params"), [
    ("pages/fiche.py", {"id": "h0"}),
    ("pages/comparer.py", {"cmp": "commune:33119,commune:64445", "ini": "h0,h1"}),
    ("pages/catalogue.py", {"q": IMG}),
])
def test_catalogue_text_never_renders_as_markdown(hostile_env: dict, page: str,
                                                  params: dict) -> None:
    """No image, link or formatting from catalogue (or URL) text: tables, titles, labels,
    column headers are escaped, so Streamlit's Markdown shows them as typed."""
    at = _run(page, params)
    texts = _all_texts(at)
    assert any("evil" in t for t in texts)  # the hostile text is on the page…
    live = [t for t in texts if _LIVE_MD.search(t) or "**gras**" in t]
    assert not live  # … but never as live Markdown
    # the static tables are HTML (st.html, never Markdown): their text escaped, shown as
    # typed, no element but the table's own
    tables = [h.proto.body for h in at.get("html") if "<table" in h.proto.body]
    for body in tables:
        assert not __import__("re").search(r"<(?!/?(table|caption|thead|tbody|tr|th|td|br|"
                                           r"style)\b)", body), body
    read = [str(v) for df in text_tables(at) for v in
            [*df.columns, *df.index, *df.to_numpy().ravel()]]
    if page.endswith(("comparer.py", "fiche.py")):
        assert tables, "static tables"
        assert any(f"{IMG} {LINK} **gras**" in v for v in read)  # shown as typed


def test_invalid_url_filters_get_a_notice(tiny_env: dict) -> None:
    """``?themes=nope&years=abc`` are not silently ignored: a short French notice says so,
    values as typed (and escaped: shown, never rendered as Markdown)."""
    at = _run("pages/catalogue.py", {"themes": "nope,culture", "years": "abc",
                                     "amount": "x-y"})
    notices = [w.value.replace("\\", "") for w in at.warning]
    assert any("« nope »" in n and "« abc »" in n and "x-y" in n
               for n in notices), notices
    assert not any("culture" in n for n in notices)
    at = _run("pages/catalogue.py", {"themes": "culture", "years": "2021-2024"})
    assert not at.warning

"""Tests of territoires.analysis.views (data shaping of the
catalogue/fiche/comparer/couverture/exporter
pages) on the tiny layers and small hand-made catalogues."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile

import pandas as pd
import pytest

from catalogue_factory import funding_line, initiative, make_catalogue
from territoires.analysis import queries, views
from territoires.analysis.queries import Filters
from territoires.catalogue.model import Catalogue
from territoires.pipeline.layers import Layers
from territoires.pipeline.territories import TerritoryIndex

NNBSP = "\u202f"
SECRET = "prive@example.org"


@pytest.fixture(scope="module")
def index(tiny_layers: Layers) -> TerritoryIndex:
    return TerritoryIndex.from_layers(tiny_layers)


@pytest.fixture
def cat() -> Catalogue:
    return make_catalogue(
        [
            initiative("erasmus", [("commune", "33119"), ("cite_educative", "cite-141")],
                       title="Erasmus+ à Cenon", themes=["mobilite_europeenne", "parentalite"],
                       publics=["college", "parents"], maturity="deploiement",
                       porteurs=[("Ville de Cenon", "collectivite")],
                       partenaires=[("IEN", "education_nationale")],
                       indicators=[("Élèves partis", 526, "élèves", None),
                                   ("Taux", 0.5, None, 2024)],
                       start_date=dt.date(2023, 9, 1), end_date=dt.date(2027, 1, 1),
                       contact_email=SECRET, summary="Mobilités <b>européennes</b>"),
            initiative("theatre", [("commune", "33063")], title="Théâtre-forum",
                       themes=["culture", "parentalite"], maturity="arretee"),
            initiative("pau", [("qpv", "QN06403M")], title="Ambassadeurs", themes=["sport"]),
        ],
        [
            funding_line("e3", 647_066, "commune", "33119", initiative_id="erasmus",
                         year_start=2025, year_end=2026, funder="Erasmus+",
                         funder_type="europe", scheme="erasmus_plus"),
            funding_line("e1", 267_555, "commune", "33119", initiative_id="erasmus",
                         year_start=2023, year_end=2024, funder="Erasmus+",
                         funder_type="europe", scheme="erasmus_plus"),
            funding_line("e2", 255_349.05, "commune", "33119", initiative_id="erasmus",
                         year_start=2024, year_end=2025, funder="Erasmus+",
                         funder_type="europe", scheme="erasmus_plus"),
            funding_line("ar", 30_000, "qpv", "QN03312M", scheme="adultes_relais"),
        ],
    )


def test_md_text_escapes_markup() -> None:
    text = views.md_text("Voir [ici](javascript:alert(1)) <b>gras</b> *x* $a$\n- un\n- deux")
    assert "](" not in text.replace("\\]\\(", "")
    assert "\\[ici\\]\\(javascript" in text
    assert "\\<b\\>" in text and "\\*x\\*" in text and "\\$a\\$" in text
    assert text.endswith("- un\n- deux")
    assert views.md_text(None) == "—"
    assert views.md_text("1. titre\nligne") == "1\\. titre  \nligne"
    assert views.md_text("A & B") == "A &amp; B"


def test_formats() -> None:
    assert views.fmt_amount(255_349.05) == f"255{NNBSP}349,05{NNBSP}€"
    assert views.fmt_amount(267_555.0) == f"267{NNBSP}555{NNBSP}€"
    assert views.fmt_amount(None) == "—"
    assert views.fmt_period(2023, 2024) == "2023–2024"
    assert views.fmt_period(2023, None) == "2023"
    assert views.fmt_date(dt.date(2023, 9, 1)) == "01/09/2023"
    assert views.fmt_size(1536) == "1,5 ko"


def test_url_helpers() -> None:
    pairs = views.parse_territories("commune:33063, qpv:QN03307M,bad,commune:33063,:x")
    assert pairs == [("commune", "33063"), ("qpv", "QN03307M")]
    assert views.format_territories(pairs) == "commune:33063,qpv:QN03307M"
    assert views.parse_ids("a,,b,a") == ["a", "b"]
    assert views.page_url("fiche", {"id": "a b", "t": "commune:33119", "q": ""}) == \
        "fiche?id=a+b&t=commune%3A33119"
    assert views.page_url("fiche", {}) == "fiche"


def test_catalogue_table(cat: Catalogue, index: TerritoryIndex) -> None:
    table = views.catalogue_table(cat, index, {"themes": "parentalite", "id": "old"})
    assert list(table["title"]) == ["Ambassadeurs", "Erasmus+ à Cenon", "Théâtre-forum"]
    row = table.set_index("id").loc["erasmus"]
    assert row["fiche"] == "fiche?id=erasmus&themes=parentalite"
    assert row["themes"] == ["Mobilité européenne", "Parentalité et lien école-familles"]
    assert row["funding_eur"] == pytest.approx(1_169_970.05)
    assert row["territoires"] == "Cenon"
    assert row["porteurs"] == "Ville de Cenon"
    assert row["start_date"] == pd.Timestamp("2023-09-01")
    assert table.set_index("id").loc["theatre", "maturity"] == "Arrêtée"
    assert "contact_email" not in table.columns
    first = views.catalogue_table(cat, index, limit=2)
    assert list(first["title"]) == ["Ambassadeurs", "Erasmus+ à Cenon"]
    assert first.set_index("id").loc["erasmus", "funding_eur"] == pytest.approx(1_169_970.05)
    empty = views.catalogue_table(Catalogue(), index)
    assert empty.empty and list(empty.columns) == views.CATALOGUE_COLUMNS


def test_catalogue_table_pages(cat: Catalogue, index: TerritoryIndex) -> None:
    """A page of the table: rows ``offset`` to ``offset + limit`` of the title order, with
    their own porteurs, territories and funding."""
    second = views.catalogue_table(cat, index, limit=2, offset=1)
    assert list(second["title"]) == ["Erasmus+ à Cenon", "Théâtre-forum"]
    row = second.set_index("id").loc["erasmus"]
    assert row["funding_eur"] == pytest.approx(1_169_970.05)
    assert row["porteurs"] == "Ville de Cenon"
    assert views.catalogue_table(cat, index, limit=2, offset=3).empty


def test_fiche_parts(cat: Catalogue, index: TerritoryIndex) -> None:
    record = views.initiative_record(cat, "erasmus")
    assert record is not None and "contact_email" not in record
    assert views.initiative_record(cat, "nope") is None
    facts = dict(views.fiche_facts(record))
    assert facts["Dates"] == "du 01/09/2023 au 01/01/2027"
    assert facts["Publics"] == "Collège, Parents"
    assert facts["Maturité"] == "Déploiement"
    assert list(views.organisations_table(cat, "erasmus", "partenaire")["Type"]) == [
        "Éducation nationale"]
    terr = views.territories_table(cat, index, "erasmus")
    assert list(terr["Territoire"]) == ["Cenon", "Cenon"]
    assert list(terr["Niveau"]) == ["Commune", "Cité éducative"]
    ind = views.indicators_table(cat, "erasmus")
    assert list(ind["Valeur"]) == ["526", "0,50"] and list(ind["Année"]) == ["", "2024"]
    fund = views.funding_table(cat, "erasmus")
    assert list(fund["Période"]) == ["2023–2024", "2024–2025", "2025–2026"]
    assert list(fund["Montant"]) == [f"267{NNBSP}555{NNBSP}€", f"255{NNBSP}349,05{NNBSP}€",
                                     f"647{NNBSP}066{NNBSP}€"]
    assert list(fund["Type de financeur"]) == ["Europe"] * 3
    assert views.funding_total(fund) == f"1{NNBSP}169{NNBSP}970,05{NNBSP}€"
    assert views.funding_total(views.funding_table(cat, "pau")) == "—"
    related = views.related_links(cat, index, "erasmus")
    assert [r[0] for r in related] == ["theatre"]


def test_comparison(cat: Catalogue, index: TerritoryIndex) -> None:
    terrs = [("commune", "33119"), ("commune", "33063"), ("qpv", "QN06403M")]
    names = views.territory_names(index, terrs)
    assert names == ["Cenon (commune)", "Bordeaux (commune)", "Saragosse (qpv)"]
    figures = queries.compare_territories(cat, index, Filters(), terrs)
    table = views.comparison_table(figures, names)
    assert list(table.columns) == names
    assert table.loc["Initiatives", "Cenon (commune)"] == "1"
    # the three Erasmus+ lines plus the national adultes-relais line on a QPV of Cenon
    assert table.loc["Financements", "Cenon (commune)"] == f"1{NNBSP}199{NNBSP}970{NNBSP}€"
    assert table.loc["QPV touchés", "Cenon (commune)"] == "2 sur 2"
    assert table.loc["Population des QPV touchés", "Cenon (commune)"] == f"10{NNBSP}100"
    # offline, QPV populations are partly unknown: the table says how much is known
    partial = figures.assign(qpv_population_known=[1, 0, 1], qpv_reached=[2, 2, 0])
    row = views.comparison_table(partial, names).loc["Population des QPV touchés"]
    assert list(row) == [f"10{NNBSP}100 (1 QPV sur 2)", "inconnue", "0"]
    selections = queries.select_each(cat, index, Filters(), terrs)
    long = views.compare_distributions(selections, names, "themes")
    cenon = long[long["territoire"] == "Cenon (commune)"]
    assert set(cenon["value"]) == {"mobilite_europeenne", "parentalite"}
    assert set(long["territoire"]) == set(names)
    lists = views.initiatives_by_territory(
        queries.select_each(cat, index, Filters(themes=("culture",)), terrs))
    assert lists == [[], [("theatre", "Théâtre-forum")], []]


def test_initiative_choices(cat: Catalogue) -> None:
    sel = cat.subset({"theatre", "pau"})
    options, too_many = views.initiative_choices(sel, cat, ["erasmus", "inconnu"])
    assert options == {"pau": "Ambassadeurs", "theatre": "Théâtre-forum",
                       "erasmus": "Erasmus+ à Cenon"} and not too_many
    options, too_many = views.initiative_choices(sel, cat, [], [[("x", "X")]], limit=1)
    assert options == {"x": "X"} and too_many


def test_coverage_and_overlaps_tables(cat: Catalogue, index: TerritoryIndex) -> None:
    sel = queries.select(cat, index, Filters(territories=(("departement", "33"),)))
    table = views.coverage_table(queries.coverage(sel, index, "qpv"))
    assert list(table.columns) == ["Rang", "Code", "Nom", "Département", "Population", "QPV"]
    assert list(table["Rang"]) == list(range(1, len(table) + 1))
    assert "QN03312M" not in set(table["Code"])  # Cenon's QPV: reached through the commune
    over = views.overlaps_table(queries.overlaps(sel, index, "qpv"),
                                views.initiative_options(sel.catalogue))
    assert list(over["Code"]) == ["QN03309M"]  # Benauge spans Bordeaux and Cenon
    assert sorted(over["Titres"][0]) == ["Erasmus+ à Cenon", "Théâtre-forum"]
    capped = views.overlaps_table(queries.overlaps(sel, index, "qpv"),
                                  views.initiative_options(sel.catalogue), max_titles=1)
    assert len(capped["Titres"][0]) == 2 and capped["Titres"][0][1] == "… et 1 autre"
    assert capped["Initiatives"][0] == 2


def test_maps(cat: Catalogue, index: TerritoryIndex, tiny_layers: Layers) -> None:
    layers = dict(tiny_layers.items())
    fmap = views.territories_map(layers, layers, index,
                                 [("qpv", "QN09301M"), ("commune", "33119")], "Surlignés")
    html = fmap.get_root().render()
    assert "Quartier Nord" in html and "Surlign" in html
    assert views.highlight_layer(layers, layers, [("qpv", "INCONNU")], "x") is None
    # the layer control must come after every layer it lists, or the map does not draw
    control = re.search(r"var (layer_control_\w+)_layers = \{(.*?)\};", html, re.S)
    assert control is not None and "Surlign" in control.group(2)
    for var in re.findall(r":\s*(\w+_\w+),", control.group(2)):
        assert html.index(f"var {var} =") < control.start(), var
    sel = queries.select(cat, index, Filters())
    points = pd.DataFrame({"level": ["commune"], "code": ["33119"], "lat": [44.84],
                           "lon": [-0.56]})
    html = views.export_file(sel, "html", layers=tiny_layers, index=index, national=layers,
                             local=layers, points=points).decode("utf-8")
    assert "Erasmus+ à Cenon" in html and "Voir la fiche" in html
    assert SECRET not in html


def test_export(cat: Catalogue, index: TerritoryIndex, tiny_layers: Layers) -> None:
    sel = queries.select(cat, index, Filters(territories=(("commune", "33119"),)))
    plain = views.export_catalogue(sel)
    assert set(plain.funding["id"]) == {"e1", "e2", "e3"}
    assert plain.initiatives["contact_email"].isna().all()
    assert cat.initiatives["contact_email"].notna().any()  # the source is untouched
    national = views.export_catalogue(sel, include_national=True)
    assert set(national.funding["id"]) == {"e1", "e2", "e3", "ar"}
    for fmt in ("csv", "xlsx", "geojson", "gpkg"):
        data = views.export_file(sel, fmt, layers=tiny_layers, index=index,
                                 include_national=True)
        assert SECRET.encode() not in data
    data = views.export_file(sel, "csv", layers=tiny_layers, index=index)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("financements.csv").startswith(b"\xef\xbb\xbf")
    geo = json.loads(views.export_file(sel, "geojson", layers=tiny_layers, index=index))
    assert {f["properties"]["territory_code"] for f in geo["features"]} == {"33119",
                                                                          "cite-141"}


def test_export_names(index: TerritoryIndex) -> None:
    filters = Filters(territories=(("departement", "33"),), themes=("parentalite",),
                      publics=("college",), years=(2021, 2024))
    text = views.filters_short_text(filters, index)
    assert text == "Gironde parentalite college 2021-2024"
    day = dt.date(2026, 3, 1)
    assert views.export_name("xlsx", text, day) == \
        "territoires_gironde-parentalite-college-2021-2024_2026-03-01.xlsx"
    assert views.export_name("csv", "", day, include_national=True) == \
        "territoires-avec-lignes-nationales_2026-03-01.zip"
    assert views.export_name("html", "Cenon", day) == "territoires-carte_cenon_2026-03-01.html"


def test_fiche_source_contact_and_chart() -> None:
    record = {"source_document": "Recueil PQN-A", "source_sheet": "Fiche n°6",
              "source_url": "javascript:alert(1)", "contact_organisation": "Ville de Cenon",
              "contact_role": "Cheffe de projet", "contact_email": "x@example.org"}
    assert views.source_text(record) == "Recueil PQN-A — Fiche n°6"
    assert views.source_link(record) is None  # only web addresses become a button
    assert views.source_link({**record, "source_url": "https://pqn-a.fr"}) == "https://pqn-a.fr"
    assert views.contact_text(record) == "Ville de Cenon, Cheffe de projet"
    assert "example.org" not in (views.contact_text(record) or "")
    assert views.source_text({}) is None and views.contact_text({}) is None
    funding = pd.DataFrame({"Période": ["2023-2024", "2024-2025"], "montant_eur": [1.0, 2.0],
                            "financeur": ["Erasmus+", "Erasmus+"], "Montant": ["1 €", "2 €"]})
    spec = views.funding_chart(funding).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert [len(rows) for rows in spec["datasets"].values()] == [2]


def test_distribution_charts_and_layer_status(cat: Catalogue, index: TerritoryIndex) -> None:
    chosen = [("commune", "33119"), ("commune", "64445")]
    selections = queries.select_each(cat, index, Filters(), chosen)
    charts = views.distribution_charts(selections, ["Cenon", "Pau"])
    titles = [title for title, _ in charts]
    assert titles[0] == "**Répartition par thème** (initiatives)"
    spec = charts[0][1].to_dict()
    assert spec["resolve"]["scale"] == {"x": "shared", "y": "shared"}
    assert spec["encoding"]["column"]["sort"] == ["Cenon", "Pau"]
    table = views.layer_status_table(
        {"layers": {"qpv": {"source": "ANCT", "vintage": "2024", "count": 1584,
                            "with_polygon": 1584, "population_known": 1476,
                            "notes": ["population : republication tierce"]},
                    "regions": {"source": "IGN", "vintage": "2018", "count": 18,
                                "with_polygon": 18}}})
    assert table.to_dict("records") == [
        {"Couche": "qpv", "Source": "ANCT", "Millésime": "2024", "Entités": "1\u202f584",
         "Avec contour": "1\u202f584", "Population connue": "1\u202f476",
         "Remarques": "population : republication tierce"},
        {"Couche": "regions", "Source": "IGN", "Millésime": "2018", "Entités": "18",
         "Avec contour": "18", "Population connue": "—", "Remarques": ""}]
    assert views.layer_status_table({}).empty


def test_standalone_map_never_runs_catalogue_text(index: TerritoryIndex,
                                                  tiny_layers: Layers) -> None:
    """Exporter's standalone HTML: Jinja syntax in titles and porteurs comes out as text."""
    import html as html_lib

    hostile = make_catalogue([initiative(
        "x", [("commune", "33119")], title="{{7*7}} {% for %} {{ lipsum.__globals__ }}",
        themes=["culture"], porteurs=[("{{ 6*7 }}", "association")])])
    sel = queries.select(hostile, index, Filters())
    layers = dict(tiny_layers.items())
    points = pd.DataFrame({"level": ["commune"], "code": ["33119"], "lat": [44.84],
                           "lon": [-0.56]})
    page = html_lib.unescape(views.export_file(
        sel, "html", layers=tiny_layers, index=index, national=layers, local=layers,
        points=points).decode("utf-8"))
    assert "{{7*7}} {% for %} {{ lipsum.__globals__ }}" in page and "{{ 6*7 }}" in page


def test_fiche_markdown_parts_are_escaped() -> None:
    """The facts (one Markdown text per column) and the long sections (one text, a heading
    per field) escape the fiche's text: a field cannot add a heading, a link or an image."""
    record = {"scale": None, "start_date": "2023-09-01", "maturity": "deploiement",
              "themes": ["culture"], "objectives": "## Faux titre\n![i](http://e/x.png)",
              "actions": "- une\n- deux", "results": None}
    cols = views.fiche_facts_markdown(record, 3)
    assert len(cols) == 3 and cols[0].startswith("**Échelle**  \n—\n\n**Thèmes**")
    assert "**Maturité**  \nDéploiement" in cols[2]
    text = views.fiche_sections_markdown(record)
    assert text.startswith("## Objectifs\n\n\\#\\# Faux titre  \n\\!\\[i\\]")
    assert "## Actions\n\n- une\n- deux\n\n## Résultats\n\n—" in text
    assert [line for line in text.split("\n") if line.startswith("## ")] == [
        f"## {title}" for _f, title in views.FICHE_SECTIONS]


def test_md_text_breaks_autolinks() -> None:
    """Streamlit's Markdown links bare URLs, www. names and e-mails even when escaped (seen
    in chromium); md_text escapes Markdown and breaks those with a zero-width space."""
    out = views.md_text('<script>x</script> [a](http://x.test) www.y.fr moi@x.fr & "q"')
    assert "<script>" not in out and "\\<script\\>" in out
    assert "\\[a\\]" in out
    assert "http://" not in out and "http:\u200b//" in out
    assert "www." not in out and "moi@" not in out
    assert out.replace("\u200b", "").replace("\\", "").startswith("<script>x</script>")


@pytest.mark.parametrize("text", [
    ":material/home:", "a :material/warning: b", ":smile:", ":+1:", ":streamlit:",
    ":red[alerte]", "x:red y", ":help", "a:help b", ":small", "::before", ":::note",
])
def test_md_text_breaks_icons_emoji_and_directives(text: str) -> None:
    """Streamlit reads icons, emoji and directives after parsing the Markdown, escaped or
    not (checked with Streamlit 1.67's own Markdown code): every colon before a name
    character or a colon gets a zero-width space after it."""
    out = views.md_text(text)
    assert re.search(r":\\?[A-Za-z0-9_+:-]", out) is None
    assert out.replace("\u200b", "").replace("\\", "") == text


def test_md_text_breaks_www_in_any_case_and_keeps_lists_out() -> None:
    for text in ("WWW.e.com", "Www.e.com", "wWw.evil.com/x"):
        assert views.md_text(text) == text[:3] + "\u200b" + text[3:]
    assert views.md_text("- ---") == "- \\---"  # a bullet, not a rule
    assert views.md_text("- 1. x") == "- 1\\. x"
    assert views.md_text("2024.") == "2024\\."  # not an empty numbered list
    assert views.md_text("10:30") == "10:\u200b30" and views.md_text("a : b") == "a : b"


def test_population_texts_never_show_zero_for_unknown(cat: Catalogue, index: TerritoryIndex):
    sel = queries.select(cat, index, Filters(territories=(("departement", "33"),)))
    value, help_text = views.qpv_inhabitants_metric(queries.key_figures(sel, index))
    # tiny Gironde: 19,200 known inhabitants in 5 QPV, Champ de Course unknown
    assert value.endswith("/ 19\u202f200") and "inconnue pour 1" in help_text
    sel = queries.select(cat, index, Filters(territories=(("commune", "93066"),)))
    assert views.qpv_inhabitants_metric(queries.key_figures(sel, index))[0] == "inconnue"
    figures = queries.compare_territories(cat, index, Filters(),
                                          [("commune", "64445"), ("commune", "93066")])
    table = views.comparison_table(figures, ["Pau", "Saint-Denis"])
    assert table.loc["Population des QPV", "Saint-Denis"] == "inconnue"
    assert table.loc["Financement par habitant des QPV", "Saint-Denis"] == "inconnue"
    assert table.loc["Population des QPV", "Pau"] == "7\u202f000"


def test_coverage_leaders_text() -> None:
    import pandas as pd

    uncovered = pd.DataFrame({
        "code": ["QN1", "QN2", "QN3"], "nom": ["Les *Hauts* [x](y)", "Bas", "Centre"],
        "population": [2715, None, 10], "qpv_population": [3000, 1464, None]})
    text = views.coverage_leaders_text(uncovered, "qpv", n=2)
    assert text == (f"En tête du classement : Les \\*Hauts\\* \\[x\\]\\(y\\) (QN1, "
                    f"2{NNBSP}715 habitants) ; Bas (QN2, population inconnue).")
    text = views.coverage_leaders_text(uncovered, "commune")
    assert f"(QN1, 3{NNBSP}000 habitants des QPV)" in text
    assert text.endswith("Centre (QN3, population inconnue).")
    assert views.coverage_leaders_text(uncovered.iloc[:0]) == ""


def test_coverage_summary_and_theme_views(cat: Catalogue, index: TerritoryIndex):
    sel = queries.select(cat, index, Filters(territories=(("departement", "33"),)))
    summary = queries.coverage_summary(sel, index)
    text = views.coverage_summary_text(summary)
    assert "habitants" in text and "QPV non touché" in text
    table = queries.theme_coverage(sel, index)
    shown = views.theme_coverage_table(table)
    assert list(shown.columns) == ["Valeur", "Initiatives", "QPV touchés", "Habitants touchés",
                                   "Habitants non touchés", "Part touchée (%)"]
    spec = views.theme_coverage_chart(table, "Thème").to_dict()
    assert spec["encoding"]["x"]["field"] == "part"
    assert len(spec["datasets"][next(iter(spec["datasets"]))]) == len(table)
    com = views.coverage_table(queries.coverage(sel, index, "commune"), "commune")
    assert "Habitants des QPV" in com.columns

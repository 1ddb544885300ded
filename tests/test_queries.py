"""Tests of the queries on the tiny layers and a small hand-made catalogue."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalogue_factory import funding_line, initiative, make_catalogue
from territoires.analysis import queries
from territoires.analysis.queries import (
    COMPARE_FIELDS,
    Filters,
    Selection,
    aggregate,
    compare_initiatives,
    compare_territories,
    coverage,
    distribution,
    key_figures,
    overlaps,
    prepare,
    related_initiatives,
    select,
)
from territoires.catalogue.model import Catalogue
from territoires.errors import UnknownTerritoryError
from territoires.pipeline.territories import TerritoryIndex
from territoires.vocab import THEMES
from tiny import make_layers

BORDEAUX, CENON, LORMONT, BOUSCAT, EYSINES = 267991, 27000, 24000, 24500, 25000
BM_POP = BORDEAUX + CENON + LORMONT + BOUSCAT + EYSINES


@pytest.fixture(scope="module")
def index() -> TerritoryIndex:
    return TerritoryIndex.from_layers(make_layers())


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return make_catalogue(
        [
            initiative("genicart", [("qpv", "QN03317M")], title="Théâtre à Génicart",
                       themes=["culture", "sport"], publics=["college"],
                       summary="Ateliers de théâtre au collège",
                       porteurs=[("Compagnie Éclat", "association")],
                       partenaires=[("Collège Jean Zay", "etablissement_scolaire")],
                       start_date="2021-09-01", end_date="2023-06-30"),
            initiative("benauge", [("qpv", "QN03309M")], themes=["parentalite"],
                       publics=["parents"], maturity="experimentation",
                       porteurs=[("Compagnie Eclat", "association")]),
            initiative("palmer", [("qpv", "QN03312M")], themes=["culture"],
                       porteurs=[("Ville de Cenon", "collectivite")]),
            initiative("bordeaux", [("commune", "33063")], themes=["decrochage"],
                       alliance_levels=["meso"], porteurs=[("Ville de Bordeaux", "collectivite")],
                       start_date="2016-01-01", end_date="2017-12-31"),
            initiative("metropole", [("epci", "243300316")], themes=["coordination_territoriale"],
                       alliance_levels=["macro"],
                       porteurs=[("Bordeaux Métropole", "collectivite")]),
            initiative("cite-cenon", [("cite_educative", "cite-141")], themes=["culture"],
                       porteurs=[("Ville de Cenon", "collectivite")]),
            initiative("pau", [("commune", "64445"), ("qpv", "QN06403M")], themes=["sport"],
                       maturity="essaimage", porteurs=[("USEP Pau", "association")],
                       indicators=[("Élèves touchés", 120, "élèves", 2023)]),
        ],
        [
            funding_line("cv-ar", 10_000, "contrat_ville", "CN03301I",
                         scheme="adultes_relais", year_start=2024),
            funding_line("benauge-1", 5_000, "qpv", "QN03309M", initiative_id="benauge",
                         funder_type="caf", scheme="caf_parentalite", year_start=2022),
            funding_line("pau-1", 2_000, "commune", "64445", initiative_id="pau",
                         funder_type="collectivite", scheme="droit_commun", year_start=2019,
                         year_end=2020),
            funding_line("fonjep-pau", 7_000, "commune", "64445", scheme="fonjep",
                         year_start=2025),
        ],
    )


def ids(selection: Selection) -> list[str]:
    return sorted(selection.catalogue.initiatives["id"])


# -- select ----------------------------------------------------------------------------


def test_no_filter_selects_everything(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters())
    assert len(sel.catalogue) == 7
    assert sorted(sel.funding["id"]) == ["benauge-1", "cv-ar", "fonjep-pau", "pau-1"]
    # own lines only in the catalogue part
    assert sorted(sel.catalogue.funding["id"]) == ["benauge-1", "pau-1"]


def test_unfiltered_selection_shares_the_tables(catalogue: Catalogue,
                                               index: TerritoryIndex) -> None:
    """No copy of a table that keeps every row: every concurrent first visit of the national
    view held its own copy of the funding lines."""
    fund = catalogue.funding
    own = dataclasses.replace(catalogue, funding=fund[fund["initiative_id"].notna()
                                                      & (fund["initiative_id"] != "")])
    sel = select(own, index, Filters())
    assert sel.catalogue.funding is own.funding
    assert sel.funding is own.funding
    assert sel.catalogue.initiatives is own.initiatives
    themed = select(own, index, Filters(themes=("culture",)))
    assert themed.catalogue.funding is not own.funding


def test_departement_includes_qpv_initiatives(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("departement", "33"),)))
    assert "genicart" in ids(sel)  # on QN03317M
    assert ids(sel) == ["benauge", "bordeaux", "cite-cenon", "genicart", "metropole", "palmer"]
    assert sorted(sel.funding["id"]) == ["benauge-1", "cv-ar"]
    assert len(sel.catalogue.organisations) == 7  # 6 porteurs + 1 partenaire


def test_commune_includes_qpv_spanning_it(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("commune", "33119"),)))
    assert ids(sel) == ["benauge", "cite-cenon", "metropole", "palmer"]


def test_qpv_filter_excludes_other_qpv(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("qpv", "QN03307M"),)))
    assert "palmer" not in ids(sel)  # QN03312M
    assert ids(sel) == ["bordeaux", "metropole"]  # commune 33063 and EPCI 243300316
    assert sorted(sel.funding["id"]) == ["cv-ar"]


def test_cite_educative_reaches_cenon_qpv(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("qpv", "QN03312M"),)))
    assert ids(sel) == ["cite-cenon", "metropole", "palmer"]


def test_union_of_territories(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index,
                 Filters(territories=(("commune", "64445"), ("qpv", "QN03317M"))))
    assert ids(sel) == ["genicart", "metropole", "pau"]
    assert sorted(sel.funding["id"]) == ["cv-ar", "fonjep-pau", "pau-1"]


def test_unknown_territory_raises(catalogue: Catalogue, index: TerritoryIndex) -> None:
    with pytest.raises(UnknownTerritoryError, match=r"Commune.*« 99999 »"):
        select(catalogue, index, Filters(territories=(("commune", "99999"),)))


def test_list_filters(catalogue: Catalogue, index: TerritoryIndex) -> None:
    assert ids(select(catalogue, index, Filters(themes=("culture", "decrochage")))) == [
        "bordeaux", "cite-cenon", "genicart", "palmer"]
    assert ids(select(catalogue, index, Filters(themes=("culture",), publics=("college",)))) == [
        "genicart"]
    assert ids(select(catalogue, index, Filters(maturity=("experimentation", "essaimage")))) == [
        "benauge", "pau"]
    assert ids(select(catalogue, index, Filters(alliance_levels=("macro",)))) == ["metropole"]
    assert ids(select(catalogue, index, Filters(porteur_types=("association",)))) == [
        "benauge", "genicart", "pau"]
    assert ids(select(catalogue, index, Filters(themes=("no_such_theme",)))) == []


def test_text_search(catalogue: Catalogue, index: TerritoryIndex) -> None:
    assert ids(select(catalogue, index, Filters(text="THEATRE college"))) == ["genicart"]
    # partner names are searched too
    assert ids(select(catalogue, index, Filters(text="jean zay"))) == ["genicart"]
    assert ids(select(catalogue, index, Filters(text="éclat"))) == ["benauge", "genicart"]
    assert ids(select(catalogue, index, Filters(text="ATRE   coll"))) == ["genicart"]  # substrings
    assert ids(select(catalogue, index, Filters(text="introuvable"))) == []


def test_funding_filters(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(funder_types=("caf",)))
    assert ids(sel) == ["benauge"]
    assert sorted(sel.funding["id"]) == ["benauge-1"]
    sel = select(catalogue, index, Filters(schemes=("fonjep",)))
    assert ids(sel) == []
    assert sorted(sel.funding["id"]) == ["fonjep-pau"]
    sel = select(catalogue, index, Filters(amount=(1_000, 6_000)))
    assert ids(sel) == ["benauge", "pau"]
    assert sorted(sel.funding["id"]) == ["benauge-1", "pau-1"]


def test_years_filter_uses_dates_without_lines(catalogue: Catalogue,
                                               index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(years=(2020, 2021)))
    # pau: line 2019-2020; genicart: active 2021-2023; undated initiatives kept;
    # benauge's only line is 2022; bordeaux ended in 2017
    assert ids(sel) == ["cite-cenon", "genicart", "metropole", "palmer", "pau"]
    assert sorted(sel.funding["id"]) == ["pau-1"]


def test_prepare_is_memoised(catalogue: Catalogue, index: TerritoryIndex) -> None:
    assert prepare(catalogue, index) is prepare(catalogue, index)
    other = Catalogue(**catalogue.tables())
    assert prepare(other, index) is not prepare(catalogue, index)


# -- key figures and aggregates ----------------------------------------------------------


def test_key_figures(catalogue: Catalogue, index: TerritoryIndex) -> None:
    figures = key_figures(select(catalogue, index, Filters()), index)
    assert figures.initiatives == 7
    assert figures.porteurs == 5  # "Compagnie Éclat" == "Compagnie Eclat", Ville de Cenon x2
    assert figures.funding_initiatives_eur == 7_000
    assert figures.funding_all_eur == 24_000
    # communes reached: 5 of Bordeaux Métropole + Pau; QPV: all but Mireuil and Quartier Nord
    assert (figures.territories_reached, figures.qpv_reached, figures.qpv_in_area) == (12, 6, 8)
    figures = key_figures(select(catalogue, index, Filters(territories=(("qpv", "QN03307M"),))),
                          index)
    assert (figures.initiatives, figures.qpv_reached, figures.qpv_in_area) == (2, 1, 1)
    assert figures.territories_reached == 2  # commune 33063 + QN03307M
    assert figures.funding_all_eur == 10_000


def test_aggregate_commune_shares_contrat_de_ville(catalogue: Catalogue,
                                                  index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("departement", "33"),)))
    agg = aggregate(sel, index, "commune").set_index("code")
    assert sorted(agg.index) == ["33063", "33069", "33119", "33162", "33249"]
    cenon = agg.loc["33119"]
    # contrat de ville line shared by population; the QPV line split between Bordeaux and Cenon
    expected = 10_000 * CENON / BM_POP + 5_000 * CENON / (BORDEAUX + CENON)
    assert cenon["funding_eur"] == pytest.approx(expected)
    assert cenon["funding_per_inhabitant"] == pytest.approx(expected / CENON)
    assert cenon["initiatives"] == 4  # benauge, palmer, metropole, cite-cenon
    assert agg.loc["33249", "initiatives"] == 2  # genicart, metropole
    assert agg["funding_eur"].sum() == pytest.approx(15_000)


def test_aggregate_two_commune_split(index: TerritoryIndex) -> None:
    """A contrat de ville line seen from two of its communes: population shares."""
    cat = make_catalogue([], [funding_line("cv", 1_000, "contrat_ville", "CN03301I")])
    sel = select(cat, index, Filters(territories=(("commune", "33063"), ("commune", "33119"))))
    agg = aggregate(sel, index, "commune").set_index("code")
    assert list(agg.index) == ["33063", "33119"]
    assert agg.loc["33063", "funding_eur"] == pytest.approx(1_000 * BORDEAUX / BM_POP)
    assert agg.loc["33119", "funding_eur"] == pytest.approx(1_000 * CENON / BM_POP)
    assert agg["initiatives"].tolist() == [0, 0]


def test_aggregate_departement_and_qpv(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters())
    dep = aggregate(sel, index, "departement").set_index("code")
    assert list(dep.index) == ["17", "33", "64", "93"]
    assert dep["initiatives"].to_dict() == {"17": 0, "33": 6, "64": 1, "93": 0}
    assert dep.loc["33", "funding_eur"] == pytest.approx(15_000)
    assert dep.loc["64", "funding_eur"] == pytest.approx(9_000)
    assert dep.loc["64", "funding_per_inhabitant"] == pytest.approx(9_000 / 76_000)
    qpv = aggregate(sel, index, "qpv").set_index("code")
    assert qpv.loc["QN03309M", "initiatives"] == 4  # benauge, bordeaux, metropole, cite-cenon
    assert qpv.loc["QN06403M", "initiatives"] == 1  # "pau" has 2 territories, counted once
    assert math.isnan(qpv.loc["QN03301I", "funding_per_inhabitant"])
    assert qpv.loc["QN06403M", "funding_eur"] == pytest.approx(9_000)


def test_coverage_and_overlaps(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters())
    cov = coverage(sel, index)
    assert cov["code"].tolist() == ["QN01701M", "QN09301M"]  # population desc, unknown last
    assert cov.columns.tolist() == ["code", "nom", "code_dep", "population", "qpv_count",
                                    "qpv_population"]
    assert cov["qpv_population"].tolist()[0] == 8_000 and math.isnan(cov["qpv_population"][1])
    cov = coverage(sel, index, "commune")
    # La Rochelle has 8,000 QPV inhabitants; Saint-Denis's QPV population is unknown
    assert cov["code"].tolist() == ["17300", "93066"]
    sel = select(catalogue, index, Filters(themes=("culture",)))
    cov = coverage(sel, index, "commune")
    # ranked by QPV inhabitants (Bordeaux 5,200 + 4,100, La Rochelle 8,000, Pau 7,000), then
    # the unknown ones by commune population (Saint-Denis, Eysines, Le Bouscat)
    assert cov["code"].tolist() == ["33063", "17300", "64445", "93066", "33162", "33069"]
    assert cov.set_index("code").loc["33063", "qpv_count"] == 2
    assert cov.set_index("code").loc["33063", "qpv_population"] == 9_300
    ov = overlaps(select(catalogue, index, Filters()), index)
    assert ov["code"].tolist() == ["QN03309M", "QN03312M", "QN03317M", "QN03307M"]
    assert ov.loc[0, "initiative_ids"] == ["benauge", "bordeaux", "cite-cenon", "metropole"]
    ov = overlaps(select(catalogue, index, Filters()), index, "commune", minimum=4)
    assert ov["code"].tolist() == ["33119"]


def test_distribution(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters())
    themes = distribution(sel, "themes").set_index("value")
    assert themes.loc["culture", "initiatives"] == 3
    assert themes.loc["culture", "label"] == "Culture"
    assert themes.loc["sport", "funding_eur"] == 2_000
    assert themes.index.tolist()[:2] == ["decrochage", "parentalite"]  # vocabulary order
    schemes = distribution(sel, "scheme").set_index("value")
    assert schemes.loc["adultes_relais", "funding_eur"] == 10_000
    assert schemes.loc["adultes_relais", "initiatives"] == 0
    assert schemes.loc["fonjep", "label"] == "FONJEP"
    years = distribution(sel, "year")
    assert years["value"].tolist() == [2019, 2022, 2024, 2025]
    assert distribution(sel, "maturity").set_index("value").loc["deploiement", "initiatives"] == 5
    with pytest.raises(ValueError):
        distribution(sel, "colour")


def test_compare_territories(catalogue: Catalogue, index: TerritoryIndex) -> None:
    table = compare_territories(catalogue, index, Filters(),
                                [("commune", "33119"), ("qpv", "QN03309M")])
    cenon, benauge = table.iloc[0], table.iloc[1]
    assert cenon["nom"] == "Cenon"
    assert cenon["initiatives"] == 4
    assert cenon["qpv_population_reached"] == 4_100 + 6_000
    assert (cenon["qpv_total"], cenon["qpv_reached"], cenon["qpv_population_known"]) == (2, 2, 2)
    assert cenon["funding_eur"] == pytest.approx(
        10_000 * CENON / BM_POP + 5_000 * CENON / (BORDEAUX + CENON))
    assert benauge["initiatives"] == 4
    assert benauge["porteurs"] == 4
    with pytest.raises(UnknownTerritoryError):
        compare_territories(catalogue, index, Filters(), [("qpv", "nope")])


def test_compare_initiatives(catalogue: Catalogue) -> None:
    table = compare_initiatives(catalogue, ["genicart", "pau"])
    assert table.index.tolist() == list(COMPARE_FIELDS)
    assert table.columns.tolist() == ["Théâtre à Génicart", "Initiative pau"]
    g, p = table["Théâtre à Génicart"], table["Initiative pau"]
    assert g["Thèmes"] == "Culture, Sport"
    assert g["Publics"] == "Collège"
    assert g["Dates"] == "01/09/2021 – 30/06/2023"
    assert g["Porteurs"] == "Compagnie Éclat (Association)"
    assert g["Territoires"] == "QPV QN03317M"
    assert p["Maturité"] == "Essaimage / pérennisation"
    assert p["Financements (total)"] == "2\u202f000 €"
    assert p["Indicateurs"] == "Élèves touchés : 120 élèves (2023)"


def test_related_initiatives(catalogue: Catalogue, index: TerritoryIndex) -> None:
    related = related_initiatives(catalogue, index, "genicart")
    # culture: palmer (QPV, dep 33), cite-cenon (dep 33); sport: pau (QPV level, dep 64)
    assert related["id"].tolist() == ["palmer", "cite-cenon", "pau"]
    assert related["score"].tolist() == [2.5, 2.0, 1.5]
    assert related.loc[2, "shared_themes"] == "Sport"
    assert related_initiatives(catalogue, index, "unknown").empty


def test_selection_without_prepared_state(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("commune", "33119"),)))
    bare = Selection(sel.catalogue, sel.funding, sel.filters)
    assert key_figures(bare, index) == key_figures(sel, index)
    np.testing.assert_allclose(aggregate(bare, index, "qpv")["funding_eur"],
                               aggregate(sel, index, "qpv")["funding_eur"])


# -- Filters round trip ----------------------------------------------------------------

_code = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
_filters = st.builds(
    Filters,
    territories=st.lists(st.tuples(st.sampled_from(["commune", "qpv", "epci"]), _code),
                         max_size=3).map(tuple),
    themes=st.lists(_code, max_size=3).map(tuple),
    publics=st.lists(_code, max_size=2).map(tuple),
    schemes=st.lists(_code, max_size=2).map(tuple),
    years=st.none() | st.tuples(st.integers(2000, 2030), st.integers(2000, 2030)).map(
        lambda t: (min(t), max(t))),
    amount=st.none() | st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)).map(
        lambda t: (float(min(t)), float(max(t)))),
    text=st.text(alphabet="abcdéè ", max_size=12).map(str.strip),
)


@given(_filters)
def test_filters_params_round_trip(filters: Filters) -> None:
    assert Filters.from_params(filters.to_params()) == filters


# -- free-text index (Arrow folding and tokenising)

import pandas as pd  # noqa: E402
from hypothesis import settings  # noqa: E402

_FRENCH = "aàâäbcçdeéèêëfghiîïjklmnoôöœpqrstuùûüvwxyÿzAÀÉÈÇŒß'’ -\u00a0\u202f\t\n.,;1é"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=_FRENCH, max_size=30), max_size=8))
def test_vectorised_fold_matches_fold(texts: list[str]) -> None:
    from territoires.analysis.queries import _fold_series
    from territoires.vocab import fold

    assert list(_fold_series(pd.Series(texts, dtype=object))) == [fold(t) for t in texts]


def test_text_filter_finds_porteur_names_and_folded_words(index: TerritoryIndex) -> None:

    cat = make_catalogue(
        [initiative("a", [("commune", "33119")], title="Théâtre d’été",
                    porteurs=[("Maison Œuvre Straße", "association")]),
         initiative("b", [("commune", "33119")], title="Lecture")], [])
    for text, ids in (("theatre", {"a"}), ("D'ETE", {"a"}), ("oeuvre", set()),
                      ("œuvre", {"a"}), ("strasse", {"a"}), ("lect", {"b"}),
                      ("maison lecture", set())):
        got = set(select(cat, index, Filters(text=text)).catalogue.initiatives["id"])
        assert got == ids, text


# -- population ------------------------------------------------------------------------------
# Tiny layers, QPV of Gironde (figures by hand): Le Lac 5,200 (Bordeaux), Benauge 4,100
# (Bordeaux + Cenon), Palmer 6,000 (Cenon), Génicart Est 3,900 (Lormont), Champ de Course
# unknown (Le Bouscat + Eysines): 5 QPV, 19,200 known inhabitants, 1 unknown.


def test_key_figures_qpv_population(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("departement", "33"),),
                                           themes=("culture",)))
    f = key_figures(sel, index)
    # culture: Génicart (QPV), Palmer (QPV), cité de Cenon (Cenon: Benauge + Palmer)
    assert (f.qpv_reached, f.qpv_in_area) == (3, 5)
    assert f.qpv_population_reached == 3_900 + 6_000 + 4_100
    assert f.qpv_population_in_area == 19_200
    assert f.qpv_population_unknown == 1
    # Saint-Denis: its only QPV has no known population -> None ("inconnue"), never 0
    f = key_figures(select(catalogue, index, Filters(territories=(("commune", "93066"),))),
                    index)
    assert f.qpv_in_area == 1 and f.qpv_population_in_area is None
    assert f.qpv_population_reached is None


def test_aggregate_share_of_qpv_population_reached(catalogue: Catalogue,
                                                  index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(themes=("culture",)))
    dep = aggregate(sel, index, "departement").set_index("code")
    assert dep.loc["33", "qpv_population"] == 19_200
    assert dep.loc["33", "qpv_population_reached"] == 14_000
    assert dep.loc["33", "qpv_share_reached"] == pytest.approx(14_000 / 19_200)
    assert dep.loc["64", "qpv_share_reached"] == 0.0  # Saragosse 7,000, not reached
    assert math.isnan(dep.loc["93", "qpv_share_reached"])  # unknown, not 0
    com = aggregate(sel, index, "commune").set_index("code")
    # Bordeaux: Le Lac 5,200 (not reached) + Benauge 4,100 (reached through Cenon's cité)
    assert com.loc["33063", "qpv_share_reached"] == pytest.approx(4_100 / 9_300)
    assert com.loc["33063", "qpv_count"] == 2
    assert math.isnan(com.loc["33069", "qpv_share_reached"])  # Champ de Course: unknown


def test_coverage_summary(catalogue: Catalogue, index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("departement", "33"),),
                                           themes=("culture",)))
    s = queries.coverage_summary(sel, index)
    # unreached: Le Lac 5,200 and Champ de Course (unknown)
    assert (s.units_unreached, s.qpv_unreached, s.unknown_unreached) == (2, 2, 1)
    assert s.inhabitants_unreached == 5_200 and s.inhabitants_area == 19_200
    s = queries.coverage_summary(sel, index, "commune")
    # unreached communes with a QPV: Bordeaux (Le Lac, Benauge), Le Bouscat and Eysines
    # (both Champ de Course, counted once)
    assert (s.units_unreached, s.qpv_unreached) == (3, 3)
    assert s.inhabitants_unreached == 5_200 + 4_100 and s.unknown_unreached == 1


def test_theme_coverage_weighted_by_population(catalogue: Catalogue,
                                              index: TerritoryIndex) -> None:
    sel = select(catalogue, index, Filters(territories=(("departement", "33"),)))
    t = queries.theme_coverage(sel, index).set_index("value")
    assert list(t.index) == list(THEMES.codes)
    assert t.loc["culture", "population_reached"] == 14_000
    assert t.loc["culture", "share"] == pytest.approx(14_000 / 19_200)
    assert t.loc["culture", "population_unreached"] == 5_200
    assert t.loc["parentalite", "population_reached"] == 4_100  # Benauge
    assert t.loc["decrochage", "population_reached"] == 9_300  # Bordeaux: Le Lac + Benauge
    assert t.loc["coordination_territoriale", "share"] == pytest.approx(1.0)  # the EPCI
    assert t.loc["coordination_territoriale", "qpv_reached"] == 5
    assert t.loc["sport", "population_reached"] == 3_900  # Génicart (Pau is outside)
    assert t.loc["sciences", "share"] == 0.0 and t.loc["sciences", "initiatives"] == 0
    assert (t["qpv_area"] == 5).all() and (t["qpv_unknown"] == 1).all()
    p = queries.theme_coverage(sel, index, "publics").set_index("value")
    assert p.loc["parents", "population_reached"] == 4_100
    assert p.loc["college", "population_reached"] == 3_900
    # an area whose QPV population is unknown: shares unknown (NaN), never 0
    sel = select(catalogue, index, Filters(territories=(("commune", "93066"),)))
    t = queries.theme_coverage(sel, index)
    assert t["share"].isna().all() and t["population_reached"].isna().all()
    with pytest.raises(ValueError):
        queries.theme_coverage(sel, index, "maturity")


def test_compare_funding_per_qpv_inhabitant(catalogue: Catalogue, index: TerritoryIndex) -> None:
    figures = queries.compare_territories(catalogue, index, Filters(),
                                          [("commune", "64445"), ("commune", "93066")])
    pau, sd = figures.iloc[0], figures.iloc[1]
    # Pau: 2,000 + 7,000 € over Saragosse's 7,000 inhabitants
    assert pau["qpv_population"] == 7_000
    assert pau["funding_per_qpv_inhabitant"] == pytest.approx(9_000 / 7_000)
    assert math.isnan(sd["qpv_population"]) and math.isnan(sd["funding_per_qpv_inhabitant"])


# -- integration: the seed catalogue over the layers built from the mirror -----------------
# Gironde's 25 QPV have 76,960 inhabitants (mirror population file). By hand, from the seed
# fiches: Bordeaux's 6 QPV (Carle Vernet 2,350, Le Lac 3,309, Marne-Capucins 3,612, Benauge
# 4,397, Grand-Parc 9,197, Bacalan 1,601 = 24,466); Cenon's 2 (Benauge, Palmer 10,461).


@pytest.fixture(scope="module")
def seed_index(mirror_geo_dir) -> TerritoryIndex:
    from territoires.pipeline.layers import load_layers

    return TerritoryIndex.from_layers(load_layers(mirror_geo_dir))


@pytest.fixture(scope="module")
def seeds() -> Catalogue:
    from pathlib import Path

    from territoires.catalogue.seeds import load_seed_dir

    return load_seed_dir(Path(__file__).resolve().parents[1] / "data" / "initiatives")


@pytest.mark.integration
def test_seed_theme_coverage_in_gironde(seeds: Catalogue, seed_index: TerritoryIndex) -> None:
    sel = select(seeds, seed_index, Filters(territories=(("departement", "33"),)))
    t = queries.theme_coverage(sel, seed_index).set_index("value")
    assert (t["population_area"] == 76_960).all() and (t["qpv_area"] == 25).all()
    # orientation: the Cordée on all of Gironde
    assert t.loc["orientation", "share"] == pytest.approx(1.0)
    # petite enfance: plurilinguisme in Bordeaux + projet social in Cenon
    assert t.loc["petite_enfance", "population_reached"] == 24_466 + 10_461
    assert t.loc["petite_enfance", "share"] == pytest.approx(34_927 / 76_960)
    # culture: théâtre-forum in Bordeaux
    assert t.loc["culture", "population_reached"] == 24_466
    # mobilité européenne: Erasmus+ in Cenon (Benauge 4,397 + Palmer 10,461)
    assert t.loc["mobilite_europeenne", "population_reached"] == 4_397 + 10_461
    # compétences psychosociales: Le Bouscat -> Champ de Course 1,015
    assert t.loc["competences_psychosociales", "population_reached"] == 1_015
    assert t.loc["sport", "share"] == 0.0
    p = queries.theme_coverage(sel, seed_index, "publics").set_index("value")
    assert p.loc["0-3_ans", "population_reached"] == 34_927  # same two fiches


@pytest.mark.integration
def test_seed_coverage_parentalite_college_in_gironde(seeds: Catalogue,
                                                     seed_index: TerritoryIndex) -> None:
    sel = select(seeds, seed_index, Filters(territories=(("departement", "33"),),
                                           themes=("parentalite",), publics=("college",)))
    # Erasmus+ Cenon and the forum of Bordeaux Métropole: every QPV of the métropole reached
    cov = coverage(sel, seed_index)
    assert cov["code"].tolist() == ["QN03304M", "QN03303M"]  # Bourg 2,715, Centre 1,464
    s = queries.coverage_summary(sel, seed_index)
    assert s.inhabitants_unreached == 2_715 + 1_464 and s.qpv_unreached == 2
    com = coverage(sel, seed_index, "commune")
    # Quartier Bourg spans Pineuilh and Sainte-Foy-la-Grande: counted once in the total
    assert com["code"].tolist() == ["33324", "33402", "33138"]
    assert queries.coverage_summary(sel, seed_index, "commune").inhabitants_unreached == 4_179


# --- the compact prepared form (issue 13: memory of one server process)


def test_coded_column_filters_like_the_strings() -> None:
    import pandas as pd

    from territoires.analysis.queries import Coded

    values = pd.Series(["caf", None, "etat", "caf", "", "commune"], dtype="object")
    coded = Coded.of(values)
    assert coded.codes.dtype == np.int8 and len(coded) == len(values)
    plain = values.astype("str").fillna("").to_numpy(dtype=object)
    assert list(coded.decoded()) == list(plain)
    for wanted in [("caf",), ("etat", "commune"), ("",), ("nothing",), ()]:
        assert coded.isin(wanted).tolist() == np.isin(plain, list(wanted)).tolist()
    empty = Coded.of(pd.Series([], dtype="str"))
    assert empty.isin(("caf",)).tolist() == [] and list(empty.decoded()) == []
    many = Coded.of(pd.Series([f"v{i}" for i in range(300)]))
    assert many.codes.dtype == np.int16 and many.isin(("v299",)).sum() == 1


def test_prepared_catalogue_holds_codes_not_texts(catalogue: Catalogue,
                                                  index: TerritoryIndex) -> None:
    """No folded copy of every text (the inverted index answers the search), small integer
    codes for maturity, funder types and schemes, int32 postings."""
    import dataclasses

    p = prepare(catalogue, index)
    assert "haystack" not in {f.name for f in dataclasses.fields(p)}
    for coded, column in ((p.maturity, catalogue.initiatives["maturity"]),
                          (p.f_funder_type, catalogue.funding["funder_type"]),
                          (p.f_scheme, catalogue.funding["scheme"])):
        assert coded.codes.dtype == np.int8
        assert list(coded.decoded()) == list(column.astype("str").fillna(""))
    assert p.token_postings.dtype == np.int32


@given(st.sampled_from(["théâtre", "THEATRE", "atre", "coll", "zay", "éclat", "e", "de la",
                        "bordeaux", "quartier", "’", "jean-", "zzz"]))
def test_text_search_is_a_substring_search_of_the_folded_texts(
        catalogue: Catalogue, index: TerritoryIndex, word: str) -> None:
    """The search without a kept folded text finds what a substring search of the folded
    title, summary, objectives, actions, results and structure names finds."""
    from territoires.vocab import fold

    cat, idx = catalogue, index
    texts = {}
    for _, r in cat.initiatives.iterrows():
        texts[r["id"]] = " ".join(fold(str(r[c])) for c in
                                  ("title", "summary", "objectives", "actions", "results")
                                  if isinstance(r.get(c), str))
    for _, o in cat.organisations.iterrows():
        texts[o["initiative_id"]] = texts.get(o["initiative_id"], "") + " " + fold(o["name"])
    words = fold(word).split()
    expected = sorted(i for i, t in texts.items()
                      if all(w in t for w in words))
    assert ids(select(cat, idx, Filters(text=word))) == expected

"""Tests of the territory index on the tiny layers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from territoires.errors import UnknownTerritoryError
from territoires.pipeline.layers import CRS, Layers
from territoires.pipeline.territories import Footprint, TerritoryIndex
from tiny import make_layers

BM = {"33063", "33119", "33249", "33069", "33162"}


@pytest.fixture(scope="module")
def index() -> TerritoryIndex:
    return TerritoryIndex.from_layers(make_layers())


def test_table_counts_order_and_labels(index: TerritoryIndex) -> None:
    counts = index.table["level"].value_counts().to_dict()
    assert counts == {"region": 2, "departement": 4, "epci": 4, "commune": 8, "qpv": 8,
                      "contrat_ville": 2, "cite_educative": 3}
    assert list(index.table["level"].drop_duplicates()) == [
        "region", "departement", "epci", "commune", "qpv", "contrat_ville", "cite_educative"]
    assert index.label("commune", "33119") == "Cenon (33119) — Commune"
    assert index.name("qpv", "QN03309M") == "Benauge"
    assert index.name("qpv", "QN99999X") == "QN99999X"
    assert index.exists("cite_educative", "cite-141")
    assert not index.exists("commune", "99999")
    assert not index.exists("qpv", "33119")


def test_populations(index: TerritoryIndex) -> None:
    assert index.population("commune", "33063") == 267991
    assert index.population("qpv", "QN03301I") is None
    assert index.population("departement", "33") == 368491  # sum of its communes
    assert index.population("contrat_ville", "CN03301I") == 91004
    assert index.population("commune", "00000") is None


def test_footprints(index: TerritoryIndex) -> None:
    assert index.footprint("qpv", "QN03309M") == Footprint(
        frozenset({"33063", "33119"}), frozenset({"QN03309M"}))
    assert index.footprint("contrat_ville", "CN03301I").communes == BM
    assert index.footprint("contrat_ville", "CN03301I").qpvs is None
    assert index.footprint("cite_educative", "cite-141").communes == {"33119"}
    assert index.footprint("region", "75").communes == BM | {"64445", "17300"}
    assert index.footprint("epci", "243300316").communes == BM
    with pytest.raises(UnknownTerritoryError, match=r"Commune.*99999"):
        index.footprint("commune", "99999")


def test_members_and_qpv_in(index: TerritoryIndex) -> None:
    assert index.qpv_in("commune", "33119") == ["QN03309M", "QN03312M"]
    assert index.qpv_in("cite_educative", "cite-141") == ["QN03309M", "QN03312M"]
    assert index.qpv_in("qpv", "QN03307M") == ["QN03307M"]
    assert sorted(index.members("departement", "33", "commune")) == sorted(BM)
    assert index.members("region", "75", "epci") == ["200067254", "241700434", "243300316"]
    assert index.members("qpv", "QN03309M", "commune") == ["33063", "33119"]
    assert index.members("qpv", "QN03309M", "cite_educative") == ["cite-090", "cite-141"]
    assert index.members("commune", "33119", "contrat_ville") == ["CN03301I"]


def test_search(index: TerritoryIndex) -> None:
    found = index.search("cenon")
    assert list(zip(found["level"], found["code"], strict=True)) == [
        ("commune", "33119"), ("cite_educative", "cite-141")]
    assert index.search("GENICART")["code"].tolist() == ["QN03317M"]
    # same rank: larger population first, unknown last
    assert index.search("qn0330")["code"].tolist() == ["QN03307M", "QN03309M", "QN03301I"]
    # word prefix: "Lac" matches "Le Lac" but not "Palmer"
    assert "QN03307M" in index.search("lac")["code"].tolist()
    assert index.search("", limit=5).empty
    assert len(index.search("o", limit=3)) == 3


def test_incidence_weights(index: TerritoryIndex) -> None:
    inc = index.incidence("commune")
    tid = index.tid("qpv", "QN03309M")
    _, units = inc.gather(np.array([tid]))
    codes = inc.units["code"].to_numpy()[units].tolist()
    assert codes == ["33063", "33119"]
    w = inc.weight[inc.indptr[tid]:inc.indptr[tid + 1]]
    assert w == pytest.approx([267991 / 294991, 27000 / 294991])
    with pytest.raises(ValueError):
        index.incidence("contrat_ville")


def _with_arrondissements() -> Layers:
    layers = make_layers()
    extra = gpd.GeoDataFrame(
        {
            "code_insee": ["75056", "75101", "75102"],
            "nom": ["Paris", "Paris 1er Arrondissement", "Paris 2e Arrondissement"],
            "type": ["commune", "arrondissement", "arrondissement"],
            "parent": [None, "75056", "75056"],
            "code_dep": ["75", "75", "75"],
            "code_reg": ["11", "11", "11"],
            "siren_epci": ["200054781", None, None],
            "population": [2100000, 16000, 21000],
        },
        geometry=[Point(2.35, 48.85)] * 3,
        crs=CRS,
    )
    layers.communes = pd.concat([layers.communes, extra], ignore_index=True)
    return layers


def test_arrondissements() -> None:
    index = TerritoryIndex.from_layers(_with_arrondissements())
    assert index.footprint("commune", "75101").communes == {"75101", "75056"}
    assert index.footprint("commune", "75056").communes == {"75056", "75101", "75102"}
    assert "75102" in index.footprint("epci", "200054781").communes  # inherited EPCI
    assert sorted(index.members("commune", "75056", "commune")) == ["75056", "75101", "75102"]
    # sibling arrondissements do not intersect; both intersect Paris
    assert index.members("commune", "75101", "commune") == ["75056", "75101"]
    # the commune level of the incidence maps arrondissements to Paris
    inc = index.incidence("commune")
    assert "75101" not in set(inc.units["code"])
    _, units = inc.gather(np.array([index.tid("commune", "75101")]))
    assert inc.units["code"].to_numpy()[units].tolist() == ["75056"]

"""Shared by the tests of reading, validation and export: a layer-based territory index,
small CSV sets and a one-initiative catalogue."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from territoires.catalogue import model
from territoires.catalogue.validation import is_missing
from territoires.pipeline.layers import LAYER_SCHEMAS, LEVEL_LAYER, Layers


class LayerIndex:
    """Minimal stand-in for TerritoryIndex.exists/name built from layers."""

    def __init__(self, layers: Layers) -> None:
        self.codes: dict[tuple[str, str], str] = {}
        for level, name in LEVEL_LAYER.items():
            gdf = layers.layer(name)
            key = LAYER_SCHEMAS[name][0]
            for code, nom in zip(gdf[key], gdf["nom"], strict=True):
                self.codes[(level, str(code))] = nom

    def exists(self, level: str, code: str) -> bool:
        return (level, code) in self.codes

    def name(self, level: str, code: str) -> str:
        return self.codes.get((level, code), code)

HEADERS = {
    "initiatives": "id;title;themes;maturity;start_date;end_date;scale",
    "territoires": "initiative_id;level;code",
    "financements": ("id;funder;funder_type;scheme;amount_eur;year_start;year_end;"
                     "territory_level;territory_code;initiative_id"),
}

def _csv_set(folder: Path, files: dict[str, str], encoding: str = "utf-8-sig",
             sep: str = ";") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.csv").write_bytes(text.replace(";", sep).encode(encoding))
    return folder

def _basic_files(amount: str = "1 234,56", date: str = "01/09/2021") -> dict[str, str]:
    return {
        "initiatives": HEADERS["initiatives"] + "\n"
        f"cite-cenon;Cité éducative de Cenon;Culture | parentalite;Déploiement;{date};;"
        "Commune\n",
        "territoires": HEADERS["territoires"] + "\ncite-cenon;commune;33119\n",
        "financements": HEADERS["financements"] + "\n"
        f"f1;Ville;collectivite;Autre;{amount};2022;;commune;33119;cite-cenon\n",
    }

def _check_basic(cat: model.Catalogue, amount: float = 1234.56,
                 date: dt.date = dt.date(2021, 9, 1)) -> None:
    ini = cat.initiatives.iloc[0]
    assert ini["title"] == "Cité éducative de Cenon"
    assert ini["themes"] == ["culture", "parentalite"]
    assert ini["maturity"] == "deploiement"
    assert ini["scale"] == "commune"
    assert ini["start_date"] == date
    assert is_missing(ini["end_date"])
    fund = cat.funding.iloc[0]
    assert fund["amount_eur"] == pytest.approx(amount)
    assert fund["year_start"] == 2022
    assert fund["scheme"] == "autre"
    assert list(cat.funding.index) == [2]  # spreadsheet line numbers

def _one(title: str = "=HYPERLINK(\"x\")", email: str | None = "a@b.fr") -> model.Catalogue:
    ini = pd.DataFrame([{"id": "a", "title": title, "themes": ["culture"],
                         "maturity": "emergence", "summary": "+33 1 23", "contact_email": email,
                         "start_date": dt.date(2020, 1, 1)}])
    terr = pd.DataFrame([{"initiative_id": "a", "level": "commune", "code": "33119"},
                         {"initiative_id": "a", "level": "qpv", "code": "QN09301M"},
                         {"initiative_id": "a", "level": "qpv", "code": "QN03307M"}])
    fund = pd.DataFrame([{"id": "f", "funder": "@ville", "funder_type": "collectivite",
                          "scheme": "autre", "amount_eur": 1234.5, "year_start": 2022,
                          "year_end": 2022, "territory_level": "commune",
                          "territory_code": "33119", "initiative_id": "a"}])
    return model.Catalogue(initiatives=ini, territories=terr, funding=fund)

"""validation.py: cell parsing and validate() (every problem at once, in French)."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from exchange_helpers import LayerIndex
from territoires.layers import Layers
from territoires.reading import read_exchange
from territoires.validation import parse_number, validate


@pytest.fixture(scope="module")
def index(tiny_layers: Layers) -> LayerIndex:
    return LayerIndex(tiny_layers)


@pytest.mark.parametrize(("text", "expected"), [
    ("1 234,56", 1234.56), ("1\u00a0234,56", 1234.56), ("1\u202f234,56", 1234.56),
    ("1234,5", 1234.5), ("1234.5", 1234.5), ("1.234,5", 1234.5), ("1,234.5", 1234.5),
    ("12 000 €", 12000.0), ("'-5", -5.0), ("abc", None), ("", None),
])
def test_parse_number(text: str, expected: float | None) -> None:
    assert parse_number(text) == expected

def test_many_errors_all_reported(tmp_path: Path, index) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "initiatives"
    ws.append(["id", "title", "themes", "maturity", "start_date", "end_date", "colonne_x"])
    ws.append(["ok", "Bien", "culture", "emergence", "01/01/2020", "31/12/2021", None])
    ws.append(["ok", "Doublon", "culture", "emergence", None, None, None])          # line 3
    ws.append(["Mauvais Id", None, "théâtre", "mûre", "32/13/2020", None, None])   # line 4
    ws.append(["dates", "Dates", "sport", "emergence", "01/06/2022", "01/01/2022", None])
    ws2 = wb.create_sheet("structures")
    ws2.append(["initiative_id", "role", "name", "type", "siret"])
    ws2.append(["fantome", "porteur", "X", "association", "123"])                  # line 2
    ws3 = wb.create_sheet("territoires")
    ws3.append(["initiative_id", "level", "code"])
    ws3.append(["ok", "commune", "99999"])                                         # line 2
    ws3.append(["ok", "planète", "33063"])                                         # line 3
    ws4 = wb.create_sheet("financements")
    ws4.append(["id", "funder", "funder_type", "scheme", "amount_eur", "year_start",
                "year_end", "territory_level", "territory_code", "initiative_id"])
    ws4.append(["f1", "Ville", "collectivite", "autre", -5, 2022, 2021, "commune", "33063",
                "ok"])                                                              # line 2
    ws4.append(["f2", "Ville", "collectivite", "autre", 2e8, 2022, None, "commune", "33063",
                None])                                                              # line 3
    ws4.append(["f3", "Ville", "collectivite", "autre", "beaucoup", 2022, None, "commune",
                "33063", "inconnue"])                                               # line 4
    path = tmp_path / "erreurs.xlsx"
    wb.save(path)
    cat, problems = read_exchange(path)
    problems += validate(cat, index, file="erreurs.xlsx")
    found = {(p.sheet, p.line, p.column, None if p.value is None else str(p.value))
             for p in problems}
    expected = {
        ("initiatives", 1, "G", "colonne_x"),
        ("initiatives", 3, "id", "ok"),
        ("initiatives", 4, "id", "Mauvais Id"),
        ("initiatives", 4, "title", None),
        ("initiatives", 4, "themes", "théâtre"),
        ("initiatives", 4, "maturity", "mûre"),
        ("initiatives", 4, "start_date", "32/13/2020"),
        ("initiatives", 5, "end_date", "01/01/2022"),
        ("structures", 2, "siret", "123"),
        ("structures", 2, "initiative_id", "fantome"),
        ("territoires", 2, "code", "99999"),
        ("territoires", 3, "level", "planète"),
        ("financements", 2, "amount_eur", "-5.0"),
        ("financements", 2, "year_end", "2021"),
        ("financements", 3, "amount_eur", "200000000.0"),
        ("financements", 4, "amount_eur", "beaucoup"),
        ("financements", 4, "initiative_id", "inconnue"),
    }
    assert expected <= found, expected - found
    assert len(problems) == len(expected), [str(p) for p in problems]
    assert all(p.file == "erreurs.xlsx" for p in problems)
    vocab_msg = next(p for p in problems if p.column == "maturity")
    assert "emergence (Émergence)" in vocab_msg.message
    assert "feuille « initiatives », ligne 4, colonne « maturity »" in str(vocab_msg)

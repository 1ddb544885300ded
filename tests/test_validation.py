"""validation.py: cell parsing and validate() (every problem at once, in French)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from exchange_helpers import LayerIndex, _csv_set
from territoires.catalogue import model
from territoires.catalogue.reading import read_exchange
from territoires.catalogue.validation import parse_number, validate
from territoires.pipeline.layers import Layers


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


# ------------------------------------------------------------- silent changes refused

FUND_HEAD = ("id;funder;funder_type;scheme;amount_eur;year_start;territory_level;"
             "territory_code\n")


def _funding_problems(tmp_path: Path, amounts: list[str]) -> list:
    rows = "".join(f"f{k};Ville;collectivite;autre;{a};2022;commune;33119\n"
                   for k, a in enumerate(amounts))
    cat, problems = read_exchange(_csv_set(tmp_path / "f", {"financements": FUND_HEAD + rows}))
    assert problems == []
    return validate(cat, None, file="f")


def test_ambiguous_amounts_refused(tmp_path: Path) -> None:
    problems = _funding_problems(tmp_path, ["1.234", "1,234", "1 234,56", "0,125", "1234",
                                            "12,5", "1.234,5", "-1,500"])
    assert [(p.line, p.value) for p in problems if "ambigu" in p.message] == [
        (2, "1.234"), (3, "1,234"), (9, "-1,500")]


def test_values_echoed_as_typed(tmp_path: Path) -> None:
    problems = _funding_problems(tmp_path, ["-1 500,00", "150 000 000"])
    assert [(p.message.split(" ")[1], p.value) for p in problems] == [
        ("négatif", "-1 500,00"), ("invraisemblable", "150 000 000")]
    assert "« -1 500,00 »" in str(problems[0])


def test_thirteen_digit_siret_number_is_not_zero_padded(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "structures"
    ws.append(["initiative_id", "role", "name", "type", "siret"])
    ws.append(["a", "porteur", "Asso", "association", 1234567890123])
    ws.append(["a", "partenaire", "Ville", "collectivite", 21330119700019])
    wb.save(tmp_path / "s.xlsx")
    cat, problems = read_exchange(tmp_path / "s.xlsx")
    assert problems == []
    assert list(cat.organisations["siret"]) == ["1234567890123", "21330119700019"]
    siret = [p for p in validate(cat, None, known_initiatives=["a"]) if p.column == "siret"]
    assert [(p.line, p.value) for p in siret] == [(2, "1234567890123")]
    assert "zéro" in siret[0].message and "texte" in siret[0].message


def test_dates_out_of_range_refused(tmp_path: Path) -> None:
    folder = _csv_set(tmp_path / "d", {"initiatives": "id;title;themes;maturity;start_date;"
                                       "end_date\n"
                                       "a;A;culture;emergence;01/01/1800;\n"
                                       "b;B;culture;emergence;01/01/2020;31/12/3000\n"
                                       "c;C;culture;emergence;2001-02-03;\n"})
    cat, _ = read_exchange(folder)
    problems = validate(cat, None)
    assert [(p.line, p.column, p.value) for p in problems] == [
        (2, "start_date", "01/01/1800"), (3, "end_date", "31/12/3000")]
    assert all("invraisemblable" in p.message for p in problems)


def _catalogue_with(**fields: Any) -> model.Catalogue:
    row = {"id": "a", "title": "Titre", "themes": ["culture"], "maturity": "emergence"}
    row.update(fields)
    return model.Catalogue(initiatives=pd.DataFrame([row]))


def test_nul_control_characters_and_long_texts_refused() -> None:
    problems = validate(_catalogue_with(title="Avec\x00nul", summary="bip\x07",
                                        objectives="x" * 20_001, actions="ok\ttab\nligne"),
                        None, file="c.xlsx")
    got = {(p.column, p.message.split(" (")[0]) for p in problems}
    assert got == {("title", "caractère nul"), ("summary", "caractère de contrôle"),
                   ("objectives", "texte trop long")}
    assert all(p.file == "c.xlsx" and p.sheet == "initiatives" and p.line == 2
               for p in problems)
    assert validate(_catalogue_with(objectives="x" * 20_000, title="t" * 500), None) == []


def test_long_ids_and_codes_refused_before_the_database() -> None:
    long_id = "a" * 250
    cat = _catalogue_with(id=long_id)
    cat.territories = pd.DataFrame([{"initiative_id": long_id, "level": "commune",
                                     "code": "3" * 45}])
    problems = validate(cat, None)
    assert {(p.sheet, p.column) for p in problems} == {
        ("initiatives", "id"), ("territoires", "initiative_id"), ("territoires", "code")}
    assert all("trop long" in p.message for p in problems)
    assert any("250 caractères, au plus 200" in p.message for p in problems)


def test_version_beyond_the_database_integer_refused(tmp_path: Path) -> None:
    """A version too large for the database's INTEGER is a French problem, not a crash of
    the write (OverflowError)."""
    folder = _csv_set(tmp_path / "v", {"initiatives": "id;title;themes;maturity;version\n"
                                       "a;A;culture;emergence;99999999999999999999\n"
                                       "b;B;culture;emergence;2147483647\n"
                                       "c;C;culture;emergence;2147483648\n"
                                       "d;D;culture;emergence;0\n"})
    cat, _ = read_exchange(folder)
    problems = validate(cat, None, file="v")
    assert [(p.file, p.line, p.column, p.value) for p in problems] == [
        ("v", 2, "version", "99999999999999999999"), ("v", 4, "version", "2147483648"),
        ("v", 5, "version", "0")]
    assert all("2\u202f147\u202f483\u202f647" in p.message for p in problems)


def test_problem_list_stops_at_the_cap(tmp_path: Path, monkeypatch) -> None:
    """Beyond MAX_PROBLEMS the checks stop; one last problem says more were found."""
    from territoires.catalogue import validation

    monkeypatch.setattr(validation, "MAX_PROBLEMS", 10)
    folder = _csv_set(tmp_path / "p", {"initiatives": "id;title;themes;maturity\n"
                                       + "A;;zz;zz\n" * 50})
    cat, problems = read_exchange(folder)
    assert problems == []
    problems = validate(cat, None, file="p.zip")
    assert len(problems) == 11
    assert [p.line for p in problems[:10]] == [2] * 4 + [3] * 5 + [4]  # 3: id in double
    last = problems[-1]
    assert last.file == "p.zip" and last.line is None
    assert "au moins un autre problème" in last.message and "10 problèmes" in last.message
    unknown = [p.message for p in problems if p.column == "themes"]
    assert unknown[0] is unknown[1]  # the vocabulary message is built once
    cat.funding = pd.DataFrame([{"id": f"n{k}", "source": "import"} for k in range(20)])
    conflicts = validation.national_conflicts(cat, {f"n{k}" for k in range(20)}, file="p")
    assert len(conflicts) == 11 and "au moins un autre" in conflicts[-1].message


def test_import_gets_the_form_bounds() -> None:
    """Texts and rows per fiche: the bounds of the form, for imports too (one rule set)."""
    cat = _catalogue_with(title="T" * 501, summary="s" * 20_001, source_url="u" * 500)
    cat.territories = pd.DataFrame([{"initiative_id": "a", "level": "commune",
                                     "code": f"{33000 + k}"} for k in range(201)])
    cat.funding = pd.DataFrame([{"id": f"n{k}", "funder": "État", "funder_type": "etat",
                                 "scheme": "autre", "amount_eur": 1, "year_start": 2020,
                                 "initiative_id": None, "source": "national:x"}
                                for k in range(300)])
    problems = validate(cat, None, file="b.xlsx")
    assert [(p.sheet, p.line, p.column, p.message.split(" (")[0]) for p in problems] == [
        ("initiatives", 2, "title", "texte trop long"),
        ("initiatives", 2, "summary", "texte trop long"),
        ("territoires", 202, "initiative_id", "plus de 200 lignes pour cette initiative dans "
         "la feuille « territoires » : au plus 200 par fiche")]
    assert problems[0].file == "b.xlsx" and problems[0].value == "T" * 60 + "…"
    assert "501 caractères, au plus 500" in problems[0].message
    assert problems[2].value == "a"

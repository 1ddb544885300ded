"""reading.py: CSV sets, zips and workbooks read into raw tables, within bounds."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest

from exchange_helpers import LayerIndex, _basic_files, _check_basic, _csv_set
from territoires.layers import Layers
from territoires.reading import read_exchange
from territoires.validation import validate


@pytest.fixture(scope="module")
def index(tiny_layers: Layers) -> LayerIndex:
    return LayerIndex(tiny_layers)


@pytest.mark.parametrize(("encoding", "sep"), [
    ("utf-8-sig", ";"), ("utf-8", ";"), ("utf-8", ","), ("cp1252", ";"), ("cp1252", ","),
])
def test_csv_encodings_and_separators(tmp_path: Path, encoding: str, sep: str, index) -> None:
    files = _basic_files(amount="1234.56" if sep == "," else "1 234,56")
    folder = _csv_set(tmp_path / "set", files, encoding, sep)
    cat, problems = read_exchange(folder)
    assert problems == []
    _check_basic(cat)
    assert validate(cat, index, file="set") == []

@pytest.mark.parametrize(("text", "expected"), [
    ("01/09/2021", dt.date(2021, 9, 1)), ("1/9/2021", dt.date(2021, 9, 1)),
    ("2021-09-01", dt.date(2021, 9, 1)),
])
def test_date_variants(tmp_path: Path, text: str, expected: dt.date) -> None:
    cat, problems = read_exchange(_csv_set(tmp_path / "d", _basic_files(date=text)))
    assert problems == []
    _check_basic(cat, date=expected)

def test_zip_and_single_decimal_variants(tmp_path: Path) -> None:
    files = _basic_files(amount="1\u202f234,56")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"export/{name}.csv", ("\ufeff" + text).encode("utf-8"))
    path = tmp_path / "set.zip"
    path.write_bytes(buf.getvalue())
    cat, problems = read_exchange(path)
    assert problems == []
    _check_basic(cat)

def test_xlsx_excel_cells(tmp_path: Path, index) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "initiatives"
    ws.append(["id", "title", "themes", "maturity", "start_date", "version"])
    ws.append(["a", "Titre", "Sport", "EMERGENCE", dt.datetime(2020, 2, 3), 2.0])
    ws2 = wb.create_sheet("territoires")
    ws2.append(["initiative_id", "level", "code"])
    ws2.append(["a", "Département", 33])
    ws2.append(["a", "commune", 33063])
    ws3 = wb.create_sheet("financements")
    ws3.append(["id", "funder", "funder_type", "scheme", "amount_eur", "year_start",
                "territory_level", "territory_code", "beneficiary_siret"])
    ws3.append(["f", "CAF", "CAF", "mécénat", 12.5, 2023.0, "qpv", "QN03307M",
                21330119700019])
    path = tmp_path / "c.xlsx"
    wb.save(path)
    cat, problems = read_exchange(path)
    assert problems == []
    ini = cat.initiatives.iloc[0]
    assert ini["start_date"] == dt.date(2020, 2, 3)
    assert ini["themes"] == ["sport"]
    assert ini["maturity"] == "emergence"
    assert ini["version"] == 2
    assert list(cat.territories["code"]) == ["33", "33063"]
    assert list(cat.territories["level"]) == ["departement", "commune"]
    fund = cat.funding.iloc[0]
    assert (fund["funder_type"], fund["scheme"], fund["year_start"]) == ("caf", "mecenat", 2023)
    assert fund["beneficiary_siret"] == "21330119700019"
    assert validate(cat, index, file="c.xlsx") == []

def test_missing_required_column_and_unknown_file(tmp_path: Path) -> None:
    folder = _csv_set(tmp_path / "s", {"territoires": "initiative_id;level\nx;commune\n"})
    _cat, problems = read_exchange(folder)
    assert any(p.column == "code" and p.line == 1 for p in problems)
    _cat, problems = read_exchange(tmp_path / "absent.xlsx")
    assert len(problems) == 1 and "introuvable" in problems[0].message
    empty = tmp_path / "vide"
    empty.mkdir()
    _cat, problems = read_exchange(empty)
    assert "aucune feuille" in problems[0].message

"""reading.py: CSV sets, zips and workbooks read into raw tables, within bounds."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from exchange_helpers import LayerIndex, _basic_files, _check_basic, _csv_set
from territoires.catalogue import model
from territoires.catalogue.export import export_bytes
from territoires.catalogue.reading import read_exchange
from territoires.catalogue.validation import validate
from territoires.pipeline.layers import Layers


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


# ------------------------------------------------------------------ bounds and messages

INI_HEAD = "id;title;themes;maturity\n"


def _ini_row(k: int) -> str:
    return f"i{k};Titre {k};culture;emergence\n"


def _zip(path: Path, files: dict[str, bytes], encrypted: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    if encrypted:  # set the "encrypted" flag of every entry, as a password-protected zip has
        data = bytearray(path.read_bytes())
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            start = 0
            while (start := data.find(signature, start)) >= 0:
                data[start + offset] |= 0x1
                start += 4
        path.write_bytes(bytes(data))
    return path


def _single(problems: list) -> Any:
    assert len(problems) == 1, problems
    return problems[0]


def _no_english(text: str) -> None:
    for word in ("File is not", "password", "required", "Error", "field larger", "line"):
        assert word not in text, text


def test_zip_bomb_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    """A small zip holding a lot of blank lines: refused on its declared size, unread."""
    from territoires.catalogue import reading

    monkeypatch.setattr(reading, "MAX_UNCOMPRESSED_BYTES", 1_000_000)
    bomb = INI_HEAD.encode() + b"\n" * 3_000_000
    path = _zip(tmp_path / "bomb.zip", {"initiatives.csv": bomb})
    assert path.stat().st_size < 20_000
    cat, problems = read_exchange(path)
    p = _single(problems)
    assert p.file == "bomb.zip" and "décompressé" in p.message and "1 Mo" in p.message
    assert len(cat.initiatives) == 0


def test_too_many_entries_rows_and_columns(tmp_path: Path, monkeypatch) -> None:
    from territoires.catalogue import reading

    monkeypatch.setattr(reading, "MAX_ZIP_ENTRIES", 3)
    path = _zip(tmp_path / "many.zip", {f"x{k}.csv": b"a\n" for k in range(5)})
    assert "fichiers" in _single(read_exchange(path)[1]).message
    monkeypatch.setattr(reading, "MAX_ROWS_PER_SHEET", 11)
    folder = _csv_set(tmp_path / "rows", {"initiatives": INI_HEAD + "".join(
        _ini_row(k) for k in range(30))})
    p = _single(read_exchange(folder)[1])
    assert (p.file, p.sheet, p.line) == ("rows", "initiatives.csv", 12)
    assert "10 lignes" in p.message
    monkeypatch.setattr(reading, "MAX_ROWS_PER_SHEET", 1000)
    monkeypatch.setattr(reading, "MAX_COLUMNS", 5)
    folder = _csv_set(tmp_path / "cols", {"initiatives": INI_HEAD + "a;b;c;d;e;f;g\n"})
    p = _single(read_exchange(folder)[1])
    assert p.line == 2 and "colonnes" in p.message


def test_huge_line_of_separators_refused(tmp_path: Path, monkeypatch) -> None:
    """A line of millions of separators would make millions of cells: refused first."""
    from territoires.catalogue import reading

    monkeypatch.setattr(reading, "MAX_ROW_CHARS", 10_000)
    folder = _csv_set(tmp_path / "sep", {"initiatives": INI_HEAD + ";" * 50_000 + "\n"})
    p = _single(read_exchange(folder)[1])
    assert p.line == 2 and "ligne de plus de" in p.message


def test_csv_cell_over_131072_chars_is_a_french_message(tmp_path: Path) -> None:
    folder = _csv_set(tmp_path / "big", {"initiatives": INI_HEAD + _ini_row(1)
                                         + "i2;" + "x" * 140_000 + ";culture;emergence\n"})
    p = _single(read_exchange(folder)[1])
    assert (p.file, p.sheet, p.line) == ("big", "initiatives.csv", 3)
    assert "131\u202f072 caractères" in p.message
    _no_english(str(p))


def test_encrypted_zip_is_a_french_message(tmp_path: Path) -> None:
    path = _zip(tmp_path / "secret.zip", {"initiatives.csv": (INI_HEAD + _ini_row(1)).encode()},
                encrypted=True)
    p = _single(read_exchange(path)[1])
    assert p.file == "secret.zip" and "mot de passe" in p.message
    _no_english(str(p))


@pytest.mark.parametrize("name", ["../initiatives.csv", "/etc/initiatives.csv",
                                  "a/../../initiatives.csv", "C:/initiatives.csv",
                                  "..\\initiatives.csv"])
def test_zip_entry_outside_the_archive_is_refused(tmp_path: Path, name: str) -> None:
    path = _zip(tmp_path / "chemin.zip", {name: (INI_HEAD + _ini_row(1)).encode()})
    catalogue, problems = read_exchange(path)
    p = _single(problems)
    assert p.file == "chemin.zip" and "hors de l'archive" in p.message
    assert p.value == name
    assert len(catalogue.initiatives) == 0
    _no_english(str(p))


def test_not_a_zip_and_encrypted_workbook_are_french_messages(tmp_path: Path) -> None:
    for name, data in (("faux.zip", b"not a zip at all"), ("faux.xlsx", b"PK\x03\x04broken"),
                       ("chiffre.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)):
        (tmp_path / name).write_bytes(data)
        p = _single(read_exchange(tmp_path / name)[1])
        assert p.file == name and ("illisible" in p.message or "mot de passe" in p.message)
        _no_english(str(p))


def test_utf16_file_gets_one_encoding_message(tmp_path: Path) -> None:
    folder = tmp_path / "u16"
    folder.mkdir()
    (folder / "initiatives.csv").write_bytes((INI_HEAD + _ini_row(1)).encode("utf-16"))
    p = _single(read_exchange(folder)[1])
    assert "UTF-16" in p.message and (p.file, p.sheet) == ("u16", "initiatives.csv")


def test_late_non_utf8_byte_reads_as_windows_1252(tmp_path: Path) -> None:
    text = INI_HEAD + "".join(_ini_row(k) for k in range(3000)) + "z;Début été;culture;emergence\n"
    folder = _csv_set(tmp_path / "w", {"initiatives": text}, encoding="cp1252")
    cat, problems = read_exchange(folder)
    assert problems == [] and cat.initiatives["title"].iloc[-1] == "Début été"


def test_hidden_sheet_named_like_a_catalogue_sheet(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "initiatives"
    ws.append(["id", "title", "themes", "maturity"])
    ws.append(["a", "Visible", "culture", "emergence"])
    hidden = wb.create_sheet("Initiatives ")
    hidden.append(["id", "title", "themes", "maturity"])
    hidden.append(["a", "Cachée", "culture", "emergence"])
    hidden.sheet_state = "hidden"
    wb.save(tmp_path / "h.xlsx")
    cat, problems = read_exchange(tmp_path / "h.xlsx")
    p = _single(problems)
    assert p.sheet == "Initiatives " and "masquée" in p.message
    assert list(cat.initiatives["title"]) == ["Visible"]


def test_duplicated_header_refused(tmp_path: Path) -> None:
    folder = _csv_set(tmp_path / "d", {"initiatives": "id;title;themes;maturity;title\n"
                                       "a;Premier;culture;emergence;Second\n"})
    cat, problems = read_exchange(folder)
    p = _single(problems)
    assert (p.line, p.column, p.value) == (1, "E", "title") and "double" in p.message
    assert "colonne B" in p.message
    assert list(cat.initiatives["title"]) == ["Premier"]


def test_two_files_for_one_table_refused(tmp_path: Path) -> None:
    folder = _csv_set(tmp_path / "c", {"initiatives": INI_HEAD + _ini_row(1),
                                       "Initiatives": INI_HEAD + _ini_row(2)})
    p = _single(read_exchange(folder)[1])
    assert "deux fichiers" in p.message and "Initiatives.csv" in p.message
    assert "initiatives.csv" in p.message


def test_formula_without_cached_value_says_so(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "indicateurs"
    ws.append(["initiative_id", "label", "value"])
    ws.append(["a", "Élèves", "=2*21"])  # openpyxl stores no cached value
    wb.save(tmp_path / "f.xlsx")
    _cat, problems = read_exchange(tmp_path / "f.xlsx")
    p = _single(problems)
    assert (p.sheet, p.line, p.column) == ("indicateurs", 2, "value")
    assert "formule" in p.message and "valeur" in p.message


def test_leading_white_space_before_equals_is_kept(tmp_path: Path) -> None:
    folder = _csv_set(tmp_path / "w", {"initiatives": INI_HEAD.strip() + ";summary\n"
                                       "a;  =SOMME(A1);culture;emergence; @x \n"})
    cat, problems = read_exchange(folder)
    assert problems == []
    ini = cat.initiatives.iloc[0]
    assert ini["title"] == "  =SOMME(A1)" and ini["summary"] == " @x"
    back, _ = read_exchange(_zip_export(cat, tmp_path))
    assert back.initiatives.iloc[0]["title"] == "  =SOMME(A1)"


def _zip_export(cat: model.Catalogue, tmp_path: Path) -> Path:
    path = tmp_path / "export.zip"
    path.write_bytes(export_bytes(cat, "csv"))
    return path


def _raw_xlsx(path: Path, rows: str) -> Path:
    """A minimal workbook whose sheet ``initiatives`` holds the XML ``rows`` (no
    ``<dimension>``, as a hand-made file may have), built without openpyxl."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    kind = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    return _zip(path, {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{kind}.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            f'ContentType="{kind}.worksheet+xml"/></Types>').encode(),
        "_rels/.rels": (f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" '
                        f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
                        '</Relationships>').encode(),
        "xl/workbook.xml": (f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet '
                            'name="initiatives" sheetId="1" r:id="rId1"/></sheets>'
                            '</workbook>').encode(),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" Type="{rel}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>').encode(),
        "xl/worksheets/sheet1.xml": (f'<worksheet xmlns="{main}"><sheetData><row r="1">'
                                     + "".join(f'<c t="inlineStr"><is><t>{h}</t></is></c>'
                                               for h in INI_HEAD.strip().split(";"))
                                     + f"</row>{rows}</sheetData></worksheet>").encode(),
    })


def test_xlsx_row_of_thousands_of_cells_refused_before_openpyxl(tmp_path: Path) -> None:
    """openpyxl builds a whole row before cutting it: a tiny file with a row of millions of
    empty cells took gigabytes. The sheet's XML is streamed first and such a row refused."""
    path = _raw_xlsx(tmp_path / "large.xlsx", '<row r="2">' + "<c/>" * 5_000 + "</row>")
    assert path.stat().st_size < 5_000
    cat, problems = read_exchange(path)
    p = _single(problems)
    assert (p.file, p.sheet, p.line) == ("large.xlsx", "initiatives", 2)
    assert "plus de 200 cellules" in p.message and "refusée" in p.message
    assert len(cat.initiatives) == 0


def test_xlsx_value_beyond_the_last_column_refused(tmp_path: Path) -> None:
    """A value in column ZZ was dropped silently (openpyxl stops at column 201); empty
    formatted cells there are still ignored."""
    ok = _raw_xlsx(tmp_path / "ok.xlsx", '<row r="2"><c r="A2" t="inlineStr"><is><t>a</t>'
                   '</is></c><c r="ZZ2" s="1"/></row>')
    assert read_exchange(ok)[1] == []
    path = _raw_xlsx(tmp_path / "zz.xlsx", '<row r="2"><c r="A2" t="inlineStr"><is><t>a</t>'
                     '</is></c><c r="ZZ2"><v>7</v></c></row>')
    p = _single(read_exchange(path)[1])
    assert (p.sheet, p.line, p.column) == ("initiatives", 2, "ZZ")
    assert "plus de 200 colonnes" in p.message


def test_reading_problems_stop_at_the_cap(tmp_path: Path, monkeypatch) -> None:
    from territoires.catalogue import reading, validation

    monkeypatch.setattr(validation, "MAX_PROBLEMS", 5)
    monkeypatch.setattr(reading, "MAX_PROBLEMS", 5)
    rows = "".join(f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>i{n}</t></is></c>'
                   f'<c r="B{n}"><f>1+1</f></c></row>' for n in range(2, 30))
    problems = read_exchange(_raw_xlsx(tmp_path / "f.xlsx", rows))[1]
    assert [(p.line, p.column) for p in problems[:5]] == [(n, "title") for n in range(2, 7)]
    assert len(problems) == 6 and "au moins un autre" in problems[-1].message
    assert problems[-1].file == "f.xlsx"

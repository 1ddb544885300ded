"""Reading the exchange format of the catalogue: files -> raw tables, within bounds.

Format
======

One **sheet per table** (XLSX) or one **file per table** named ``<feuille>.csv`` (CSV set, in
a folder or a ``.zip``). Sheet/file names: ``initiatives``, ``structures``, ``territoires``,
``indicateurs``, ``financements`` (:data:`territoires.model.TABLE_LABELS`). Line 1 holds the
column names, exactly the column names of :mod:`territoires.model` (any order; missing
optional columns are allowed; unknown columns are refused). Empty lines are ignored. Other
sheets (e.g. ``lisez-moi``) and files are ignored. A missing sheet means an empty table.
Cells are described in :mod:`territoires.validation`.

CSV files: UTF-8 (with or without BOM) or Windows-1252, separator ``;`` or ``,`` (detected).

Reading (:func:`read_exchange`) never raises on a bad cell: it keeps the raw value and
:func:`territoires.validation.validate` reports every problem at once, naming the sheet, the
spreadsheet line (header = line 1), the column and the value.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from territoires import model, vocab
from territoires.errors import Problem
from territoires.validation import REQUIRED, _parse_cell, _text_cell, is_missing

# ------------------------------------------------------------------------------- reading


def _sheet_table(name: str) -> str | None:
    key = vocab.fold(name)
    for table, label in model.TABLE_LABELS.items():
        if key in (vocab.fold(label), vocab.fold(table)):
            return table
    return None


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _csv_rows(data: bytes) -> list[list[str]]:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    delimiter = max([";", ",", "\t"], key=lambda d: (first.count(d), d == ";"))
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def _raw_sheets(path: Path) -> dict[str, list[list[Any]]]:
    """Sheet name -> rows of raw cells, for an XLSX, a CSV folder, a zip or one CSV file."""
    suffix = path.suffix.lower()
    if path.is_dir():
        return {p.stem: _csv_rows(p.read_bytes()) for p in sorted(path.glob("*.csv"))}
    if suffix == ".zip":
        out: dict[str, list[list[Any]]] = {}
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.lower().endswith(".csv") and not info.is_dir():
                    out[Path(info.filename).stem] = _csv_rows(zf.read(info))
        return out
    if suffix == ".csv":
        return {path.stem: _csv_rows(path.read_bytes())}
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)]
                    for ws in wb.worksheets}
        finally:
            wb.close()
    raise ValueError(f"format non reconnu « {path.suffix} »")


def read_exchange(path: Path) -> tuple[model.Catalogue, list[Problem]]:
    """Read an exchange workbook (XLSX) or CSV set (folder or zip).

    Returns the catalogue (each table indexed by its spreadsheet line number) and the
    structural problems found (unreadable file, unknown or missing columns). Cell-level
    problems are left to :func:`validate`.
    """
    path = Path(path)
    problems: list[Problem] = []
    tables: dict[str, pd.DataFrame] = {}
    try:
        sheets = _raw_sheets(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        return model.Catalogue(), [Problem(
            f"fichier illisible : {exc}. Formats acceptés : classeur .xlsx, dossier ou .zip "
            "de fichiers CSV.", file=path.name)]
    found = False
    for sheet, rows in sheets.items():
        table = _sheet_table(sheet)
        if table is None:
            continue
        found = True
        header_row = rows[0] if rows else []
        headers: list[str | None] = []
        for i, h in enumerate(header_row):
            name = _text_cell(h)
            if name is None:
                headers.append(None)
                continue
            key = vocab.fold(name).replace(" ", "_")
            col = next((c for c in model.TABLE_COLUMNS[table] if c == key), None)
            if col is None:
                problems.append(Problem(
                    f"colonne inconnue ; colonnes possibles : "
                    f"{', '.join(model.TABLE_COLUMNS[table])}",
                    file=path.name, sheet=sheet, line=1, column=_column_letter(i), value=name))
            headers.append(col)
        for col in REQUIRED[table]:
            if col not in headers:
                problems.append(Problem("colonne obligatoire absente", file=path.name,
                                        sheet=sheet, line=1, column=col))
        records: list[dict[str, Any]] = []
        lines: list[int] = []
        for n, raw in enumerate(rows[1:], start=2):
            if all(is_missing(v) for v in raw):
                continue
            row: dict[str, Any] = {}
            for col, value in zip(headers, raw, strict=False):
                if col is not None:
                    row[col] = value
            parsed: dict[str, Any] = {}
            for col in model.TABLE_COLUMNS[table]:
                parsed[col] = _parse_cell(table, col, row.get(col), parsed)
            records.append(parsed)
            lines.append(n)
        df = pd.DataFrame(records, columns=model.TABLE_COLUMNS[table], index=lines,
                          dtype=object)
        df.attrs["sheet"] = sheet
        df.attrs["line_index"] = True
        tables[table] = df
    if not found:
        problems.append(Problem(
            "aucune feuille du catalogue trouvée ; noms attendus : "
            + ", ".join(model.TABLE_LABELS.values()), file=path.name))
    catalogue = model.Catalogue(**tables)
    return catalogue, problems


def _column_letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(i + 1)

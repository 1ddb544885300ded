"""Reading the exchange format of the catalogue: files -> raw tables, within bounds.

Format
======

One **sheet per table** (XLSX) or one **file per table** named ``<feuille>.csv`` (CSV set, in
a folder or a ``.zip``). Sheet/file names: ``initiatives``, ``structures``, ``territoires``,
``indicateurs``, ``financements`` (:data:`territoires.catalogue.model.TABLE_LABELS`). Line 1 holds
the
column names, exactly the column names of :mod:`territoires.catalogue.model` (any order; missing
optional columns are allowed; unknown columns are refused). Empty lines are ignored. Other
sheets (e.g. ``lisez-moi``) and files are ignored. A missing sheet means an empty table.
Cells are described in :mod:`territoires.catalogue.validation`.

CSV files: UTF-8 (with or without BOM) or Windows-1252, separator ``;`` or ``,`` (detected).

Every input is bounded (:data:`MAX_FILE_BYTES`, :data:`MAX_UNCOMPRESSED_BYTES`,
:data:`MAX_ZIP_ENTRIES`, :data:`MAX_ROWS_PER_SHEET`, :data:`MAX_COLUMNS`,
:data:`MAX_CELL_CHARS`, :data:`MAX_ROW_CHARS`): beyond, the file is refused with a French
message, before more is read. Files are read as streams, row by row (XLSX in openpyxl's
read-only mode, after a streaming scan of each sheet's XML that refuses a row too wide before
openpyxl builds it), so memory follows the size of the catalogue, not of the file.

Reading (:func:`read_exchange`) never raises on a bad cell: it keeps the raw value and
:func:`territoires.catalogue.validation.validate` reports every problem at once, naming the sheet,
the
spreadsheet line (header = line 1), the column and the value.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import iterparse

import pandas as pd

from territoires import vocab
from territoires.catalogue import model
from territoires.catalogue.validation import (
    MAX_PROBLEMS,
    REQUIRED,
    RawCells,
    _n,
    _parse_cell,
    _text_cell,
    capped,
    is_missing,
)
from territoires.errors import InputTooLargeError, Problem

# -------------------------------------------------------------------------------- bounds

#: Largest file accepted (a workbook, a zip, one CSV file).
MAX_FILE_BYTES = 250_000_000
#: Largest total of the uncompressed entries of a zip or workbook (declared sizes: Python's
#: zipfile never reads past them), and of the CSV files of a folder.
MAX_UNCOMPRESSED_BYTES = 500_000_000
#: Most entries in a zip or workbook (and CSV files in a folder).
MAX_ZIP_ENTRIES = 1_000
#: Most lines of one sheet or CSV file, header included.
MAX_ROWS_PER_SHEET = 500_001
#: Most columns of a sheet or CSV file.
MAX_COLUMNS = 200
#: Longest cell (characters); the limit of Python's csv module.
MAX_CELL_CHARS = 131_072
#: Longest CSV line (characters, quoted line breaks included).
MAX_ROW_CHARS = 2 * 1024 * 1024

_log = logging.getLogger(__name__)
_FORMATS = ("Formats acceptés : classeur .xlsx, dossier ou .zip de fichiers CSV, fichier "
            ".csv.")


def _mib(value: int) -> str:
    """``value`` bytes in French megabytes (``1 Mo``, ``2,5 Mo``, ``500 Mo``)."""
    return f"{value / 1e6:.3g}".replace(".", ",") + " Mo"


class _Refused(Exception):
    """A problem that stops the reading of the whole file."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class _Sheet:
    """One sheet (XLSX) or CSV file: its name, whether it is hidden, how to read its rows."""

    name: str
    hidden: bool
    rows: Any  # () -> Iterator[tuple[int, list[Any]]]: (line number, cells)
    formulas: Any = None  # () -> set[(line, column index)] of formula cells without value
    kind: str = "feuille"


# ------------------------------------------------------------------------------- reading


def _sheet_table(name: str) -> str | None:
    key = vocab.fold(name)
    for table, label in model.TABLE_LABELS.items():
        if key in (vocab.fold(label), vocab.fold(table)):
            return table
    return None


def _encoding_of(head: bytes, file: str, sheet: str) -> str:
    """``utf-8-sig`` or the encoding named by a BOM; UTF-16/32 refused with one message."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
                        codecs.BOM_UTF16_BE)) or head[:200].count(b"\x00") > 2:
        raise _Refused(Problem(
            "fichier encodé en UTF-16 (ou UTF-32) : enregistrez-le en « CSV UTF-8 » (ou "
            "Windows-1252) avant de l'importer", file=file, sheet=sheet))
    return "utf-8-sig"


class _Lines:
    """Lines of a text stream for csv.reader, every row bounded in length."""

    def __init__(self, stream: IO[str], first: str, file: str, sheet: str) -> None:
        self.stream, self.file, self.sheet = stream, file, sheet
        self.pending: str | None = first
        self.row_chars = 0
        self.row = 1

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pending is not None:
            line, self.pending = self.pending, None
        else:
            line = self.stream.readline(MAX_ROW_CHARS + 1)
        if not line:
            raise StopIteration
        self.row_chars += len(line)
        if self.row_chars > MAX_ROW_CHARS:
            raise _Refused(Problem(
                f"ligne de plus de {_n(MAX_ROW_CHARS)} caractères : le fichier est refusé",
                file=self.file, sheet=self.sheet, line=self.row))
        return line


def _is_utf8(raw: IO[bytes], head: bytes) -> bool:
    """Whether the whole stream (``head`` already read from it) decodes as UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head)
        while chunk := raw.read(1 << 20):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _csv_rows(opener: Any, file: str, sheet: str) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet line, cells) of a CSV stream: UTF-8 (BOM or not), else Windows-1252;
    UTF-16 refused with one message. Two passes over the stream (the first only decodes),
    never the whole file in memory."""
    with opener() as raw:
        head = raw.read(4096)
        _encoding_of(head, file, sheet)
        if head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        else:
            encoding = "utf-8" if _is_utf8(raw, head) else "cp1252"
    with opener() as raw:
        stream = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        first = stream.readline(MAX_ROW_CHARS + 1)
        delimiter = max([";", ",", "\t"], key=lambda d: (first.count(d), d == ";"))
        lines = _Lines(stream, first, file, sheet)
        reader = csv.reader(lines, delimiter=delimiter)
        n = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger" in str(exc):
                    message = (f"cellule de plus de {_n(MAX_CELL_CHARS)} caractères : le "
                               "fichier est refusé")
                else:
                    message = ("ligne illisible (caractère nul, ou guillemet non fermé) : "
                               "vérifiez le fichier")
                raise _Refused(Problem(message, file=file, sheet=sheet, line=n + 1)) from None
            n += 1
            lines.row_chars = 0
            lines.row = n + 1
            yield n, cells


def _outside(name: str) -> bool:
    """An entry name that would land outside the archive's folder if extracted."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


def _check_entries(infos: list[zipfile.ZipInfo], file: str) -> None:
    if len(infos) > MAX_ZIP_ENTRIES:
        raise _Refused(Problem(
            f"archive de plus de {_n(MAX_ZIP_ENTRIES)} fichiers : refusée", file=file))
    if any(info.flag_bits & 0x1 for info in infos):
        raise _Refused(Problem(
            "archive chiffrée par un mot de passe : enregistrez-la sans mot de passe avant "
            "de l'importer", file=file))
    outside = [info.filename for info in infos if _outside(info.filename)]
    if outside:
        raise _Refused(Problem(
            "archive refusée : un de ses fichiers est rangé hors de l'archive (chemin absolu "
            "ou « .. »)", file=file, value=outside[0][:200]))
    total = sum(info.file_size for info in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise _Refused(Problem(
            f"contenu décompressé trop gros ({_mib(total)}, au plus "
            f"{_mib(MAX_UNCOMPRESSED_BYTES)}) : archive refusée", file=file))


def _check_size(path: Path, file: str) -> int:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _Refused(Problem(
            f"fichier trop gros ({_mib(size)}, au plus {_mib(MAX_FILE_BYTES)}) : refusé",
            file=file))
    return size


def _folder_sheets(path: Path) -> list[_Sheet]:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if len(files) > MAX_ZIP_ENTRIES:
        raise _Refused(Problem(f"dossier de plus de {_n(MAX_ZIP_ENTRIES)} fichiers CSV",
                               file=path.name))
    total = sum(_check_size(p, p.name) for p in files)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise _Refused(Problem(
            f"fichiers CSV trop gros ({_mib(total)} au total, au plus "
            f"{_mib(MAX_UNCOMPRESSED_BYTES)})", file=path.name))
    return [_Sheet(p.name, False,
                   lambda p=p: _csv_rows(partial(Path.open, p, "rb"), path.name, p.name),
                   kind="fichier") for p in files]


def _zip_sheets(zf: zipfile.ZipFile, file: str) -> list[_Sheet]:
    infos = zf.infolist()
    _check_entries(infos, file)
    out = []
    for info in infos:
        if info.is_dir() or not info.filename.lower().endswith(".csv"):
            continue
        name = Path(info.filename).name
        out.append(_Sheet(info.filename, False,
                          lambda info=info, name=name: _csv_rows(lambda: zf.open(info), file,
                                                                  name),
                          kind="fichier"))
    return out


def _xlsx_rows(ws: Any, file: str) -> Iterator[tuple[int, list[Any]]]:
    for n, row in enumerate(ws.iter_rows(values_only=True, max_col=MAX_COLUMNS + 1),
                            start=1):
        yield n, list(row)


def _xml_events(stream: IO[bytes]) -> Iterator[tuple[str, str, Any]]:
    """(event, tag without namespace, element) of a streamed XML part, ``start`` and
    ``end`` events; every element is dropped once ended, so memory stays that of the path
    from the root (attributes are read at ``start``, text at ``end``)."""
    stack: list[Any] = []
    for event, elem in iterparse(stream, events=("start", "end")):
        tag = elem.tag.rpartition("}")[2]
        if event == "start":
            stack.append(elem)
            yield event, tag, elem
            continue
        stack.pop()
        yield event, tag, elem
        if stack:
            del stack[-1][:]  # the element is read: drop it


def _sheet_size(ws: Any) -> None:
    """``ReadOnlyWorksheet._get_size`` of openpyxl, streamed and stopped where ``<sheetData>``
    starts (the schema puts ``<dimension>`` before it): openpyxl's own parses a sheet without
    ``<dimension>`` to its end, keeping every element (a tiny file of millions of empty cells
    would take gigabytes before any check)."""
    from openpyxl.utils.cell import range_boundaries

    with ws._get_source() as src:
        for event, tag, elem in _xml_events(src):
            if event == "start" and tag == "dimension" and elem.get("ref"):
                (ws._min_column, ws._min_row, ws._max_column,
                 ws._max_row) = range_boundaries(elem.get("ref"))
                return
            if event == "start" and tag == "sheetData":
                return


def _xlsx_scan(zf: zipfile.ZipFile, part: str, file: str, title: str
               ) -> set[tuple[int, int]]:
    """Stream the XML of sheet ``title`` before openpyxl reads it (openpyxl builds a whole
    row before ``max_col`` cuts it, so a tiny file with a row of millions of cells would take
    gigabytes): refuse a row of more than :data:`MAX_COLUMNS` cells, a value beyond column
    :data:`MAX_COLUMNS` (openpyxl would drop it silently) and a row numbered beyond
    :data:`MAX_ROWS_PER_SHEET`. Returns the (line, column index) of the formula cells
    without a saved value, below the header (the first :data:`MAX_PROBLEMS` + 1: more
    would not be listed). Memory stays that of one cell: every element is dropped once
    read."""
    from openpyxl.utils import column_index_from_string

    formulas: set[tuple[int, int]] = set()
    line = column = cells = 0
    formula = value = False

    def refused(message: str, **where: Any) -> _Refused:
        return _Refused(Problem(f"{message} : feuille refusée", file=file, sheet=title,
                                line=line, **where))

    with zf.open(part) as stream:
        for event, tag, elem in _xml_events(stream):
            if event == "start":
                if tag == "c":
                    ref = elem.get("r")
                    column = (column_index_from_string(ref.rstrip("0123456789")) if ref
                              else column + 1)
                    cells += 1
                    formula = value = False
                    if cells > MAX_COLUMNS:
                        raise refused(f"plus de {MAX_COLUMNS} cellules sur la ligne (cellules "
                                      "vides mises en forme comprises)")
                elif tag == "row":
                    ref = elem.get("r")
                    line = int(ref) if ref else line + 1
                    column = cells = 0
                    if line > MAX_ROWS_PER_SHEET:
                        raise refused(f"plus de {_n(MAX_ROWS_PER_SHEET - 1)} lignes")
                continue
            if tag == "f":
                formula = True
            elif tag in ("v", "t"):
                value = value or bool((elem.text or "").strip())
            elif tag == "c":
                if column > MAX_COLUMNS and (formula or value):
                    raise refused(f"plus de {MAX_COLUMNS} colonnes",
                                  column=_column_letter(column - 1))
                if formula and not value and line > 1 and len(formulas) <= MAX_PROBLEMS:
                    formulas.add((line, column - 1))
    return formulas


def _open_workbook(path: Path, file: str) -> tuple[Any, list[_Sheet], zipfile.ZipFile]:
    import openpyxl
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    ReadOnlyWorksheet._get_size = _sheet_size  # same result, bounded memory (see there)

    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise _Refused(Problem(
            "classeur protégé par un mot de passe (chiffré) ou au format .xls : enregistrez-le "
            "sans mot de passe, au format .xlsx", file=file))
    zf = zipfile.ZipFile(path)
    _check_entries(zf.infolist(), file)
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheets = []
    for ws in wb.worksheets:
        part = getattr(ws, "_worksheet_path", None)
        hidden = getattr(ws, "sheet_state", "visible") != "visible"
        sheets.append(_Sheet(
            ws.title, hidden, lambda ws=ws: _xlsx_rows(ws, file),
            formulas=(lambda title=ws.title, part=part: _xlsx_scan(zf, part, file, title))
            if part else None))
    return wb, sheets, zf


def _read_sheet(table: str, sheet: _Sheet, file: str, problems: list[Problem]
                ) -> pd.DataFrame:
    """The parsed table of one sheet (rows bounded), indexed by spreadsheet line."""
    columns = model.TABLE_COLUMNS[table]
    data: dict[str, list[Any]] = {c: [] for c in columns}
    raw = RawCells()
    lines: list[int] = []
    headers: list[str | None] = []
    header_seen = False
    formulas = sheet.formulas() if sheet.formulas else None
    name = sheet.name

    def where(line: int) -> dict[str, Any]:
        return {"file": file, "sheet": name, "line": line}

    for n, cells in sheet.rows():
        if n > MAX_ROWS_PER_SHEET:
            raise _Refused(Problem(
                f"plus de {_n(MAX_ROWS_PER_SHEET - 1)} lignes : {sheet.kind} refusé"
                f"{'e' if sheet.kind == 'feuille' else ''}", **where(n)))
        if len(cells) > MAX_COLUMNS:
            if any(not is_missing(v) for v in cells[MAX_COLUMNS:]):
                raise _Refused(Problem(f"plus de {MAX_COLUMNS} colonnes : refusé", **where(n)))
            cells = cells[:MAX_COLUMNS]
        for i, value in enumerate(cells):
            if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
                raise _Refused(Problem(
                    f"cellule de plus de {_n(MAX_CELL_CHARS)} caractères : le fichier est "
                    "refusé", column=_column_letter(i), **where(n)))
        if not header_seen:
            headers = _headers(table, cells, file, name, problems)
            header_seen = True
            continue
        if formulas:
            for i, value in enumerate(cells):
                if (n, i) in formulas and is_missing(value) and i < len(headers):
                    problems.append(Problem(
                        "cellule calculée par une formule sans valeur enregistrée : ouvrez le "
                        "classeur dans Excel ou LibreOffice et enregistrez-le, ou remplacez "
                        "la formule par sa valeur", column=headers[i] or _column_letter(i),
                        **where(n)))
        if all(is_missing(v) for v in cells):
            continue
        row: dict[str, Any] = {}
        for col, value in zip(headers, cells, strict=False):
            if col is not None:
                row[col] = value
        parsed: dict[str, Any] = {}
        for col in columns:
            value = row.get(col)
            parsed[col] = out = _parse_cell(table, col, value, parsed)
            data[col].append(out)
            if isinstance(value, str) and not isinstance(out, (str, list)) and out is not None:
                raw.keep(col, n, value)
        lines.append(n)
    if not header_seen:
        problems.extend(Problem("colonne obligatoire absente", file=file, sheet=name, line=1,
                                column=col) for col in REQUIRED[table])
    df = pd.DataFrame(data, columns=columns, index=lines, dtype=object)
    df.attrs["sheet"] = name
    df.attrs["line_index"] = True
    df.attrs["raw"] = raw
    return df


def _headers(table: str, cells: list[Any], file: str, sheet: str,
             problems: list[Problem]) -> list[str | None]:
    headers: list[str | None] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(cells):
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
                file=file, sheet=sheet, line=1, column=_column_letter(i), value=name))
        elif col in seen:
            problems.append(Problem(
                f"colonne en double (déjà en colonne {_column_letter(seen[col])}) : gardez-en "
                "une seule", file=file, sheet=sheet, line=1, column=_column_letter(i),
                value=name))
            col = None
        else:
            seen[col] = i
        headers.append(col)
    for col in REQUIRED[table]:
        if col not in seen:
            problems.append(Problem("colonne obligatoire absente", file=file, sheet=sheet,
                                    line=1, column=col))
    return headers


def read_exchange(path: Path) -> tuple[model.Catalogue, list[Problem]]:
    """Read an exchange workbook (XLSX) or CSV set (folder or zip), within the bounds of
    this module.

    Returns the catalogue (each table indexed by its spreadsheet line number) and the
    structural problems found (unreadable or too large file, hidden or duplicated sheet,
    unknown, duplicated or missing columns, formulas without a value; at most
    :data:`~territoires.catalogue.validation.MAX_PROBLEMS`, then one saying more were
    found). Cell-level problems
    are left to :func:`territoires.catalogue.validation.validate`. A file refused as a whole gives
    an
    empty catalogue and the problem that stopped its reading.
    """
    path = Path(path)
    file = path.name
    problems: list[Problem] = []
    tables: dict[str, pd.DataFrame] = {}
    closers: list[Any] = []
    try:
        suffix = path.suffix.lower()
        if path.is_dir():
            sheets = _folder_sheets(path)
        elif not path.exists():
            raise _Refused(Problem("fichier introuvable", file=file))
        elif suffix == ".zip":
            _check_size(path, file)
            zf = zipfile.ZipFile(path)
            closers.append(zf)
            sheets = _zip_sheets(zf, file)
        elif suffix == ".csv":
            _check_size(path, file)
            sheets = [_Sheet(path.name, False,
                             lambda: _csv_rows(partial(Path.open, path, "rb"), file, file),
                             kind="fichier")]
        elif suffix in (".xlsx", ".xlsm"):
            _check_size(path, file)
            wb, sheets, zf = _open_workbook(path, file)
            closers += [wb, zf]
        else:
            raise _Refused(Problem(f"format non reconnu « {path.suffix} ». {_FORMATS}",
                                   file=file))
        first: dict[str, str] = {}
        for sheet in sheets:
            table = _sheet_table(Path(sheet.name).stem if sheet.kind == "fichier"
                                 else sheet.name)
            if table is None:
                continue
            label = model.TABLE_LABELS[table]
            if sheet.hidden:
                problems.append(Problem(
                    f"feuille masquée nommée comme la feuille « {label} » : affichez-la ou "
                    "supprimez-la (elle n'est pas lue)", file=file, sheet=sheet.name))
                continue
            if table in first:
                problems.append(Problem(
                    f"deux {sheet.kind}s pour la table « {label} » : « {first[table]} » et "
                    f"« {sheet.name} » ; gardez-en un{'e' if sheet.kind == 'feuille' else ''}"
                    " seul" + ("e" if sheet.kind == "feuille" else ""),
                    file=file, sheet=sheet.name))
                continue
            first[table] = sheet.name
            tables[table] = _read_sheet(table, sheet, file, problems)
        if not first and not problems:
            problems.append(Problem(
                "aucune feuille du catalogue trouvée ; noms attendus : "
                + ", ".join(model.TABLE_LABELS.values()), file=file))
    except _Refused as exc:
        return model.Catalogue(), [exc.problem]
    except InputTooLargeError as exc:
        return model.Catalogue(), exc.problems
    except Exception:  # hostile files make libraries raise anything
        # library messages are English and say little: name the file and the formats (the
        # library's error goes to the log)
        _log.warning("lecture de %s impossible", file, exc_info=True)
        kind = "archive .zip" if path.suffix.lower() == ".zip" else "fichier"
        return model.Catalogue(), [Problem(
            f"{kind} illisible (endommagé, protégé ou d'un autre format que son extension). "
            f"{_FORMATS}", file=file)]
    finally:
        for closer in closers:
            with contextlib.suppress(Exception):  # closing never matters here
                closer.close()
    return model.Catalogue(**tables), capped(problems, file)


def _column_letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(i + 1)

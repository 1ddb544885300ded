"""Exchange format of the catalogue: an XLSX workbook or a set of CSV files.

Format
======

One **sheet per table** (XLSX) or one **file per table** named ``<feuille>.csv`` (CSV set, in
a folder or a ``.zip``). Sheet/file names: ``initiatives``, ``structures``, ``territoires``,
``indicateurs``, ``financements`` (:data:`territoires.model.TABLE_LABELS`). Line 1 holds the
column names, exactly the column names of :mod:`territoires.model` (any order; missing
optional columns are allowed; unknown columns are refused). Empty lines are ignored. Other
sheets (e.g. ``lisez-moi``) and files are ignored. A missing sheet means an empty table.

Cells:

- **lists** (``themes``, ``publics``, ``alliance_levels``): values separated by ``" | "``;
- **vocabularies** (``scale``, ``maturity``, ``role``, ``type``, ``level``,
  ``funder_type``, ``scheme``, ``territory_level``, list items): the code (``culture``) or
  the French label (``Culture``), case and accents ignored;
- **dates**: ``JJ/MM/AAAA`` or ``AAAA-MM-JJ`` (or an Excel date cell);
  ``created_at``/``updated_at``: ISO timestamps (UTC when no offset);
- **numbers**: ``1234.56``, ``1234,56``, ``1 234,56`` (normal or narrow no-break spaces
  allowed), or Excel number cells;
- **SIRET**: 14 digits; territory codes: official codes (INSEE commune ``33063``, QPV
  ``QN03307M``, contrat de ville ``CN03301I``, cité éducative ``cite-090``…);
- a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is written
  with a leading apostrophe (protection against formula injection); the reader removes it.

CSV files: UTF-8 (with or without BOM) or Windows-1252, separator ``;`` or ``,`` (detected).
Exports are written for French Excel: UTF-8 with BOM, ``;`` separator, decimal comma.

Reading (:func:`read_exchange`) never raises on a bad cell: it keeps the raw value and
:func:`validate` reports every problem at once, naming the sheet, the spreadsheet line
(header = line 1), the column and the value.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import numbers
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from territoires import model, vocab
from territoires.errors import ExportError, Problem, TerritoiresError
from territoires.vocab import Vocabulary

# ----------------------------------------------------------------------------- metadata

REQUIRED: dict[str, list[str]] = {
    "initiatives": ["id", "title", "themes", "maturity"],
    "organisations": ["initiative_id", "role", "name", "type"],
    "territories": ["initiative_id", "level", "code"],
    "indicators": ["initiative_id", "label", "value"],
    "funding": ["id", "funder", "funder_type", "scheme", "amount_eur", "year_start",
                "territory_level", "territory_code"],
}
VOCAB_COLUMNS: dict[tuple[str, str], Vocabulary] = {
    ("initiatives", "scale"): vocab.SCALES,
    ("initiatives", "maturity"): vocab.MATURITY,
    ("organisations", "role"): vocab.ORG_ROLES,
    ("organisations", "type"): vocab.ORG_TYPES,
    ("territories", "level"): vocab.TERRITORY_LEVELS,
    ("funding", "funder_type"): vocab.FUNDER_TYPES,
    ("funding", "scheme"): vocab.SCHEMES,
    ("funding", "territory_level"): vocab.TERRITORY_LEVELS,
}
LIST_VOCABS: dict[str, Vocabulary] = {
    "themes": vocab.THEMES,
    "publics": vocab.PUBLICS,
    "alliance_levels": vocab.ALLIANCE_LEVELS,
}
DATE_COLUMNS = {"start_date", "end_date"}
TIMESTAMP_COLUMNS = {"created_at", "updated_at"}
INT_COLUMNS = {"version", "year", "year_start", "year_end"}
FLOAT_COLUMNS = {"value", "amount_eur"}
SIRET_COLUMNS = {"siret", "beneficiary_siret"}
#: Largest plausible amount of one funding line.
MAX_AMOUNT_EUR = 100_000_000
README_SHEET = "lisez-moi"

COLUMN_HELP: dict[str, dict[str, str]] = {
    "initiatives": {
        "id": "identifiant stable (minuscules, chiffres, tirets), ex. cite-educative-cenon",
        "title": "titre de l'initiative",
        "summary": "résumé en quelques lignes",
        "scale": "échelle (vocabulaire « Échelle »)",
        "start_date": "date de début (JJ/MM/AAAA)",
        "end_date": "date de fin (JJ/MM/AAAA), vide si en cours",
        "themes": "thèmes, séparés par « | » (vocabulaire « Thème »)",
        "publics": "publics, séparés par « | » (vocabulaire « Public »)",
        "alliance_levels": "niveaux d'alliance, séparés par « | »",
        "maturity": "maturité (vocabulaire « Maturité »)",
        "objectives": "objectifs",
        "actions": "actions menées",
        "results": "résultats observés",
        "difficulties": "difficultés rencontrées",
        "lessons": "enseignements",
        "outlook": "perspectives",
        "source_document": "document source",
        "source_sheet": "fiche ou page du document source",
        "source_url": "adresse web de la source",
        "contact_organisation": "structure à contacter",
        "contact_role": "fonction de la personne à contacter",
        "contact_email": "e-mail de contact (privé : jamais publié ni exporté par défaut)",
        "created_at": "création (rempli automatiquement)",
        "updated_at": "dernière modification (rempli automatiquement)",
        "version": "version (remplie automatiquement)",
    },
    "organisations": {
        "initiative_id": "identifiant de l'initiative (feuille initiatives)",
        "role": "porteur ou partenaire",
        "name": "nom de la structure",
        "type": "type de structure (vocabulaire « Type de structure »)",
        "siret": "SIRET (14 chiffres), facultatif",
    },
    "territories": {
        "initiative_id": "identifiant de l'initiative",
        "level": "niveau de territoire (vocabulaire « Niveau de territoire »)",
        "code": "code officiel (commune 33063, QPV QN03307M, EPCI 243300316, "
                "contrat de ville CN03301I, cité éducative cite-090…)",
    },
    "indicators": {
        "initiative_id": "identifiant de l'initiative",
        "label": "libellé de l'indicateur",
        "value": "valeur (nombre, virgule décimale acceptée)",
        "unit": "unité",
        "year": "année de mesure (facultatif)",
    },
    "funding": {
        "id": "identifiant stable de la ligne de financement",
        "funder": "financeur",
        "funder_type": "type de financeur (vocabulaire « Type de financeur »)",
        "scheme": "dispositif (vocabulaire « Dispositif »)",
        "amount_eur": "montant en euros (≥ 0)",
        "year_start": "année de début",
        "year_end": "année de fin (≥ année de début ; vide = année de début)",
        "beneficiary": "bénéficiaire (porteur)",
        "beneficiary_siret": "SIRET du bénéficiaire (14 chiffres)",
        "territory_level": "niveau du territoire financé",
        "territory_code": "code officiel du territoire financé",
        "initiative_id": "initiative financée (facultatif)",
        "source": "provenance de la ligne",
    },
}

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_NEUTRALISED_RE = re.compile(r"^'+[=+\-@\t\r]")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SIRET_RE = re.compile(r"^\d{14}$")
_DATE_FR_RE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009")
_ILLEGAL_XLSX_PATTERN = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_ILLEGAL_XLSX_RE = re.compile(_ILLEGAL_XLSX_PATTERN)
#: Text that :func:`neutralise` prefixes (vectorised form of its test).
_FORMULA_PATTERN = r"^'*[=+\-@\t\r]"


# ------------------------------------------------------------------------------- helpers


def is_missing(value: Any) -> bool:
    """Whether a cell is empty (None, NaN, NaT, NA, blank text)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def neutralise(text: str) -> str:
    """Prefix an apostrophe to text that a spreadsheet could take for a formula."""
    if text.startswith(_DANGEROUS) or _NEUTRALISED_RE.match(text):
        return "'" + text
    return text


def unneutralise(text: str) -> str:
    """Inverse of :func:`neutralise`."""
    return text[1:] if _NEUTRALISED_RE.match(text) else text


def parse_number(value: Any) -> float | None:
    """A number from a cell (French or English notation), or None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    text = unneutralise(str(value).strip()).translate(_SPACES).replace("€", "")
    if not text:
        return None
    if "," in text and "." in text:
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_int(value: Any) -> int | None:
    """An integer from a cell (``2020``, ``2020.0``, ``"2 020"``), or None if unreadable."""
    number = parse_number(value)
    if number is None or number != int(number):
        return None
    return int(number)


def parse_date(value: Any) -> dt.date | None:
    """A date from a cell (Excel date, ``JJ/MM/AAAA`` or ISO), or None if unreadable."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    m = _DATE_FR_RE.match(text)
    try:
        if m:
            return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        if re.match(r"^\d{4}-\d{2}-\d{2}([ T]00:00(:00)?)?$", text):
            return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None
    return None


def parse_timestamp(value: Any) -> pd.Timestamp | None:
    """A UTC timestamp from a cell (ISO, ``JJ/MM/AAAA HH:MM``, Excel datetime)."""
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        ts = pd.Timestamp(value)
    else:
        text = str(value).strip()
        m = re.match(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$",
                     text)
        try:
            if m:
                d, mo, y, h, mi, s = (int(g) if g else 0 for g in m.groups())
                ts = pd.Timestamp(dt.datetime(y, mo, d, h, mi, s))
            elif re.match(r"^\d{4}-\d{2}-\d{2}", text):
                ts = pd.Timestamp(text)
            else:
                return None
        except (ValueError, TypeError):
            return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _text_cell(value: Any) -> str | None:
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unneutralise(str(value).strip())
    return text or None


def _code_cell(value: Any, level: str | None) -> str | None:
    """Territory code; numbers typed by Excel get their leading zeros back."""
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and float(value).is_integer()):
        text = str(int(value))
        width = {"commune": 5, "departement": 2, "region": 2, "epci": 9}.get(level or "")
        return text.zfill(width) if width else text
    return _text_cell(value)


def _siret_cell(value: Any) -> str | None:
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and float(value).is_integer()):
        return str(int(value)).zfill(14)
    text = _text_cell(value)
    return text.translate(_SPACES) if text else None


def _vocab_cell(value: Any, voc: Vocabulary) -> str | None:
    text = _text_cell(value)
    if text is None:
        return None
    return voc.normalize(text) or text


def _list_cell(value: Any, voc: Vocabulary) -> list[str]:
    if is_missing(value):
        return []
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        parts = unneutralise(str(value)).split("|")
    out = []
    for part in parts:
        part = part.strip()
        if part:
            out.append(voc.normalize(part) or part)
    return out


def _parse_cell(table: str, column: str, value: Any, row: dict[str, Any]) -> Any:
    """Typed value of a cell, or the raw text when unreadable (validate reports it)."""
    if column in model.INITIATIVE_LIST_COLUMNS and table == "initiatives":
        return _list_cell(value, LIST_VOCABS[column])
    if is_missing(value):
        return None
    if (table, column) in VOCAB_COLUMNS:
        return _vocab_cell(value, VOCAB_COLUMNS[(table, column)])
    parsed: Any
    if column in DATE_COLUMNS:
        parsed = parse_date(value)
    elif column in TIMESTAMP_COLUMNS:
        parsed = parse_timestamp(value)
    elif column in INT_COLUMNS:
        parsed = parse_int(value)
    elif column in FLOAT_COLUMNS:
        parsed = parse_number(value)
    elif column in SIRET_COLUMNS:
        return _siret_cell(value)
    elif column == "code":
        return _code_cell(value, row.get("level"))
    elif column == "territory_code":
        return _code_cell(value, row.get("territory_level"))
    else:
        return _text_cell(value)
    return parsed if parsed is not None else _text_cell(value)


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


# ---------------------------------------------------------------------------- validation


def _opt(parser: Any, value: Any) -> Any:
    """``parser(value)`` for a present cell, else None."""
    return None if is_missing(value) else parser(value)


def _lines(df: pd.DataFrame) -> list[int]:
    if df.attrs.get("line_index"):
        return [int(i) for i in df.index]
    return list(range(2, len(df) + 2))


def validate(
    catalogue: model.Catalogue,
    index: Any | None,
    *,
    file: str | None = None,
    known_initiatives: Iterable[str] = (),
) -> list[Problem]:
    """Every problem of ``catalogue`` at once, in French, located by sheet/line/column/value.

    ``index`` (a :class:`~territoires.territories.TerritoryIndex`) checks territory codes;
    None skips that check. ``known_initiatives`` are ids that funding lines may point to
    besides those of the catalogue (e.g. initiatives already in the database).
    """
    problems: list[Problem] = []
    ini_ids: set[str] = set()
    for table, df in catalogue.tables().items():
        sheet = df.attrs.get("sheet") or model.TABLE_LABELS[table]

        def report(message: str, line: int, column: str | None, value: Any = None,
                   _sheet: str = sheet) -> None:
            problems.append(Problem(message, file=file, sheet=_sheet, line=line,
                                    column=column, value=value))

        records = df.astype(object).to_dict("records") if len(df) else []
        seen_ids: dict[str, int] = {}
        for line, rec in zip(_lines(df), records, strict=True):
            for col in REQUIRED[table]:
                value = rec.get(col)
                empty = (value == [] if isinstance(value, list) else is_missing(value))
                national = table == "funding" and str(rec.get("source") or "").startswith(
                    "national:")
                if empty and not (national and col in ("territory_level", "territory_code")):
                    report("champ obligatoire vide", line, col)
            for col in model.TABLE_COLUMNS[table]:
                value = rec.get(col)
                if col in model.INITIATIVE_LIST_COLUMNS and table == "initiatives":
                    voc = LIST_VOCABS[col]
                    for item in value if isinstance(value, list) else []:
                        if item not in voc.items:
                            report(f"valeur inconnue pour « {voc.label} » ; valeurs "
                                   f"possibles : {voc.valid_values_text()}", line, col, item)
                    continue
                if is_missing(value):
                    continue
                if (table, col) in VOCAB_COLUMNS:
                    voc = VOCAB_COLUMNS[(table, col)]
                    if value not in voc.items:
                        report(f"valeur inconnue pour « {voc.label} » ; valeurs possibles : "
                               f"{voc.valid_values_text()}", line, col, value)
                elif col in DATE_COLUMNS and parse_date(value) is None:
                    report("date illisible (attendu JJ/MM/AAAA ou AAAA-MM-JJ)", line, col,
                           value)
                elif col in TIMESTAMP_COLUMNS and parse_timestamp(value) is None:
                    report("horodatage illisible (attendu AAAA-MM-JJTHH:MM:SS)", line, col,
                           value)
                elif col in INT_COLUMNS and parse_int(value) is None:
                    report("nombre entier attendu", line, col, value)
                elif col in FLOAT_COLUMNS and parse_number(value) is None:
                    report("nombre illisible (ex. 1234,56 ou 1234.56)", line, col, value)
                elif col in SIRET_COLUMNS and not _SIRET_RE.match(str(value)):
                    report("SIRET invalide : 14 chiffres attendus", line, col, value)
            if table in ("initiatives", "funding"):
                rid = rec.get("id")
                if not is_missing(rid):
                    rid = str(rid)
                    if rid in seen_ids:
                        report(f"identifiant en double (déjà ligne {seen_ids[rid]})", line,
                               "id", rid)
                    else:
                        seen_ids[rid] = line
                    if table == "initiatives" and not _SLUG_RE.match(rid):
                        report("identifiant invalide : minuscules, chiffres, tirets ou "
                               "soulignés uniquement", line, "id", rid)
            if table == "initiatives":
                start, end = _opt(parse_date, rec.get("start_date")), _opt(
                    parse_date, rec.get("end_date"))
                if start is not None and end is not None and end < start:
                    report(f"la date de fin précède la date de début ({start:%d/%m/%Y})",
                           line, "end_date", f"{end:%d/%m/%Y}")
                version = _opt(parse_int, rec.get("version"))
                if version is not None and version < 1:
                    report("la version doit être ≥ 1", line, "version", version)
            if table == "funding":
                amount = _opt(parse_number, rec.get("amount_eur"))
                if amount is not None:
                    if amount < 0:
                        report("montant négatif", line, "amount_eur", amount)
                    elif amount > MAX_AMOUNT_EUR:
                        report("montant invraisemblable (plus de 100 millions d'euros pour "
                               "une ligne)", line, "amount_eur", amount)
                ys = _opt(parse_int, rec.get("year_start"))
                ye = _opt(parse_int, rec.get("year_end"))
                for col, year in (("year_start", ys), ("year_end", ye)):
                    if year is not None and not 1990 <= year <= 2100:
                        report("année invraisemblable (attendu entre 1990 et 2100)", line,
                               col, year)
                if ys is not None and ye is not None and ye < ys:
                    report(f"l'année de fin précède l'année de début ({ys})", line,
                           "year_end", ye)
            if table == "indicators":
                year = _opt(parse_int, rec.get("year"))
                if year is not None and not 1900 <= year <= 2100:
                    report("année invraisemblable", line, "year", year)
            level_col, code_col = {
                "territories": ("level", "code"),
                "funding": ("territory_level", "territory_code"),
            }.get(table, (None, None))
            if index is not None and level_col:
                level, code = rec.get(level_col), rec.get(code_col)
                if (not is_missing(level) and not is_missing(code)
                        and level in vocab.TERRITORY_LEVELS.items
                        and not index.exists(level, str(code))):
                    report(f"code de territoire inconnu au niveau « "
                           f"{vocab.TERRITORY_LEVELS.label_of(level)} »", line, code_col, code)
        if table == "initiatives":
            ini_ids = set(seen_ids)
    known = ini_ids | set(known_initiatives)
    for table in ("organisations", "territories", "indicators", "funding"):
        df = getattr(catalogue, table)
        sheet = df.attrs.get("sheet") or model.TABLE_LABELS[table]
        allowed = known if table == "funding" else ini_ids
        for line, iid in zip(_lines(df), df["initiative_id"].astype(object), strict=True):
            if not is_missing(iid) and str(iid) not in allowed:
                where = ("ni dans la feuille « initiatives » ni dans la base"
                         if table == "funding" else "dans la feuille « initiatives »")
                problems.append(Problem(f"initiative absente {where}", file=file,
                                        sheet=sheet, line=line, column="initiative_id",
                                        value=iid))
    return problems


# ------------------------------------------------------------------------------- writing


def _cell_for_csv(column: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return neutralise(model.LIST_SEPARATOR.join(str(v) for v in value))
    if is_missing(value):
        return ""
    if column in TIMESTAMP_COLUMNS:
        ts = parse_timestamp(value)
        return ts.isoformat() if ts is not None else neutralise(str(value))
    if column in DATE_COLUMNS and isinstance(value, dt.date):
        return f"{value:%d/%m/%Y}"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if column in INT_COLUMNS and number.is_integer():
            return str(int(number))
        return repr(number).replace(".", ",")
    return neutralise(str(value))


def _cell_for_xlsx(column: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return neutralise(model.LIST_SEPARATOR.join(str(v) for v in value))
    if is_missing(value):
        return None
    if column in TIMESTAMP_COLUMNS:
        ts = parse_timestamp(value)
        return ts.isoformat() if ts is not None else neutralise(str(value))
    if column in DATE_COLUMNS and isinstance(value, dt.date):
        return value if not isinstance(value, dt.datetime) else value.date()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return _ILLEGAL_XLSX_RE.sub("", neutralise(str(value)))


def _public_tables(catalogue: model.Catalogue, include_private: bool) -> dict[str, pd.DataFrame]:
    tables = dict(catalogue.tables())
    if not include_private:
        ini = tables["initiatives"].copy()
        for col in model.PRIVATE_COLUMNS:
            ini[col] = None
        tables["initiatives"] = ini
    return tables


def _rows(df: pd.DataFrame, columns: list[str]) -> list[list[Any]]:
    """Raw cells of ``df`` (reference path of the scalar converters, kept for tests)."""
    if not len(df):
        return []
    data = df.reindex(columns=columns).astype(object)
    return data.to_numpy().tolist()


def _blank(strings: pd.Series) -> np.ndarray:
    """Mask of the missing or blank (empty or white-space only) values of a text Series."""
    return (strings.isna() | (strings == "") | strings.str.isspace()).to_numpy(
        dtype=bool, na_value=True)


def _neutralised(strings: pd.Series) -> pd.Series:
    """Vectorised :func:`neutralise` of a text Series without missing values."""
    dangerous = strings.str.contains(_FORMULA_PATTERN, regex=True).to_numpy(dtype=bool)
    if not dangerous.any():
        return strings
    return strings.where(~dangerous, "'" + strings)


def _scalar(column: str, values: np.ndarray, xlsx: bool) -> list[Any]:
    """Per-cell conversion, for the rare values the vectorised paths do not handle."""
    convert = _cell_for_xlsx if xlsx else _cell_for_csv
    return [convert(column, v) for v in values.tolist()]


def _text_cells(column: str, strings: pd.Series, out: np.ndarray, xlsx: bool) -> None:
    """Fill ``out`` with the cells of a text Series (missing or blank -> empty)."""
    try:
        strings = strings.astype("str")
    except (TypeError, ValueError, UnicodeError):  # e.g. lone surrogates: cell by cell
        values = strings.to_numpy(dtype=object)
        present = ~pd.isna(values)
        out[present] = _scalar(column, values[present], xlsx)
        return
    keep = ~_blank(strings)
    if not keep.any():
        return
    text = _neutralised(strings[keep])
    if xlsx:
        text = text.str.replace(_ILLEGAL_XLSX_PATTERN, "", regex=True)
    out[keep] = text.to_numpy(dtype=object)


def _list_cells(column: str, values: np.ndarray, present: np.ndarray, out: np.ndarray,
                xlsx: bool) -> None:
    """Fill ``out`` for a column holding lists of codes (joined with " | ")."""
    idx = np.flatnonzero(present)
    cells = values[idx]
    is_list = np.fromiter((type(v) is list or type(v) is tuple for v in cells), dtype=bool,
                          count=len(cells))
    joined: list[str] = []
    ok = np.zeros(len(cells), dtype=bool)
    for k in np.flatnonzero(is_list).tolist():
        try:
            joined.append(model.LIST_SEPARATOR.join(cells[k]))
            ok[k] = True
        except TypeError:  # non-text items: str() them like the scalar path
            pass
    if ok.any():
        out[idx[ok]] = _neutralised(pd.Series(joined, dtype="str")).to_numpy(dtype=object)
    rest = idx[~ok]
    if len(rest):
        out[rest] = _scalar(column, values[rest], xlsx)


def _date_cells(values: np.ndarray, present: np.ndarray, out: np.ndarray, xlsx: bool) -> None:
    """Fill ``out`` for a date column whose present values are all ``datetime.date``."""
    idx = np.flatnonzero(present)
    codes, uniques = pd.factorize(values[idx])
    if xlsx:
        cells = [v.date() if isinstance(v, dt.datetime) else v for v in uniques]
    else:
        cells = [f"{v:%d/%m/%Y}" for v in uniques]
    out[idx] = np.asarray(cells, dtype=object)[codes]


def _timestamp_cells(column: str, series: pd.Series, out: np.ndarray, xlsx: bool) -> None:
    """Fill ``out`` for a datetime64 column of the ``created_at``/``updated_at`` kind."""
    present = series.notna().to_numpy(dtype=bool)
    if not present.any():
        return
    ts = series[present]
    ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    whole = ((ts.dt.microsecond == 0) & (ts.dt.nanosecond == 0) & (ts.dt.year >= 1000)).all()
    if whole:
        out[present] = (ts.dt.strftime("%Y-%m-%dT%H:%M:%S") + "+00:00").to_numpy(dtype=object)
    else:
        out[present] = [t.isoformat() for t in ts]


def _float_cells(column: str, values: np.ndarray, out: np.ndarray, xlsx: bool) -> None:
    """Fill ``out`` for a float64 column (decimal comma in CSV, integers for years)."""
    present = ~np.isnan(values)
    if not present.any():
        return
    if xlsx:
        out[present] = values[present].tolist()
        return
    cells = np.char.replace(values[present].astype(str), ".", ",").astype(object)
    if column in INT_COLUMNS:
        sub = values[present]
        whole = np.isfinite(sub) & (np.floor(sub) == sub) & (np.abs(sub) < 2.0**62)
        cells[whole] = sub[whole].astype(np.int64).astype(str).astype(object)
        big = np.isfinite(sub) & (np.floor(sub) == sub) & ~whole
        cells[big] = [str(int(v)) for v in sub[big].tolist()]
    out[present] = cells


def _column_cells(column: str, series: pd.Series, *, xlsx: bool) -> np.ndarray:
    """The cells of one column, vectorised; same values as ``_cell_for_csv`` (strings) or
    ``_cell_for_xlsx`` (None, str, int, float, date) applied to every value."""
    n = len(series)
    out = np.full(n, None if xlsx else "", dtype=object)
    if not n:
        return out
    dtype = series.dtype
    kind = getattr(dtype, "kind", "O")
    timestamp_col = column in TIMESTAMP_COLUMNS
    if kind == "b" and isinstance(dtype, np.dtype):
        out[:] = np.where(series.to_numpy(dtype=bool), "True", "False")
        return out
    if kind in "iu" and isinstance(dtype, np.dtype) and not timestamp_col:
        values = series.to_numpy()
        out[:] = values.tolist() if xlsx else values.astype(str).astype(object)
        return out
    if kind == "f" and isinstance(dtype, np.dtype) and not timestamp_col:
        _float_cells(column, series.to_numpy(dtype=float), out, xlsx)
        return out
    if kind == "M" and timestamp_col:
        _timestamp_cells(column, series, out, xlsx)
        return out
    if isinstance(dtype, pd.StringDtype) and not timestamp_col:
        _text_cells(column, series, out, xlsx)
        return out
    values = series.to_numpy(dtype=object)
    present = ~pd.isna(values)
    if not present.any():
        return out
    inferred = infer_dtype(values[present], skipna=False)
    if inferred == "string" and not timestamp_col:
        _text_cells(column, pd.Series(values), out, xlsx)
    elif inferred == "date" and column in DATE_COLUMNS:
        _date_cells(values, present, out, xlsx)
    elif inferred == "mixed" and not timestamp_col:
        _list_cells(column, values, present, out, xlsx)
    else:
        idx = np.flatnonzero(present)
        out[idx] = _scalar(column, values[idx], xlsx)
    return out


def _table_cells(df: pd.DataFrame, columns: list[str], *, xlsx: bool) -> list[np.ndarray]:
    """The converted cells of ``df``, one array per column of ``columns``."""
    n = len(df)
    out = []
    for col in columns:
        if col in df.columns:
            series = df[col]
            if isinstance(series, pd.DataFrame):  # duplicated column name: first one
                series = series.iloc[:, 0]
            out.append(_column_cells(col, series.reset_index(drop=True), xlsx=xlsx))
        else:
            out.append(np.full(n, None if xlsx else "", dtype=object))
    return out


def _csv_bytes(columns: list[str], df: pd.DataFrame) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns)
    if len(df):
        writer.writerows(zip(*_table_cells(df, columns, xlsx=False), strict=True))
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def _readme_rows() -> list[list[str]]:
    rows: list[list[str]] = [
        ["Modèle d'échange du catalogue Territoires", "", ""],
        ["Une feuille par table ; ligne 1 = noms de colonnes (ne pas les traduire). "
         "Listes séparées par « | ». Dates JJ/MM/AAAA. Nombres : virgule décimale acceptée. "
         "Les valeurs de vocabulaire peuvent être le code ou le libellé.", "", ""],
        ["Une cellule commençant par =, +, - ou @ est précédée d'une apostrophe "
         "(protection contre les formules) ; l'import la retire.", "", ""],
        ["", "", ""],
        ["Feuille", "Colonne", "Description"],
    ]
    for table, helps in COLUMN_HELP.items():
        for col in model.TABLE_COLUMNS[table]:
            star = " (obligatoire)" if col in REQUIRED[table] else ""
            rows.append([model.TABLE_LABELS[table], col, helps.get(col, "") + star])
    rows.append(["", "", ""])
    rows.append(["Vocabulaire", "Code", "Libellé"])
    for voc in vocab.VOCABULARIES.values():
        for code, label in voc.items.items():
            rows.append([voc.label, code, label])
    return rows


def _xlsx_bytes(tables: dict[str, pd.DataFrame], *, readme: bool) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    if readme:
        ws = wb.create_sheet(README_SHEET)
        ws.column_dimensions["A"].width = 24
        ws.column_dimensions["B"].width = 28
        ws.column_dimensions["C"].width = 90
        for n, row in enumerate(_readme_rows()):
            if n == 0:
                title = WriteOnlyCell(ws, value=row[0])
                title.font = Font(bold=True, size=14)
                ws.append([title])
            else:
                ws.append(row)
    for table, df in tables.items():
        ws = wb.create_sheet(model.TABLE_LABELS[table])
        columns = model.TABLE_COLUMNS[table]
        ws.freeze_panes = "A2"
        for i, col in enumerate(columns):
            ws.column_dimensions[_column_letter(i)].width = max(12, min(40, len(col) + 4))
        header = []
        for col in columns:
            cell = WriteOnlyCell(ws, value=col)
            cell.font = bold
            header.append(cell)
        ws.append(header)
        if not len(df):
            continue
        cells = _table_cells(df, columns, xlsx=True)
        for i, col in enumerate(columns):
            if col in DATE_COLUMNS:
                cells[i] = _date_format_cells(ws, cells[i])
        for row in zip(*cells, strict=True):
            ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _date_format_cells(ws: Any, values: np.ndarray) -> np.ndarray:
    """Every present value of a date column as a cell formatted ``DD/MM/YYYY`` (one shared
    cell per distinct value: the write-only sheet serialises each cell as it is appended)."""
    from openpyxl.cell import WriteOnlyCell

    present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    if not present.any():
        return values
    out = values.copy()
    idx = np.flatnonzero(present)
    codes, uniques = pd.factorize(values[idx])
    shared = np.empty(len(uniques), dtype=object)
    for k, value in enumerate(uniques):
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = "DD/MM/YYYY"
        shared[k] = cell
    out[idx] = shared[codes]
    return out


def write_template(path: Path) -> None:
    """Write the empty exchange workbook (headers + « lisez-moi » sheet) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_xlsx_bytes(model.Catalogue().tables(), readme=True))


def _missing_to_none(values: np.ndarray) -> np.ndarray:
    """``values`` (object) with every missing or blank value replaced by None."""
    out = values.astype(object, copy=True)
    missing = pd.isna(out)
    text_idx = np.flatnonzero(~missing)
    if len(text_idx):
        blank = np.fromiter((isinstance(v, str) and not v.strip() for v in out[text_idx]),
                            dtype=bool, count=len(text_idx))
        missing[text_idx[blank]] = True
    out[missing] = None
    return out


def _geometry_lookup(layers: Any) -> tuple[pd.Index, Any]:
    """(keys ``level\\x1fcode``, geometries) of every non-empty territory geometry."""
    import geopandas as gpd

    from territoires.layers import CRS, LAYER_SCHEMAS, LEVEL_LAYER

    parts = []
    for level, layer_name in LEVEL_LAYER.items():
        gdf = layers.layer(layer_name)
        key = LAYER_SCHEMAS[layer_name][0]
        geom = gdf.geometry
        keep = (geom.notna() & ~geom.is_empty).to_numpy(dtype=bool)
        codes = pd.Series(gdf[key].to_numpy(dtype=object)[keep]).map(str)
        parts.append(gpd.GeoDataFrame({"key": (level + "\x1f" + codes).to_numpy(dtype=object)},
                                      geometry=geom.to_numpy()[keep], crs=CRS))
    table = pd.concat(parts, ignore_index=True)
    table = table.drop_duplicates("key", keep="last")  # like a dict: the last one wins
    return pd.Index(table["key"].to_numpy(dtype=object)), table.geometry.array


def _territory_names(index: Any, levels: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``index.name(level, code)`` for every pair, vectorised when the index allows it."""
    if hasattr(index, "tids") and isinstance(getattr(index, "table", None), pd.DataFrame):
        tids = np.asarray(index.tids(levels, codes))
        noms = index.table["nom"].to_numpy(dtype=object)
        known = tids >= 0
        out = codes.astype(object, copy=True)
        out[known] = [str(v) for v in noms[tids[known]]]
        return out
    keys = pd.MultiIndex.from_arrays([levels, codes])
    pos, uniques = pd.factorize(keys)
    names = np.array([index.name(lv, cd) for lv, cd in uniques], dtype=object)
    return names[pos]


def _geo_frame(catalogue: model.Catalogue, layers: Any, index: Any | None,
               include_private: bool) -> Any:
    import geopandas as gpd

    from territoires.layers import CRS

    if layers is None:
        raise ExportError("L'export géographique a besoin des couches territoriales : lancez "
                          "« territoires data build ».")
    ini = catalogue.initiatives.reindex(columns=model.INITIATIVE_COLUMNS).astype(object)
    ini = ini.drop_duplicates("id").reset_index(drop=True)
    funding = catalogue.funding
    totals = (funding.dropna(subset=["initiative_id"]).groupby("initiative_id")["amount_eur"]
              .sum() if len(funding) else pd.Series(dtype=float))
    terr = catalogue.territories.reindex(columns=model.TERRITORY_COLUMNS).astype(object)
    terr_ids = terr["initiative_id"].to_numpy(dtype=object)
    pos = pd.Index(ini["id"].to_numpy(dtype=object)).get_indexer(terr_ids)
    rows = np.flatnonzero(pos >= 0)
    if not len(rows):
        return gpd.GeoDataFrame(pd.DataFrame([]), geometry=[], crs=CRS)
    pos = pos[rows]
    iids = terr_ids[rows]
    levels = np.array([str(v) for v in terr["level"].to_numpy(dtype=object)[rows]],
                      dtype=object)
    codes = np.array([str(v) for v in terr["code"].to_numpy(dtype=object)[rows]],
                     dtype=object)

    def ini_col(col: str) -> np.ndarray:
        return ini[col].to_numpy(dtype=object)[pos]

    def joined(col: str) -> np.ndarray:
        values = ini[col].to_numpy(dtype=object)
        out = np.array([model.LIST_SEPARATOR.join(v) if isinstance(v, (list, tuple)) else ""
                        for v in values] + [None], dtype=object)[:-1]
        return out[pos]

    def iso(col: str) -> np.ndarray:
        values = ini[col].to_numpy(dtype=object)
        out = np.array([v.isoformat() if isinstance(v, dt.date) else None for v in values]
                       + [""], dtype=object)[:-1]
        return out[pos]

    tot_pos = totals.index.get_indexer(iids) if len(totals) else np.full(len(iids), -1)
    tot_values = np.asarray(totals.to_numpy(), dtype=object)
    funding_eur = np.array([0.0] * len(iids), dtype=object)
    found = tot_pos >= 0
    funding_eur[found] = [float(v) for v in tot_values[tot_pos[found]]]
    columns: dict[str, np.ndarray] = {
        "initiative_id": iids,
        "title": ini_col("title"),
        "scale": ini_col("scale"),
        "maturity": ini_col("maturity"),
        "themes": joined("themes"),
        "publics": joined("publics"),
        "alliance_levels": joined("alliance_levels"),
        "start_date": iso("start_date"),
        "end_date": iso("end_date"),
        "territory_level": levels,
        "territory_code": codes,
        "territory_name": (_territory_names(index, levels, codes) if index is not None
                           else np.full(len(iids), None, dtype=object)),
        "funding_eur": funding_eur,
        "contact_organisation": ini_col("contact_organisation"),
        "source_url": ini_col("source_url"),
    }
    if include_private:
        columns["contact_email"] = ini_col("contact_email")
    frame = pd.DataFrame({k: _missing_to_none(v).tolist() for k, v in columns.items()})
    keys, geoms = _geometry_lookup(layers)
    gpos = keys.get_indexer(levels + "\x1f" + codes)
    geometry = geoms.take(gpos, allow_fill=True)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=CRS)


def _geojson_bytes(gdf: Any) -> bytes:
    """GeoJSON FeatureCollection of ``gdf`` (no ids; missing properties -> null), the same
    text as ``json.dumps(json.loads(gdf.to_json(drop_id=True)), ensure_ascii=False)``, with
    each distinct geometry serialised once."""
    from shapely.geometry import mapping

    encode = json.JSONEncoder(ensure_ascii=False).encode
    geometry_name = gdf.geometry.name
    props = gdf.drop(columns=[geometry_name])
    names = list(props.columns)
    values = props.astype(object).to_numpy()
    values[pd.isna(props).to_numpy(dtype=bool)] = None
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    wkb = gdf.geometry.to_wkb().to_numpy(dtype=object)
    codes, uniques = pd.factorize(wkb)
    geo_text: list[str | None] = [None] * len(uniques)
    features = []
    for i, row in enumerate(values.tolist()):
        k = codes[i]
        if k < 0:
            geometry = "null"
        else:
            geometry = geo_text[k]
            if geometry is None:
                geom = geoms[i]
                geometry = encode(mapping(geom)) if geom else "null"
                geo_text[k] = geometry
        properties = encode(dict(zip(names, row, strict=True)))
        features.append('{"type": "Feature", "properties": ' + properties
                        + ', "geometry": ' + geometry + "}")
    return ('{"type": "FeatureCollection", "features": [' + ", ".join(features)
            + "]}").encode("utf-8")


def export_bytes(
    catalogue: model.Catalogue,
    fmt: str,
    *,
    layers: Any | None = None,
    index: Any | None = None,
    include_private: bool = False,
) -> bytes:
    """The catalogue (already filtered by the caller) as ``csv`` (zip of the CSV set),
    ``xlsx``, ``geojson`` or ``gpkg`` bytes. ``contact_email`` is emptied unless
    ``include_private``."""
    fmt = fmt.lower().lstrip(".")
    try:
        if fmt == "xlsx":
            return _xlsx_bytes(_public_tables(catalogue, include_private), readme=True)
        if fmt in ("csv", "zip"):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for table, df in _public_tables(catalogue, include_private).items():
                    columns = model.TABLE_COLUMNS[table]
                    zf.writestr(f"{model.TABLE_LABELS[table]}.csv", _csv_bytes(columns, df))
            return buf.getvalue()
        if fmt in ("geojson", "gpkg"):
            gdf = _geo_frame(catalogue, layers, index, include_private)
            if fmt == "geojson":
                return _geojson_bytes(gdf)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "export.gpkg"
                gdf.to_file(out, driver="GPKG", layer="initiatives", engine="pyogrio")
                return out.read_bytes()
    except TerritoiresError:
        raise
    except Exception as exc:  # writer libraries raise many kinds
        raise ExportError(f"L'export au format {fmt} a échoué : {exc}") from exc
    raise ExportError(f"Format d'export inconnu « {fmt} » (csv, xlsx, geojson, gpkg).")


def slugify(text: str, max_length: int = 60) -> str:
    """ASCII slug of ``text`` (lower case, hyphens)."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:max_length].rstrip("-")


def export_filename(prefix: str, filters_text: str, ext: str, today: dt.date) -> str:
    """File name carrying the date and a slug of the filters, e.g.
    ``territoires_gironde-culture_2026-03-01.xlsx``."""
    parts = [slugify(prefix) or "export"]
    slug = slugify(filters_text)
    if slug:
        parts.append(slug)
    parts.append(today.isoformat())
    return "_".join(parts) + "." + ext.lower().lstrip(".")

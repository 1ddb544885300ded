"""Cell parsing and validation of the catalogue (one path for imports and forms).

The exchange format (:mod:`territoires.catalogue.reading`) and the forms give raw cells; this module
turns each cell into its typed value (:func:`parse_cell`-style helpers keep the raw text when
unreadable) and :func:`validate` reports every problem at once, in French, naming the file,
sheet, spreadsheet line (header = line 1), column and value.

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
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from territoires import vocab
from territoires.catalogue import model
from territoires.errors import Problem
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
#: Longest long text (``summary``, ``objectives``…: :data:`model.INITIATIVE_TEXT_COLUMNS`) and
#: longest other text (title, names, labels, links…), in characters. The same bounds for imports
#: and forms: a fiche imported can be saved again from the form, unchanged.
MAX_TEXT_CHARS = 20_000
MAX_SHORT_TEXT_CHARS = 500
#: Most rows of one initiative in each other table (structures, territories, indicators,
#: funding lines), as in the form.
MAX_ROWS_PER_INITIATIVE = 200
#: Largest version number (the database's INTEGER column, 32 bits on PostgreSQL).
MAX_VERSION = 2**31 - 1
#: Most problems listed for one file: beyond, the checks stop and a last problem says so.
MAX_PROBLEMS = 1_000
#: Longest identifier (initiative, funding line) and code: the database's column widths.
MAX_ID_CHARS = 200
MAX_CODE_CHARS = 40
#: Years accepted in dates (years of funding lines: 1990-2100, of indicators: 1900-2100).
DATE_YEARS = (1900, 2100)
#: Characters refused in text: C0 controls but tab, line feed and carriage return (PostgreSQL
#: refuses NUL, XLSX cannot hold the others).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
#: ``1.234`` / ``1,234``: thousands or decimals? Refused as ambiguous.
_AMBIGUOUS_RE = re.compile(r"^[+-]?[1-9]\d{0,2}[.,]\d{3}$")
#: Largest plausible amount of one funding line.
MAX_AMOUNT_EUR = 100_000_000

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
#: Text a spreadsheet may take for a formula: a formula character, maybe after white space.
_FORMULA_RE = re.compile(r"^[ \u00a0]*[=+\-@]|^[\t\r]")
_NEUTRALISED_RE = re.compile(r"^'+(?:[ \u00a0]*[=+\-@]|[\t\r])")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SIRET_RE = re.compile(r"^\d{14}$")
_DATE_FR_RE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009")
#: Columns with their own width limit (:data:`MAX_ID_CHARS`, :data:`MAX_CODE_CHARS`).
_WIDTH_COLUMNS = {"id", "initiative_id", "code", "territory_code"}

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
    if _FORMULA_RE.match(text) or _NEUTRALISED_RE.match(text):
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


def is_ambiguous_number(value: Any) -> bool:
    """Whether a typed number reads two ways: ``1.234`` or ``1,234`` (thousands separator or
    decimal mark?)."""
    if not isinstance(value, str):
        return False
    return bool(_AMBIGUOUS_RE.match(unneutralise(value.strip()).translate(_SPACES)
                                    .replace("€", "")))


class RawCells(dict):
    """Text of the cells as typed, for the cells :func:`read_exchange` turned into numbers or
    dates (``{column: {line: text}}``), so that problems echo what the user typed. Shared,
    never copied, when pandas copies a DataFrame's ``attrs``."""

    def __deepcopy__(self, memo: dict) -> RawCells:
        return self

    def keep(self, column: str, line: int, text: str) -> None:
        """Remember the typed ``text`` of a cell."""
        self.setdefault(column, {})[line] = text

    def typed(self, column: str, line: int, value: Any) -> Any:
        """The typed text of the cell, else ``value``."""
        return self.get(column, {}).get(line, value)


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
    text = str(value)
    stripped = text.strip()
    if stripped[:1] in ("=", "+", "-", "@") and text[:1].isspace():
        stripped = text.rstrip().lstrip("\n\r\t")  # a space before "=" is kept as typed
    text = unneutralise(stripped)
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
        return str(int(value))  # never zero-padded: validate says a digit is missing
    text = _text_cell(value)
    return text.translate(_SPACES) if text else None


#: (vocabulary, text) -> code: a file repeats the same few values on every row.
_NORMALIZED: dict[tuple[int, str], str | None] = {}


def _normalize(voc: Vocabulary, text: str) -> str | None:
    """``voc.normalize(text)``, remembered (at most 50,000 distinct texts)."""
    key = (id(voc), text)
    try:
        return _NORMALIZED[key]
    except KeyError:
        code = voc.normalize(text)
        if len(_NORMALIZED) < 50_000:
            _NORMALIZED[key] = code
        return code


def _vocab_cell(value: Any, voc: Vocabulary) -> str | None:
    text = _text_cell(value)
    if text is None:
        return None
    return _normalize(voc, text) or text


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
            out.append(_normalize(voc, part) or part)
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
        if isinstance(value, str) and is_ambiguous_number(value):
            return _text_cell(value)  # validate refuses it
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


# ---------------------------------------------------------------------------- validation


def _opt(parser: Any, value: Any) -> Any:
    """``parser(value)`` for a present cell, else None."""
    return None if is_missing(value) else parser(value)


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _n(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def _check_text(value: str, table: str, column: str, line: int, report: Any) -> None:
    """Characters and length of a text cell (the same refusal whatever the database, for
    imports and forms)."""
    bad = _CONTROL_RE.search(value)
    if bad:
        char = bad.group()
        what = "caractère nul" if char == "\x00" else "caractère de contrôle"
        report(f"{what} (U+{ord(char):04X}, position {bad.start() + 1}) interdit dans un "
               "texte", line, column, _short(value.replace(char, "�")))
    if column in _WIDTH_COLUMNS:
        return
    limit = (MAX_TEXT_CHARS if table == "initiatives"
             and column in model.INITIATIVE_TEXT_COLUMNS else MAX_SHORT_TEXT_CHARS)
    if len(value) > limit:
        report(f"texte trop long ({_n(len(value))} caractères, au plus {_n(limit)}) : "
               "raccourcissez-le", line, column, _short(value))


class _Full(Exception):
    """Raised when a list of problems reaches :data:`MAX_PROBLEMS` and one more is found."""


def _adder(problems: list[Problem]) -> Callable[[Problem], None]:
    """A function appending to ``problems``, raising :class:`_Full` instead of going beyond
    :data:`MAX_PROBLEMS` (the checks then stop: their cost stays bounded)."""

    def add(problem: Problem) -> None:
        if len(problems) >= MAX_PROBLEMS:
            raise _Full
        problems.append(problem)

    return add


def more_problems(file: str | None = None) -> Problem:
    """The last problem of a list stopped at :data:`MAX_PROBLEMS`: at least one more was
    found, not listed."""
    return Problem(f"… et au moins un autre problème, non listé : la vérification s'arrête "
                   f"après {_n(MAX_PROBLEMS)} problèmes ; corrigez ceux-ci puis vérifiez de "
                   "nouveau le fichier", file=file)


def capped(problems: list[Problem], file: str | None = None) -> list[Problem]:
    """``problems`` cut to :data:`MAX_PROBLEMS`, followed by :func:`more_problems` when some
    were left out."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], more_problems(file)]


def national_conflicts(catalogue: model.Catalogue, national_ids: Iterable[str], *,
                       file: str | None = None) -> list[Problem]:
    """Funding lines of ``catalogue`` that would replace a national line (same ``id``, see
    ``catalogue load-funding``) without being one themselves: refused, since the next load
    of the national lines would fail or overwrite them."""
    national = set(national_ids)
    df = catalogue.funding
    if not national or not len(df):
        return []
    sheet = df.attrs.get("sheet") or model.TABLE_LABELS["funding"]
    problems: list[Problem] = []
    add = _adder(problems)
    try:
        for line, fid, source in zip(_lines(df), df["id"].astype(object),
                                     df["source"].astype(object), strict=True):
            if (not is_missing(fid) and str(fid) in national
                    and not str(source or "").startswith("national:")):
                add(Problem(
                    "identifiant déjà pris par une ligne de financement nationale (chargée par "
                    "« catalogue load-funding ») : choisissez un autre identifiant",
                    file=file, sheet=sheet, line=line, column="id", value=fid))
    except _Full:
        problems.append(more_problems(file))
    return problems


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
    """Every problem of ``catalogue`` at once (the first :data:`MAX_PROBLEMS`, then one
    saying more were found), in French, located by sheet/line/column/value.

    ``index`` (a :class:`~territoires.pipeline.territories.TerritoryIndex`) checks territory codes;
    None skips that check. ``known_initiatives`` are ids that funding lines may point to
    besides those of the catalogue (e.g. initiatives already in the database).
    """
    problems: list[Problem] = []
    try:
        _validate(catalogue, index, file, known_initiatives, _adder(problems))
    except _Full:
        problems.append(more_problems(file))
    return problems


def _unknown_value(voc: Vocabulary) -> str:
    """The message of a value outside ``voc`` (built once per vocabulary: a file repeats it)."""
    return (f"valeur inconnue pour « {voc.label} » ; valeurs possibles : "
            f"{voc.valid_values_text()}")


def _validate(catalogue: model.Catalogue, index: Any | None, file: str | None,
              known_initiatives: Iterable[str], add: Callable[[Problem], None]) -> None:
    """The checks of :func:`validate`, every problem given to ``add``."""
    ini_ids: set[str] = set()
    unknown: dict[str, str] = {}

    def unknown_value(voc: Vocabulary) -> str:
        if voc.name not in unknown:
            unknown[voc.name] = _unknown_value(voc)
        return unknown[voc.name]

    for table, df in catalogue.tables().items():
        sheet = df.attrs.get("sheet") or model.TABLE_LABELS[table]

        def report(message: str, line: int, column: str | None, value: Any = None,
                   _sheet: str = sheet) -> None:
            add(Problem(message, file=file, sheet=_sheet, line=line, column=column,
                        value=value))

        raw = df.attrs.get("raw") or RawCells()
        # one row at a time (no list of every row as a dict: memory stays that of the table)
        names = list(df.columns)
        records = (dict(zip(names, values, strict=True)) for values in zip(
            *(df.iloc[:, i].to_numpy(dtype=object) for i in range(len(names))),
            strict=True)) if len(df) and names else iter(())
        seen_ids: dict[str, int] = {}
        per_initiative: dict[str, int] = {}
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
                if isinstance(value, str):
                    _check_text(value, table, col, line, report)
                if col in model.INITIATIVE_LIST_COLUMNS and table == "initiatives":
                    voc = LIST_VOCABS[col]
                    for item in value if isinstance(value, list) else []:
                        if item not in voc.items:
                            report(unknown_value(voc), line, col, item)
                    continue
                if is_missing(value):
                    continue
                if (table, col) in VOCAB_COLUMNS:
                    voc = VOCAB_COLUMNS[(table, col)]
                    if value not in voc.items:
                        report(unknown_value(voc), line, col, value)
                elif col in DATE_COLUMNS and parse_date(value) is None:
                    report("date illisible (attendu JJ/MM/AAAA ou AAAA-MM-JJ)", line, col,
                           value)
                elif col in DATE_COLUMNS and not (
                        DATE_YEARS[0] <= parse_date(value).year <= DATE_YEARS[1]):
                    report(f"date invraisemblable (attendu entre {DATE_YEARS[0]} et "
                           f"{DATE_YEARS[1]})", line, col, raw.typed(col, line, value))
                elif col in TIMESTAMP_COLUMNS and parse_timestamp(value) is None:
                    report("horodatage illisible (attendu AAAA-MM-JJTHH:MM:SS)", line, col,
                           value)
                elif col in INT_COLUMNS and parse_int(value) is None:
                    report("nombre entier attendu", line, col, value)
                elif col in FLOAT_COLUMNS and is_ambiguous_number(value):
                    report("nombre ambigu : séparateur des milliers ou des décimales ? "
                           "Écrivez 1234 (ou 1 234) pour mille deux cent trente-quatre, "
                           "1,234 étant refusé : ajoutez un chiffre (1,2340) pour des "
                           "décimales", line, col, value)
                elif col in FLOAT_COLUMNS and parse_number(value) is None:
                    report("nombre illisible (ex. 1234,56 ou 1234.56)", line, col, value)
                elif col in SIRET_COLUMNS and not _SIRET_RE.match(str(value)):
                    hint = (" (un zéro de tête a pu être perdu : dans Excel, saisissez le "
                            "SIRET comme texte)" if str(value).isdigit() and len(str(value))
                            == 13 else "")
                    report(f"SIRET invalide : 14 chiffres attendus{hint}", line, col, value)
                if col in ("id", "initiative_id") and len(str(value)) > MAX_ID_CHARS:
                    report(f"identifiant trop long ({len(str(value))} caractères, au plus "
                           f"{MAX_ID_CHARS})", line, col, _short(value))
                elif col in ("code", "territory_code") and len(str(value)) > MAX_CODE_CHARS:
                    report(f"code trop long ({len(str(value))} caractères, au plus "
                           f"{MAX_CODE_CHARS})", line, col, _short(value))
            iid = rec.get("initiative_id")
            if table != "initiatives" and not is_missing(iid):
                count = per_initiative[str(iid)] = per_initiative.get(str(iid), 0) + 1
                if count == MAX_ROWS_PER_INITIATIVE + 1:
                    report(f"plus de {MAX_ROWS_PER_INITIATIVE} lignes pour cette initiative "
                           f"dans la feuille « {sheet} » : au plus "
                           f"{MAX_ROWS_PER_INITIATIVE} par fiche", line, "initiative_id",
                           _short(iid))
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
                if version is not None and not 1 <= version <= MAX_VERSION:
                    report(f"version invraisemblable : un nombre entier de 1 à "
                           f"{_n(MAX_VERSION)} est attendu", line, "version",
                           _short(raw.typed("version", line, version)))
            if table == "funding":
                amount = _opt(parse_number, rec.get("amount_eur"))
                if amount is not None:
                    shown = raw.typed("amount_eur", line, amount)
                    if amount < 0:
                        report("montant négatif", line, "amount_eur", shown)
                    elif amount > MAX_AMOUNT_EUR:
                        report("montant invraisemblable (plus de 100 millions d'euros pour "
                               "une ligne)", line, "amount_eur", shown)
                ys = _opt(parse_int, rec.get("year_start"))
                ye = _opt(parse_int, rec.get("year_end"))
                for col, year in (("year_start", ys), ("year_end", ye)):
                    if year is not None and not 1990 <= year <= 2100:
                        report("année invraisemblable (attendu entre 1990 et 2100)", line,
                               col, raw.typed(col, line, year))
                if ys is not None and ye is not None and ye < ys:
                    report(f"l'année de fin précède l'année de début ({ys})", line,
                           "year_end", ye)
            if table == "indicators":
                year = _opt(parse_int, rec.get("year"))
                if year is not None and not 1900 <= year <= 2100:
                    report("année invraisemblable", line, "year", raw.typed("year", line, year))
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
                add(Problem(f"initiative absente {where}", file=file, sheet=sheet, line=line,
                            column="initiative_id", value=iid))

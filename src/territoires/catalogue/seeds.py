"""Committed seed fiches: one YAML file per initiative in ``data/initiatives``.

A fiche holds one initiative with its porteurs and partners, territories, indicators and
funding lines (see ``data/initiatives/*.yaml`` for the format). :func:`load_seed_dir` reads
every fiche of a folder and returns the five catalogue tables of :mod:`territoires.catalogue.model`.

Everything is checked before anything is returned: required fields, vocabulary codes (codes
or French labels are accepted and stored as codes), dates, amounts and years, identifiers.
All problems are collected and raised together as one :class:`~territoires.errors.ValidationError`
whose problems name the file, the line in the YAML and the field. Territory codes are not
checked here (the territory validator compares them with the reference layers).

Funding line ids are ``<initiative id>-f<n>`` (n = 1-based position in the fiche); a line
sits on the fiche's first territory unless it gives its own ``territory: {level, code}``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from territoires import vocab
from territoires.catalogue.model import (
    FUNDING_COLUMNS,
    INDICATOR_COLUMNS,
    INITIATIVE_COLUMNS,
    INITIATIVE_TEXT_COLUMNS,
    ORGANISATION_COLUMNS,
    TERRITORY_COLUMNS,
    Catalogue,
)
from territoires.errors import Problem, ValidationError

#: Slug of an initiative id: lower-case ASCII letters and digits separated by single hyphens.
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SIRET_RE = re.compile(r"^\d{14}$")

#: Top-level keys of a fiche, in the order they are written.
FICHE_KEYS: list[str] = [
    "id",
    "title",
    "summary",
    "scale",
    "start_date",
    "end_date",
    "themes",
    "publics",
    "alliance_levels",
    "maturity",
    *[c for c in INITIATIVE_TEXT_COLUMNS if c != "summary"],
    "source",
    "contact",
    "porteurs",
    "partners",
    "territories",
    "indicators",
    "funding",
    "source_total_eur",
    "recorded_at",
]
REQUIRED_KEYS: list[str] = ["id", "title", "themes", "maturity", "source", "recorded_at"]

_SUB_KEYS: dict[str, set[str]] = {
    "source": {"document", "sheet", "url"},
    "contact": {"organisation", "role"},
    "porteurs": {"name", "type", "siret"},
    "partners": {"name", "type", "siret"},
    "territories": {"level", "code"},
    "indicators": {"label", "value", "unit", "year"},
    "funding": {
        "funder",
        "funder_type",
        "scheme",
        "amount_eur",
        "year_start",
        "year_end",
        "beneficiary",
        "beneficiary_siret",
        "territory",
    },
}

_NAMES_FR: dict[str, str] = {
    "scale": "échelle",
    "theme": "thème",
    "public": "public",
    "alliance_level": "niveau d'alliance",
    "maturity": "maturité",
    "org_type": "type de structure",
    "territory_level": "niveau de territoire",
    "funder_type": "type de financeur",
    "scheme": "dispositif",
}


# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------


def _lines(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map every key path of a composed YAML node to its 1-based line."""
    out: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        out[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
                out[(*path, key)] = k.start_mark.line + 1
                walk(v, (*path, key))
                out[(*path, key)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return out


@dataclass
class _Fiche:
    """Parsing context of one file: its name, line index and the problems found."""

    file: str
    lines: dict[tuple[Any, ...], int]
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def add(self, path: tuple[Any, ...], message: str, value: object | None = None) -> None:
        self.problems.append(
            Problem(
                message=message,
                file=self.file,
                line=self.line(path),
                column=_field_name(path),
                value=value,
            )
        )


def _field_name(path: tuple[Any, ...]) -> str | None:
    """``("funding", 1, "amount_eur")`` -> ``"funding[2].amount_eur"`` (1-based)."""
    if not path:
        return None
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# --------------------------------------------------------------------------------------------
# Field checks
# --------------------------------------------------------------------------------------------


def _text(ctx: _Fiche, data: dict[str, Any], key: str, path: tuple[Any, ...],
          required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            ctx.add((*path, key), "champ obligatoire manquant ou vide")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        ctx.add((*path, key), "texte attendu", value)
        return None
    return str(value).strip()


def _code(ctx: _Fiche, value: object, vocabulary: vocab.Vocabulary,
          path: tuple[Any, ...]) -> str | None:
    name = _NAMES_FR.get(vocabulary.name, vocabulary.name)
    if value is None or (isinstance(value, str) and not value.strip()):
        ctx.add(path, f"{name} manquant(e)")
        return None
    code = vocabulary.normalize(str(value))
    if code is None:
        ctx.add(path, f"{name} inconnu(e) ; valeurs possibles : "
                f"{vocabulary.valid_values_text()}", value)
    return code


def _codes(ctx: _Fiche, data: dict[str, Any], key: str, vocabulary: vocab.Vocabulary,
           required: bool = False) -> list[str]:
    value = data.get(key)
    if value is None or value == []:
        if required:
            ctx.add((key,), "au moins une valeur est obligatoire")
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        ctx.add((key,), "liste attendue", value)
        return []
    out: list[str] = []
    for i, item in enumerate(value):
        code = _code(ctx, item, vocabulary, (key, i))
        if code is not None and code not in out:
            out.append(code)
    return out


def _date(ctx: _Fiche, data: dict[str, Any], key: str) -> dt.date | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        ctx.add((key,), "date invalide (format attendu AAAA-MM-JJ)", value)
        return None


def _timestamp(ctx: _Fiche, data: dict[str, Any], key: str) -> pd.Timestamp | None:
    value = data.get(key)
    if value is None or value == "":
        return None  # reported with the other required fields
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ctx.add((key,), "horodatage invalide (format attendu AAAA-MM-JJTHH:MM:SSZ)", value)
        return None
    if pd.isna(ts):
        ctx.add((key,), "horodatage invalide", value)
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _number(ctx: _Fiche, value: object, path: tuple[Any, ...], required: bool = True,
            minimum: float | None = None) -> float | None:
    if value is None or value == "":
        if required:
            ctx.add(path, "nombre obligatoire manquant")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.add(path, "nombre attendu", value)
        return None
    if minimum is not None and value < minimum:
        ctx.add(path, f"le nombre doit être supérieur ou égal à {minimum:g}", value)
        return None
    return float(value)


def _year(ctx: _Fiche, value: object, path: tuple[Any, ...], required: bool) -> int | None:
    if value is None or value == "":
        if required:
            ctx.add(path, "année obligatoire manquante")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1900 <= value <= 2100:
        ctx.add(path, "année invalide (nombre entier à quatre chiffres attendu)", value)
        return None
    return value


def _mapping(ctx: _Fiche, value: object, path: tuple[Any, ...],
             allowed: set[str]) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        ctx.add(path, "tableau de champs (clé: valeur) attendu", value)
        return None
    for key in value:
        if key not in allowed:
            ctx.add((*path, key),
                    f"champ inconnu ; champs possibles : {', '.join(sorted(allowed))}", key)
    return value


def _items(ctx: _Fiche, data: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        ctx.add((key,), "liste attendue", value)
        return []
    out = []
    for i, item in enumerate(value):
        mapping = _mapping(ctx, item, (key, i), _SUB_KEYS[key])
        if mapping is not None:
            out.append((i, mapping))
    return out


def _siret(ctx: _Fiche, value: object, path: tuple[Any, ...]) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).replace(" ", "")
    if not SIRET_RE.match(text):
        ctx.add(path, "SIRET invalide (14 chiffres attendus)", value)
        return None
    return text


# --------------------------------------------------------------------------------------------
# One fiche
# --------------------------------------------------------------------------------------------


@dataclass
class _Rows:
    initiatives: list[dict[str, Any]] = field(default_factory=list)
    organisations: list[dict[str, Any]] = field(default_factory=list)
    territories: list[dict[str, Any]] = field(default_factory=list)
    indicators: list[dict[str, Any]] = field(default_factory=list)
    funding: list[dict[str, Any]] = field(default_factory=list)


def _parse_fiche(path: Path, rows: _Rows) -> list[Problem]:
    """Parse one YAML fiche into ``rows``; return its problems (rows are only trusted when
    the whole load has no problem)."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(f"fichier illisible (UTF-8 attendu) : {exc}", file=name)]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [Problem(f"YAML invalide : {getattr(exc, 'problem', None) or exc}", file=name,
                        line=mark.line + 1 if mark is not None else None)]
    ctx = _Fiche(name, _lines(node))
    if not isinstance(data, dict):
        ctx.add((), "la fiche doit être un tableau de champs (clé: valeur)")
        return ctx.problems

    for key in data:
        if key not in FICHE_KEYS:
            ctx.add((key,), f"champ inconnu ; champs possibles : {', '.join(FICHE_KEYS)}", key)
    for key in REQUIRED_KEYS:
        if data.get(key) in (None, "", []):
            ctx.add((key,), "champ obligatoire manquant ou vide")

    initiative_id = _text(ctx, data, "id", ())
    if initiative_id is not None:
        if not SLUG_RE.match(initiative_id):
            ctx.add(("id",), "identifiant invalide (minuscules, chiffres et tirets : "
                    "« ma-fiche-2024 »)", initiative_id)
        if path.stem != initiative_id:
            ctx.add(("id",), f"l'identifiant doit être le nom du fichier sans « .yaml » "
                    f"(« {path.stem} »)", initiative_id)
    title = _text(ctx, data, "title", ())
    scale = None
    if data.get("scale") not in (None, ""):
        scale = _code(ctx, data.get("scale"), vocab.SCALES, ("scale",))
    start = _date(ctx, data, "start_date")
    end = _date(ctx, data, "end_date")
    if start is not None and end is not None and end < start:
        ctx.add(("end_date",), f"la date de fin précède la date de début ({start.isoformat()})",
                end.isoformat())
    themes = _codes(ctx, data, "themes", vocab.THEMES)
    publics = _codes(ctx, data, "publics", vocab.PUBLICS)
    levels = _codes(ctx, data, "alliance_levels", vocab.ALLIANCE_LEVELS)
    maturity = None
    if data.get("maturity") not in (None, ""):
        maturity = _code(ctx, data.get("maturity"), vocab.MATURITY, ("maturity",))
    texts = {c: _text(ctx, data, c, ()) for c in INITIATIVE_TEXT_COLUMNS}

    source: dict[str, Any] = {}
    if data.get("source") is not None:
        source = _mapping(ctx, data["source"], ("source",), _SUB_KEYS["source"]) or {}
        if source:
            _text(ctx, source, "document", ("source",), required=True)
    contact: dict[str, Any] = {}
    if data.get("contact") is not None:
        contact = _mapping(ctx, data["contact"], ("contact",), _SUB_KEYS["contact"]) or {}
    recorded_at = _timestamp(ctx, data, "recorded_at")

    iid = initiative_id or ""
    for key, role in (("porteurs", "porteur"), ("partners", "partenaire")):
        for i, org in _items(ctx, data, key):
            rows.organisations.append({
                "initiative_id": iid,
                "role": role,
                "name": _text(ctx, org, "name", (key, i), required=True),
                "type": _code(ctx, org.get("type"), vocab.ORG_TYPES, (key, i, "type")),
                "siret": _siret(ctx, org.get("siret"), (key, i, "siret")),
            })

    territories: list[tuple[str, str]] = []
    for i, terr in _items(ctx, data, "territories"):
        level = _code(ctx, terr.get("level"), vocab.TERRITORY_LEVELS, ("territories", i, "level"))
        code = _text(ctx, terr, "code", ("territories", i), required=True)
        if level is not None and code is not None:
            if (level, code) in territories:
                ctx.add(("territories", i), "territoire en double", f"{level} {code}")
                continue
            territories.append((level, code))
            rows.territories.append({"initiative_id": iid, "level": level, "code": code})

    for i, ind in _items(ctx, data, "indicators"):
        rows.indicators.append({
            "initiative_id": iid,
            "label": _text(ctx, ind, "label", ("indicators", i), required=True),
            "value": _number(ctx, ind.get("value"), ("indicators", i, "value")),
            "unit": _text(ctx, ind, "unit", ("indicators", i)),
            "year": _year(ctx, ind.get("year"), ("indicators", i, "year"), required=False),
        })

    porteur_names = [o["name"] for o in rows.organisations
                     if o["initiative_id"] == iid and o["role"] == "porteur" and o["name"]]
    for i, line in _items(ctx, data, "funding"):
        p = ("funding", i)
        year_start = _year(ctx, line.get("year_start"), (*p, "year_start"), required=True)
        year_end = _year(ctx, line.get("year_end"), (*p, "year_end"), required=False)
        if year_start is not None and year_end is not None and year_end < year_start:
            ctx.add((*p, "year_end"), f"l'année de fin précède l'année de début ({year_start})",
                    year_end)
        if year_end is None:
            year_end = year_start
        t_level: str | None = None
        t_code: str | None = None
        if line.get("territory") is not None:
            own = _mapping(ctx, line["territory"], (*p, "territory"), _SUB_KEYS["territories"])
            if own is not None:
                t_level = _code(ctx, own.get("level"), vocab.TERRITORY_LEVELS,
                                (*p, "territory", "level"))
                t_code = _text(ctx, own, "code", (*p, "territory"), required=True)
        elif territories:
            t_level, t_code = territories[0]
        else:
            ctx.add((*p, "territory"), "ligne sans territoire : la fiche n'a aucun territoire "
                    "et la ligne n'en donne pas")
        rows.funding.append({
            "id": f"{iid}-f{i + 1}",
            "funder": _text(ctx, line, "funder", p, required=True),
            "funder_type": _code(ctx, line.get("funder_type"), vocab.FUNDER_TYPES,
                                 (*p, "funder_type")),
            "scheme": _code(ctx, line.get("scheme"), vocab.SCHEMES, (*p, "scheme")),
            "amount_eur": _number(ctx, line.get("amount_eur"), (*p, "amount_eur"), minimum=0),
            "year_start": year_start,
            "year_end": year_end,
            "beneficiary": _text(ctx, line, "beneficiary", p)
            or (porteur_names[0] if porteur_names else None),
            "beneficiary_siret": _siret(ctx, line.get("beneficiary_siret"),
                                        (*p, "beneficiary_siret")),
            "territory_level": t_level,
            "territory_code": t_code,
            "initiative_id": iid,
            "source": f"seed:{name}",
        })
    _number(ctx, data.get("source_total_eur"), ("source_total_eur",), required=False, minimum=0)

    rows.initiatives.append({
        "id": iid,
        "title": title,
        "summary": texts["summary"],
        "scale": scale,
        "start_date": start,
        "end_date": end,
        "themes": themes,
        "publics": publics,
        "alliance_levels": levels,
        "maturity": maturity,
        **{c: texts[c] for c in INITIATIVE_TEXT_COLUMNS if c != "summary"},
        "source_document": _text(ctx, source, "document", ("source",)),
        "source_sheet": _text(ctx, source, "sheet", ("source",)),
        "source_url": _text(ctx, source, "url", ("source",)),
        "contact_organisation": _text(ctx, contact, "organisation", ("contact",)),
        "contact_role": _text(ctx, contact, "role", ("contact",)),
        "contact_email": None,
        "created_at": recorded_at,
        "updated_at": recorded_at,
        "version": 1,
    })
    return ctx.problems


def _tables(rows: _Rows) -> Catalogue:
    """Typed DataFrames from parsed rows."""
    def frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
        df = pd.DataFrame.from_records(records, columns=columns)
        return df.astype({c: "object" for c in columns}) if df.empty else df

    initiatives = frame(rows.initiatives, INITIATIVE_COLUMNS)
    for col in ("start_date", "end_date", "contact_email"):
        initiatives[col] = pd.Series(list(initiatives[col]), index=initiatives.index,
                                     dtype="object")
    for col in ("created_at", "updated_at"):
        initiatives[col] = pd.to_datetime(initiatives[col], utc=True)
    initiatives["version"] = initiatives["version"].astype("int64")

    indicators = frame(rows.indicators, INDICATOR_COLUMNS)
    indicators["value"] = indicators["value"].astype("float64")
    indicators["year"] = indicators["year"].astype("Int64")

    funding = frame(rows.funding, FUNDING_COLUMNS)
    funding["amount_eur"] = funding["amount_eur"].astype("float64")
    for col in ("year_start", "year_end"):
        funding[col] = funding[col].astype("Int64")
    funding["beneficiary_siret"] = funding["beneficiary_siret"].astype("object")

    organisations = frame(rows.organisations, ORGANISATION_COLUMNS)
    organisations["siret"] = organisations["siret"].astype("object")
    return Catalogue(
        initiatives=initiatives,
        organisations=organisations,
        territories=frame(rows.territories, TERRITORY_COLUMNS),
        indicators=indicators,
        funding=funding,
    )


def _load(paths: list[Path]) -> Catalogue:
    rows = _Rows()
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in paths:
        before = len(rows.initiatives)
        problems.extend(_parse_fiche(path, rows))
        if len(rows.initiatives) > before:
            iid = rows.initiatives[-1]["id"]
            if iid and iid in seen:
                problems.append(Problem(f"identifiant déjà utilisé par « {seen[iid]} »",
                                        file=path.name, column="id", value=iid))
            elif iid:
                seen[iid] = path.name
    if problems:
        n = len(paths)
        raise ValidationError(
            problems,
            summary=f"Fiches refusées ({len(problems)} problème{'s' if len(problems) > 1 else ''}"
            f" dans {n} fichier{'s' if n > 1 else ''})",
        )
    return _tables(rows)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_seed_file(path: Path | str) -> Catalogue:
    """Read one YAML fiche into a :class:`Catalogue` (one initiative).

    Raises :class:`ValidationError` listing every problem (file, line, field, value)."""
    return _load([Path(path)])


def load_seed_dir(path: Path | str) -> Catalogue:
    """Read every ``*.yaml`` fiche of folder ``path`` (sorted by file name).

    Raises :class:`ValidationError` listing every problem of every file, and
    :class:`ValidationError` too when the folder does not exist."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValidationError([Problem("dossier des fiches introuvable", file=str(folder))])
    return _load(sorted(folder.glob("*.yaml"), key=lambda p: p.name))


def seed_totals(catalogue: Catalogue) -> pd.DataFrame:
    """Funding total per initiative: columns ``initiative_id, funding_eur`` (one row per
    initiative, in catalogue order, 0 when it has no funding line)."""
    sums = catalogue.funding.groupby("initiative_id")["amount_eur"].sum()
    ids = list(catalogue.initiatives["id"])
    return pd.DataFrame({
        "initiative_id": pd.Series(ids, dtype="object"),
        "funding_eur": pd.Series([float(sums.get(i, 0.0)) for i in ids], dtype="float64"),
    })

"""Data shaping for the Catalogue, Fiche, Comparer, Couverture and Exporter pages.

Pure functions (no Streamlit): they take a :class:`~territoires.catalogue.model.Catalogue`, a
:class:`~territoires.pipeline.territories.TerritoryIndex` and
:class:`~territoires.analysis.queries.Filters`
and return small DataFrames or strings ready to render, so that the pages only read widgets,
call these functions and draw. Private columns (``contact_email``) never leave this module.
The two map builders return folium maps drawn with :mod:`territoires.analysis.maps`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote_plus, urlencode

import altair as alt
import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from territoires.analysis import maps, queries
from territoires.analysis.formatting import (
    MISSING,
    UNKNOWN_POPULATION,
    fmt_datetime,
    fmt_eur,
    fmt_int,
    fmt_number,
    fmt_population,
)
from territoires.analysis.queries import Filters, Selection
from territoires.catalogue import export, reports
from territoires.catalogue.model import PRIVATE_COLUMNS, Catalogue
from territoires.errors import Problem
from territoires.pipeline.layers import LEVEL_LAYER
from territoires.pipeline.territories import TerritoryIndex
from territoires.vocab import (
    ALLIANCE_LEVELS,
    FUNDER_TYPES,
    MATURITY,
    ORG_TYPES,
    PUBLICS,
    SCALES,
    SCHEMES,
    TERRITORY_LEVELS,
    THEMES,
    Vocabulary,
)

#: Export formats offered by the Exporter page: code -> (French label, extension, MIME type).
EXPORT_FORMATS: dict[str, tuple[str, str, str]] = {
    "csv": ("CSV pour Excel (zip, séparateur « ; »)", "zip", "application/zip"),
    "xlsx": ("Classeur Excel (XLSX)", "xlsx",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "geojson": ("GeoJSON", "geojson", "application/geo+json"),
    "gpkg": ("GeoPackage", "gpkg", "application/geopackage+sqlite3"),
    "html": ("Carte autonome (HTML)", "html", "text/html"),
}
#: Most territories highlighted on a map (the largest first).
MAX_HIGHLIGHTS = 400
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~$>])")
HIGHLIGHT_COLOUR = "#d7301f"
_ZWSP = "\u200b"
#: A colon that Streamlit's Markdown may read as the start of an icon, an emoji or a
#: directive (":material/home:", ":smile:", ":red[", ":help", "::x"): before a name
#: character or a colon, backslash-escaped or not
_MD_COLON = re.compile(r":(?=\\?[A-Za-z0-9_+\-:])")
#: "www." in any case (Streamlit's Markdown links "WWW.example.fr" too)
_MD_WWW = re.compile(r"(?i)\b(www)\.")


# ----------------------------------------------------------------------------- basics


def is_missing(value: object) -> bool:
    """True for None, NaN, NA and empty strings."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    try:
        return bool(pd.isna(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def as_list(value: object) -> list[str]:
    """A list cell (list, array or "a | b" text) as a list of strings."""
    if is_missing(value):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    try:
        return [str(v) for v in value if not is_missing(v)]  # type: ignore[attr-defined]
    except TypeError:
        return [str(value)]


def labels(value: object, vocab: Vocabulary) -> list[str]:
    """French labels of a list cell of ``vocab`` codes."""
    return [vocab.label_of(v) for v in as_list(value)]


def md_text(value: object) -> str:
    """Catalogue text made safe for ``st.markdown``: markup characters are backslash-escaped
    (so no link, image, HTML or formula can be injected); bare URLs, ``www.`` names (any
    case) and e-mail addresses are broken by a zero-width space, because Streamlit's
    Markdown links them even when escaped (seen in chromium); so is every colon before a
    letter, digit, ``_``, ``+`` or ``-``, because Streamlit reads ``:material/…:`` icons,
    ``:smile:`` emoji, ``:streamlit:`` and ``:red[…]``-like directives after the Markdown is
    parsed, escapes or not; line breaks and "- " list items are kept. Missing -> "—"."""
    if is_missing(value):
        return MISSING
    lines = []
    for line in str(value).replace("\r\n", "\n").split("\n"):
        stripped = line.lstrip()
        bullet = stripped.startswith(("- ", "• "))
        body = _MD_SPECIAL.sub(r"\\\1", stripped[2:] if bullet else stripped)
        body = body.replace("&", "&amp;")
        # what would start a list or a rule, also after a kept bullet ("- ---", "- 1. x")
        if re.match(r"^\d+[.)](\s|$)", body):
            body = re.sub(r"^(\d+)([.)])", r"\1\\\2", body)
        if body.startswith(("-", "=")):
            body = "\\" + body
        lines.append(f"- {body}" if bullet else body)
    # a single newline is a soft break in Markdown: make it a real one
    out: list[str] = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line and nxt and not nxt.startswith("- ") and not line.startswith("- "):
            out.append(line + "  ")
        else:
            out.append(line)
    text = "\n".join(out).strip()
    text = _MD_COLON.sub(f":{_ZWSP}", text.replace("://", f":{_ZWSP}//"))
    return _MD_WWW.sub(f"\\1{_ZWSP}.", text).replace("@", f"{_ZWSP}@")


def fmt_amount(value: object) -> str:
    """French euro amount, with cents only when there are some ("255 349,05 €")."""
    if is_missing(value):
        return MISSING
    number = float(value)  # type: ignore[arg-type]
    return fmt_eur(number, 0 if number == round(number) else 2)


def fmt_date(value: object) -> str:
    """A date as "01/09/2023" ("—" when missing)."""
    if is_missing(value):
        return MISSING
    try:
        return pd.Timestamp(value).strftime("%d/%m/%Y")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)


def fmt_period(start: object, end: object) -> str:
    """"2023" or "2023–2024" from funding years."""
    if is_missing(start):
        return MISSING
    a = int(float(start))  # type: ignore[arg-type]
    b = a if is_missing(end) else int(float(end))  # type: ignore[arg-type]
    return str(a) if a == b else f"{a}–{b}"


def _ids(df: pd.DataFrame, column: str) -> pd.Series:
    return df[column].astype("str")


# ----------------------------------------------------------------------------- URL state


def parse_territories(text: str | None) -> list[tuple[str, str]]:
    """``"commune:33063,qpv:QN03307M"`` -> ``[("commune", "33063"), ("qpv", "QN03307M")]``;
    malformed parts and duplicates are dropped."""
    out: list[tuple[str, str]] = []
    for part in (text or "").split(","):
        level, _, code = part.strip().partition(":")
        pair = (level.strip(), code.strip())
        if pair[0] and pair[1] and pair not in out:
            out.append(pair)
    return out


def format_territories(territories: Sequence[tuple[str, str]]) -> str:
    """Inverse of :func:`parse_territories`."""
    return ",".join(f"{lvl}:{code}" for lvl, code in territories)


def parse_ids(text: str | None) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (empty parts and duplicates dropped)."""
    out: list[str] = []
    for part in (text or "").split(","):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


def page_url(page: str, params: Mapping[str, str]) -> str:
    """Relative URL of a page with query parameters (``fiche?id=a&t=commune%3A33119``)."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{page}?{query}" if query else page


# ----------------------------------------------------------------------------- catalogue


CATALOGUE_COLUMNS = ["fiche", "title", "porteurs", "territoires", "themes", "publics",
                     "maturity", "start_date", "end_date", "funding_eur", "id"]


def catalogue_table(catalogue: Catalogue, index: TerritoryIndex | None,
                    params: Mapping[str, str] | None = None,
                    limit: int | None = None, offset: int = 0) -> pd.DataFrame:
    """One row per initiative for the Catalogue table: ``fiche`` (relative link to the fiche
    keeping ``params``), title, porteurs, territoires (names), themes and publics (lists of
    French labels), maturity (label), start/end dates (datetime), funding_eur (own lines of
    the catalogue) and id. Sorted by title; only ``limit`` rows from row ``offset`` (a page
    of the table) when given."""
    ini = catalogue.initiatives
    if ini.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in CATALOGUE_COLUMNS})
    order = np.argsort(ini["title"].astype("str").str.casefold().to_numpy(dtype=object),
                       kind="stable")
    start = max(int(offset), 0)
    ini = ini.iloc[order[start:start + limit] if limit is not None else order[start:]]
    ids = _ids(ini, "id")
    orgs = catalogue.organisations
    terr = catalogue.territories
    fund = catalogue.funding
    if len(ini) < len(catalogue.initiatives):
        keep = set(ids)
        orgs = orgs[_ids(orgs, "initiative_id").isin(keep)]
        terr = terr[_ids(terr, "initiative_id").isin(keep)]
        fund = fund[fund["initiative_id"].astype("str").isin(keep)]
    is_porteur = (orgs["role"].astype("str") == "porteur").to_numpy(dtype=bool)
    porteurs = _joined(_ids(orgs, "initiative_id").to_numpy(dtype=object)[is_porteur],
                       orgs["name"].astype("str").to_numpy(dtype=object)[is_porteur])
    codes = terr["code"].astype("str").to_numpy(dtype=object)
    names = codes.copy()
    if index is not None and len(terr):
        tids = index.tids(terr["level"], terr["code"])
        known = tids >= 0
        names[known] = index.table["nom"].astype("str").to_numpy(dtype=object)[tids[known]]
    terr_names = _joined(_ids(terr, "initiative_id").to_numpy(dtype=object), names)
    totals = (pd.to_numeric(fund["amount_eur"], errors="coerce").fillna(0.0)
              .groupby(fund["initiative_id"].astype("str")).sum())
    base = {k: v for k, v in (params or {}).items() if k != "id" and v not in (None, "")}
    suffix = f"&{urlencode(base)}" if base else ""
    theme_labels, public_labels = THEMES.items, PUBLICS.items
    id_list = ids.tolist()
    out = pd.DataFrame({
        "fiche": [f"fiche?id={quote_plus(i)}{suffix}" for i in id_list],
        "title": ini["title"].astype("str").to_numpy(dtype=object),
        "porteurs": [porteurs.get(i, "") for i in id_list],
        "territoires": [terr_names.get(i, "") for i in id_list],
        "themes": [[theme_labels.get(t, t) for t in _fast_list(v)] for v in ini["themes"]],
        "publics": [[public_labels.get(t, t) for t in _fast_list(v)] for v in ini["publics"]],
        "maturity": ini["maturity"].astype("str").map(MATURITY.items).fillna(
            ini["maturity"].astype("str")).to_numpy(dtype=object),
        "start_date": pd.to_datetime(ini["start_date"], errors="coerce").to_numpy(),
        "end_date": pd.to_datetime(ini["end_date"], errors="coerce").to_numpy(),
        "funding_eur": ids.map(totals).fillna(0.0).astype(float).to_numpy(),
        "id": ids.to_numpy(dtype=object),
    })
    return out


def _fast_list(value: object) -> list[str]:
    """:func:`as_list` with a fast path for real lists of strings."""
    if isinstance(value, list):
        return value
    return as_list(value)


def _joined(keys: np.ndarray, values: np.ndarray) -> dict[str, str]:
    """key -> ", ".join of its distinct values (in order)."""
    groups: dict[str, dict[str, None]] = {}
    for key, value in zip(keys.tolist(), values.tolist(), strict=True):
        groups.setdefault(key, {})[value] = None
    return {k: ", ".join(v) for k, v in groups.items()}


def initiative_options(catalogue: Catalogue) -> dict[str, str]:
    """id -> title of the catalogue's initiatives, sorted by title (for select boxes)."""
    ini = catalogue.initiatives
    pairs = sorted(zip(_ids(ini, "id"), ini["title"].astype("str"), strict=True),
                   key=lambda p: p[1].casefold())
    return dict(pairs)


# ----------------------------------------------------------------------------- fiche


def initiative_record(catalogue: Catalogue, initiative_id: str) -> dict[str, object] | None:
    """The initiative's row as a dict (private columns removed), or None if unknown."""
    ini = catalogue.initiatives
    rows = ini[_ids(ini, "id") == initiative_id]
    if rows.empty:
        return None
    record = rows.iloc[0].to_dict()
    for col in PRIVATE_COLUMNS:
        record.pop(col, None)
    return record


def fiche_facts(record: Mapping[str, object]) -> list[tuple[str, str]]:
    """(French label, value) pairs of the short fields of a fiche (plain text)."""
    start, end = fmt_date(record.get("start_date")), fmt_date(record.get("end_date"))
    return [
        ("Échelle", SCALES.label_of(str(record.get("scale"))) if not is_missing(
            record.get("scale")) else MISSING),
        ("Dates", f"du {start} au {end}" if end != MISSING else f"depuis le {start}"),
        ("Maturité", MATURITY.label_of(str(record.get("maturity")))),
        ("Thèmes", ", ".join(labels(record.get("themes"), THEMES)) or MISSING),
        ("Publics", ", ".join(labels(record.get("publics"), PUBLICS)) or MISSING),
        ("Niveau d'alliance",
         ", ".join(labels(record.get("alliance_levels"), ALLIANCE_LEVELS)) or MISSING),
    ]


#: Long text fields of a fiche, in display order.
FICHE_SECTIONS: list[tuple[str, str]] = [
    ("objectives", "Objectifs"),
    ("actions", "Actions"),
    ("results", "Résultats"),
    ("difficulties", "Difficultés"),
    ("lessons", "Enseignements"),
    ("outlook", "Perspectives"),
]


def fiche_facts_markdown(record: Mapping[str, object], columns: int = 3) -> list[str]:
    """The short fields of a fiche (:func:`fiche_facts`) as ``columns`` Markdown texts, one
    per column (facts dealt in turn, as in a grid read row by row), values escaped
    (:func:`md_text`): one element per column, each Streamlit element being drawn on its
    own by the browser (``bench/bench_elements.py``)."""
    out: list[list[str]] = [[] for _ in range(columns)]
    for i, (label, value) in enumerate(fiche_facts(record)):
        out[i % columns].append(f"**{label}**  \n{md_text(value)}")
    return ["\n\n".join(parts) for parts in out]


def fiche_sections_markdown(record: Mapping[str, object]) -> str:
    """The long text fields of a fiche (:data:`FICHE_SECTIONS`) as one Markdown text: a
    level-2 heading (as ``st.header``) then the escaped text (:func:`md_text`) of each."""
    return "\n\n".join(f"## {title}\n\n{md_text(record.get(field))}"
                        for field, title in FICHE_SECTIONS)


def organisations_table(catalogue: Catalogue, initiative_id: str, role: str) -> pd.DataFrame:
    """``Structure, Type`` (French label) of the initiative's porteurs or partenaires."""
    orgs = catalogue.organisations
    sub = orgs[(_ids(orgs, "initiative_id") == initiative_id)
               & (orgs["role"].astype("str") == role)]
    return pd.DataFrame({
        "Structure": sub["name"].astype("str").to_numpy(dtype=object),
        "Type": [ORG_TYPES.label_of(str(t)) for t in sub["type"]],
    }, columns=["Structure", "Type"])


def territories_table(catalogue: Catalogue, index: TerritoryIndex,
                      initiative_id: str) -> pd.DataFrame:
    """``Niveau, Territoire, Code`` of the initiative's territories (names from the index)."""
    terr = catalogue.territories
    sub = terr[_ids(terr, "initiative_id") == initiative_id]
    return pd.DataFrame({
        "Niveau": [TERRITORY_LEVELS.label_of(str(lv)) for lv in sub["level"]],
        "Territoire": [index.name(str(lv), str(c)) for lv, c in zip(sub["level"], sub["code"],
                                                                   strict=True)],
        "Code": sub["code"].astype("str").to_numpy(dtype=object),
    }, columns=["Niveau", "Territoire", "Code"])


def initiative_territories(catalogue: Catalogue, initiative_id: str) -> list[tuple[str, str]]:
    """(level, code) pairs of the initiative's territories."""
    terr = catalogue.territories
    sub = terr[_ids(terr, "initiative_id") == initiative_id]
    return [(str(lv), str(c)) for lv, c in zip(sub["level"], sub["code"], strict=True)]


def indicators_table(catalogue: Catalogue, initiative_id: str) -> pd.DataFrame:
    """``Indicateur, Valeur, Unité, Année`` (values in French format)."""
    ind = catalogue.indicators
    sub = ind[_ids(ind, "initiative_id") == initiative_id]
    return pd.DataFrame({
        "Indicateur": sub["label"].astype("str").to_numpy(dtype=object),
        "Valeur": [fmt_number(v, 0 if is_missing(v) or float(v) == round(float(v)) else 2)
                   for v in sub["value"]],
        "Unité": ["" if is_missing(u) else str(u) for u in sub["unit"]],
        "Année": ["" if is_missing(y) else str(int(y)) for y in sub["year"]],
    }, columns=["Indicateur", "Valeur", "Unité", "Année"])


def funding_table(catalogue: Catalogue, initiative_id: str) -> pd.DataFrame:
    """Funding lines of an initiative: ``Période, Financeur, Type de financeur, Dispositif,
    Montant`` (French strings) plus ``annee`` (first year), ``montant_eur`` (number) and
    ``financeur`` (for charts); sorted by year then funder."""
    fund = catalogue.funding
    sub = fund[fund["initiative_id"].astype("str") == initiative_id]
    amounts = pd.to_numeric(sub["amount_eur"], errors="coerce").fillna(0.0).astype(float)
    out = pd.DataFrame({
        "Période": [fmt_period(a, b) for a, b in zip(sub["year_start"], sub["year_end"],
                                                     strict=True)],
        "Financeur": sub["funder"].astype("str").to_numpy(dtype=object),
        "Type de financeur": [FUNDER_TYPES.label_of(str(t)) for t in sub["funder_type"]],
        "Dispositif": [SCHEMES.label_of(str(s)) for s in sub["scheme"]],
        "Montant": [fmt_amount(a) for a in amounts],
        "annee": pd.to_numeric(sub["year_start"], errors="coerce").astype("Int64").to_numpy(),
        "montant_eur": amounts.to_numpy(),
        "financeur": sub["funder"].astype("str").to_numpy(dtype=object),
    })
    return out.sort_values(["annee", "financeur"], kind="stable").reset_index(drop=True)


def funding_total(table: pd.DataFrame) -> str:
    """Total of a :func:`funding_table` as French text."""
    return fmt_amount(float(table["montant_eur"].sum())) if len(table) else MISSING


def related_links(catalogue: Catalogue, index: TerritoryIndex, initiative_id: str,
                  limit: int = 5) -> list[tuple[str, str, str]]:
    """(id, title, shared themes) of related initiatives, best first."""
    rel = queries.related_initiatives(catalogue, index, initiative_id, limit=limit)
    return [(str(i), str(t), str(s)) for i, t, s in zip(rel["id"], rel["title"],
                                                        rel["shared_themes"], strict=True)]


# ----------------------------------------------------------------------------- comparer


COMPARE_ROWS: list[tuple[str, str]] = [
    ("population", "Population"),
    ("initiatives", "Initiatives"),
    ("porteurs", "Porteurs"),
    ("funding_eur", "Financements"),
    ("funding_per_inhabitant", "Financement par habitant"),
    ("qpv_reached", "QPV touchés"),
    ("qpv_population", "Population des QPV"),
    ("qpv_population_reached", "Population des QPV touchés"),
    ("funding_per_qpv_inhabitant", "Financement par habitant des QPV"),
]


def _qpv_population_text(row: Mapping[str, object]) -> str:
    """"12 300", or how much of it is known ("inconnue", "4 100 (1 QPV sur 2)")."""
    reached, known = int(row["qpv_reached"]), int(row["qpv_population_known"])
    if reached == 0:
        return "0"
    if known == 0:
        return "inconnue"
    text = fmt_int(row["qpv_population_reached"])
    return text if known == reached else f"{text} ({known} QPV sur {reached})"


def _qpv_area_population_text(row: Mapping[str, object]) -> str:
    """Known inhabitants of the territory's QPV: "19 200", "19 200 (4 QPV sur 5)",
    "inconnue", or "—" without QPV."""
    total, known = int(row["qpv_total"]), int(row["qpv_population_area_known"])
    if total == 0:
        return MISSING
    if known == 0:
        return UNKNOWN_POPULATION
    text = fmt_int(row["qpv_population"])
    return text if known == total else f"{text} ({known} QPV sur {total})"


def qpv_inhabitants_metric(figures: queries.KeyFigures) -> tuple[str, str]:
    """Accueil tile "habitants des QPV touchés / habitants des QPV de la zone": (value,
    help). Unknown figures say "inconnue", never 0."""
    help_text = ("Population municipale des QPV touchés par au moins une initiative, sur "
                 "celle des QPV de la zone filtrée.")
    if figures.qpv_in_area == 0:
        return MISSING, help_text + " Aucun QPV dans la zone."
    if figures.qpv_population_in_area is None:
        return UNKNOWN_POPULATION, help_text + " Population inconnue pour ces QPV."
    reached = (0.0 if figures.qpv_reached == 0 else figures.qpv_population_reached)
    value = f"{fmt_population(reached)} / {fmt_int(figures.qpv_population_in_area)}"
    if figures.qpv_population_unknown:
        help_text += (f" Population inconnue pour {fmt_int(figures.qpv_population_unknown)} "
                      "QPV de la zone, laissés de côté.")
    return value, help_text


def territory_names(index: TerritoryIndex, territories: Sequence[tuple[str, str]]) -> list[str]:
    """Column names of the compared territories ("Cenon (commune)"), unique."""
    out: list[str] = []
    for level, code in territories:
        name = f"{index.name(level, code)} ({TERRITORY_LEVELS.label_of(level).lower()})"
        if name in out:
            name = f"{name} {code}"
        out.append(name)
    return out


def comparison_table(figures: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """:func:`queries.compare_territories` as French text: rows = figures, one column per
    territory (``names``, in order)."""
    columns: dict[str, list[str]] = {}
    for name, (_, row) in zip(names, figures.iterrows(), strict=True):
        values = []
        for key, _label in COMPARE_ROWS:
            v = row[key]
            if key in ("funding_eur",):
                values.append(fmt_eur(v))
            elif key == "funding_per_inhabitant":
                values.append(fmt_eur(v, 2))
            elif key == "qpv_reached":
                values.append(f"{fmt_int(v)} sur {fmt_int(row['qpv_total'])}")
            elif key == "qpv_population_reached":
                values.append(_qpv_population_text(row))
            elif key == "qpv_population":
                values.append(_qpv_area_population_text(row))
            elif key == "funding_per_qpv_inhabitant":
                values.append(MISSING if int(row["qpv_total"]) == 0
                              else fmt_eur(v, 2) if pd.notna(v) else UNKNOWN_POPULATION)
            else:
                values.append(fmt_int(v))
        columns[name] = values
    return pd.DataFrame(columns, index=pd.Index([lbl for _, lbl in COMPARE_ROWS], name="Mesure"),
                        dtype="str")


def compare_distributions(selections: Sequence[Selection], names: Sequence[str],
                          by: str) -> pd.DataFrame:
    """Long table ``territoire, value, label, initiatives, funding_eur`` of
    :func:`queries.distribution` for each territory's selection (for charts on a shared
    scale)."""
    frames = [queries.distribution(sel, by).assign(territoire=name)
              for name, sel in zip(names, selections, strict=True)]
    columns = ["territoire", "value", "label", "initiatives", "funding_eur"]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


#: Most fiche links listed per compared territory (then a link to the catalogue).
MAX_LINKS = 30


def initiatives_by_territory(selections: Sequence[Selection]) -> list[list[tuple[str, str]]]:
    """For each territory's selection, its initiatives as (id, title), sorted by title."""
    return [list(initiative_options(sel.catalogue).items()) for sel in selections]


def initiative_choices(selected: Catalogue, catalogue: Catalogue, wanted: Sequence[str],
                       fallback: Sequence[Sequence[tuple[str, str]]] = (),
                       limit: int = 2_000) -> tuple[dict[str, str], bool]:
    """Options (id -> title) of the initiative comparison: the selected initiatives when
    there are at most ``limit``, else those of ``fallback`` (the compared territories'
    lists); the ``wanted`` ids of the catalogue are always offered. Second value: True when
    the selection was too large to be offered whole."""
    too_many = len(selected) > limit
    options = {} if too_many else initiative_options(selected)
    if too_many:
        for items in fallback:
            options.update(dict(items[:limit]))
    known = set(_ids(catalogue.initiatives, "id"))
    missing = [i for i in wanted if i in known and i not in options]
    if missing:
        options.update({i: t for i, t in initiative_options(
            catalogue.subset(set(missing))).items()})
    return options, too_many


# ----------------------------------------------------------------------------- couverture


COVERAGE_LEVELS: dict[str, str] = {"qpv": "QPV", "commune": "Communes ayant un QPV"}
#: Theme coverage: rows by theme or by public.
THEME_COVERAGE_BY: dict[str, str] = {"themes": "Thème", "publics": "Public"}


def coverage_table(uncovered: pd.DataFrame, level: str = "qpv") -> pd.DataFrame:
    """:func:`queries.coverage` with French column names and the rank. For QPV the
    population is the QPV's; for communes both the commune's population and the known
    inhabitants of its QPV ("Habitants des QPV"). Unknown figures stay empty (shown "—"),
    never 0."""
    out = uncovered.rename(columns={"code": "Code", "nom": "Nom", "code_dep": "Département",
                                    "population": "Population", "qpv_count": "QPV",
                                    "qpv_population": "Habitants des QPV"})
    if level == "qpv":
        out = out.drop(columns=["Habitants des QPV"], errors="ignore")
    out.insert(0, "Rang", np.arange(1, len(out) + 1))
    return out


#: Territories named in the text above Couverture's map (:func:`coverage_leaders_text`)
COVERAGE_LEADERS = 5


def coverage_leaders_text(uncovered: pd.DataFrame, level: str = "qpv",
                          n: int = COVERAGE_LEADERS) -> str:
    """The first ``n`` of :func:`queries.coverage`'s ranking in one French sentence, names
    escaped for Markdown: "En tête du classement : Quartier Bourg (QN03304M, 2 715 habitants),
    …". QPV: the QPV's inhabitants; communes: the inhabitants of their QPV. Empty when
    nothing is left out."""
    if uncovered.empty:
        return ""
    column = "population" if level == "qpv" else "qpv_population"
    unit = "habitants" if level == "qpv" else "habitants des QPV"
    parts = []
    for row in uncovered.head(n).itertuples(index=False):
        people = getattr(row, column, None)
        figure = ("population inconnue" if people is None or pd.isna(people)
                  else f"{fmt_int(people)} {unit}")
        parts.append(f"{md_text(row.nom)} ({md_text(row.code)}, {figure})")
    return "En tête du classement : " + " ; ".join(parts) + "."


def coverage_summary_text(summary: queries.CoverageSummary) -> str:
    """The people left out, in French: "12 300 habitants des QPV non touchés (3 QPV ; population
    inconnue pour 1 QPV), sur 45 000 habitants des QPV de la zone"."""
    if summary.qpv_unreached == 0:
        return "Aucun habitant des QPV de la zone n'est laissé de côté."
    n = summary.qpv_unreached
    people = ("population inconnue" if summary.inhabitants_unreached is None
              else f"{fmt_int(summary.inhabitants_unreached)} habitants")
    text = f"{people} dans {fmt_int(n)} QPV non touché{'s' if n > 1 else ''}"
    if summary.inhabitants_unreached is not None and summary.unknown_unreached:
        text += (f" (population inconnue pour {fmt_int(summary.unknown_unreached)} "
                 f"QPV de plus)")
    if summary.inhabitants_area is not None:
        text += f", sur {fmt_int(summary.inhabitants_area)} habitants des QPV de la zone"
    return text + "."


def theme_coverage_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`queries.theme_coverage` in French: one row per theme (or public), unknown
    figures empty."""
    return pd.DataFrame({
        "Valeur": table["label"].astype(str).to_numpy(dtype=object),
        "Initiatives": table["initiatives"].to_numpy(dtype=np.int64),
        "QPV touchés": table["qpv_reached"].to_numpy(dtype=np.int64),
        "Habitants touchés": table["population_reached"].to_numpy(dtype=float),
        "Habitants non touchés": table["population_unreached"].to_numpy(dtype=float),
        "Part touchée (%)": (table["share"] * 100).to_numpy(dtype=float),
    })


def theme_coverage_chart(table: pd.DataFrame, what: str) -> alt.Chart:
    """Horizontal bars: share of the area's QPV inhabitants each theme (or public) reaches,
    sorted so the least covered come first; ``what`` names the rows ("Thème")."""
    data = pd.DataFrame({
        "valeur": table["label"].astype(str),
        "part": table["share"].astype(float).fillna(0.0),
        "habitants": table["population_reached"].astype(float).fillna(0.0),
        "non_touches": table["population_unreached"].astype(float).fillna(0.0),
    })
    chart = alt.Chart(data).mark_bar(color="#08519c").encode(
        x=alt.X("part:Q", title="Part des habitants des QPV de la zone touchés",
                axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("valeur:N", title=what, sort=alt.EncodingSortField("part", order="ascending")),
        tooltip=[alt.Tooltip("valeur:N", title=what),
                 alt.Tooltip("part:Q", title="Part touchée", format=".1%"),
                 alt.Tooltip("habitants:Q", title="Habitants touchés", format=",.0f"),
                 alt.Tooltip("non_touches:Q", title="Habitants non touchés", format=",.0f")],
    ).properties(height=alt.Step(22))
    return french_chart(chart)


#: Titles listed per territory in the overlaps table (all of them made a 6.9 MB websocket
#: frame at 50,000 initiatives); the count column and the Catalogue page give the rest.
MAX_OVERLAP_TITLES = 5


def _some_titles(ids: object, titles: Mapping[str, str], most: int) -> list[str]:
    ids = list(ids)  # type: ignore[call-overload]
    shown = [titles.get(i, i) for i in ids[:most]]
    if len(ids) > most:
        rest = len(ids) - most
        shown.append(f"… et {fmt_int(rest)} autre{'s' if rest > 1 else ''}")
    return shown


def overlaps_table(overlap: pd.DataFrame, titles: Mapping[str, str],
                   max_titles: int = MAX_OVERLAP_TITLES) -> pd.DataFrame:
    """:func:`queries.overlaps` with French columns and initiative titles as lists (the
    first ``max_titles``, then "… et N autres")."""
    return pd.DataFrame({
        "Code": overlap["code"].to_numpy(dtype=object),
        "Nom": overlap["nom"].to_numpy(dtype=object),
        "Population": overlap["population"].to_numpy(dtype=float),
        "Initiatives": overlap["initiatives"].to_numpy(dtype=np.int64),
        "Titres": [_some_titles(ids, titles, max_titles) for ids in overlap["initiative_ids"]],
    }, columns=["Code", "Nom", "Population", "Initiatives", "Titres"])


# ----------------------------------------------------------------------------- maps


def _layer_for(local: Mapping[str, gpd.GeoDataFrame], national: Mapping[str, gpd.GeoDataFrame],
               level: str) -> gpd.GeoDataFrame | None:
    name = LEVEL_LAYER.get(level)
    if name is None:
        return None
    return local.get(name) if name in local else national.get(name)


def highlight_layer(national: Mapping[str, gpd.GeoDataFrame],
                    local: Mapping[str, gpd.GeoDataFrame],
                    territories: Sequence[tuple[str, str]], name: str,
                    colour: str = HIGHLIGHT_COLOUR,
                    mark_polygons: bool = False) -> folium.FeatureGroup | None:
    """A layer drawing ``territories`` (:func:`maps.highlight_layers`, level by level), or
    None when none of them is on the display layers."""
    wanted: dict[str, list[str]] = {}
    for level, code in territories:
        wanted.setdefault(level, []).append(str(code))
    group = folium.FeatureGroup(name=maps._esc(name))
    drawn = 0
    for level, codes in wanted.items():
        gdf = _layer_for(local, national, level)
        if gdf is None or gdf.empty:
            continue
        for layer in maps.highlight_layers(gdf, level, codes, name, colour, mark_polygons):
            layer.add_to(group)
            drawn += 1
    return group if drawn else None


def territories_map(national: Mapping[str, gpd.GeoDataFrame],
                    local: Mapping[str, gpd.GeoDataFrame], index: TerritoryIndex,
                    territories: Sequence[tuple[str, str]], highlight_name: str,
                    area_territories: Sequence[tuple[str, str]] | None = None,
                    compact: bool = False,
                    france: Mapping[str, gpd.GeoDataFrame] | None = None) -> folium.Map:
    """The dashboard's reference map (:func:`maps.build_map`) fitted to the area of
    ``area_territories`` (default: ``territories``), with ``territories`` highlighted;
    ``compact`` (a small map) folds the layer control; ``france``: the display layers of
    the map of all France (see :func:`maps.map_layers`)."""
    area_terr = list(territories if area_territories is None else area_territories)
    area = maps.area_from_filters(area_terr, index)
    spec = maps.MapSpec(area=area, selected=tuple(area_terr), fit=True, compact=compact)
    # on a map of France, polygons get a circle too, or small QPV would not show
    layer = highlight_layer(national, local, territories, highlight_name,
                            mark_polygons=area.national)
    return maps.build_map(national, local, spec, extra_layers=[layer] if layer else [],
                          france=france)


# ----------------------------------------------------------------------------- export


def export_catalogue(selection: Selection, include_national: bool = False) -> Catalogue:
    """The catalogue to export: the selected initiatives with their own lines, plus (if
    ``include_national``) the unattached funding lines of the selection (adultes-relais,
    FONJEP…). ``contact_email`` is always emptied."""
    cat = selection.catalogue
    funding = cat.funding
    if include_national:
        fund = selection.funding
        unattached = fund[fund["initiative_id"].map(is_missing).astype(bool)]
        funding = pd.concat([funding, unattached], ignore_index=True) if len(unattached) \
            else funding
    ini = cat.initiatives.copy()
    for col in PRIVATE_COLUMNS:
        if col in ini:
            ini[col] = None
    return Catalogue(ini, cat.organisations, cat.territories, cat.indicators, funding)


def filters_short_text(filters: Filters, index: TerritoryIndex | None) -> str:
    """Short text of the filters for file names: territory names, then list filter codes,
    years and search text ("Gironde parentalite 2021-2024")."""
    parts = [index.name(lvl, code) if index is not None else code
             for lvl, code in filters.territories]
    for name in ("themes", "publics", "maturity", "alliance_levels", "porteur_types",
                 "funder_types", "schemes"):
        parts.extend(getattr(filters, name))
    if filters.years:
        parts.append(f"{filters.years[0]}-{filters.years[1]}")
    if filters.text:
        parts.append(filters.text)
    return " ".join(parts)


def export_name(fmt: str, filters_text: str, today: dt.date,
                include_national: bool = False) -> str:
    """Download file name: ``territoires_<filters>_<date>.<ext>``."""
    ext = EXPORT_FORMATS[fmt][1]
    prefix = "territoires-carte" if fmt == "html" else "territoires"
    if include_national and fmt != "html":
        prefix += "-avec-lignes-nationales"
    return export.export_filename(prefix, filters_text, ext, today)


def selection_map(selection: Selection, index: TerritoryIndex,
                  national: Mapping[str, gpd.GeoDataFrame], local: Mapping[str, gpd.GeoDataFrame],
                  points: pd.DataFrame) -> folium.Map:
    """The Carte page's default map of a selection (choropleth of initiatives by
    département nationally, by commune within a territory filter), for the HTML export."""
    filters = selection.filters
    area = maps.area_from_filters(filters.territories, index)
    level = "departement" if area.national else "commune"
    values = queries.aggregate(selection, index, level)
    spec = maps.MapSpec(area=area, choropleth_level=level, measure="initiatives",
                        values=values,
                        initiatives=maps.initiative_points(selection.catalogue, points),
                        selected=filters.territories)
    return maps.build_map(national, local, spec)


def export_file(selection: Selection, fmt: str, *, layers: object | None,
                index: TerritoryIndex, include_national: bool = False,
                national: Mapping[str, gpd.GeoDataFrame] | None = None,
                local: Mapping[str, gpd.GeoDataFrame] | None = None,
                points: pd.DataFrame | None = None) -> bytes:
    """Bytes of the export of ``selection`` in ``fmt`` (see :data:`EXPORT_FORMATS`); never
    holds private e-mails. ``html`` needs the display layers and the points."""
    if fmt == "html":
        fmap = selection_map(selection, index, national or {}, local or {},
                             points if points is not None else pd.DataFrame(
                                 columns=["level", "code", "lat", "lon"]))
        return maps.map_html(fmap).encode("utf-8")
    cat = export_catalogue(selection, include_national)
    return export.export_bytes(cat, fmt, layers=layers, index=index, include_private=False)


def fmt_size(n_bytes: int) -> str:
    """"12,3 ko" / "1,2 Mo"."""
    if n_bytes < 1024:
        return f"{n_bytes} o"
    for unit, size in (("Mo", 1024 ** 2), ("ko", 1024)):
        if n_bytes >= size:
            return f"{fmt_number(n_bytes / size, 1)} {unit}"
    return f"{n_bytes} o"  # pragma: no cover



#: Vega-Lite number locale of the charts: French whatever the browser's ("4 000 000").
CHART_LOCALE: dict[str, object] = {
    "number": {"decimal": ",", "thousands": "\u202f", "grouping": [3],
               "currency": ["", "\u202f€"]},
}


def french_chart(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """``chart`` with numbers (axes, tooltips) written the French way."""
    return chart.configure(locale=CHART_LOCALE)


def funding_chart(funding: pd.DataFrame) -> alt.Chart:
    """Bar chart of an initiative's funding lines (from :func:`funding_table`) by period,
    coloured by funder."""
    return french_chart(alt.Chart(funding).mark_bar().encode(
        x=alt.X("Période:N", title="Période", sort=None),
        y=alt.Y("montant_eur:Q", title="Montant (€)", axis=alt.Axis(format=",.0f")),
        color=alt.Color("financeur:N", title="Financeur",
                        legend=alt.Legend(orient="bottom", labelLimit=400)),
        tooltip=[alt.Tooltip("Période:N"), alt.Tooltip("financeur:N", title="Financeur"),
                 alt.Tooltip("Montant:N")],
    ).properties(height=260))


def source_text(record: Mapping[str, object]) -> str | None:
    """"Document — fiche" of an initiative's source, or None."""
    parts = [str(record[k]) for k in ("source_document", "source_sheet")
             if not is_missing(record.get(k))]
    return " — ".join(parts) or None


def source_link(record: Mapping[str, object]) -> str | None:
    """The source URL when it is a web address (http or https), else None."""
    url = record.get("source_url")
    if is_missing(url) or not str(url).startswith(("http://", "https://")):
        return None
    return str(url)


def contact_text(record: Mapping[str, object]) -> str | None:
    """Public contact: organisation and role (never the private e-mail), or None."""
    if is_missing(record.get("contact_organisation")):
        return None
    return ", ".join(str(record[k]) for k in ("contact_organisation", "contact_role")
                     if not is_missing(record.get(k)))


#: Distributions compared side by side: dimension -> (French title, measure column).
COMPARE_DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "themes": ("thème", "initiatives"),
    "maturity": ("maturité", "initiatives"),
    "funder_type": ("type de financeur", "funding_eur"),
}


def distribution_charts(selections: Sequence[Selection],
                        names: Sequence[str]) -> list[tuple[str, alt.Chart]]:
    """(Markdown title, faceted bar chart on a shared scale) per non-empty distribution of
    :data:`COMPARE_DISTRIBUTIONS`, one facet per compared territory."""
    charts = []
    for by, (title, measure) in COMPARE_DISTRIBUTIONS.items():
        long = compare_distributions(selections, names, by)
        if long.empty:
            continue
        unit = "financements, €" if measure == "funding_eur" else "initiatives"
        axis = (alt.Axis(format=",.0f", labelFlush=True) if measure == "funding_eur"
                else alt.Axis(format="d", tickMinStep=1))
        chart = french_chart(alt.Chart(long).mark_bar().encode(
            y=alt.Y("label:N", title=None, sort=None, axis=alt.Axis(labelLimit=220)),
            x=alt.X(f"{measure}:Q", title=None, axis=axis),
            color=alt.Color("territoire:N", legend=None),
            column=alt.Column("territoire:N", title=None, sort=list(names)),
            # explicit channel objects: shorthand strings cost a schema lookup each
            tooltip=[alt.Tooltip("territoire:N", title="Territoire"),
                     alt.Tooltip("label:N", title=title.capitalize()),
                     alt.Tooltip(f"{measure}:Q", title=unit.capitalize(),
                                 format=",.0f" if measure == "funding_eur" else "d")],
        ).properties(width=170).resolve_scale(x="shared", y="shared"))
        charts.append((f"**Répartition par {title}** ({unit})", chart))
    return charts


def layer_status_table(status: Mapping[str, object]) -> pd.DataFrame:
    """The "millésimes des couches" table of the À propos page from ``geo/layers.json``: per
    layer its source, vintage, count, how many have a contour and a known population, and
    the notes of the build (partial contours named, third-party figures)."""
    layers = status.get("layers", {}) if isinstance(status, Mapping) else {}
    columns = ["Couche", "Source", "Millésime", "Entités", "Avec contour", "Population connue",
               "Remarques"]
    return pd.DataFrame(
        [
            {
                "Couche": name,
                "Source": info.get("source", ""),
                "Millésime": info.get("vintage", ""),
                "Entités": fmt_int(info.get("count")),
                "Avec contour": fmt_int(info.get("with_polygon")),
                "Population connue": (MISSING if info.get("population_known") is None
                                      else fmt_int(info.get("population_known"))),
                "Remarques": " ; ".join(str(n) for n in info.get("notes", [])),
            }
            for name, info in layers.items()
        ],
        columns=columns,
    )


# --------------------------------------------------------------------------- error reports


def reports_table(items: list[reports.Report], titles: Mapping[str, str]) -> pd.DataFrame:
    """The moderators' table: number, fiche (title and id), date, message, e-mail, state."""
    return pd.DataFrame({
        "N°": [r.id for r in items],
        "Fiche": [f"{titles.get(r.initiative_id, '(fiche retirée)')} ({r.initiative_id})"
                  for r in items],
        "Reçu le": [fmt_datetime(r.created_at) for r in items],
        "Message": [r.message for r in items],
        "E-mail (privé)": [r.email or "" for r in items],
        "État": ["ouvert" if r.status == "open" else f"clos : {r.note}" for r in items],
    })


# --------------------------------------------------------------------------- imports


def problems_table(problems: Sequence[Problem]) -> pd.DataFrame:
    """The validation report as a table (French headers), in the order found."""
    return pd.DataFrame({
        "Fichier": [p.file or "" for p in problems],
        "Feuille": [p.sheet or "" for p in problems],
        "Ligne": pd.array([p.line for p in problems], dtype="Int64"),
        "Colonne": [p.column or "" for p in problems],
        "Valeur": ["" if p.value is None else str(p.value) for p in problems],
        "Message": [p.message for p in problems],
    })

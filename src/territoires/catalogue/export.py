"""Exports of the catalogue: the exchange format (CSV set for French Excel, XLSX workbook
with a « lisez-moi » sheet), GeoJSON and GeoPackage, and export file names.

Exports are written for French Excel: UTF-8 with BOM, ``;`` separator, decimal comma. A text
cell a spreadsheet could take for a formula gets a leading apostrophe
(:func:`territoires.catalogue.validation.neutralise`); the reader removes it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import numbers
import re
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from territoires import vocab
from territoires.catalogue import model
from territoires.catalogue.validation import (
    DATE_COLUMNS,
    INT_COLUMNS,
    REQUIRED,
    TIMESTAMP_COLUMNS,
    is_missing,
    neutralise,
    parse_timestamp,
)
from territoires.errors import ExportError, TerritoiresError

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

_ILLEGAL_XLSX_PATTERN = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_ILLEGAL_XLSX_RE = re.compile(_ILLEGAL_XLSX_PATTERN)
#: Text that :func:`neutralise` prefixes (vectorised form of its test).
_FORMULA_PATTERN = r"^'*(?:[ \u00a0]*[=+\-@]|[\t\r])"
#: Excel's limit of characters in a cell.
XLSX_CELL_CHARS = 32_767


# ------------------------------------------------------------------------------- writing


#: ``1,234`` would be refused on import as ambiguous (see ``validation.is_ambiguous_number``).
_AMBIGUOUS_PATTERN = r"^[+-]?[1-9]\d{0,2},\d{3}$"


def _unambiguous(text: str) -> str:
    """``1,234`` -> ``1,2340`` (the same number, read one way only)."""
    return text + "0" if re.match(_AMBIGUOUS_PATTERN, text) else text


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
        return _unambiguous(repr(number).replace(".", ","))
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
    ambiguous = pd.Series(cells, dtype="str").str.match(_AMBIGUOUS_PATTERN).to_numpy(bool)
    if ambiguous.any():
        cells[ambiguous] = cells[ambiguous] + "0"
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


def _check_xlsx_text(table: str, df: pd.DataFrame, columns: list[str]) -> None:
    """Refuse (never cut nor strip silently) a text the workbook cannot hold: longer than
    Excel's cell (:data:`XLSX_CELL_CHARS`, apostrophe included) or with control characters."""
    for col in columns:
        if col not in df.columns or df[col].dtype.kind in "biufcmM":
            continue
        values = df[col]
        if isinstance(values, pd.DataFrame):
            values = values.iloc[:, 0]
        text = values.map(lambda v: v if isinstance(v, str) else "").astype("str")
        length = text.str.len()
        too_long = ((length > XLSX_CELL_CHARS) | (
            (length == XLSX_CELL_CHARS) & text.str.contains(_FORMULA_PATTERN, regex=True))
        ).to_numpy(bool)
        illegal = text.str.contains(_ILLEGAL_XLSX_PATTERN, regex=True).to_numpy(bool)
        for mask, what in ((too_long, "un texte de plus de 32\u202f767 caractères "
                                      "(limite d'une cellule Excel)"),
                           (illegal, "un caractère de contrôle (interdit dans un classeur)")):
            if mask.any():
                k = int(np.flatnonzero(mask)[0])
                ident = df["id"].iloc[k] if "id" in df.columns else (
                    df["initiative_id"].iloc[k] if "initiative_id" in df.columns else k)
                raise ExportError(
                    f"Export XLSX impossible sans perte : la table « "
                    f"{model.TABLE_LABELS[table]} » (« {ident} », colonne « {col} ») contient "
                    f"{what}. Exportez au format CSV, qui garde tout le texte.")


def _xlsx_bytes(tables: dict[str, pd.DataFrame], *, readme: bool) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    for table, df in tables.items():  # before the workbook exists: nothing half-written
        _check_xlsx_text(table, df, model.TABLE_COLUMNS[table])
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
            width = max(12, min(40, len(col) + 4))
            ws.column_dimensions[get_column_letter(1 + i)].width = width
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


def template_bytes() -> bytes:
    """The empty exchange workbook (headers + « lisez-moi » sheet)."""
    return _xlsx_bytes(model.Catalogue().tables(), readme=True)


def write_template(path: Path) -> None:
    """Write the empty exchange workbook (headers + « lisez-moi » sheet) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(template_bytes())


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


def _geometry_lookup(layers: Any, levels: np.ndarray, codes: np.ndarray
                     ) -> tuple[pd.Index, Any]:
    """(keys ``level\x1fcode``, geometries) of the territories ``(levels, codes)`` that have
    a non-empty geometry; only those are read (the server holds no full polygons)."""
    import geopandas as gpd

    from territoires.pipeline.layers import CRS, LAYER_SCHEMAS, LEVEL_LAYER

    parts = []
    pairs = pd.DataFrame({"level": levels, "code": codes})
    for level, wanted in pairs.groupby("level", sort=False)["code"]:
        layer_name = LEVEL_LAYER.get(str(level))
        if layer_name is None:
            continue
        gdf = layers.rows(layer_name, wanted.unique())
        key = LAYER_SCHEMAS[layer_name][0]
        geom = gdf.geometry
        keep = (geom.notna() & ~geom.is_empty).to_numpy(dtype=bool)
        found = pd.Series(gdf[key].to_numpy(dtype=object)[keep]).map(str)
        parts.append(gpd.GeoDataFrame({"key": (str(level) + "\x1f" + found).to_numpy(
            dtype=object)}, geometry=geom.to_numpy()[keep], crs=CRS))
    if not parts:
        return pd.Index([], dtype=object), gpd.GeoSeries([], crs=CRS).array
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

    from territoires.pipeline.layers import CRS

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
    keys, geoms = _geometry_lookup(layers, levels, codes)
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
        # the library's own (English) text stays in the chained exception, for the logs
        raise ExportError(f"L'export au format {fmt} a échoué : "
                          "réessayez, ou choisissez un autre format.") from exc
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

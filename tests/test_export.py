"""export.py: CSV/XLSX/GeoJSON/GPKG exports, file names, round trips."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_helpers import LayerIndex, _one
from territoires.catalogue import model
from territoires.catalogue.export import export_bytes, export_filename, write_template
from territoires.catalogue.reading import read_exchange
from territoires.catalogue.validation import MAX_TEXT_CHARS, is_missing, validate
from territoires.pipeline.layers import Layers


@pytest.fixture(scope="module")
def index(tiny_layers: Layers) -> LayerIndex:
    return LayerIndex(tiny_layers)


def test_template(tmp_path: Path) -> None:
    path = tmp_path / "modele.xlsx"
    write_template(path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["lisez-moi", *model.TABLE_LABELS.values()]
    for table, label in model.TABLE_LABELS.items():
        assert [c.value for c in wb[label][1]] == model.TABLE_COLUMNS[table]
    readme = "\n".join(str(c.value) for row in wb["lisez-moi"].iter_rows() for c in row
                       if c.value)
    assert "continuite_educative" in readme and "Cité éducative" in readme
    assert "contact_email" in readme
    cat, problems = read_exchange(path)
    assert problems == [] and len(cat) == 0

def test_formula_neutralised_and_private_dropped(tmp_path: Path) -> None:
    cat = _one()
    data = export_bytes(cat, "csv")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        text = zf.read("initiatives.csv").decode("utf-8")
        fund_text = zf.read("financements.csv").decode("utf-8")
    assert text.startswith("\ufeffid;title;")
    assert "'=HYPERLINK" in text and "'+33 1 23" in text
    assert "a@b.fr" not in text
    assert "'@ville" in fund_text and "1234,5" in fund_text
    assert "01/01/2020" in text
    xlsx = tmp_path / "e.xlsx"
    xlsx.write_bytes(export_bytes(cat, "xlsx", include_private=True))
    ws = openpyxl.load_workbook(xlsx)["initiatives"]
    assert ws["B2"].value == "'=HYPERLINK(\"x\")"
    assert ws["B2"].data_type == "s"
    back, problems = read_exchange(xlsx)
    assert problems == []
    assert back.initiatives.iloc[0]["title"] == "=HYPERLINK(\"x\")"
    assert back.initiatives.iloc[0]["contact_email"] == "a@b.fr"
    assert back.funding.iloc[0]["funder"] == "@ville"

def test_geo_exports(tiny_layers: Layers, index, tmp_path: Path) -> None:
    import geopandas as gpd

    cat = _one()
    data = json.loads(export_bytes(cat, "geojson", layers=tiny_layers, index=index))
    feats = data["features"]
    assert len(feats) == 3
    kinds = {f["properties"]["territory_code"]: f["geometry"]["type"] for f in feats}
    assert kinds == {"33119": "Polygon", "QN09301M": "Point", "QN03307M": "Polygon"}
    assert feats[0]["properties"]["territory_name"] == "Cenon"
    assert feats[0]["properties"]["funding_eur"] == 1234.5
    assert "contact_email" not in feats[0]["properties"]
    path = tmp_path / "x.gpkg"
    path.write_bytes(export_bytes(cat, "gpkg", layers=tiny_layers, index=index,
                                  include_private=True))
    gdf = gpd.read_file(path)
    assert len(gdf) == 3 and gdf.crs.to_epsg() == 4326
    assert set(gdf["contact_email"]) == {"a@b.fr"}
    from territoires.errors import ExportError

    with pytest.raises(ExportError, match="couches"):
        export_bytes(cat, "geojson")
    with pytest.raises(ExportError, match="inconnu"):
        export_bytes(cat, "pdf")

def test_export_filename() -> None:
    name = export_filename("Territoires", "Gironde, thème : Culture & sport", "XLSX",
                           dt.date(2026, 3, 1))
    assert name == "territoires_gironde-theme-culture-sport_2026-03-01.xlsx"
    assert export_filename("cat", "", "csv", dt.date(2026, 3, 1)) == "cat_2026-03-01.csv"

# ------------------------------------------------------------------------ round trip

TEXT = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "S", "Zs"], exclude_characters="\x85"),
    max_size=20,
).map(str.strip)

OPT_TEXT = st.one_of(st.none(), TEXT.filter(bool))

SLUG = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)

def _pick(voc_codes: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(voc_codes), max_size=3, unique=True)

@st.composite
def catalogues(draw: st.DrawFn) -> model.Catalogue:
    from territoires import vocab

    ids = draw(st.lists(SLUG, min_size=0, max_size=3, unique=True))
    ts = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1),
                      timezones=st.just(dt.UTC))
    ini = []
    for iid in ids:
        ini.append({
            "id": iid, "title": draw(TEXT.filter(bool)), "summary": draw(OPT_TEXT),
            "scale": draw(st.one_of(st.none(), st.sampled_from(vocab.SCALES.codes))),
            "start_date": draw(st.one_of(st.none(), st.dates(dt.date(1990, 1, 1),
                                                             dt.date(2100, 12, 31)))),
            "end_date": None,
            "themes": draw(_pick(vocab.THEMES.codes).filter(bool)),
            "publics": draw(_pick(vocab.PUBLICS.codes)),
            "alliance_levels": draw(_pick(vocab.ALLIANCE_LEVELS.codes)),
            "maturity": draw(st.sampled_from(vocab.MATURITY.codes)),
            "actions": draw(OPT_TEXT), "contact_email": draw(OPT_TEXT),
            "created_at": pd.Timestamp(draw(ts)), "updated_at": pd.Timestamp(draw(ts)),
            "version": draw(st.integers(1, 50)),
        })
    orgs, terr, ind, fund = [], [], [], []
    for iid in ids:
        for _ in range(draw(st.integers(0, 2))):
            orgs.append({"initiative_id": iid,
                         "role": draw(st.sampled_from(vocab.ORG_ROLES.codes)),
                         "name": draw(TEXT.filter(bool)),
                         "type": draw(st.sampled_from(vocab.ORG_TYPES.codes)),
                         "siret": draw(st.one_of(st.none(),
                                                 st.from_regex(r"\d{14}", fullmatch=True)))})
        for _ in range(draw(st.integers(0, 2))):
            terr.append({"initiative_id": iid, "level": "commune",
                         "code": draw(st.sampled_from(["33063", "33119", "01004"]))})
        for _ in range(draw(st.integers(0, 2))):
            ind.append({"initiative_id": iid, "label": draw(TEXT.filter(bool)),
                        "value": round(draw(st.floats(-1e9, 1e9, allow_nan=False)), 4),
                        "unit": draw(OPT_TEXT),
                        "year": draw(st.one_of(st.none(), st.integers(1990, 2100)))})
    for n in range(draw(st.integers(0, 3))):
        ys = draw(st.integers(2000, 2030))
        fund.append({"id": f"f{n}", "funder": draw(TEXT.filter(bool)),
                     "funder_type": draw(st.sampled_from(vocab.FUNDER_TYPES.codes)),
                     "scheme": draw(st.sampled_from(vocab.SCHEMES.codes)),
                     "amount_eur": round(draw(st.floats(0, 1e8, allow_nan=False)), 2),
                     "year_start": ys, "year_end": ys + draw(st.integers(0, 3)),
                     "beneficiary": draw(OPT_TEXT), "beneficiary_siret": None,
                     "territory_level": "qpv", "territory_code": "QN03307M",
                     "initiative_id": draw(st.one_of(st.none(), st.sampled_from(ids)))
                     if ids else None,
                     "source": draw(OPT_TEXT)})
    frames = {"initiatives": ini, "organisations": orgs, "territories": terr,
              "indicators": ind, "funding": fund}
    return model.Catalogue(**{
        name: pd.DataFrame(rows, columns=model.TABLE_COLUMNS[name], dtype=object)
        for name, rows in frames.items()
    })

def _canon(cat: model.Catalogue) -> dict[str, list[list[Any]]]:
    out = {}
    for name, df in cat.tables().items():
        rows = []
        for rec in df.astype(object).to_dict("records"):
            row = []
            for col in model.TABLE_COLUMNS[name]:
                v = rec.get(col)
                if isinstance(v, list):
                    row.append(list(v))
                elif is_missing(v):
                    row.append(None)
                elif isinstance(v, pd.Timestamp | dt.datetime):
                    row.append(pd.Timestamp(v).tz_convert("UTC").isoformat())
                elif isinstance(v, float | int) and not isinstance(v, bool):
                    row.append(float(v))
                else:
                    row.append(v)
            rows.append(row)
        out[name] = rows
    return out

@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(cat=catalogues())
def test_round_trip(fmt: str, cat: model.Catalogue, tmp_path: Path) -> None:
    path = tmp_path / f"rt.{'zip' if fmt == 'csv' else 'xlsx'}"
    path.write_bytes(export_bytes(cat, fmt, include_private=True))
    back, problems = read_exchange(path)
    assert problems == []
    assert validate(back, None, file=path.name) == []
    assert _canon(back) == _canon(cat)

# ------------------------------------------------------------- vectorised export cells

MIXED: dict[str, list[Any]] = {
    "title": ["=1+1", "+33", "-5", "@x", "\tA", "\rB", "'=x", "''-y", "'ok", "  ", "", None,
              float("nan"), "a\x01b", "Été ; \"guillemets\"\nligne", 5, 2.5, True,
              dt.date(2020, 1, 2)],
    "themes": [["culture", "sport"], ("college",), [], None, float("nan"), ["=x"], [1, 2],
               "culture | sport"],
    "start_date": [dt.date(2020, 1, 2), dt.datetime(2021, 3, 4, 5, 6), "2015-09-01", None,
                   pd.Timestamp("2020-05-06"), dt.date(999, 1, 1)],
    "created_at": [pd.Timestamp("2024-01-02T03:04:05.5Z"), "2024-01-02", "pas une date", None,
                   -5, pd.Timestamp("2024-01-02T03:04:05", tz="Europe/Paris")],
    "amount_eur": [1234.5, 0.1, 1e16, 1e-5, -0.0, float("inf"), float("nan"), 3, None],
    "year_start": [2022.0, 2020.5, 1e19, -3.0, float("nan"), 2021, None],
}

def _scalar_cells(column: str, values: pd.Series, xlsx: bool) -> list[Any]:
    from territoires.catalogue.export import _cell_for_csv, _cell_for_xlsx

    convert = _cell_for_xlsx if xlsx else _cell_for_csv
    return [convert(column, v) for v in values.astype(object)]

def _typed_variants(column: str, values: list[Any]) -> list[pd.Series]:
    """The column as object, and as the typed dtypes pandas would give clean data."""
    out = [pd.Series(values, dtype=object)]
    texts = [v for v in values if isinstance(v, str) or v is None]
    numbers = [v for v in values if isinstance(v, float)]
    out.append(pd.Series(texts, dtype="str"))
    out.append(pd.Series(numbers, dtype="float64"))
    out.append(pd.Series([3, -7, 2022], dtype="int64"))
    out.append(pd.Series([True, False], dtype=bool))
    out.append(pd.Series(pd.to_datetime(["2024-01-02T03:04:05Z", None, "2024-06-01T00:00:00Z"])))
    out.append(pd.Series(pd.to_datetime(["2024-01-02T03:04:05.25", "2024-06-01T00:00:00.00"])))
    return out

@pytest.mark.parametrize("xlsx", [False, True])
@pytest.mark.parametrize("column", list(MIXED))
def test_vectorised_cells_match_scalar(column: str, xlsx: bool) -> None:
    from territoires.catalogue.export import _column_cells

    for series in _typed_variants(column, MIXED[column]):
        got = list(_column_cells(column, series, xlsx=xlsx))
        want = _scalar_cells(column, series, xlsx)
        assert [(type(v), v) for v in got] == [(type(v), v) for v in want], series.dtype

@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("=+-@'\t\r\n \u00a0\x01\x1fa;\"é|")), max_size=6),
    st.text(max_size=8).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
), max_size=12))
def test_vectorised_text_cells_match_scalar(texts: list[str | None]) -> None:
    from territoires.catalogue.export import _column_cells

    for dtype in (object, "str"):
        series = pd.Series(texts, dtype=dtype)
        for xlsx in (False, True):
            got = list(_column_cells("summary", series, xlsx=xlsx))
            assert got == _scalar_cells("summary", series, xlsx)

def test_geo_export_with_territory_index(tiny_layers: Layers) -> None:
    from territoires.pipeline.territories import TerritoryIndex

    index = TerritoryIndex.from_layers(tiny_layers)
    cat = _one()
    cat.territories.loc[3] = {"initiative_id": "a", "level": "commune", "code": "00000"}
    cat.territories.loc[4] = {"initiative_id": "absente", "level": "commune", "code": "33119"}
    data = json.loads(export_bytes(cat, "geojson", layers=tiny_layers, index=index))
    props = [f["properties"] for f in data["features"]]
    assert [p["territory_code"] for p in props] == ["33119", "QN09301M", "QN03307M", "00000"]
    assert [p["territory_name"] for p in props] == [
        index.name(p["territory_level"], p["territory_code"]) for p in props]
    assert props[0]["territory_name"] == "Cenon" and props[3]["territory_name"] == "00000"
    assert data["features"][3]["geometry"] is None
    assert {p["themes"] for p in props} == {"culture"}
    assert all(p["publics"] is None and p["start_date"] == "2020-01-01" for p in props)


# ------------------------------------------------------------ lossless round trips

#: Texts an export must give back unchanged: the longest text a fiche may hold, formula-like
#: starts (after white space too), tabs and line breaks, an amount that reads two ways.
LONG = "Début " + "é" * 19_989 + " fin."  # 20,000 characters (validation.MAX_TEXT_CHARS)


def _texts_catalogue() -> model.Catalogue:
    cat = _one(title="  =SOMME(A1)")
    cat.initiatives["summary"] = LONG
    cat.initiatives["objectives"] = "- un\n\t- deux\r\n=trois"
    cat.initiatives["actions"] = "'=déjà protégé"
    cat.funding["amount_eur"] = 1.234
    return cat


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_own_export_round_trip_is_lossless(fmt: str, tmp_path: Path) -> None:
    from territoires.catalogue.storage import Store

    cat = _texts_catalogue()
    assert len(LONG) == MAX_TEXT_CHARS and validate(cat, None) == []
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store.create_or_upgrade()
    store.upsert(cat)
    stored = store.load_catalogue()
    path = tmp_path / f"rt.{'zip' if fmt == 'csv' else fmt}"
    path.write_bytes(export_bytes(stored, fmt, include_private=True))
    back, problems = read_exchange(path)
    assert problems == [] and validate(back, None, file=path.name) == []
    ini = back.initiatives.iloc[0]
    for col in ("title", "summary", "objectives", "actions"):
        assert ini[col] == cat.initiatives[col].iloc[0], col
    assert back.funding["amount_eur"].iloc[0] == 1.234
    # re-importing the app's own export changes nothing (no new version)
    report = store.upsert(back)
    store.dispose()
    assert report.unchanged == 1 and report.updated == 0


def test_xlsx_export_refuses_rather_than_cuts(tmp_path: Path) -> None:
    from territoires.errors import ExportError

    for summary, what in (("x" * 40_000, "32 767"), ("bip\x07", "contrôle"),
                          ("=" + "x" * 32_766, "32 767")):
        cat = _one()
        cat.initiatives["summary"] = summary
        with pytest.raises(ExportError) as exc:
            export_bytes(cat, "xlsx")
        assert what in str(exc.value).replace("\u202f", " ") and "CSV" in str(exc.value)
        assert "« a »" in str(exc.value) and "summary" in str(exc.value)
        back, _ = read_exchange(_csv_zip(cat, tmp_path))  # CSV keeps every character
        assert back.initiatives["summary"].iloc[0] == summary


def _csv_zip(cat: model.Catalogue, tmp_path: Path) -> Path:
    path = tmp_path / "all.zip"
    path.write_bytes(export_bytes(cat, "csv"))
    return path


def test_tables_offer_no_csv_download_of_raw_text() -> None:
    """Streamlit's table toolbar writes catalogue text to CSV as is (a cell =HYPERLINK(...)
    would be a formula): the app turns that download off; the Exporter page's files
    neutralise such cells."""
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml")
                           .read_text(encoding="utf-8"))
    assert config["client"]["disableDataExport"] is True

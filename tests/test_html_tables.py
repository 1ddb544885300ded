"""Static HTML tables of catalogue text: structure, escaping, missing values."""

from __future__ import annotations

import math

import pandas as pd

from apptest_support import table_frame
from territoires.analysis import html_tables
from territoires.analysis.formatting import MISSING

HOSTILE = '<script>alert(1)</script> <img src=x onerror=y> "q" \'s\' & ![i](http://e/x.png)'


def test_headers_index_and_cells() -> None:
    table = pd.DataFrame({"Financeur": ["Ville", "État"], "Montant": ["1 500 €", "20 €"]},
                         index=pd.Index(["2023", "2024"], name="Période"))
    out = html_tables.html_table(table)
    assert out.startswith(html_tables.TABLE_CSS)
    assert f'<table class="{html_tables.TABLE_CLASS}">' in out
    assert '<th scope="col">Période</th><th scope="col">Financeur</th>' in out
    assert '<tr><th scope="row">2023</th><td>Ville</td><td>1 500 €</td></tr>' in out
    assert table_frame(out).equals(table)


def test_hide_index_and_caption() -> None:
    table = pd.DataFrame({"Structure": ["Collège"]}, index=pd.Index([7], name="n"))
    out = html_tables.html_table(table, hide_index=True, caption="Porteurs <b>")
    assert 'scope="row"' not in out and ">n<" not in out and ">7<" not in out
    assert "<caption>Porteurs &lt;b&gt;</caption>" in out
    assert list(table_frame(out)["Structure"]) == ["Collège"]


def test_every_text_is_escaped() -> None:
    table = pd.DataFrame({HOSTILE: [HOSTILE]}, index=pd.Index([HOSTILE], name=HOSTILE))
    out = html_tables.html_table(table, caption=HOSTILE)
    body = out.removeprefix(html_tables.TABLE_CSS)
    assert "<script" not in body and "<img" not in body and '"q"' not in body
    # caption, column header, index name, row header, cell
    assert body.count("&lt;script&gt;") == 5
    read = table_frame(out)
    assert read.columns[0] == HOSTILE and read.index.name == HOSTILE
    assert read.index[0] == HOSTILE and read.iloc[0, 0] == HOSTILE


def test_missing_values_and_line_breaks() -> None:
    table = pd.DataFrame({"a": [None, math.nan, pd.NA, "un\ndeux\r\ntrois", 3]})
    out = html_tables.html_table(table, hide_index=True)
    assert "<td>un<br>deux<br>trois</td>" in out and "<td>3</td>" in out
    assert list(table_frame(out)["a"]) == [MISSING] * 3 + ["un\ndeux\ntrois", "3"]


def test_empty_table() -> None:
    out = html_tables.html_table(pd.DataFrame({"a": []}), hide_index=True)
    assert "<tbody></tbody>" in out and '<th scope="col">a</th>' in out

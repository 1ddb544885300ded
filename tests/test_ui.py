"""Pure helpers of ui.py: widget values <-> Filters, and the shared filters' URL keys."""

from __future__ import annotations

import math

from territoires import ui
from territoires.queries import Filters

LOOKUP = {"Cenon (33119) — Commune": ("commune", "33119"),
          "Gironde (33) — Département": ("departement", "33")}
LABELS = {v: k for k, v in LOOKUP.items()}


def test_filter_keys_cover_every_param() -> None:
    full = Filters(territories=(("commune", "33119"),), themes=("a",), publics=("b",),
                   maturity=("c",), alliance_levels=("d",), porteur_types=("e",),
                   funder_types=("f",), schemes=("g",), years=(2020, 2021),
                   amount=(1.0, 2.0), text="x")
    assert set(full.to_params()) == set(ui.FILTER_KEYS)


def test_widgets_round_trip() -> None:
    filters = Filters(territories=(("commune", "33119"), ("departement", "33")),
                      themes=("culture",), maturity=("emergence",), years=(2019, 2024),
                      amount=(1000.0, 50000.0), text="lecture")
    values = ui.widget_values(filters, LABELS)
    assert values["flt_t"] == ["Cenon (33119) — Commune", "Gironde (33) — Département"]
    assert values["flt_years"] == (2019, 2024)
    assert ui.filters_from_widgets(values, LOOKUP) == filters


def test_widgets_full_ranges_mean_no_filter() -> None:
    values = ui.widget_values(Filters(), LABELS)
    assert values["flt_years"] == ui.YEAR_RANGE
    assert values["flt_amount_max"] == math.inf
    assert ui.filters_from_widgets(values, LOOKUP) == Filters()


def test_unknown_territory_and_codes_survive() -> None:
    filters = Filters(territories=(("commune", "99999"),), themes=("not_a_theme",))
    values = ui.widget_values(filters, LABELS)
    assert values["flt_t"] == ["99999 (commune)"]
    assert values["flt_themes"] == []  # unknown vocabulary codes are not shown
    back = ui.filters_from_widgets(values, LOOKUP)
    assert back.territories == (("commune", "99999"),)


def test_app_pages_are_declared_once() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[1] / "app.py").read_text())
    pages = next(n for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)
                 and getattr(n.target, "id", "") == "PAGES")
    files = [e.elts[0].value for e in pages.value.elts]  # type: ignore[attr-defined]
    assert files[0] == "pages/accueil.py" and "pages/carte.py" in files
    for file in files:
        assert (Path(__file__).resolve().parents[1] / file).exists()


def test_url_notices() -> None:
    from territoires.ui import url_notices

    assert url_notices({"themes": "culture", "years": "2021-2024", "t": "commune:33119",
                        "amount": "0-50000", "q": "x"}) == []
    notes = url_notices({"themes": ["nope"], "years": "abc", "publics": "a,b"})
    assert any("« nope »" in n and "themes" in n for n in notes)
    assert any("« abc »" in n for n in notes)
    assert any("« a », « b » inconnus" in n for n in notes)

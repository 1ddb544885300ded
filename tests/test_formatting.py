"""French number formatting and the filters summary."""

from __future__ import annotations

import math

from territoires.analysis.formatting import (
    MISSING,
    NNBSP,
    filters_summary,
    fmt_eur,
    fmt_eur_short,
    fmt_int,
    fmt_number,
    fmt_pct,
)
from territoires.analysis.queries import Filters


class FakeIndex:
    def label(self, level: str, code: str) -> str:
        if code == "00000":
            raise KeyError(code)
        return f"Nom {code} — {level}"


def test_fmt_int_groups_thousands_with_narrow_nbsp() -> None:
    assert fmt_int(1234567) == f"1{NNBSP}234{NNBSP}567"
    assert fmt_int(999) == "999"
    assert fmt_int(-1234.4) == f"-1{NNBSP}234"
    assert fmt_int(None) == MISSING
    assert fmt_int(float("nan")) == MISSING


def test_fmt_eur_and_decimals() -> None:
    assert fmt_eur(1234567) == f"1{NNBSP}234{NNBSP}567{NNBSP}€"
    assert fmt_eur(12.5, 2) == f"12,50{NNBSP}€"
    assert fmt_number(-0.001, 2) == "0,00"
    assert fmt_eur(None) == MISSING


def test_fmt_eur_short() -> None:
    assert fmt_eur_short(850) == f"850{NNBSP}€"
    assert fmt_eur_short(12_500) == f"12,5{NNBSP}k€"
    assert fmt_eur_short(3_000_000) == f"3{NNBSP}M€"
    assert fmt_eur_short(1.1e9) == f"1,1{NNBSP}Md€"


def test_fmt_pct() -> None:
    assert fmt_pct(0.123) == f"12{NNBSP}%"
    assert fmt_pct(0.1234, 1) == f"12,3{NNBSP}%"
    assert fmt_pct(None) == MISSING


def test_filters_summary() -> None:
    assert filters_summary(Filters()).startswith("Aucun filtre")
    text = filters_summary(
        Filters(territories=(("commune", "33119"), ("commune", "00000")),
                themes=("culture",), years=(2021, 2024), amount=(0.0, math.inf),
                text="lecture"),
        FakeIndex(),
    )
    assert "Territoires : Nom 33119 — commune, 00000 (commune)" in text
    assert "Thèmes : Culture" in text
    assert "Années : 2021–2024" in text
    assert "sans maximum" in text
    assert "« lecture »" in text

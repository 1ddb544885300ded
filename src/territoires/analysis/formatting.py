"""French formatting of numbers, amounts and filters (pure functions, no Streamlit).

Numbers follow French typography: narrow no-break space (U+202F) between thousands, decimal
comma, and a narrow no-break space before "€" and "%".
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Protocol
from zoneinfo import ZoneInfo

import pandas as pd

from territoires.analysis.queries import Filters
from territoires.vocab import (
    ALLIANCE_LEVELS,
    FUNDER_TYPES,
    MATURITY,
    ORG_TYPES,
    PUBLICS,
    SCHEMES,
    THEMES,
    Vocabulary,
)

#: Narrow no-break space, the French thousands separator.
NNBSP = "\u202f"
#: Shown for a missing value.
MISSING = "—"


class _Labeller(Protocol):
    def label(self, level: str, code: str) -> str: ...


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


def fmt_number(value: float | int | None, decimals: int = 0) -> str:
    """``1234567.891`` -> "1 234 567,89" (with ``decimals=2``); missing -> "—"."""
    if _missing(value):
        return MISSING
    number = float(value)  # type: ignore[arg-type]
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    text = f"{number:,.{decimals}f}"
    if text.startswith("-") and float(text.replace(",", "")) == 0:
        text = text[1:]
    return text.replace(",", NNBSP).replace(".", ",")


def fmt_int(value: float | int | None) -> str:
    """``1234567`` -> "1 234 567" (rounded); missing -> "—"."""
    return fmt_number(value, 0)


def fmt_eur(value: float | int | None, decimals: int = 0) -> str:
    """``1234567`` -> "1 234 567 €"; missing -> "—"."""
    text = fmt_number(value, decimals)
    return text if text == MISSING else f"{text}{NNBSP}€"


def fmt_eur_short(value: float | int | None) -> str:
    """Compact amount for legends: "850 €", "12,5 k€", "3,2 M€", "1,1 Md€"."""
    if _missing(value):
        return MISSING
    number = float(value)  # type: ignore[arg-type]
    for threshold, suffix in ((1e9, "Md€"), (1e6, "M€"), (1e3, "k€")):
        if abs(number) >= threshold:
            scaled = number / threshold
            decimals = 0 if abs(scaled) >= 100 or scaled == int(scaled) else 1
            return f"{fmt_number(scaled, decimals)}{NNBSP}{suffix}"
    decimals = 0 if number == int(number) or abs(number) >= 100 else 2
    return fmt_eur(number, decimals)


#: Text of an unknown population (never 0).
UNKNOWN_POPULATION = "inconnue"


def fmt_population(value: float | int | None) -> str:
    """Inhabitants: ``12300`` -> "12 300"; unknown -> "inconnue" (never "0")."""
    return UNKNOWN_POPULATION if _missing(value) else fmt_int(value)


def fmt_pct(ratio: float | None, decimals: int = 0) -> str:
    """A ratio as a percentage: ``0.123`` -> "12 %" (``decimals=1``: "12,3 %")."""
    if _missing(ratio):
        return MISSING
    return f"{fmt_number(float(ratio) * 100, decimals)}{NNBSP}%"  # type: ignore[arg-type]


#: Filters field -> (French name, vocabulary).
_LIST_FILTERS: list[tuple[str, str, Vocabulary]] = [
    ("themes", "Thèmes", THEMES),
    ("publics", "Publics", PUBLICS),
    ("maturity", "Maturité", MATURITY),
    ("alliance_levels", "Niveaux d'alliance", ALLIANCE_LEVELS),
    ("porteur_types", "Types de porteur", ORG_TYPES),
    ("funder_types", "Types de financeur", FUNDER_TYPES),
    ("schemes", "Dispositifs", SCHEMES),
]


def territory_label(index: _Labeller | None, level: str, code: str) -> str:
    """Label of a territory from ``index``, falling back to "code (niveau)"."""
    if index is not None:
        try:
            return index.label(level, code)
        except Exception:  # an unknown code in a shared link must not break a summary
            pass
    return f"{code} ({level})"


def filters_summary(filters: Filters, index: _Labeller | None = None) -> str:
    """One French line describing the active filters ("Aucun filtre : …" when empty)."""
    if filters.is_empty():
        return "Aucun filtre : toute la France, tout le catalogue."
    parts: list[str] = []
    if filters.territories:
        labels = ", ".join(territory_label(index, lvl, code) for lvl, code in filters.territories)
        parts.append(f"Territoires : {labels}")
    for name, title, vocab in _LIST_FILTERS:
        values = getattr(filters, name)
        if values:
            parts.append(f"{title} : {', '.join(vocab.label_of(v) for v in values)}")
    if filters.years:
        parts.append(f"Années : {filters.years[0]}–{filters.years[1]}")
    if filters.amount:
        lo, hi = filters.amount
        high = "sans maximum" if math.isinf(hi) else fmt_eur(hi)
        parts.append(f"Montant : de {fmt_eur(lo)} à {high}")
    if filters.text:
        parts.append(f"Texte : « {filters.text} »")
    return " ; ".join(parts) + "."


def fmt_datetime(value: dt.datetime | None) -> str:
    """``01/12/2026 14:05``, in French time (Europe/Paris); naive values are taken as UTC
    (SQLite returns them so)."""
    if value is None or pd.isna(value):
        return MISSING
    value = pd.Timestamp(value).to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(ZoneInfo("Europe/Paris")).strftime("%d/%m/%Y %H:%M")

"""Queries and aggregates over the catalogue: pure functions the dashboard calls.

Inputs are a :class:`~territoires.model.Catalogue` (seed initiatives plus national funding
lines), a :class:`~territoires.territories.TerritoryIndex` and :class:`Filters`.

Meaning of the filters:
- ``territories``: union of territories; an initiative matches when one of its territories
  intersects one of them (see :mod:`territoires.territories` for footprints), so a
  département includes its EPCI, communes and QPV and a commune includes its QPV; a funding
  line matches when its own territory intersects.
- list filters (themes, publics, maturity, alliance_levels, porteur_types): any-of within a
  filter, all filters combined with AND.
- ``funder_types``, ``schemes``, ``years``, ``amount``: an initiative matches when at least one
  of its funding lines matches all of them; funding lines are filtered line by line.
  ``years`` keeps initiatives active during the range (start/end dates) when they have no
  funding line.
- ``text``: accent- and case-insensitive search in title, summary, porteurs and partners
  names, objectives, actions and results.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pandas as pd

from territoires.model import Catalogue
from territoires.territories import TerritoryIndex

_LIST_FIELDS = (
    "themes",
    "publics",
    "maturity",
    "alliance_levels",
    "porteur_types",
    "funder_types",
    "schemes",
)


@dataclass(frozen=True)
class Filters:
    """The shared filters of every page (all empty = everything)."""

    territories: tuple[tuple[str, str], ...] = ()
    themes: tuple[str, ...] = ()
    publics: tuple[str, ...] = ()
    maturity: tuple[str, ...] = ()
    alliance_levels: tuple[str, ...] = ()
    porteur_types: tuple[str, ...] = ()
    funder_types: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    years: tuple[int, int] | None = None
    amount: tuple[float, float] | None = None
    text: str = ""

    def is_empty(self) -> bool:
        """True when no filter is set."""
        return self == Filters()

    def to_params(self) -> dict[str, str]:
        """Query-string parameters (only set filters): ``t=commune:33119,qpv:QN03307M``,
        ``themes=a,b``, ``years=2021-2024``, ``amount=0-50000``, ``q=text``."""
        params: dict[str, str] = {}
        if self.territories:
            params["t"] = ",".join(f"{lvl}:{code}" for lvl, code in self.territories)
        for name in _LIST_FIELDS:
            values = getattr(self, name)
            if values:
                params[name] = ",".join(values)
        if self.years:
            params["years"] = f"{self.years[0]}-{self.years[1]}"
        if self.amount:
            params["amount"] = f"{self.amount[0]:g}-{self.amount[1]:g}"
        if self.text:
            params["q"] = self.text
        return params

    @classmethod
    def from_params(cls, params: dict[str, str | list[str]]) -> Filters:
        """Inverse of :meth:`to_params`; malformed parts are ignored (a shared link never
        crashes the app). Vocabulary codes are not checked here."""

        def get(key: str) -> str:
            value = params.get(key, "")
            if isinstance(value, list):
                value = value[-1] if value else ""
            return str(value).strip()

        def split(key: str) -> tuple[str, ...]:
            return tuple(v for v in (p.strip() for p in get(key).split(",")) if v)

        territories = tuple(
            (lvl, code)
            for lvl, _, code in (t.partition(":") for t in split("t"))
            if lvl and code
        )
        kwargs: dict[str, object] = {"territories": territories}
        for name in _LIST_FIELDS:
            kwargs[name] = split(name)
        years = get("years")
        if years:
            try:
                a, b = (int(x) for x in years.split("-", 1))
                kwargs["years"] = (min(a, b), max(a, b))
            except ValueError:
                pass
        amount = get("amount")
        if amount:
            try:
                lo, hi = (float(x) for x in amount.split("-", 1))
                kwargs["amount"] = (min(lo, hi), max(lo, hi))
            except ValueError:
                pass
        kwargs["text"] = get("q")
        return cls(**kwargs)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Filters:
        """A copy with some fields changed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Filters(**values)  # type: ignore[arg-type]


@dataclass
class Selection:
    """Result of :func:`select`.

    ``catalogue``: matching initiatives with their organisations, territories, indicators and
    their own funding lines (those matching the funding filters).
    ``funding``: every funding line matching the filters, attached to an initiative or not
    (national adultes-relais and FONJEP lines included).
    """

    catalogue: Catalogue
    funding: pd.DataFrame
    filters: Filters = field(default_factory=Filters)


@dataclass(frozen=True)
class KeyFigures:
    """Key figures of a selection (Accueil page)."""

    initiatives: int
    porteurs: int
    funding_initiatives_eur: float
    funding_all_eur: float
    territories_reached: int
    qpv_reached: int
    qpv_in_area: int


def select(catalogue: Catalogue, index: TerritoryIndex, filters: Filters) -> Selection:
    """Apply ``filters`` to ``catalogue``."""
    raise NotImplementedError


def key_figures(selection: Selection, index: TerritoryIndex) -> KeyFigures:
    """Counts and sums of a selection; ``qpv_in_area`` counts QPV of the filter territories
    (all QPV when no territory filter)."""
    raise NotImplementedError


def aggregate(selection: Selection, index: TerritoryIndex, level: str) -> pd.DataFrame:
    """One row per territory of ``level`` within the filter area:
    ``code, nom, population, initiatives, funding_eur, funding_per_inhabitant``.
    Funding lines are counted in the territory that contains them; lines on a larger territory
    (e.g. a contrat de ville when aggregating by commune) are shared out by population."""
    raise NotImplementedError


def distribution(selection: Selection, by: str) -> pd.DataFrame:
    """Counts (initiatives) or sums (funding) by ``by`` in ``themes``, ``maturity``,
    ``publics``, ``alliance_levels``, ``funder_type``, ``scheme``, ``year``: columns
    ``value, label, initiatives, funding_eur``."""
    raise NotImplementedError


def coverage(selection: Selection, index: TerritoryIndex, level: str = "qpv") -> pd.DataFrame:
    """Territories of ``level`` (``qpv`` or ``commune`` = communes having a QPV) within the
    filter area that no selected initiative reaches, ranked by population (then QPV count):
    ``code, nom, code_dep, population, qpv_count``."""
    raise NotImplementedError


def overlaps(selection: Selection, index: TerritoryIndex, level: str = "qpv",
             minimum: int = 2) -> pd.DataFrame:
    """Territories reached by at least ``minimum`` selected initiatives:
    ``code, nom, population, initiatives, initiative_ids``."""
    raise NotImplementedError


def compare_territories(catalogue: Catalogue, index: TerritoryIndex, filters: Filters,
                        territories: list[tuple[str, str]]) -> pd.DataFrame:
    """Side-by-side figures of 2 to 4 territories under the other filters: one row per
    territory with ``level, code, nom, population, initiatives, porteurs, funding_eur,
    funding_per_inhabitant, qpv_population_reached``."""
    raise NotImplementedError


def compare_initiatives(catalogue: Catalogue, ids: list[str]) -> pd.DataFrame:
    """Field-by-field comparison of 2 or 3 initiatives (rows = fields, columns = titles)."""
    raise NotImplementedError


def related_initiatives(catalogue: Catalogue, index: TerritoryIndex, initiative_id: str,
                        limit: int = 5) -> pd.DataFrame:
    """Initiatives sharing themes with ``initiative_id`` in comparable territories (same
    level or same département first), best first: ``id, title, shared_themes, score``."""
    raise NotImplementedError

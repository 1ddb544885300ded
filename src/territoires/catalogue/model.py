"""The catalogue model: initiatives and funding lines, held as five tables.

A :class:`Catalogue` is five pandas DataFrames that share the initiative ``id``. The same five
tables are the database schema (``storage``), the exchange workbook's sheets and the CSV set
(``reading``, ``export``), so one shape serves everywhere.

Tables and columns (``*`` = required, ``[]`` = list of vocabulary codes):

``initiatives``
    id* (slug), title*, summary, scale (vocab ``scale``), start_date, end_date (dates),
    themes[]* (``theme``), publics[] (``public``), alliance_levels[] (``alliance_level``),
    maturity* (``maturity``), objectives, actions, results, difficulties, lessons, outlook,
    source_document, source_sheet, source_url, contact_organisation, contact_role,
    contact_email (private: never shown publicly nor exported by default),
    created_at, updated_at (UTC timestamps), version (int ≥ 1).
``organisations``
    initiative_id*, role* (``org_role``: porteur | partenaire), name*, type* (``org_type``),
    siret (14 digits, optional).
``territories``
    initiative_id*, level* (``territory_level``), code* (official code, checked against the
    reference layers).
``indicators``
    initiative_id*, label*, value* (number), unit, year (optional).
``funding``
    id* (stable line id), funder*, funder_type* (``funder_type``), scheme* (``scheme``),
    amount_eur* (≥ 0), year_start*, year_end (≥ year_start, default year_start),
    beneficiary (porteur's name), beneficiary_siret, territory_level*, territory_code*,
    initiative_id (optional: the initiative it funds), source (where the line comes from).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

#: Columns that hold lists of vocabulary codes (joined with " | " in CSV/XLSX cells).
LIST_SEPARATOR = " | "

INITIATIVE_COLUMNS: list[str] = [
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
    "objectives",
    "actions",
    "results",
    "difficulties",
    "lessons",
    "outlook",
    "source_document",
    "source_sheet",
    "source_url",
    "contact_organisation",
    "contact_role",
    "contact_email",
    "created_at",
    "updated_at",
    "version",
]
INITIATIVE_LIST_COLUMNS: list[str] = ["themes", "publics", "alliance_levels"]
INITIATIVE_TEXT_COLUMNS: list[str] = [
    "summary",
    "objectives",
    "actions",
    "results",
    "difficulties",
    "lessons",
    "outlook",
]
PRIVATE_COLUMNS: list[str] = ["contact_email"]

ORGANISATION_COLUMNS: list[str] = ["initiative_id", "role", "name", "type", "siret"]
TERRITORY_COLUMNS: list[str] = ["initiative_id", "level", "code"]
INDICATOR_COLUMNS: list[str] = ["initiative_id", "label", "value", "unit", "year"]
FUNDING_COLUMNS: list[str] = [
    "id",
    "funder",
    "funder_type",
    "scheme",
    "amount_eur",
    "year_start",
    "year_end",
    "beneficiary",
    "beneficiary_siret",
    "territory_level",
    "territory_code",
    "initiative_id",
    "source",
]

TABLE_COLUMNS: dict[str, list[str]] = {
    "initiatives": INITIATIVE_COLUMNS,
    "organisations": ORGANISATION_COLUMNS,
    "territories": TERRITORY_COLUMNS,
    "indicators": INDICATOR_COLUMNS,
    "funding": FUNDING_COLUMNS,
}

#: French names of the tables (sheet names of the exchange workbook, CSV file stems).
TABLE_LABELS: dict[str, str] = {
    "initiatives": "initiatives",
    "organisations": "structures",
    "territories": "territoires",
    "indicators": "indicateurs",
    "funding": "financements",
}


def empty_table(name: str) -> pd.DataFrame:
    """An empty DataFrame with the columns of table ``name``."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in TABLE_COLUMNS[name]})


@dataclass
class Catalogue:
    """The five catalogue tables (see module docstring for their columns)."""

    initiatives: pd.DataFrame = field(default_factory=lambda: empty_table("initiatives"))
    organisations: pd.DataFrame = field(default_factory=lambda: empty_table("organisations"))
    territories: pd.DataFrame = field(default_factory=lambda: empty_table("territories"))
    indicators: pd.DataFrame = field(default_factory=lambda: empty_table("indicators"))
    funding: pd.DataFrame = field(default_factory=lambda: empty_table("funding"))

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by name, in exchange order."""
        return {name: getattr(self, name) for name in TABLE_COLUMNS}

    def subset(self, initiative_ids: pd.Index | list[str] | set[str]) -> Catalogue:
        """The catalogue restricted to ``initiative_ids`` (funding lines of those initiatives,
        plus none of the unattached ones)."""
        ids = set(initiative_ids)
        return Catalogue(
            initiatives=self.initiatives[self.initiatives["id"].isin(ids)],
            organisations=self.organisations[self.organisations["initiative_id"].isin(ids)],
            territories=self.territories[self.territories["initiative_id"].isin(ids)],
            indicators=self.indicators[self.indicators["initiative_id"].isin(ids)],
            funding=self.funding[self.funding["initiative_id"].isin(ids)],
        )

    def __len__(self) -> int:
        return len(self.initiatives)

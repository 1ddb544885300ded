"""Small hand-made catalogues for tests: build a :class:`Catalogue` from short specs.

Example::

    cat = make_catalogue(
        [initiative("a", [("commune", "33119")], themes=["culture"])],
        [funding_line("f1", 1000, "contrat_ville", "CN03301I")],
    )
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from territoires.catalogue.model import TABLE_COLUMNS, Catalogue


def initiative(
    ident: str,
    territories: list[tuple[str, str]],
    *,
    title: str | None = None,
    themes: list[str] | None = None,
    publics: list[str] | None = None,
    alliance_levels: list[str] | None = None,
    maturity: str = "deploiement",
    porteurs: list[tuple[str, str]] | None = None,
    partenaires: list[tuple[str, str]] | None = None,
    indicators: list[tuple[str, float, str | None, int | None]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Spec of one initiative; ``porteurs``/``partenaires`` are (name, org_type) pairs;
    other keyword arguments fill initiative columns (summary, start_date…)."""
    return {
        "id": ident,
        "title": title or f"Initiative {ident}",
        "themes": themes if themes is not None else ["continuite_educative"],
        "publics": publics or [],
        "alliance_levels": alliance_levels or [],
        "maturity": maturity,
        "territories": territories,
        "porteurs": porteurs if porteurs is not None else [(f"Porteur {ident}", "association")],
        "partenaires": partenaires or [],
        "indicators": indicators or [],
        **fields,
    }


def funding_line(
    ident: str,
    amount: float,
    level: str,
    code: str,
    *,
    initiative_id: str | None = None,
    funder: str = "ANCT",
    funder_type: str = "etat",
    scheme: str = "politique_ville",
    year_start: int = 2024,
    year_end: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Spec of one funding line (row of the ``funding`` table)."""
    return {
        "id": ident,
        "funder": funder,
        "funder_type": funder_type,
        "scheme": scheme,
        "amount_eur": float(amount),
        "year_start": year_start,
        "year_end": year_end if year_end is not None else year_start,
        "beneficiary": None,
        "beneficiary_siret": None,
        "territory_level": level,
        "territory_code": code,
        "initiative_id": initiative_id,
        "source": "test",
        **fields,
    }


def make_catalogue(
    initiatives: list[dict[str, Any]], funding: list[dict[str, Any]] | tuple = ()
) -> Catalogue:
    """A Catalogue holding ``initiatives`` (see :func:`initiative`) and ``funding`` lines."""
    ini_rows, org_rows, terr_rows, ind_rows = [], [], [], []
    for spec in initiatives:
        row = {c: spec.get(c) for c in TABLE_COLUMNS["initiatives"]}
        row["version"] = spec.get("version", 1)
        ini_rows.append(row)
        for role, key in (("porteur", "porteurs"), ("partenaire", "partenaires")):
            for name, org_type in spec[key]:
                org_rows.append({"initiative_id": spec["id"], "role": role, "name": name,
                                 "type": org_type, "siret": None})
        for level, code in spec["territories"]:
            terr_rows.append({"initiative_id": spec["id"], "level": level, "code": code})
        for label, value, unit, year in spec["indicators"]:
            ind_rows.append({"initiative_id": spec["id"], "label": label, "value": value,
                             "unit": unit, "year": year})

    def frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=TABLE_COLUMNS[name])

    return Catalogue(
        initiatives=frame("initiatives", ini_rows),
        organisations=frame("organisations", org_rows),
        territories=frame("territories", terr_rows),
        indicators=frame("indicators", ind_rows),
        funding=frame("funding", list(funding)),
    )

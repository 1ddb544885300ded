"""National funding lines: adultes-relais and FONJEP posts (ANCT, 2020–2025).

Source files (mirror layout, also kept by the data pipeline under ``cache_dir/"mirror"``)::

    <folder>/funding/ci-ville/adulte-relais-2020..2023.json    contrats de ville 2015–2023
    <folder>/funding/ci-ville/postes-fonjep-2020..2023.json
    <folder>/funding/ci-ville2/adulte-relais-2024..2025.json   contrats 2024–2030
    <folder>/funding/ci-ville2/postes-fonjep-2024..2025.json

Each JSON row is one subsidised post: ``id_poste, code_tiers, raison_sociale, annee,
montant, code_cv, insee_dep, insee_reg``. Each becomes one line of the catalogue's
``funding`` table:

- ``id`` = ``"{scheme}-{year}-{id_poste}"``, suffixed ``-2``, ``-3``… when the same post
  appears several times in a year (it happens: one row per payment);
- ``funder`` "État (ANCT)" (adultes-relais) or "État (FONJEP)", ``funder_type`` ``etat``,
  ``scheme`` ``adultes_relais`` / ``fonjep``;
- ``amount_eur`` = ``montant``, ``year_start`` = ``year_end`` = ``annee`` (as int);
- ``beneficiary`` = ``raison_sociale``, ``beneficiary_siret`` = ``code_tiers`` when it is
  14 digits (FONJEP files hold the name there);
- location: ``territory_level`` "contrat_ville", ``territory_code`` = ``code_cv``. Rows
  without ``code_cv`` are located at their département (``insee_dep``); the few rows without
  either keep null ``territory_level``/``territory_code`` (counted, never dropped, so national
  totals stay exact). :func:`location_counts` gives these counts;
- ``initiative_id`` null, ``source`` = ``"national:{file stem}"``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from territoires.catalogue import model
from territoires.errors import SourceError
from territoires.pipeline.territories import TerritoryIndex

#: File name pattern -> (scheme, funder).
FILE_KINDS: dict[str, tuple[str, str]] = {
    "adulte-relais": ("adultes_relais", "État (ANCT)"),
    "postes-fonjep": ("fonjep", "État (FONJEP)"),
}
#: Sub-folders of ``funding/`` holding the yearly files.
SUBFOLDERS = ("ci-ville", "ci-ville2")
#: Source prefix of national lines in the database.
SOURCE_PREFIX = "national:"

_FILE_RE = re.compile(r"^(adulte-relais|postes-fonjep)-(\d{4})\.json$")
_SIRET_RE = re.compile(r"^\d{14}$")


def funding_files(folder: Path) -> list[Path]:
    """The adultes-relais and FONJEP files under ``folder/funding`` (sorted by year)."""
    base = folder / "funding"
    files = [
        p for sub in SUBFOLDERS if (base / sub).is_dir()
        for p in sorted((base / sub).iterdir()) if _FILE_RE.match(p.name)
    ]
    return sorted(files, key=lambda p: (_FILE_RE.match(p.name).group(2), p.name))  # type: ignore[union-attr]


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read_national_funding(folder: Path, index: TerritoryIndex | None = None) -> pd.DataFrame:
    """All adultes-relais and FONJEP lines under ``folder`` as a ``funding`` table.

    With ``index``, lines whose contrat de ville code is unknown to the reference layers are
    counted in ``df.attrs["unknown_territories"]`` (they are kept as is).
    Raises :class:`SourceError` if no file is found or a file cannot be read.
    """
    files = funding_files(folder)
    if not files:
        raise SourceError(
            f"Aucun fichier adultes-relais ou FONJEP trouvé dans {folder / 'funding'} "
            "(attendu : funding/ci-ville*/adulte-relais-AAAA.json, postes-fonjep-AAAA.json)."
        )
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for path in files:
        match = _FILE_RE.match(path.name)
        assert match is not None
        scheme, funder = FILE_KINDS[match.group(1)]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(f"Lecture impossible du fichier « {path} » : {exc}") from exc
        if not isinstance(data, list):
            raise SourceError(f"Le fichier « {path} » n'est pas une liste JSON de postes.")
        for n, rec in enumerate(data, start=1):
            try:
                year = int(str(rec.get("annee") or match.group(2)).strip())
                amount = float(rec["montant"])
            except (KeyError, TypeError, ValueError) as exc:
                raise SourceError(
                    f"Fichier « {path.name} », ligne {n} : montant ou année illisible "
                    f"(valeur : « {rec.get('montant')} » / « {rec.get('annee')} »)."
                ) from exc
            base_id = f"{scheme}-{year}-{_clean(rec.get('id_poste')) or f'ligne{n}'}"
            count = seen.get(base_id, 0) + 1
            seen[base_id] = count
            line_id = base_id if count == 1 else f"{base_id}-{count}"
            tiers = _clean(rec.get("code_tiers"))
            code_cv = _clean(rec.get("code_cv"))
            dep = _clean(rec.get("insee_dep"))
            if code_cv:
                level, code = "contrat_ville", code_cv
            elif dep:
                level, code = "departement", dep
            else:
                level, code = None, None
            rows.append({
                "id": line_id,
                "funder": funder,
                "funder_type": "etat",
                "scheme": scheme,
                "amount_eur": amount,
                "year_start": year,
                "year_end": year,
                "beneficiary": _clean(rec.get("raison_sociale")),
                "beneficiary_siret": tiers if tiers and _SIRET_RE.match(tiers) else None,
                "territory_level": level,
                "territory_code": code,
                "initiative_id": None,
                "source": f"{SOURCE_PREFIX}{path.stem}",
            })
    df = pd.DataFrame(rows, columns=model.FUNDING_COLUMNS)
    df["amount_eur"] = df["amount_eur"].astype("float64")
    df["year_start"] = df["year_start"].astype("int64")
    df["year_end"] = df["year_end"].astype("int64")
    if index is not None:
        located = df[df["territory_level"].notna()]
        unknown = sum(
            1 for level, code in zip(located["territory_level"], located["territory_code"],
                                     strict=True)
            if not index.exists(level, code)
        )
        df.attrs["unknown_territories"] = unknown
    return df


def location_counts(df: pd.DataFrame) -> dict[str, int]:
    """How lines are located: ``contrat_ville``, ``departement`` and ``none`` counts."""
    levels = df["territory_level"]
    return {
        "contrat_ville": int((levels == "contrat_ville").sum()),
        "departement": int((levels == "departement").sum()),
        "none": int(levels.isna().sum()),
    }


def funding_totals(df: pd.DataFrame) -> pd.DataFrame:
    """Totals per year and scheme: columns ``year, scheme, lines, amount_eur``."""
    if df.empty:
        return pd.DataFrame({"year": pd.Series(dtype="int64"), "scheme": pd.Series(dtype=str),
                             "lines": pd.Series(dtype="int64"),
                             "amount_eur": pd.Series(dtype="float64")})
    out = (
        df.groupby(["year_start", "scheme"], as_index=False)
        .agg(lines=("id", "size"), amount_eur=("amount_eur", lambda s: float(_fsum(s))))
        .rename(columns={"year_start": "year"})
        .sort_values(["year", "scheme"], ignore_index=True)
    )
    return out


def _fsum(values: pd.Series) -> float:
    import math

    return math.fsum(float(v) for v in values)

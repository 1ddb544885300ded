"""Tests of the national funding reader (tiny hand-made files + mirror integration)."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from territoires.catalogue import model
from territoires.catalogue.funding import (
    funding_totals,
    location_counts,
    read_national_funding,
)
from territoires.errors import SourceError

MIRROR = Path(os.environ.get("TERRITOIRES_MIRROR") or "/work/shared/data")


class FakeIndex:
    """Knows only contract CN03301I."""

    def exists(self, level: str, code: str) -> bool:
        return (level, code) in {("contrat_ville", "CN03301I"), ("departement", "33")}


def _write(folder: Path, sub: str, name: str, rows: list[dict]) -> None:
    path = folder / "funding" / sub / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows), encoding="utf-8")


@pytest.fixture
def tiny_mirror(tmp_path: Path) -> Path:
    _write(tmp_path, "ci-ville", "adulte-relais-2023.json", [
        {"id_poste": "P1", "code_tiers": "12345678901234", "raison_sociale": "Asso A",
         "annee": 2023, "montant": 20000.5, "code_cv": "CV105", "insee_dep": "33"},
        {"id_poste": "P1", "code_tiers": "12345678901234", "raison_sociale": "Asso A",
         "annee": 2023, "montant": 100, "code_cv": "CV105", "insee_dep": "33"},
        {"id_poste": "P2", "code_tiers": "123", "raison_sociale": "Asso B",
         "annee": 2023, "montant": 5, "insee_dep": "33"},
    ])
    _write(tmp_path, "ci-ville2", "postes-fonjep-2024.json", [
        {"id_poste": "D1", "raison_sociale": "Asso C", "annee": "2024", "montant": 7164,
         "code_cv": "CN03301I", "insee_dep": "33"},
        {"id_poste": "D2", "raison_sociale": "Asso D", "annee": "2024", "montant": 7164},
    ])
    (tmp_path / "funding" / "ci-ville2" / "geom_cv_ctr.json").write_text("{}")
    return tmp_path


def test_tiny_mirror(tiny_mirror: Path) -> None:
    df = read_national_funding(tiny_mirror, FakeIndex())
    assert list(df.columns) == model.FUNDING_COLUMNS
    assert list(df["id"]) == ["adultes_relais-2023-P1", "adultes_relais-2023-P1-2",
                              "adultes_relais-2023-P2", "fonjep-2024-D1", "fonjep-2024-D2"]
    first = df.iloc[0]
    assert first["funder"] == "État (ANCT)"
    assert first["funder_type"] == "etat"
    assert first["scheme"] == "adultes_relais"
    assert first["beneficiary_siret"] == "12345678901234"
    assert first["territory_level"] == "contrat_ville"
    assert first["territory_code"] == "CV105"
    assert first["source"] == "national:adulte-relais-2023"
    assert pd.isna(first["initiative_id"])
    assert pd.isna(df.iloc[2]["beneficiary_siret"])  # not 14 digits
    assert (df.iloc[2]["territory_level"], df.iloc[2]["territory_code"]) == ("departement", "33")
    fonjep = df.iloc[3]
    assert (fonjep["funder"], fonjep["scheme"], fonjep["year_start"], fonjep["year_end"]) == (
        "État (FONJEP)", "fonjep", 2024, 2024)
    assert df["year_start"].dtype == "int64"
    assert location_counts(df) == {"contrat_ville": 3, "departement": 1, "none": 1}
    assert df.attrs["unknown_territories"] == 2  # CV105 twice
    totals = funding_totals(df).set_index(["year", "scheme"])
    assert totals.loc[(2023, "adultes_relais"), "amount_eur"] == 20105.5
    assert totals.loc[(2023, "adultes_relais"), "lines"] == 3
    assert totals.loc[(2024, "fonjep"), "amount_eur"] == 14328


def test_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="Aucun fichier"):
        read_national_funding(tmp_path)
    _write(tmp_path, "ci-ville", "adulte-relais-2020.json", [{"id_poste": "x", "annee": 2020}])
    with pytest.raises(SourceError, match="ligne 1"):
        read_national_funding(tmp_path)


@pytest.mark.integration
def test_mirror_totals_match_raw_json() -> None:
    if not (MIRROR / "funding").is_dir():
        pytest.skip(f"miroir absent : {MIRROR}")
    expected_sum: dict[tuple[int, str], list[float]] = defaultdict(list)
    for sub in ("ci-ville", "ci-ville2"):
        for path in sorted((MIRROR / "funding" / sub).glob("*.json")):
            if path.name.startswith("adulte-relais-"):
                scheme = "adultes_relais"
            elif path.name.startswith("postes-fonjep-"):
                scheme = "fonjep"
            else:
                continue
            for rec in json.loads(path.read_text(encoding="utf-8")):
                expected_sum[(int(rec["annee"]), scheme)].append(float(rec["montant"]))
    df = read_national_funding(MIRROR)
    totals = funding_totals(df)
    got = {(int(y), s): (int(n), a) for y, s, n, a in
           zip(totals["year"], totals["scheme"], totals["lines"], totals["amount_eur"],
               strict=True)}
    assert set(got) == set(expected_sum)
    assert {(y, s) for y, s in got} == {(y, s) for y in range(2020, 2026)
                                        for s in ("adultes_relais", "fonjep")}
    for key, amounts in expected_sum.items():
        assert got[key][0] == len(amounts), key
        assert got[key][1] == pytest.approx(math.fsum(amounts), abs=1e-6), key
    assert len(df) == sum(len(v) for v in expected_sum.values())
    assert 38_000 <= len(df) <= 44_000
    assert df["id"].is_unique
    counts = location_counts(df)
    assert counts["contrat_ville"] + counts["departement"] + counts["none"] == len(df)
    assert counts["none"] < 100

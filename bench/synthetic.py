"""Synthetic catalogue over the real territory codes of an index (benchmarks only).

``make_synthetic(index)`` draws initiatives mostly on communes and QPV, some on EPCI,
départements, cités éducatives and contrats de ville, a few on régions; realistic vocabulary
values, years 2015-2026, log-normal amounts, and a majority of national unattached lines
(adultes-relais / FONJEP on contrats de ville or communes), like the real funding tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from territoires.catalogue.model import TABLE_COLUMNS, Catalogue
from territoires.pipeline.territories import TerritoryIndex
from territoires.vocab import (
    ALLIANCE_LEVELS,
    FUNDER_TYPES,
    MATURITY,
    ORG_TYPES,
    PUBLICS,
    SCALES,
    SCHEMES,
    THEMES,
)

#: Share of initiative territories by level.
LEVEL_MIX: dict[str, float] = {
    "commune": 0.42,
    "qpv": 0.33,
    "epci": 0.08,
    "cite_educative": 0.06,
    "departement": 0.05,
    "contrat_ville": 0.05,
    "region": 0.01,
}

_VOCABULARY_TEXT = (
    "réussite éducative parentalité école collège quartier ateliers théâtre lecture "
    "numérique orientation décrochage santé sport culture musique sciences égalité "
    "filles garçons familles médiation périscolaire bibliothèque accompagnement devoirs "
    "langues citoyenneté environnement jardin mobilité européenne petite enfance crèche "
    "alliance coopération enseignants animateurs éducateurs club coup de pouce vacances "
    "apprenantes cité éducative programme laboratoire ambition été"
)
WORDS: list[str] = _VOCABULARY_TEXT.split()


def _pick_codes(index: TerritoryIndex, level: str, n: int, rng: np.random.Generator) -> np.ndarray:
    table = index.table[index.table["level"] == level]
    codes = table["code"].to_numpy(dtype=object)
    if level in ("commune", "qpv", "epci"):
        pop = table["population"].fillna(table["population"].median()).fillna(1.0)
        weights = np.sqrt(np.maximum(pop.to_numpy(dtype=float), 1.0))
        return rng.choice(codes, size=n, p=weights / weights.sum())
    return rng.choice(codes, size=n)


def _territories(index: TerritoryIndex, n: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    present = {lv: w for lv, w in LEVEL_MIX.items() if (index.table["level"] == lv).any()}
    levels_list = list(present)
    probs = np.array(list(present.values()))
    levels = rng.choice(levels_list, size=n, p=probs / probs.sum())
    codes = np.empty(n, dtype=object)
    for level in levels_list:
        where = levels == level
        codes[where] = _pick_codes(index, level, int(where.sum()), rng)
    return levels.astype(object), codes


def _sample_lists(vocab_codes: list[str], n: int, lo: int, hi: int,
                  rng: np.random.Generator) -> list[list[str]]:
    sizes = rng.integers(lo, hi + 1, size=n)
    codes = np.array(vocab_codes, dtype=object)
    return [sorted(rng.choice(codes, size=k, replace=False).tolist()) for k in sizes]


def _sentences(n: int, k: int, rng: np.random.Generator) -> list[str]:
    words = np.array(WORDS, dtype=object)
    picks = rng.choice(words, size=(n, k))
    return [" ".join(row) for row in picks]


def make_synthetic(index: TerritoryIndex, n_initiatives: int = 50_000,
                   n_funding: int = 200_000, seed: int = 0) -> Catalogue:
    """A synthetic :class:`Catalogue` over the codes of ``index``."""
    rng = np.random.default_rng(seed)
    n = n_initiatives
    ids = np.array([f"init-{i:06d}" for i in range(n)], dtype=object)

    start_year = rng.integers(2015, 2027, size=n)
    duration = rng.integers(0, 5, size=n)
    end = np.where(rng.random(n) < 0.6, np.minimum(start_year + duration, 2030), 0)
    initiatives = pd.DataFrame({
        "id": ids,
        "title": [f"{t.capitalize()} {i}" for i, t in enumerate(_sentences(n, 3, rng))],
        "summary": _sentences(n, 25, rng),
        "scale": rng.choice(SCALES.codes, size=n),
        "start_date": [f"{y}-09-01" for y in start_year],
        "end_date": [f"{y}-06-30" if y else None for y in end],
        "themes": _sample_lists(THEMES.codes, n, 1, 3, rng),
        "publics": _sample_lists(PUBLICS.codes, n, 0, 3, rng),
        "alliance_levels": _sample_lists(ALLIANCE_LEVELS.codes, n, 0, 2, rng),
        "maturity": rng.choice(MATURITY.codes, size=n),
        "objectives": _sentences(n, 15, rng),
        "actions": _sentences(n, 15, rng),
        "results": _sentences(n, 10, rng),
        "version": 1,
    }).reindex(columns=TABLE_COLUMNS["initiatives"])

    # territories: 1 (75 %), 2 (20 %) or 3 (5 %) per initiative
    n_terr = rng.choice([1, 2, 3], size=n, p=[0.75, 0.2, 0.05])
    t_init = np.repeat(ids, n_terr)
    t_level, t_code = _territories(index, len(t_init), rng)
    territories = pd.DataFrame({"initiative_id": t_init, "level": t_level, "code": t_code})
    territories = territories.drop_duplicates(ignore_index=True)

    # organisations: one porteur and 0-3 partners, names from a shared pool
    pool = np.array([f"Association {w} {k}" for k in range(1000) for w in WORDS[:15]],
                    dtype=object)
    n_part = rng.integers(0, 4, size=n)
    o_init = np.concatenate([ids, np.repeat(ids, n_part)])
    organisations = pd.DataFrame({
        "initiative_id": o_init,
        "role": ["porteur"] * n + ["partenaire"] * int(n_part.sum()),
        "name": rng.choice(pool, size=len(o_init)),
        "type": rng.choice(ORG_TYPES.codes, size=len(o_init)),
        "siret": None,
    })

    n_ind = rng.integers(0, 3, size=n)
    indicators = pd.DataFrame({
        "initiative_id": np.repeat(ids, n_ind),
        "label": "Enfants accompagnés",
        "value": rng.integers(5, 500, size=int(n_ind.sum())).astype(float),
        "unit": "enfants",
        "year": rng.integers(2016, 2027, size=int(n_ind.sum())),
    })

    # funding: 40 % attached to an initiative (on one of its territories), 60 % national
    m = n_funding
    attached = rng.random(m) < 0.4
    f_init = np.full(m, None, dtype=object)
    f_level = np.empty(m, dtype=object)
    f_code = np.empty(m, dtype=object)
    rows = rng.integers(0, len(territories), size=int(attached.sum()))
    f_init[attached] = territories["initiative_id"].to_numpy(dtype=object)[rows]
    f_level[attached] = territories["level"].to_numpy(dtype=object)[rows]
    f_code[attached] = territories["code"].to_numpy(dtype=object)[rows]
    national = ~attached
    k = int(national.sum())
    on_cv = rng.random(k) < 0.7
    has_cv = (index.table["level"] == "contrat_ville").any()
    lv = np.where(on_cv & has_cv, "contrat_ville", "commune").astype(object)
    codes = np.empty(k, dtype=object)
    for level in ("contrat_ville", "commune"):
        where = lv == level
        if where.any():
            codes[where] = _pick_codes(index, level, int(where.sum()), rng)
    f_level[national], f_code[national] = lv, codes
    scheme = np.empty(m, dtype=object)
    scheme[attached] = rng.choice(SCHEMES.codes, size=int(attached.sum()))
    scheme[national] = rng.choice(["adultes_relais", "fonjep"], size=k, p=[0.6, 0.4])
    funder_type = np.where(national, "etat", rng.choice(FUNDER_TYPES.codes, size=m))
    year_start = rng.integers(2015, 2027, size=m)
    funding = pd.DataFrame({
        "id": [f"line-{i:07d}" for i in range(m)],
        "funder": np.where(national, "ANCT", "Financeur local"),
        "funder_type": funder_type,
        "scheme": scheme,
        "amount_eur": np.round(rng.lognormal(mean=np.log(15_000), sigma=1.0, size=m), 2),
        "year_start": year_start,
        "year_end": year_start + rng.integers(0, 3, size=m),
        "beneficiary": None,
        "beneficiary_siret": None,
        "territory_level": f_level,
        "territory_code": f_code,
        "initiative_id": f_init,
        "source": "synthetic",
    })
    for name, df in (("initiatives", initiatives), ("funding", funding)):
        for col in TABLE_COLUMNS[name]:
            if df[col].dtype == object and col not in ("themes", "publics", "alliance_levels"):
                df[col] = df[col].astype("str") if df[col].notna().all() else df[col]
    return Catalogue(initiatives=initiatives, organisations=organisations,
                     territories=territories, indicators=indicators, funding=funding)

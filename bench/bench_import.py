"""Benchmark: validate and import 10,000 initiatives (XLSX and CSV) into SQLite/PostgreSQL.

Each initiative has ~3 territories, 2 organisations and 4 funding lines. Territory codes come
from the built layers (``geo/``) when present, else from a small fixed list. Also times the
replacement of the ~41,000 national funding lines when the mirror is available.

Usage: ``.venv/bin/python bench/bench_import.py [--n 10000] [--pg URL]``
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from territoires import model, vocab
from territoires.exchange import export_bytes, read_exchange, validate
from territoires.storage import Store

FALLBACK = [("commune", c) for c in ("33063", "33119", "33249", "33069", "64445", "17300")] + [
    ("qpv", q) for q in ("QN03307M", "QN03309M", "QN03312M", "QN06403M", "QN01701M")]


class CodeIndex:
    """Set-based stand-in for TerritoryIndex.exists."""

    def __init__(self, codes: list[tuple[str, str]]) -> None:
        self.codes = set(codes)

    def exists(self, level: str, code: str) -> bool:
        return (level, code) in self.codes


def territory_codes() -> tuple[list[tuple[str, str]], str]:
    """(level, code) pairs from the built layers, else the fallback list."""
    try:
        from territoires.layers import LAYER_SCHEMAS, LEVEL_LAYER, load_layers

        layers = load_layers()
    except Exception:
        return FALLBACK, "liste fixe (couches non construites)"
    codes = []
    for level in ("commune", "qpv", "epci", "contrat_ville"):
        name = LEVEL_LAYER[level]
        codes += [(level, str(c)) for c in layers.layer(name)[LAYER_SCHEMAS[name][0]]]
    return codes, f"couches réelles ({len(codes)} codes)"


def generate(n: int, codes: list[tuple[str, str]], seed: int = 1) -> model.Catalogue:
    """A synthetic catalogue of ``n`` initiatives."""
    rng = random.Random(seed)
    ini, orgs, terr, fund = [], [], [], []
    for i in range(n):
        iid = f"initiative-{i:05d}"
        ini.append({"id": iid, "title": f"Initiative n°{i} — quartier",
                    "summary": "Résumé " * 20, "scale": rng.choice(vocab.SCALES.codes),
                    "themes": rng.sample(vocab.THEMES.codes, 2),
                    "publics": rng.sample(vocab.PUBLICS.codes, 2),
                    "alliance_levels": ["meso"], "maturity": rng.choice(vocab.MATURITY.codes),
                    "objectives": "Objectifs " * 10})
        for role in ("porteur", "partenaire"):
            orgs.append({"initiative_id": iid, "role": role, "name": f"Structure {i}",
                         "type": "association", "siret": f"{rng.randrange(10**14):014d}"})
        for level, code in rng.sample(codes, 3):
            terr.append({"initiative_id": iid, "level": level, "code": code})
        for k in range(4):
            level, code = rng.choice(codes)
            fund.append({"id": f"{iid}-f{k}", "funder": "Ville", "funder_type": "collectivite",
                         "scheme": rng.choice(vocab.SCHEMES.codes),
                         "amount_eur": round(rng.uniform(1000, 200000), 2),
                         "year_start": 2024, "year_end": 2025, "beneficiary": f"Structure {i}",
                         "territory_level": level, "territory_code": code,
                         "initiative_id": iid, "source": "bench"})
    frames = {"initiatives": ini, "organisations": orgs, "territories": terr, "funding": fund}
    return model.Catalogue(**{k: pd.DataFrame(v, columns=model.TABLE_COLUMNS[k])
                              for k, v in frames.items()})


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"  {label:<44} {time.perf_counter() - t0:7.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pg", default=os.environ.get(
        "TERRITOIRES_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    codes, origin = territory_codes()
    index = CodeIndex(codes)
    print(f"Codes de territoire : {origin}")
    cat = timed(f"génération de {args.n} initiatives", lambda: generate(args.n, codes))
    print(f"  lignes : {len(cat.initiatives)} initiatives, {len(cat.organisations)} structures, "
          f"{len(cat.territories)} territoires, {len(cat.funding)} financements")
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for fmt, name in (("xlsx", "bench.xlsx"), ("csv", "bench.zip")):
            path = tmpdir / name
            data = timed(f"écriture {fmt}", lambda fmt=fmt: export_bytes(cat, fmt))
            path.write_bytes(data)
            print(f"  taille {fmt} : {len(data) / 1e6:.1f} Mo")
            back, problems = timed(f"lecture {fmt}", lambda path=path: read_exchange(path))
            problems += timed(f"validation {fmt}",
                              lambda back=back, path=path: validate(back, index,
                                                                   file=path.name))
            print(f"  problèmes : {len(problems)}")
        targets = [("SQLite", f"sqlite:///{tmpdir / 'bench.sqlite'}", None)]
        try:
            engine = sa.create_engine(args.pg)
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            engine.dispose()
            targets.append(("PostgreSQL", args.pg, f"bench_{uuid.uuid4().hex[:8]}"))
        except Exception as exc:
            print(f"PostgreSQL injoignable ({type(exc).__name__}) : ignoré")
        mirror = Path(os.environ.get("TERRITOIRES_MIRROR") or "/work/shared/data")
        national = None
        if (mirror / "funding").is_dir():
            from territoires.funding import read_national_funding

            national = timed("lecture des financements nationaux",
                             lambda: read_national_funding(mirror))
        for label, url, schema in targets:
            print(label)
            store = Store(url, schema=schema)
            try:
                store.create_or_upgrade()
                report = timed("import (upsert, 1 transaction)", lambda s=store: s.upsert(back))
                print(f"  {report.describe()}")
                timed("ré-import identique (upsert)", lambda s=store: s.upsert(back))
                timed("lecture du catalogue", lambda s=store: s.load_catalogue())
                if national is not None:
                    n = len(national)
                    timed(f"remplacement de {n} lignes nationales",
                          lambda s=store: s.replace_funding_source("national:", national))
            finally:
                if schema:
                    with store.engine.begin() as conn:
                        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                store.dispose()


if __name__ == "__main__":
    main()

"""Benchmark: validate and import 10,000 initiatives (XLSX and CSV) into SQLite/PostgreSQL.

Each initiative has ~3 territories, 2 organisations and 4 funding lines. Territory codes come
from the built layers (``geo/``) when present, else from a small fixed list. Also times the
replacement of the ~41,000 national funding lines when the mirror is available.

With ``--csv-rows N`` (e.g. 200000) it measures instead the import of a CSV set (zip) whose
``initiatives.csv`` holds N rows: time and peak resident memory (RSS) of (a) reading and
validating it (``read_exchange`` + ``validate``, no territory index) and (b) the whole import
into a new SQLite database (:func:`territoires.catalogue.catalogue_ops.import_file`, which also
loads the
reference layers), each in a fresh Python process so that the peaks do not mix (peak = the
child's ``VmHWM``, Python and libraries included).

Usage: ``.venv/bin/python bench/bench_import.py [--n 10000] [--pg URL] [--csv-rows 200000]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from territoires import vocab
from territoires.catalogue import model
from territoires.catalogue.storage import Store

try:
    from territoires.catalogue.export import export_bytes
    from territoires.catalogue.reading import read_exchange
    from territoires.catalogue.validation import validate
except ImportError:  # before the split of territoires.exchange (baseline figures)
    from territoires.exchange import export_bytes, read_exchange, validate  # type: ignore

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
        from territoires.pipeline.layers import LAYER_SCHEMAS, LEVEL_LAYER, load_layers

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


_CHILD = """
import json, sys, time
from pathlib import Path
mode, path, url = sys.argv[1:4]
t0 = time.perf_counter()
if mode == "read":
    try:
        from territoires.catalogue.reading import read_exchange
        from territoires.catalogue.validation import validate
    except ImportError:
        from territoires.exchange import read_exchange, validate
    cat, problems = read_exchange(Path(path))
    problems += validate(cat, None, file=Path(path).name)
    rows = len(cat.initiatives)
else:
    from territoires.catalogue.catalogue_ops import import_file
    import_file(Path(path), url)
    problems, rows = [], None
# VmHWM (this process image's peak RSS): ru_maxrss would count the parent's memory at fork
hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - t0, "problems": len(problems),
                  "rows": rows, "peak_rss_mb": hwm / 1024}))
"""


def csv_import(rows: int) -> None:
    """Time and peak RSS of importing a CSV set of ``rows`` initiatives (see module doc)."""
    rng = random.Random(2)
    ini = pd.DataFrame({
        "id": [f"initiative-{i:06d}" for i in range(rows)],
        "title": [f"Initiative n°{i} — quartier" for i in range(rows)],
        "summary": ["Résumé de l'initiative, en quelques lignes. " * 4] * rows,
        "scale": [rng.choice(vocab.SCALES.codes) for _ in range(rows)],
        "themes": [rng.sample(vocab.THEMES.codes, 2) for _ in range(rows)],
        "publics": [rng.sample(vocab.PUBLICS.codes, 2) for _ in range(rows)],
        "alliance_levels": [["meso"]] * rows,
        "maturity": [rng.choice(vocab.MATURITY.codes) for _ in range(rows)],
        "objectives": ["Objectifs " * 10] * rows,
    }).reindex(columns=model.INITIATIVE_COLUMNS)
    cat = model.Catalogue(initiatives=ini)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.zip"
        path.write_bytes(export_bytes(cat, "csv"))
        print(f"CSV set of {rows} initiatives: {path.stat().st_size / 1e6:.1f} MB zipped")
        for mode, label in (("read", "read_exchange + validate"),
                            ("import", "import_file into SQLite")):
            url = f"sqlite:///{Path(tmp) / f'{mode}.sqlite'}"
            out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path), url],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                print(f"  {label}: failed\n{out.stderr[-2000:]}")
                continue
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {label:<28} {res['seconds']:7.2f} s   peak RSS "
                  f"{res['peak_rss_mb']:7.0f} MB   problems {res['problems']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pg", default=os.environ.get(
        "TERRITOIRES_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--csv-rows", type=int, default=0,
                        help="measure the import of a CSV set of this many initiatives")
    args = parser.parse_args()
    if args.csv_rows:
        csv_import(args.csv_rows)
        return
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
            from territoires.catalogue.funding import read_national_funding

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
